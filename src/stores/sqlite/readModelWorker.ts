// Entry of the read model's writer thread (see ProjectionWriter in
// sqliteReadModel.ts): its own connection to the read-model file, applying
// the batches the projector sends with exactly the code the main thread
// would run, so a projected event costs the event loop only the hand-over.
import { parentPort, workerData } from 'node:worker_threads';
import type { RecordedEvent } from '../eventStore.ts';
import { openViewTables, type WriterReply } from './sqliteReadModel.ts';

interface ApplyMessage {
  readonly events: readonly RecordedEvent[];
  readonly expectedCheckpoint: string | null;
}

const port = parentPort!;
const { db, tables } = openViewTables((workerData as { path: string }).path);

port.on('message', (message: ApplyMessage | 'stop') => {
  if (message === 'stop') {
    db.close();
    port.close();
    return;
  }
  let reply: WriterReply;
  try {
    tables.applyBatch(message.events, message.expectedCheckpoint);
    reply = { ok: true };
  } catch (error) {
    const e = error as Error & { expected?: string | null; actual?: string | null };
    reply = { ok: false, name: e.name, message: e.message, expected: e.expected ?? null, actual: e.actual ?? null };
  }
  port.postMessage(reply);
});
