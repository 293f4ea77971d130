// `tsx bench/profileSummary.ts <file.cpuprofile> [top]`: the functions and
// packages a V8 CPU profile (node --cpu-prof, e.g. from `npm run bench --
// --profile`) spent its time in, self and inclusive, as shares of the total.
// Native work (SQLite, JSON.parse, crypto) is charged to the JavaScript
// function that called it.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const [file, topArg] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: tsx bench/profileSummary.ts <file.cpuprofile> [top]\n');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const timeByNode = new Map<number, number>();
profile.samples.forEach((id, i) => timeByNode.set(id, (timeByNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

const functionOf = (n: ProfileNode): string => {
  const { functionName, url, lineNumber } = n.callFrame;
  return `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`;
};
const packageOf = (n: ProfileNode): string => {
  const { functionName, url } = n.callFrame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  if (url.startsWith('node:')) return url.split('/')[0]!;
  return url.split('/').slice(-2).join('/');
};

function tally(key: (n: ProfileNode) => string): { self: Map<string, number>; inclusive: Map<string, number>; total: number } {
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  for (const [id, time] of timeByNode) {
    total += time;
    const node = byId.get(id)!;
    self.set(key(node), (self.get(key(node)) ?? 0) + time);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = key(byId.get(at)!);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + time);
    }
  }
  return { self, inclusive, total };
}

function print(title: string, values: Map<string, number>, total: number): void {
  process.stdout.write(`\n${title}\n`);
  for (const [k, t] of [...values].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((100 * t) / total).toFixed(1).padStart(6)} %  ${k}\n`);
  }
}

const fns = tally(functionOf);
const pkgs = tally(packageOf);
process.stdout.write(`${file}: ${(fns.total / 1e6).toFixed(1)} s sampled\n`);
print('self time by function', fns.self, fns.total);
print('inclusive time by function', fns.inclusive, fns.total);
print('inclusive time by package or file', pkgs.inclusive, pkgs.total);
