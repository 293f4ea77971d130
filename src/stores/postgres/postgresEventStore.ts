// The event log on PostgreSQL (POSTGRES_URL): one `events` table, any number
// of API processes appending to it and one projector following it.
//
// Positions. A bigserial alone cannot order a log that subscribers follow:
// sequence values are taken before commit, so a transaction that took 41 may
// commit after one that took 42, and a reader that saw 42 and moved on would
// never see 41. Each row therefore records its writer's transaction id
// (`xid8`, pg_current_xact_id()) and readers take only rows whose transaction
// is older than the oldest transaction still running
// (pg_snapshot_xmin(pg_current_snapshot()), taken from the same snapshot as the
// rows). Below that horizon the set of rows is final: nothing can commit there
// any more. The log is ordered by (transaction id, sequence); a Position is
// {commit: transaction id, prepare: sequence}. A transaction that commits late
// holds the horizon back, so later rows wait for it instead of overtaking it.
//
// Appends are group-committed: everything queued in one event-loop turn goes
// to the server as one call of `append_events` (one statement, one transaction,
// one WAL flush), which takes a transaction-scoped advisory lock per stream (in
// one order, so batches of several processes never deadlock), checks each
// append's expected revision and writes it, or reports its conflict; a
// conflict fails that append alone. The unique (stream_id, revision) key is the
// backstop. Commits NOTIFY `registry_events`, which wakes subscribers of every
// process; they also poll, so a lost connection or notification only delays.
import pg from 'pg';
import { createPool, migrate, openPool, pingPool, storeError, type Migration, type PgConnectionOptions } from './pgDatabase.ts';
import {
  StoreUnavailableError,
  StreamConflictError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type Position,
  type ReadAllOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../eventStore.ts';

export const EVENTS_CHANNEL = 'registry_events';

export const EVENT_STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'events table, append_events function',
    sql: `
      CREATE TABLE events (
        global_position bigint GENERATED ALWAYS AS IDENTITY,
        transaction_id  xid8   NOT NULL DEFAULT pg_current_xact_id(),
        stream_id       text   NOT NULL,
        revision        bigint NOT NULL CHECK (revision >= 0),
        type            text   NOT NULL,
        data            json   NOT NULL,
        metadata        json   NOT NULL,
        PRIMARY KEY (transaction_id, global_position),
        UNIQUE (stream_id, revision)
      );

      -- One call per group commit. p_expected: -1 no stream, -2 any, else the revision.
      -- p_counts[i] events of append i follow in p_types / p_data / p_metadata.
      CREATE FUNCTION append_events(
        p_streams text[], p_expected bigint[], p_counts int[], p_types text[], p_data text[], p_metadata text[]
      ) RETURNS TABLE (ok boolean, actual bigint, transaction_id xid8, global_position bigint)
      LANGUAGE plpgsql AS $fn$
      #variable_conflict use_column
      DECLARE
        v_key bigint;
        v_offset int := 0;
        v_actual bigint;
        v_expected bigint;
        v_written int := 0;
      BEGIN
        FOR v_key IN SELECT DISTINCT hashtextextended(s, 0) FROM unnest(p_streams) AS s ORDER BY 1 LOOP
          PERFORM pg_advisory_xact_lock(v_key);
        END LOOP;
        FOR i IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
          SELECT max(e.revision) INTO v_actual FROM events e WHERE e.stream_id = p_streams[i];
          v_expected := p_expected[i];
          IF (v_expected = -1 AND v_actual IS NOT NULL)
             OR (v_expected >= 0 AND v_actual IS DISTINCT FROM v_expected) THEN
            ok := false; actual := v_actual; transaction_id := NULL; global_position := NULL;
          ELSE
            WITH written AS (
              INSERT INTO events (stream_id, revision, type, data, metadata)
              SELECT p_streams[i], coalesce(v_actual, -1) + g, p_types[v_offset + g],
                     p_data[v_offset + g]::json, p_metadata[v_offset + g]::json
              FROM generate_series(1, p_counts[i]) AS g
              RETURNING events.global_position, events.revision
            )
            SELECT max(w.global_position), max(w.revision) INTO global_position, actual FROM written w;
            ok := true; transaction_id := pg_current_xact_id();
            v_written := v_written + 1;
          END IF;
          v_offset := v_offset + p_counts[i];
          RETURN NEXT;
        END LOOP;
        IF v_written > 0 THEN
          PERFORM pg_notify('${EVENTS_CHANNEL}', '');
        END IF;
      END
      $fn$;
    `,
  },
];

