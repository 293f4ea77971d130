// The registry under test, as a child of bench/run.ts: the real service
// (startServer over the environment, embedded engine in the data folder),
// plus a server-side probe for the append → visible lag, reported over IPC.
//
// The probe wraps two methods of the running instances, without touching the
// service's code: the event store's append (when the command handler hands
// events to the log) and the read model's applyBatch (when the projector's
// transaction with them has committed, i.e. they are visible to readers).
// A second probe times the dispatch query and secret decryption per lookup.
//
// With PROJECTOR=off (several API processes and a projector process, see
// bench/projectorServer.ts) nothing is applied here: `appends-stop` hands the
// recorded append times to the parent, which matches them with the projector's.
import { loadConfig } from '../src/config.ts';
import { applyHeapGrowth } from '../src/heapGrowth.ts';
import { startPauseProbe, type PauseSummary } from './pauses.ts';
import { startServer } from '../src/server.ts';
import { encodePosition, type AppendResult, type EventStore, type ExpectedRevision, type NewEvent, type RecordedEvent } from '../src/stores/eventStore.ts';
import type { DispatchSlices, DispatchView, ReadModel } from '../src/stores/readModel.ts';

const config = loadConfig(process.env);
applyHeapGrowth(config.HEAP_GROWTH_PERCENT); // as src/main.ts does
const server = await startServer(config);

/**
 * Log position (encoded: on PostgreSQL the events of one group commit share
 * their `commit` part) → when append() was called for it (ms, monotonic).
 */
const appendedAt = new Map<string, number>();
let recording = false;
let fromAppend: number[] = [];
let fromOccurred: number[] = [];
let unmatched = 0;
let applySeconds = 0;
let appliedEvents = 0;
let appliedBatches = 0;

const store: EventStore = server.core.store;
const originalAppend = store.append.bind(store);
store.append = (streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> => {
  const started = performance.now();
  const result = originalAppend(streamId, events, expected);
  if (recording) {
    // Attached before the command handler's own continuation, so the entry
    // exists before the projector can see the commit.
    result.then(
      (r) => {
        if (appendedAt.size > 1_000_000) appendedAt.clear();
        appendedAt.set(encodePosition(r.position), started);
      },
      () => undefined,
    );
  }
  return result;
};

const readModel: ReadModel = server.core.readModel;
const originalApply = readModel.applyBatch.bind(readModel);
readModel.applyBatch = async (events: readonly RecordedEvent[], expected: string | null): Promise<void> => {
  const applying = performance.now();
  await originalApply(events, expected);
  if (!recording) return;
  const visible = performance.now();
  applySeconds += (visible - applying) / 1000;
  appliedEvents += events.length;
  appliedBatches += 1;
  const wall = Date.now();
  for (const e of events) {
    const position = encodePosition(e.position);
    const started = appendedAt.get(position);
    if (started === undefined) unmatched += 1;
    else {
      appendedAt.delete(position);
      fromAppend.push(visible - started);
    }
    fromOccurred.push(wall - Date.parse(e.metadata.occurredAt));
  }
};

// Dispatch probe: time spent in the read-model query and in secret decryption
// (cache hits included) while it is on.
let probing = false;
const lookupProbe = { queries: 0, querySeconds: 0, decrypts: 0, decryptSeconds: 0 };
const originalDispatch = readModel.dispatchTargets.bind(readModel);
readModel.dispatchTargets = async <T extends { readonly id: string } = DispatchView>(
  eventType: string,
  partnerId: string,
  slices?: DispatchSlices<T>,
): Promise<T[]> => {
  if (!probing) return originalDispatch(eventType, partnerId, slices);
  // The time in the query: not the waits for turns between its slices, nor
  // the decryptions its slices make (the decryption probe counts those).
  let waited = 0;
  let keeping = 0;
  const timed = slices && {
    keep: (view: DispatchView) => {
      const from = performance.now();
      const kept = slices.keep(view);
      keeping += performance.now() - from;
      return kept;
    },
    between: async () => {
      const from = performance.now();
      await slices.between();
      waited += performance.now() - from;
    },
  };
  const started = performance.now();
  const result = await originalDispatch(eventType, partnerId, timed);
  lookupProbe.queries += 1;
  lookupProbe.querySeconds += (performance.now() - started - waited - keeping) / 1000;
  return result;
};
const secrets = server.core.secrets;
const originalDecrypt = secrets.decrypt.bind(secrets);
secrets.decrypt = (box, context, remember) => {
  if (!probing) return originalDecrypt(box, context, remember);
  const started = performance.now();
  const plaintext = originalDecrypt(box, context, remember);
  lookupProbe.decrypts += 1;
  lookupProbe.decryptSeconds += (performance.now() - started) / 1000;
  return plaintext;
};

function summary(values: number[]): { count: number; p50: number; p99: number; max: number } {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.length ? sorted[sorted.length - 1]! : 0 };
}

let stopPauses: (() => PauseSummary) | undefined;

process.on('message', (message: { type: string }) => {
  switch (message.type) {
    case 'lag-start':
      recording = true;
      fromAppend = [];
      fromOccurred = [];
      unmatched = 0;
      applySeconds = 0;
      appliedEvents = 0;
      appliedBatches = 0;
      appendedAt.clear();
      process.send?.({ type: 'ok' });
      break;
    case 'lag-stop':
      recording = false;
      process.send?.({
        type: 'lag',
        fromAppend: summary(fromAppend),
        fromOccurred: summary(fromOccurred),
        unmatched,
        projector: { events: appliedEvents, batches: appliedBatches, seconds: applySeconds },
      });
      break;
    case 'appends-stop':
      // Wall-clock milliseconds (timeOrigin + monotonic), comparable with the projector process's.
      recording = false;
      process.send?.({
        type: 'appends',
        entries: [...appendedAt].map(([position, started]) => [position, performance.timeOrigin + started]),
      });
      appendedAt.clear();
      break;
    case 'probe-start':
      probing = true;
      Object.assign(lookupProbe, { queries: 0, querySeconds: 0, decrypts: 0, decryptSeconds: 0 });
      process.send?.({ type: 'ok' });
      break;
    case 'probe-stop':
      probing = false;
      process.send?.({ type: 'probe', ...lookupProbe });
      break;
    case 'pauses-start':
      stopPauses = startPauseProbe();
      process.send?.({ type: 'ok' });
      break;
    case 'pauses-stop':
      process.send?.({ type: 'pauses', ...(stopPauses?.() ?? {}) });
      stopPauses = undefined;
      break;
    case 'memory': {
      const m = process.memoryUsage();
      const mib = (n: number): number => Math.round(n / 1048576);
      process.send?.({ type: 'memory', rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external) });
      break;
    }
    case 'stop':
      void server.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
      break;
    default:
      break;
  }
});
// The parent is gone: close the stores cleanly rather than linger.
process.on('disconnect', () => {
  void server.close().finally(() => process.exit(0));
});

process.send?.({ type: 'ready', url: server.url });
