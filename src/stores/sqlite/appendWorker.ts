// The event store's writer: a worker thread with its own connection that runs
// each group commit (one transaction, one fsync) off the event loop. While a
// commit waits for the disk, the main thread keeps parsing, authenticating and
// answering requests, and the appends arriving meanwhile form the next batch.
// WAL checkpoints run in the checkpointer thread (walCheckpointer.ts), which
// turns this connection's automatic checkpoints off through pragma(), so a
// commit never waits for one.
//
// One batch is in flight at a time, so expected-revision checks see every
// earlier batch. Callers are answered only after the commit is durable.
import type { Worker } from 'node:worker_threads';
import { startSqliteThread, stopSqliteThread } from './sqliteThread.ts';

/** An append as the worker takes it: data and metadata already JSON. */
export interface AppendRequest {
  readonly streamId: string;
  /** 'no_stream' | 'any' | the revision the stream must be at. */
  readonly expected: 'no_stream' | 'any' | number;
  readonly events: readonly { readonly type: string; readonly data: string; readonly metadata: string }[];
}

export type AppendReply =
  | { readonly ok: true; readonly nextRevision: number; readonly position: number }
  | { readonly ok: false; readonly actual: 'no_stream' | number };

type WorkerMessage =
  | { readonly kind: 'committed'; readonly results: AppendReply[]; readonly seconds: number }
  | { readonly kind: 'failed'; readonly message: string };

/** The settings the checkpointer may change on the writer's connection. */
const PRAGMA = /^(wal_autocheckpoint|journal_size_limit) = \d+$/;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.pragma('busy_timeout = 5000');
for (const setting of workerData.pragmas) db.pragma(setting);
const streamRevision = db.prepare('SELECT max(revision) FROM events WHERE stream_id = ?').pluck();
const insert = db.prepare('INSERT INTO events (stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?)');
const appendOne = (a) => {
  const current = streamRevision.get(a.streamId);
  const ok = a.expected === 'any' || (a.expected === 'no_stream' ? current === null : current === a.expected);
  if (!ok) return { ok: false, actual: current === null ? 'no_stream' : current };
  let revision = current === null ? -1 : current;
  let position = 0;
  for (const e of a.events) {
    revision += 1;
    position = Number(insert.run(a.streamId, revision, e.type, e.data, e.metadata).lastInsertRowid);
  }
  return { ok: true, nextRevision: revision, position };
};
const appendBatch = db.transaction((batch) => batch.map(appendOne));
// The batch arrives as one string and the lengths to cut it by (see encodeBatch).
const decodeBatch = ({ text, shape }) => {
  const batch = [];
  let at = 0;
  const take = (length) => text.slice(at, (at += length));
  for (let i = 0; i < shape.length; ) {
    const expected = shape[i++];
    const count = shape[i++];
    const streamId = take(shape[i++]);
    const events = [];
    for (let k = 0; k < count; k++) events.push({ type: take(shape[i++]), data: take(shape[i++]), metadata: take(shape[i++]) });
    batch.push({ streamId, expected, events });
  }
  return batch;
};
parentPort.on('message', (message) => {
  if (message && typeof message.pragma === 'string') {
    db.pragma(message.pragma);
    return;
  }
  if (message === 'stop') {
    db.close();
    parentPort.close();
    return;
  }
  const started = process.hrtime.bigint();
  try {
    const results = appendBatch(decodeBatch(message));
    parentPort.postMessage({ kind: 'committed', results, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
  } catch (error) {
    parentPort.postMessage({ kind: 'failed', message: String(error && error.message) });
  }
});
`;

/**
 * A batch as posted to the thread: every string of it joined into one, and
 * per append its expected revision, event count and the lengths to cut the
 * string by (stream id, then type, data and metadata of each event). Cloning
 * one flat string and a small array costs the main thread about half of
 * cloning the same strings in an object per append and event.
 */
interface EncodedBatch {
  readonly text: string;
  readonly shape: readonly (string | number)[];
}

function encodeBatch(batch: readonly AppendRequest[]): EncodedBatch {
  const parts: string[] = [];
  const shape: (string | number)[] = [];
  for (const a of batch) {
    shape.push(a.expected, a.events.length, a.streamId.length);
    parts.push(a.streamId);
    for (const e of a.events) {
      shape.push(e.type.length, e.data.length, e.metadata.length);
      parts.push(e.type, e.data, e.metadata);
    }
  }
  return { text: parts.join(''), shape };
}

export class AppendWorker {
  private worker: Worker | undefined;
  /** Connection settings by name, applied when the thread starts and forwarded while it runs. */
  private readonly pragmas = new Map<string, string>();
  private closed = false;
  private inFlight: { resolve: (r: { results: AppendReply[]; seconds: number }) => void; reject: (e: Error) => void } | undefined;

  constructor(private readonly path: string) {}

  /**
   * Commits one batch. Rejects when the transaction fails (nothing written) or
   * the thread dies, in which case the batch may or may not have committed —
   * as with a crash, a retry under the same Idempotency-Key answers from the log.
   */
  commit(batch: readonly AppendRequest[]): Promise<{ results: AppendReply[]; seconds: number }> {
    if (this.inFlight) return Promise.reject(new Error('a commit is already in flight'));
    const worker = this.worker ?? this.start();
    return new Promise((resolve, reject) => {
      this.inFlight = { resolve, reject };
      worker.ref(); // an unanswered append keeps the process alive
      worker.postMessage(encodeBatch(batch));
    });
  }

  /** Until close(): the checkpointer (walCheckpointer.ts) sees this thread as its writer connection. */
  get open(): boolean {
    return !this.closed;
  }

  /** The writer connection's face for the checkpointer: `wal_autocheckpoint` and `journal_size_limit` only. */
  pragma(source: string): void {
    if (!PRAGMA.test(source)) throw new Error(`unsupported writer setting: ${source}`);
    this.pragmas.set(source.slice(0, source.indexOf(' ')), source);
    this.worker?.postMessage({ pragma: source });
  }

  private start(): Worker {
    const worker = startSqliteThread(WORKER_SOURCE, { path: this.path, pragmas: [...this.pragmas.values()] });
    worker.on('message', (message: WorkerMessage) => {
      const pending = this.inFlight;
      this.inFlight = undefined;
      worker.unref();
      if (!pending) return;
      if (message.kind === 'committed') pending.resolve({ results: message.results, seconds: message.seconds });
      else pending.reject(new Error(message.message));
    });
    const died = (error?: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const pending = this.inFlight;
      this.inFlight = undefined;
      pending?.reject(error ?? new Error('the writer thread exited'));
    };
    worker.on('error', died);
    worker.on('exit', () => died());
    this.worker = worker;
    return worker;
  }

  /** Stops the worker; call once no commit is in flight. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (worker === undefined) return;
    this.worker = undefined;
    await stopSqliteThread(worker);
  }
}
