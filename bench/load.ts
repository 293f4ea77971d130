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
  /** CPU of other groups of processes during the measured window (`LoadSpec.cpuGroups`). */
  readonly groups?: Record<string, GroupCpu>;
}

export interface GroupCpu {
  /** CPU time of the group as a share of one core over the window (200 % = both cores of a 2-core machine). */
  readonly percentOfCore: number;
  /** CPU time of the group per successful answer, µs. */
  readonly microsPerRequest: number;
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
  /** One server, or several: autocannon then spreads the connections over them in turn. */
  readonly url: string | readonly string[];
  readonly connections: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly requests: () => autocannon.Request[];
  /** Processes of ours (for the foreign-CPU estimate); a function is asked at the start and the end of the window. */
  readonly pids: readonly number[] | (() => readonly number[]);
  /** Called between warm-up and measurement (e.g. to start a probe). */
  readonly beforeMeasure?: () => Promise<void>;
  /** The server under load, for its CPU split (main thread vs the others); several are summed. */
  readonly serverPid?: number | readonly number[];
  /** Other processes whose CPU is reported per answer (e.g. the database server, a projector process). */
  readonly cpuGroups?: Record<string, () => readonly number[]>;
}

/** CPU ticks of each process now. */
function ticksByPid(pids: readonly number[]): Map<number, number> {
  return new Map(pids.map((pid) => [pid, cpuTicksOf(pid)]));
}

/** Ticks used between two samples, over every process seen in either (one that started in between counts from 0). */
function ticksBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ticks] of after) total += ticks - (before.get(pid) ?? 0);
  return total;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  // autocannon takes an array of URLs too (connections go to them in turn); its types only say string.
  const url = spec.url as string;
  if (spec.warmupSeconds > 0) {
    await autocannon({ url, connections: spec.connections, duration: spec.warmupSeconds, requests: spec.requests() });
  }
  await spec.beforeMeasure?.();
  const ourPids = (): number[] => [process.pid, ...(typeof spec.pids === 'function' ? spec.pids() : spec.pids)];
  const serverPids = spec.serverPid === undefined ? [] : typeof spec.serverPid === 'number' ? [spec.serverPid] : [...spec.serverPid];
  const groups = Object.entries(spec.cpuGroups ?? {});
  const machineBefore = machineTicks();
  const oursBefore = ticksByPid(ourPids());
  const groupsBefore = groups.map(([, pids]) => ticksByPid(pids()));
  const serverBefore = serverPids.map((pid) => threadTicksOf(pid));
  const result = await autocannon({
    url,
    connections: spec.connections,
    duration: spec.seconds,
    requests: spec.requests(),
    timeout: 10,
  });
  const machineAfter = machineTicks();
  const foreign = machineAfter.busy - machineBefore.busy - ticksBetween(oursBefore, ticksByPid(ourPids()));
  const answers = Math.max(1, result['2xx']);
  let server: ServerCpu | undefined;
  if (serverPids.length > 0) {
    let main = 0;
    let all = 0;
    serverPids.forEach((pid, i) => {
      const after = threadTicksOf(pid);
      main += (after.main - serverBefore[i]!.main) / TICKS_PER_SECOND;
      all += (after.all - serverBefore[i]!.all) / TICKS_PER_SECOND;
    });
    const other = all - main;
    server = {
      // Several servers: the mean over them.
      mainBusyPercent: (100 * main) / result.duration / serverPids.length,
      mainMicrosPerRequest: (1e6 * main) / answers,
      otherMicrosPerRequest: (1e6 * Math.max(0, other)) / answers,
    };
  }
  let groupCpu: Record<string, GroupCpu> | undefined;
  if (groups.length > 0) {
    groupCpu = {};
    groups.forEach(([name, pids], i) => {
      const seconds = ticksBetween(groupsBefore[i]!, ticksByPid(pids())) / TICKS_PER_SECOND;
      groupCpu![name] = { percentOfCore: (100 * seconds) / result.duration, microsPerRequest: (1e6 * seconds) / answers };
    });
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
    ...(groupCpu ? { groups: groupCpu } : {}),
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
