// The embedded event store: one SQLite file in WAL mode with synchronous=FULL,
// so an acknowledged append survives power loss. Appends queued in the same
// tick are group-committed: one transaction and one fsync for the whole batch,
// and every caller is answered only after that commit. Each append in a batch
// is checked against its expected revision inside the transaction, so a
// conflict fails that append alone.
import Database from 'better-sqlite3';
import { WalCheckpointer } from './walCheckpointer.ts';
import {
  StreamConflictError,
  StoreUnavailableError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type Position,
  type ReadAllOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../eventStore.ts';

export interface SqliteEventStoreOptions {
  readonly path: string;
  /** Called after every group commit with its size and the commit's duration (for metrics). */
  readonly onCommit?: (batchSize: number, seconds: number) => void;
}

interface PendingAppend {
  readonly streamId: string;
  readonly events: readonly NewEvent[];
  readonly expected: ExpectedRevision;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
}

interface EventRow {
  position: number;
  stream_id: string;
  revision: number;
  type: string;
  data: string;
  metadata: string;
}

const SUBSCRIPTION_PAGE = 1000;
const CROSS_PROCESS_POLL_MS = 200;

export class SqliteEventStore implements EventStore {
  private readonly db: Database.Database;
  private readonly statements;
  private readonly appendBatch: (batch: PendingAppend[]) => (AppendResult | StreamConflictError)[];
  private queue: PendingAppend[] = [];
  private flushScheduled = false;
  private closed = false;
  /** Live subscriptions waiting for the next commit. */
  private readonly waiters = new Set<() => void>();
  private readonly checkpointer: WalCheckpointer;

  constructor(private readonly options: SqliteEventStoreOptions) {
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.checkpointer = new WalCheckpointer(this.db, { path: options.path, synchronous: 'FULL' });
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS events (
        position  INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT    NOT NULL,
        revision  INTEGER NOT NULL,
        type      TEXT    NOT NULL,
        data      TEXT    NOT NULL,
        metadata  TEXT    NOT NULL,
        UNIQUE (stream_id, revision)
      );
    `);
    this.statements = {
      streamRevision: this.db.prepare<[string], { revision: number | null }>(
        'SELECT max(revision) AS revision FROM events WHERE stream_id = ?',
      ),
      insert: this.db.prepare<[string, number, string, string, string]>(
        'INSERT INTO events (stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?)',
      ),
      readStream: this.db.prepare<[string], EventRow>(
        'SELECT position, stream_id, revision, type, data, metadata FROM events WHERE stream_id = ? ORDER BY revision',
      ),
      readAll: this.db.prepare<[number, number], EventRow>(
        'SELECT position, stream_id, revision, type, data, metadata FROM events WHERE position > ? ORDER BY position LIMIT ?',
      ),
      head: this.db.prepare<[], { position: number | null }>('SELECT max(position) AS position FROM events'),
    };
    this.appendBatch = this.db.transaction((batch: PendingAppend[]) => batch.map((a) => this.appendOne(a)));
  }

  append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('event store is closed'));
    if (events.length === 0) return Promise.reject(new Error('append needs at least one event'));
    return new Promise((resolve, reject) => {
      this.queue.push({ streamId, events, expected, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate runs after the current I/O phase, so requests parsed in the
        // same loop turn share one commit.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const started = process.hrtime.bigint();
    let results: (AppendResult | StreamConflictError)[];
    try {
      results = this.appendBatch(batch);
    } catch (error) {
      const failure = new StoreUnavailableError(`append failed: ${(error as Error).message}`);
      for (const a of batch) a.reject(failure);
      return;
    }
    this.options.onCommit?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9);
    this.checkpointer.committed();
    batch.forEach((a, i) => {
      const r = results[i]!;
      if (r instanceof StreamConflictError) a.reject(r);
      else a.resolve(r);
    });
    this.wakeSubscribers();
  }

  private wakeSubscribers(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private appendOne(a: PendingAppend): AppendResult | StreamConflictError {
    const current = this.statements.streamRevision.get(a.streamId)?.revision ?? null;
    const actual = current === null ? 'no_stream' : current;
    const ok = a.expected === 'any' || (a.expected === 'no_stream' ? current === null : current === a.expected);
    if (!ok) return new StreamConflictError(a.streamId, a.expected, actual);
    let revision = current ?? -1;
    let position = 0;
    for (const e of a.events) {
      revision += 1;
      const info = this.statements.insert.run(
        a.streamId,
        revision,
        e.type,
        JSON.stringify(e.data),
        JSON.stringify(e.metadata),
      );
      position = Number(info.lastInsertRowid);
    }
    return { nextRevision: revision, position: sqlitePosition(position) };
  }

  readStream(streamId: string): Promise<RecordedEvent[]> {
    return Promise.resolve(this.statements.readStream.all(streamId).map(toRecorded));
  }

  readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    const after = options.after === undefined ? 0 : Number(options.after.commit);
    const limit = options.limit ?? SUBSCRIPTION_PAGE;
    return Promise.resolve(this.statements.readAll.all(after, limit).map(toRecorded));
  }

  async *subscribe(options: SubscribeOptions): AsyncIterable<RecordedEvent[]> {
    let after = options.after === undefined ? 0 : Number(options.after.commit);
    while (!options.signal.aborted && !this.closed) {
      const page = this.statements.readAll.all(after, SUBSCRIPTION_PAGE).map(toRecorded);
      if (page.length > 0) {
        after = Number(page[page.length - 1]!.position.commit);
        yield page;
        continue;
      }
      // The read above and registering the waiter happen in one synchronous
      // step, and commits run in their own macrotask, so no commit slips between.
      await this.nextCommit(options.signal);
    }
  }

  /** Resolves at the next commit of this process, or after a short poll interval for commits of others. */
  private nextCommit(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(poll);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      // Another process (a separate API or projector on the same file) commits
      // without waking us, so a live subscription also polls.
      const poll = setTimeout(done, CROSS_PROCESS_POLL_MS);
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  headPosition(): Promise<Position | undefined> {
    const head = this.statements.head.get()?.position ?? null;
    return Promise.resolve(head === null ? undefined : sqlitePosition(head));
  }

  ping(): Promise<void> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('event store is closed'));
    this.statements.head.get();
    return Promise.resolve();
  }

  /** Flushes the pending batch, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.wakeSubscribers();
    await this.checkpointer.close();
    this.db.close();
  }

  /** For the audit tools and tamper tests: the raw database handle. */
  get database(): Database.Database {
    return this.db;
  }
}

export function openSqliteEventStore(options: SqliteEventStoreOptions): SqliteEventStore {
  return new SqliteEventStore(options);
}

function sqlitePosition(n: number): Position {
  const big = BigInt(n);
  return { commit: big, prepare: big };
}

function toRecorded(row: EventRow): RecordedEvent {
  return {
    streamId: row.stream_id,
    revision: row.revision,
    position: sqlitePosition(row.position),
    type: row.type,
    data: JSON.parse(row.data) as unknown,
    metadata: JSON.parse(row.metadata) as RecordedEvent['metadata'],
  };
}