export interface PostgresEventStoreOptions extends PgConnectionOptions {
  /** Called after every group commit with its size and the commit's duration (for metrics). */
  readonly onCommit?: (batchSize: number, seconds: number) => void;
  /** How often a live subscription looks for commits it was not told about (default 250 ms). */
  readonly pollIntervalMs?: number;
  /**
   * How long readAll and headPosition wait for transactions still running
   * below a committed event before they answer without it (default 2 s).
   */
  readonly settleTimeoutMs?: number;
}

interface PendingAppend {
  readonly streamId: string;
  readonly expected: ExpectedRevision;
  readonly types: string[];
  readonly data: string[];
  readonly metadata: string[];
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
}

interface EventRow {
  transaction_id: string | null;
  global_position: string;
  stream_id: string;
  revision: string;
  type: string;
  data: unknown;
  metadata: RecordedEvent['metadata'];
}

interface AppendRow {
  ok: boolean;
  actual: string | null;
  transaction_id: string | null;
  global_position: string | null;
}

const COLUMNS = 'transaction_id::text AS transaction_id, global_position, stream_id, revision, type, data, metadata';

/**
 * Rows below the horizon after a position, each with whether committed rows
 * wait above the horizon; an empty page is one row of NULLs with that flag.
 */
const READ_PAGE = `
  WITH state AS (
    SELECT h.xmin, EXISTS (SELECT 1 FROM events e WHERE e.transaction_id >= h.xmin) AS pending
    FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
  ),
  page AS (
    SELECT e.* FROM events e, state s
    WHERE (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint) AND e.transaction_id < s.xmin
    ORDER BY e.transaction_id, e.global_position
    LIMIT $3
  )
  SELECT p.transaction_id::text AS transaction_id, p.global_position, p.stream_id, p.revision, p.type, p.data, p.metadata,
         s.pending
  FROM state s LEFT JOIN page p ON true
  ORDER BY p.transaction_id, p.global_position`;

/** The newest row below the horizon, plus whether committed rows wait above it. */
const HEAD = `
  WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
  SELECT
    (SELECT e.transaction_id::text FROM events e, horizon h WHERE e.transaction_id < h.xmin
      ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1) AS transaction_id,
    (SELECT e.global_position FROM events e, horizon h WHERE e.transaction_id < h.xmin
      ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1) AS global_position,
    EXISTS (SELECT 1 FROM events e, horizon h WHERE e.transaction_id >= h.xmin) AS pending`;

const SUBSCRIPTION_PAGE = 1000;
/** Appends per group commit; more wait for the next one. */
const MAX_BATCH = 1000;
const START: Position = { commit: 0n, prepare: 0n };

