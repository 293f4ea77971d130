// Load generation with autocannon (worker-less, in the bench's own process)
// and the request generators every figure uses — the same generator drives
// the bare route and the registry, so the two sides see identical traffic.
import autocannon from 'autocannon';
import { cpuTicksOf, machineTicks, threadTicksOf } from './children.ts';
import { pick, rng, type Organization, type Workload } from './workload.ts';

export interface LoadResult {
  readonly title: string;
  /** Successful (2xx) answers per second over the measured window. */
  readonly rps: number;
  readonly ok: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number; readonly mean: number };
  readonly seconds: number;
  /** Share of the machine's CPU used by processes other than the bench and its servers (noise indicator). */
  readonly foreignCpuPercent: number;
  /** Where the server under load spent CPU during the measured window (when its pid was given). */
  readonly server?: ServerCpu;
}

export interface ServerCpu {
  /** Share of the window the main thread (the event loop) was on a CPU. */
  readonly mainBusyPercent: number;
  /** CPU time of the main thread per successful answer, µs. */
  readonly mainMicrosPerRequest: number;
  /** CPU time of the other threads (writer threads, GC helpers, libuv pool) per successful answer, µs. */
  readonly otherMicrosPerRequest: number;
}

/** Linux reports thread CPU times in USER_HZ ticks, 100 per second on every mainstream kernel. */
const TICKS_PER_SECOND = 100;

export interface LoadSpec {
  readonly title: string;
  readonly url: string;
  readonly connections: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly requests: () => autocannon.Request[];
  /** Processes of ours (for the foreign-CPU estimate). */
  readonly pids: readonly number[];
  /** Called between warm-up and measurement (e.g. to start a probe). */
  readonly beforeMeasure?: () => Promise<void>;
  /** The server under load, for its CPU split (main thread vs the others). */
  readonly serverPid?: number;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  if (spec.warmupSeconds > 0) {
    await autocannon({ url: spec.url, connections: spec.connections, duration: spec.warmupSeconds, requests: spec.requests() });
  }
  await spec.beforeMeasure?.();
  const ours = () => spec.pids.reduce((sum, pid) => sum + cpuTicksOf(pid), cpuTicksOf(process.pid));
  const machineBefore = machineTicks();
  const oursBefore = ours();
  const serverBefore = spec.serverPid === undefined ? undefined : threadTicksOf(spec.serverPid);
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.seconds,
    requests: spec.requests(),
    timeout: 10,
  });
  const machineAfter = machineTicks();
  const foreign = machineAfter.busy - machineBefore.busy - (ours() - oursBefore);
  let server: ServerCpu | undefined;
  if (spec.serverPid !== undefined && serverBefore !== undefined) {
    const after = threadTicksOf(spec.serverPid);
    const main = (after.main - serverBefore.main) / TICKS_PER_SECOND;
    const other = (after.all - serverBefore.all) / TICKS_PER_SECOND - main;
    const answers = Math.max(1, result['2xx']);
    server = {
      mainBusyPercent: (100 * main) / result.duration,
      mainMicrosPerRequest: (1e6 * main) / answers,
      otherMicrosPerRequest: (1e6 * Math.max(0, other)) / answers,
    };
  }
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stat.count ?? 0;
  return {
    title: spec.title,
    rps: result['2xx'] / result.duration,
    ok: result['2xx'],
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max, mean: result.latency.mean },
    seconds: result.duration,
    foreignCpuPercent: Math.max(0, (100 * foreign) / Math.max(1, machineAfter.total - machineBefore.total)),
    ...(server ? { server } : {}),
  };
}

export interface OrgToken {
  readonly org: Organization;
  readonly token: string;
}

export interface ReplayItem {
  readonly token: string;
  readonly key: string;
  readonly body: string;
}

/** Fresh registrations: a new Idempotency-Key for every request, organizations in turn. */
export function registrationRequests(workload: Workload, tokens: readonly OrgToken[], runId: string, seed: number): () => autocannon.Request[] {
  return () => {
    const random = rng(seed++);
    let n = 0;
    return [
      {
        method: 'POST',
        path: '/v1/webhooks',
        setupRequest: (request) => {
          const i = n++;
          const t = tokens[i % tokens.length]!;
          request.headers = {
            'content-type': 'application/json',
            authorization: `Bearer ${t.token}`,
            'idempotency-key': `${runId}-${seed}-${i}`,
          };
          request.body = JSON.stringify(workload.registration(random, t.org, i));
          return request;
        },
      },
    ];
  };
}

/** The same requests again and again (same key, same body): every answer is a replay. */
export function replayRequests(pool: readonly ReplayItem[]): () => autocannon.Request[] {
  return () => {
    let n = 0;
    return [
      {
        method: 'POST',
        path: '/v1/webhooks',
        setupRequest: (request) => {
          const item = pool[n++ % pool.length]!;
          request.headers = {
            'content-type': 'application/json',
            authorization: `Bearer ${item.token}`,
            'idempotency-key': item.key,
          };
          request.body = item.body;
          return request;
        },
      },
    ];
  };
}

export function dispatchPath(eventType: string, partnerId: string): string {
  return `/internal/v1/dispatch-targets?eventType=${encodeURIComponent(eventType)}&partnerId=${partnerId}`;
}

/** Dispatcher lookups for random (event type, partner) pairs. */
export function dispatchRequests(workload: Workload, token: string, seed: number): () => autocannon.Request[] {
  return () => {
    const random = rng(seed++);
    return [
      {
        method: 'GET',
        path: '/internal/v1/dispatch-targets',
        setupRequest: (request) => {
          request.headers = { authorization: `Bearer ${token}` };
          request.path = dispatchPath(pick(random, workload.eventTypes), pick(random, workload.partnerIds));
          return request;
        },
      },
    ];
  };
}
