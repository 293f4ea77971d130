// A dispatcher's replica (createDispatchReplica, DESIGN.md §4b) as a child of
// bench/run.ts, so its RSS is its own: it imports only the package's
// dispatcher entry, as a dispatcher in another process would, and is driven
// over the IPC channel.
//
// - `start` {baseUrl, token}: creates the replica and answers `started` once
//   its first snapshot is in memory, with the time that took (createDispatchReplica
//   → whenReady, monotonic clock of this process).
// - `lookups` {seconds, seed}: times targets(eventType, partnerId), single
//   thread, over (event type, partner) pairs drawn exactly as the HTTP lookup
//   phase draws them (bench/load.ts dispatchRequests: the same seeded
//   generator, uniform over the catalog's types and the workload's partners).
//   It runs in slices of ~20 ms and yields between them, so the change feed
//   and IPC keep being served; the rate is over the whole wall time, yields
//   included.
// - `watch` {id, eventType, partnerId}: from now on, notes when targets() for
//   that pair first includes the webhook `id` (checked at once, then every
//   millisecond). Times are wall-clock ms of this machine as
//   performance.timeOrigin + performance.now(), the clock the parent stamps
//   its 201s with.
// - `watch-stop` {timeoutMs}: waits up to timeoutMs for the ids not seen yet,
//   then answers `watched` with [id, seenAt] for every id seen, the count
//   not seen, and this process's GC pauses and loop delay since the first
//   watch (bench/pauses.ts).
import { createDispatchReplica, type DispatchReplica } from '../src/dispatcher.ts';
import { startPauseProbe, type PauseSummary } from './pauses.ts';
import { createWorkload, pick, rng } from './workload.ts';

let replica: DispatchReplica | undefined;
const feedErrors: string[] = [];
const wallNow = (): number => performance.timeOrigin + performance.now();

interface Watch {
  readonly id: string;
  readonly eventType: string;
  readonly partnerId: string;
}
const pending = new Map<string, Watch>();
const seen: [string, number][] = [];
let poller: ReturnType<typeof setInterval> | undefined;

function visible(w: Watch): boolean {
  return replica!.targets(w.eventType, w.partnerId).some((t) => t.id === w.id);
}

function check(): void {
  const at = wallNow();
  for (const [id, w] of pending) {
    if (visible(w)) {
      seen.push([id, at]);
      pending.delete(id);
    }
  }
  if (pending.size === 0 && poller !== undefined) {
    clearInterval(poller);
    poller = undefined;
  }
}

/** This process's collections and loop delay from the first watch to watch-stop. */
let stopPauses: (() => PauseSummary) | undefined;

function watch(w: Watch): void {
  stopPauses ??= startPauseProbe();
  if (visible(w)) {
    // Already applied when the parent's message arrived: counted at the arrival (an upper bound).
    seen.push([w.id, wallNow()]);
    return;
  }
  pending.set(w.id, w);
  poller ??= setInterval(check, 1);
}

async function start(baseUrl: string, token: string): Promise<void> {
  const started = performance.now();
  replica = createDispatchReplica({
    baseUrl,
    getToken: () => token,
    onError: (error) => {
      if (feedErrors.length < 20) feedErrors.push(error.message);
    },
  });
  await replica.whenReady();
  const bootstrapMs = performance.now() - started;
  const m = process.memoryUsage();
  const mib = (n: number): number => n / 1048576;
  process.send?.({
    type: 'started',
    bootstrapMs,
    position: replica.position,
    memory: { rss: mib(m.rss), heapUsed: mib(m.heapUsed), external: mib(m.external) },
  });
}

async function lookups(seconds: number, seed: number): Promise<void> {
  const r = replica!;
  const workload = createWorkload();
  // Drawn beforehand, so the generator's cost is not timed.
  const random = rng(seed);
  const n = 1 << 17;
  const types: string[] = new Array<string>(n);
  const partners: string[] = new Array<string>(n);
  const distinct = new Set<string>();
  for (let i = 0; i < n; i++) {
    types[i] = pick(random, workload.eventTypes);
    partners[i] = pick(random, workload.partnerIds);
    distinct.add(`${types[i]} ${partners[i]}`);
  }
  const yieldNow = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  let at = 0;
  /** Lookups in ~20 ms slices, yielding between them, until `done`; counts, targets and wall seconds (yields included). */
  const timed = async (done: (now: number, count: number) => boolean): Promise<{ count: number; targets: number; seconds: number }> => {
    let count = 0;
    let targets = 0;
    const begin = performance.now();
    for (;;) {
      const slice = performance.now() + 20;
      let now = performance.now();
      while (now < slice && !done(now, count)) {
        for (let k = 0; k < 256; k++) {
          targets += r.targets(types[at]!, partners[at]!).length;
          at = (at + 1) & (n - 1);
        }
        count += 256;
        now = performance.now();
      }
      if (done(now, count)) break;
      await yieldNow();
    }
    return { count, targets, seconds: (performance.now() - begin) / 1000 };
  };
  // The first pass over the drawn pairs computes each distinct answer once (the replica then caches it
  // until a change touches that partner); bounded, in case computing is slow.
  const firstBegin = performance.now();
  const first = await timed((now, count) => count >= n || now - firstBegin > 60_000);
  // Steady state: the same mix again, for `seconds`.
  const warmBegin = performance.now();
  const warm = await timed((now) => now - warmBegin >= seconds * 1000);
  process.send?.({
    type: 'lookups',
    count: warm.count,
    seconds: warm.seconds,
    meanTargets: warm.targets / Math.max(1, warm.count),
    drawn: n,
    distinctPairs: distinct.size,
    firstPass: { count: first.count, seconds: first.seconds, complete: first.count >= n, meanTargets: first.targets / Math.max(1, first.count) },
  });
}

async function watchStop(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pending.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  check();
  const pauses = stopPauses?.() ?? null;
  stopPauses = undefined;
  process.send?.({ type: 'watched', entries: seen.splice(0), unseen: pending.size, stats: replica?.stats ?? null, feedErrors, pauses });
  pending.clear();
}

/** A failure answers with the type the parent waits for, carrying `error`. */
const report =
  (type: string) =>
  (error: unknown): void => {
    process.send?.({ type, error: error instanceof Error ? error.message : String(error) });
  };

function memory(): void {
  const m = process.memoryUsage();
  const mib = (n: number): number => n / 1048576;
  process.send?.({ type: 'memory', rss: mib(m.rss), heapUsed: mib(m.heapUsed), external: mib(m.external) });
}

process.on('message', (message: { type: string; [k: string]: unknown }) => {
  switch (message.type) {
    case 'start':
      start(String(message.baseUrl), String(message.token)).catch(report('started'));
      break;
    case 'lookups':
      lookups(Number(message.seconds), Number(message.seed)).catch(report('lookups'));
      break;
    case 'watch':
      watch({ id: String(message.id), eventType: String(message.eventType), partnerId: String(message.partnerId) });
      break;
    case 'watch-stop':
      watchStop(Number(message.timeoutMs)).catch(report('watched'));
      break;
    case 'memory':
      memory();
      break;
    case 'stop':
      void (replica?.close() ?? Promise.resolve()).finally(() => process.exit(0));
      break;
    default:
      break;
  }
});
process.on('disconnect', () => process.exit(0));

process.send?.({ type: 'ready', url: '' });