export class PostgresEventStore implements EventStore {
  private queue: PendingAppend[] = [];
  private flushScheduled = false;
  private committing: Promise<void> | undefined;
  private closed = false;
  /** Live subscriptions waiting for the next commit. */
  private readonly waiters = new Set<() => void>();
  /** Counts notifications, so a subscriber can tell whether one arrived while it was reading. */
  private wakeups = 0;
  private listener: pg.Client | undefined;
  private listening: Promise<void> | undefined;
  private listenRetry: NodeJS.Timeout | undefined;
  private readonly pollMs: number;
  private readonly settleMs: number;

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: PostgresEventStoreOptions,
  ) {
    this.pollMs = options.pollIntervalMs ?? 250;
    this.settleMs = options.settleTimeoutMs ?? 2_000;
  }

  append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('the PostgreSQL event store is closed'));
    if (events.length === 0) return Promise.reject(new Error('append needs at least one event'));
    let encoded: { types: string[]; data: string[]; metadata: string[] };
    try {
      encoded = {
        types: events.map((e) => e.type),
        data: events.map((e) => JSON.stringify(e.data)),
        metadata: events.map((e) => JSON.stringify(e.metadata)),
      };
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ streamId, expected, ...encoded, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // Requests parsed in the same loop turn share one commit.
        setImmediate(() => this.flush());
      }
    });
  }

  /** Sends what is queued as one commit, unless one is in flight (its answer sends the next). */
  private flush(): void {
    this.flushScheduled = false;
    if (this.committing !== undefined || this.queue.length === 0) return;
    const batch = this.queue.slice(0, MAX_BATCH);
    this.queue = this.queue.slice(MAX_BATCH);
    const started = process.hrtime.bigint();
    this.committing = this.commit(batch)
      .then(
        (rows) => {
          batch.forEach((a, i) => {
            const row = rows[i];
            if (row === undefined) a.reject(new StoreUnavailableError('append failed: the server gave no answer'));
            else if (row.ok) {
              a.resolve({
                nextRevision: Number(row.actual),
                position: { commit: BigInt(row.transaction_id!), prepare: BigInt(row.global_position!) },
              });
            } else {
              a.reject(new StreamConflictError(a.streamId, a.expected, row.actual === null ? 'no_stream' : Number(row.actual)));
            }
          });
          this.options.onCommit?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9);
        },
        (error: unknown) => {
          const failure = storeError(error, 'append');
          for (const a of batch) a.reject(failure);
        },
      )
      .catch(() => undefined) // an onCommit hook's error is not the callers' (they are answered above)
      .finally(() => {
        this.committing = undefined;
        // Our own commits wake our subscribers at once, without the round trip through NOTIFY.
        this.wake();
        this.flush();
      });
  }

  private async commit(batch: readonly PendingAppend[]): Promise<AppendRow[]> {
    const result = await this.pool.query<AppendRow>(
      'SELECT ok, actual, transaction_id::text AS transaction_id, global_position FROM append_events($1, $2, $3, $4, $5, $6)',
      [
        batch.map((a) => a.streamId),
        batch.map((a) => (a.expected === 'no_stream' ? -1 : a.expected === 'any' ? -2 : a.expected)),
        batch.map((a) => a.types.length),
        batch.flatMap((a) => a.types),
        batch.flatMap((a) => a.data),
        batch.flatMap((a) => a.metadata),
      ],
    );
    return result.rows;
  }

  async readStream(streamId: string): Promise<RecordedEvent[]> {
    this.assertOpen();
    try {
      // Every committed event of the stream: a writer must see the revision it appends after.
      const result = await this.pool.query<EventRow>(`SELECT ${COLUMNS} FROM events WHERE stream_id = $1 ORDER BY revision`, [
        streamId,
      ]);
      return result.rows.map(toRecorded);
    } catch (error) {
      throw storeError(error, 'readStream');
    }
  }

  /**
   * One page below the horizon. When committed events wait above it (behind a
   * transaction still running), waits up to settleTimeoutMs for them, so a
   * page read after an append was acknowledged includes that append.
   */
  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    this.assertOpen();
    const limit = options.limit ?? SUBSCRIPTION_PAGE;
    const deadline = Date.now() + this.settleMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const { events, pending } = await this.readPage(options.after ?? START, limit);
      if (events.length === limit || !pending || Date.now() >= deadline) return events;
      await sleep(delay);
    }
  }

  private async readPage(after: Position, limit: number): Promise<{ events: RecordedEvent[]; pending: boolean }> {
    try {
      const result = await this.pool.query<EventRow & { pending: boolean }>(READ_PAGE, [
        after.commit.toString(),
        after.prepare.toString(),
        limit,
      ]);
      const rows = result.rows;
      const pending = rows[0]?.pending ?? false;
      return { events: rows[0]?.transaction_id == null ? [] : rows.map(toRecorded), pending };
    } catch (error) {
      throw storeError(error, 'readAll');
    }
  }

  async *subscribe(options: SubscribeOptions): AsyncIterable<RecordedEvent[]> {
    let after = options.after ?? START;
    let heldBackDelay = 2;
    while (!options.signal.aborted && !this.closed) {
      this.ensureListening();
      const seen = this.wakeups;
      const { events, pending } = await this.readPage(after, SUBSCRIPTION_PAGE);
      if (options.signal.aborted || this.closed) return;
      if (events.length > 0) {
        after = events[events.length - 1]!.position;
        heldBackDelay = 2;
        yield events;
        continue;
      }
      if (this.wakeups !== seen) continue; // a commit was announced while we read
      // Events that committed behind a transaction still running are released
      // when it ends, which need not announce itself (it may not be an append).
      const wait = pending ? heldBackDelay : this.pollMs;
      heldBackDelay = pending ? Math.min(heldBackDelay * 2, this.pollMs) : 2;
      await this.nextWakeup(options.signal, wait);
    }
  }

  /** Resolves at the next announced commit, after `ms`, or on abort. */
  private nextWakeup(signal: AbortSignal, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private wake(): void {
    this.wakeups += 1;
    for (const w of [...this.waiters]) w();
  }

  /** One LISTEN connection per store, opened by the first subscription, reopened after a failure. */
  private ensureListening(): void {
    if (this.listening !== undefined || this.listenRetry !== undefined || this.closed) return;
    const client = new pg.Client({ ...this.pool.options });
    const drop = (): void => {
      if (this.listener !== client) return;
      this.listener = undefined;
      this.listening = undefined;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (!this.closed) {
        // Poll meanwhile; try again shortly.
        this.listenRetry = setTimeout(() => {
          this.listenRetry = undefined;
        }, 1_000);
        this.listenRetry.unref();
      }
    };
    this.listener = client;
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', () => this.wake());
    this.listening = client
      .connect()
      .then(() => client.query(`LISTEN ${EVENTS_CHANNEL}`))
      .then(
        // Commits between our last read and the LISTEN are caught by reading again.
        () => this.wake(),
        () => drop(),
      );
  }

  /**
   * The newest event below the horizon. When committed events wait above it,
   * waits up to settleTimeoutMs for the transactions holding them back, so the
   * head after an acknowledged append is at least that append.
   */
  async headPosition(): Promise<Position | undefined> {
    this.assertOpen();
    const deadline = Date.now() + this.settleMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      let row: { transaction_id: string | null; global_position: string | null; pending: boolean } | undefined;
      try {
        row = (await this.pool.query<{ transaction_id: string | null; global_position: string | null; pending: boolean }>(HEAD))
          .rows[0];
      } catch (error) {
        throw storeError(error, 'headPosition');
      }
      if (!row?.pending || Date.now() >= deadline) {
        return row?.transaction_id == null || row.global_position == null
          ? undefined
          : { commit: BigInt(row.transaction_id), prepare: BigInt(row.global_position) };
      }
      await sleep(delay);
    }
  }

  async ping(): Promise<void> {
    this.assertOpen();
    await pingPool(this.pool);
  }

  /** Commits every queued append, ends subscriptions, then closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    while (this.committing !== undefined || this.queue.length > 0) {
      if (this.committing === undefined) this.flush();
      await this.committing;
    }
    this.wake();
    clearTimeout(this.listenRetry);
    const listener = this.listener;
    this.listener = undefined;
    await this.listening?.catch(() => undefined);
    await listener?.end().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('the PostgreSQL event store is closed');
  }

  /** For tests and tools: the pool the store uses. */
  get connections(): pg.Pool {
    return this.pool;
  }
}

/** Connects (a clear StoreUnavailableError naming POSTGRES_URL when the server is unreachable) and migrates the schema. */
export async function openPostgresEventStore(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
  const pool = await openPool(options);
  try {
    await migrate(pool, 'event_store', EVENT_STORE_MIGRATIONS);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  return new PostgresEventStore(pool, options);
}

/** A store over a pool that is not checked or migrated (for tests of the failure paths). */
export function postgresEventStoreWithoutConnecting(options: PostgresEventStoreOptions): PostgresEventStore {
  return new PostgresEventStore(createPool(options), options);
}

function toRecorded(row: EventRow): RecordedEvent {
  return {
    streamId: row.stream_id,
    revision: Number(row.revision),
    position: { commit: BigInt(row.transaction_id!), prepare: BigInt(row.global_position) },
    type: row.type,
    data: row.data,
    metadata: row.metadata,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
