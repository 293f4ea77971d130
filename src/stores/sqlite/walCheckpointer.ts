// WAL checkpoints off the event loop. better-sqlite3 is synchronous, so with
// SQLite's automatic checkpoints every ~1000 pages one commit also copies the
// WAL back into the database file and waits for its fsyncs — stalling every
// request in the process for that long. Once a store has committed a while,
// this starts a worker thread with its own connection that checkpoints the
// file in PASSIVE mode (never blocking the writer or readers) and turns the
// writer's automatic checkpoints off. Durability is unchanged: commits are
// durable in the WAL (synchronous=FULL syncs it on every commit); a
// checkpoint only moves pages that are already safe.
//
// If the worker cannot start or dies, automatic checkpoints come back on.
// Short-lived stores (tests, command-line tools) never start one.
import type { Worker } from 'node:worker_threads';
import { startSqliteThread, stopSqliteThread } from './sqliteThread.ts';

/** The writer connection (or a stand-in that forwards to it, e.g. in a writer thread). */
export interface CheckpointedWriter {
  pragma(source: string): unknown;
  readonly open: boolean;
}

export interface WalCheckpointerOptions {
  /** The database file the writer connection has open. */
  readonly path: string;
  /** The writer's synchronous setting, which the checkpoint's own fsyncs follow. */
  readonly synchronous: 'FULL' | 'NORMAL';
  /** Commits before the worker starts. */
  readonly startAfterCommits?: number;
  /** Pause between checkpoint passes, ms. */
  readonly intervalMs?: number;
}

const AUTOCHECKPOINT_PAGES = 1000;
/**
 * Pause between checkpoint passes. Each pass fsyncs the WAL and the database
 * and copies the newest version of every page written since the last pass,
 * so a pass per commit (5 ms) copied the same hot pages (index interior
 * nodes, the table's last page) once per commit: ~30 µs of this thread's CPU
 * per registration in bench/phases.ts, against ~17 µs at 50 ms. The WAL
 * holds ~10 MB more at that load; readers find pages in it by hash.
 */
const PASS_INTERVAL_MS = 50;
/** A WAL file is truncated back to this size after it restarts (bytes). */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
db.pragma('synchronous = ' + workerData.synchronous);
let timer;
const pass = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    // SQLITE_BUSY: another checkpoint is running; try again next time.
    if (!(error && error.code === 'SQLITE_BUSY')) throw error;
  }
  timer = setTimeout(pass, workerData.intervalMs);
};
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
pass();
`;

export class WalCheckpointer {
  private commits = 0;
  private worker: Worker | undefined;
  private stopped = false;
  private readonly startAfter: number;

  constructor(
    private readonly db: CheckpointedWriter,
    private readonly options: WalCheckpointerOptions,
  ) {
    this.startAfter = options.startAfterCommits ?? 200;
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
  }

  /** Call after each commit of the writer connection. */
  committed(): void {
    if (this.worker !== undefined || this.stopped) return;
    this.commits += 1;
    if (this.commits >= this.startAfter) this.start();
  }

  private start(): void {
    let worker: Worker;
    try {
      worker = startSqliteThread(WORKER_SOURCE, {
        path: this.options.path,
        synchronous: this.options.synchronous,
        intervalMs: this.options.intervalMs ?? PASS_INTERVAL_MS,
      });
    } catch {
      this.stopped = true; // keep SQLite's automatic checkpoints
      return;
    }
    this.worker = worker;
    worker.once('online', () => {
      if (this.worker === worker && !this.stopped) this.db.pragma('wal_autocheckpoint = 0');
    });
    const fallBack = (): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.stopped = true;
      if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    };
    worker.once('error', fallBack);
    worker.once('exit', fallBack);
  }

  /** Stops the worker (before the writer closes its connection, which then checkpoints what is left). */
  async close(): Promise<void> {
    this.stopped = true;
    const worker = this.worker;
    if (worker === undefined) return;
    this.worker = undefined;
    await stopSqliteThread(worker);
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
  }
}
