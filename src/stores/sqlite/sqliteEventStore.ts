// The embedded event store: one SQLite file in WAL mode with synchronous=FULL,
// so an acknowledged append survives power loss. Appends are group-committed
// by a writer thread (appendWorker.ts): one transaction and one fsync for all
// the appends that arrived since the previous commit started, and every caller
// is answered only after that commit. Each append in a batch is checked
// against its expected revision inside the transaction, so a conflict fails
// that append alone. Reads use this thread's own connection. WAL checkpoints
// run in a third thread (walCheckpointer.ts), so commits never wait for one.
import Database from 'better-sqlite3';
import { AppendWorker, type AppendRequest } from './appendWorker.ts';
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
  /** The append as the writer thread takes it (encoded when queued, so a bad payload fails only its caller). */
  readonly request: AppendRequest;
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
  private readonly writer: AppendWorker;
  private readonly checkpointer: WalCheckpointer;
  private queue: PendingAppend[] = [];
  private flushScheduled = false;
  private closed = false;
  /** Settles when the commit in flight (if any) is answered. */
  private committing: Promise<void> | undefined;
  /** The last page a subscription read (subscriptionPage). */
  private lastPage: { readonly after: number; readonly events: RecordedEvent[] } | undefined;
  /** Live subscriptions waiting for the next commit. */
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: SqliteEventStoreOptions) {
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
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
      readStream: this.db.prepare<[string], EventRow>(
        'SELECT position, stream_id, revision, type, data, metadata FROM events WHERE stream_id = ? ORDER BY revision',
      ),
      readAll: this.db.prepare<[number, number], EventRow>(
        'SELECT position, stream_id, revision, type, data, metadata FROM events WHERE position > ? ORDER BY position LIMIT ?',
      ),
      head: this.db.prepare<[], { position: number | null }>('SELECT max(position) AS position FROM events'),
    };
    this.writer = new AppendWorker(options.path);
    this.checkpointer = new WalCheckpointer(this.writer, { path: options.path, synchronous: 'FULL' });
  }

  append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('event store is closed'));
    if (events.length === 0) return Promise.reject(new Error('append needs at least one event'));
    let request: AppendRequest;
    try {
      request = {
        streamId,
        expected,
        // The hash chain's own text when the caller sealed the event (hashChain.ts sealEvent).
        events: events.map((e) => ({
          type: e.type,
          data: e.json?.data ?? JSON.stringify(e.data),
          metadata: e.json?.metadata ?? JSON.stringify(e.metadata),
        })),
      };
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate runs after the current I/O phase, so requests parsed in the
        // same loop turn share one commit.
        setImmediate(() => this.flush());
      }
    });
  }

  /** Sends what is queued as one commit, unless one is in flight (its answer sends the next). */
  private flush(): void {
    this.flushScheduled = false;
    if (this.committing !== undefined || this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.committing = this.writer
      .commit(batch.map((a) => a.request))
      .then(
        ({ results, seconds }) => {
          // Callers first: a throwing metrics hook must not leave anyone unanswered.
          batch.forEach((a, i) => {
            const r = results[i];
            if (r === undefined) a.reject(new StoreUnavailableError('append failed: the writer gave no answer'));
            else if (r.ok) a.resolve({ nextRevision: r.nextRevision, position: sqlitePosition(r.position) });
            else a.reject(new StreamConflictError(a.request.streamId, a.request.expected, r.actual));
          });
          this.checkpointer.committed();
          this.options.onCommit?.(batch.length, seconds);
        },
        (error: unknown) => {
          const failure = new StoreUnavailableError(`append failed: ${(error as Error).message}`);
          for (const a of batch) a.reject(failure);
        },
      )
      .catch(() => undefined) // an onCommit hook's error is not the callers' (they are answered above)
      .finally(() => this.afterCommit());
  }

  private afterCommit(): void {
    this.committing = undefined;
    this.wakeSubscribers();
    this.flush();
  }

  private wakeSubscribers(): void {
    for (const wake of [...this.waiters]) wake();
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
      const page = this.subscriptionPage(after);
      if (page.length > 0) {
        after = Number(page[page.length - 1]!.position.commit);
        yield page;
        continue;
      }
      // The read above and registering the waiter happen in one synchronous
      // step, and a commit's wake-up arrives as the writer thread's message (a
      // later macrotask), so no commit slips between.
      await this.nextCommit(options.signal);
    }
  }

  /**
   * The page of events after `after` for a subscription. Every subscription
   * in this process (the projector, the change feed) asks for the same page
   * after a commit, so the last page read is kept and handed out again:
   * decoded once, not once per subscriber. A kept page is a prefix of what
   * follows `after` even when more was committed since, so it stays valid;
   * the subscriber reads on after its last event. Subscribers must not
   * modify the events they get.
   */
  private subscriptionPage(after: number): RecordedEvent[] {
    const kept = this.lastPage;
    if (kept !== undefined && kept.after === after) return kept.events;
    const events = this.statements.readAll.all(after, SUBSCRIPTION_PAGE).map(toRecorded);
    Object.freeze(events);
    if (events.length > 0) this.lastPage = { after, events };
    return events;
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

  /** Commits every queued append, then closes the writer and the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    while (this.committing !== undefined) await this.committing;
    this.wakeSubscribers();
    await this.checkpointer.close();
    await this.writer.close();
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
