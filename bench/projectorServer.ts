// The projector as its own process, as a child of bench/run.ts: what the
// `project` command runs (src/cli/project.ts: the stores from the environment
// and one Projector), plus a probe that records, per event, when the
// read-model transaction that applied it had committed (wall-clock ms:
// timeOrigin + monotonic, comparable with the API processes' append times,
// which bench/registryServer.ts hands over on `appends-stop`).
import { loadConfig } from '../src/config.ts';
import { Projector } from '../src/projections/projector.ts';
import { closeCore, openStores } from '../src/runtime.ts';
import { createLogger } from '../src/server.ts';
import { comparePositions, decodePosition, encodePosition, type Position, type RecordedEvent } from '../src/stores/eventStore.ts';

const config = loadConfig(process.env);
const logger = createLogger(config);
const stores = await openStores(config);

let recording = false;
/** [encoded position, visible at (ms), occurredAt (ms)] of every event applied while recording. */
let visible: [string, number, number][] = [];
let applySeconds = 0;
let appliedBatches = 0;
/** The last position applied (recording or not). */
let lastApplied: Position | undefined;

const readModel = stores.readModel;
const originalApply = readModel.applyBatch.bind(readModel);
readModel.applyBatch = async (events: readonly RecordedEvent[], expected: string | null): Promise<void> => {
  const applying = performance.now();
  await originalApply(events, expected);
  if (events.length > 0) lastApplied = events[events.length - 1]!.position;
  if (!recording) return;
  const done = performance.now();
  applySeconds += (done - applying) / 1000;
  appliedBatches += 1;
  const at = performance.timeOrigin + done;
  for (const e of events) visible.push([encodePosition(e.position), at, Date.parse(e.metadata.occurredAt)]);
};

const projector = new Projector(stores.store, readModel, { logger });
projector.start();

async function stop(): Promise<never> {
  await projector.stop().catch(() => undefined);
  await closeCore(stores).catch(() => undefined);
  process.exit(0);
}

/** Resolves once `position` is applied, or after `timeoutMs`. */
async function appliedUpTo(position: string | null | undefined, timeoutMs: number): Promise<void> {
  if (!position) return;
  const target = decodePosition(position);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && (lastApplied === undefined || comparePositions(lastApplied, target) < 0)) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

process.on('message', (message: { type: string; until?: string | null; timeoutMs?: number }) => {
  switch (message.type) {
    case 'visible-start':
      recording = true;
      visible = [];
      applySeconds = 0;
      appliedBatches = 0;
      process.send?.({ type: 'ok' });
      break;
    case 'visible-stop':
      // Keeps recording until the last append the parent knows of is applied.
      void appliedUpTo(message.until, message.timeoutMs ?? 30_000).then(() => {
        recording = false;
        process.send?.({ type: 'visible', entries: visible, batches: appliedBatches, seconds: applySeconds });
        visible = [];
      });
      break;
    case 'stop':
      void stop();
      break;
    default:
      break;
  }
});
// The parent is gone: stop at a checkpoint rather than linger.
process.on('disconnect', () => void stop());

process.send?.({ type: 'ready', url: '' });
