// The embedded read model: a SQLite file beside the log, in a compact layout.
// A webhook is one row of typed columns (arrays as small JSON texts, no JSON
// document), keyed by `seq`, an integer given in insertion order. The pattern
// index (for listing by event) has one small row per subscribed pattern keyed
// by that integer, so new rows land at the end of their b-tree range instead
// of at a random place. The dispatch index lives in memory (routingIndex.ts):
// (partner, pattern) → seqs, synced from the rows changed since the
// checkpoint it reflects (an index on `position`), so other processes writing
// the same file are seen too. A dispatch lookup reads one row per candidate,
// so its cost follows the number of targets, not the number of webhooks.
// It is rebuildable from the log at any time, so it runs with synchronous=NORMAL.
//
// A rebuild fills a private temporary database first (no WAL, no fsync, pages
// kept in memory as far as they fit) with the views alone and a plain list of
// the keys; the index rows are derived from the final views afterwards, in
// one sorted pass each (appends instead of an insert and a delete per change).
// Then it copies each table into the `_next` set of the file in primary-key
// order — sequential page writes instead of random ones into a growing file —
// builds the secondary indexes by sorting, and switches the sets in one
// transaction.
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { LOOKUP_SLICE } from '../../dispatch/lookupTurns.ts';
import { RoutingIndex, rowQualifies, type RoutedRow } from './routingIndex.ts';
import { WalCheckpointer } from './walCheckpointer.ts';
import { patternsMatching } from '../../domain/eventTypes.ts';
import { comparePositions, decodePosition, encodePosition, type RecordedEvent } from '../eventStore.ts';
import { nextView, upgradeStoredView, viewOf, type StoredWebhookView, type WebhookView } from '../../projections/webhookView.ts';
import type { WebhookStatus } from '../../domain/webhook.ts';
import {
  eventFilterPatterns,
  keyEntryOfRow,
  previousSecretRows,
  previousSecretsOfRows,
  samePatterns,
  type KeyRow,
  type PreviousSecretRow,
} from '../webhookRows.ts';
import {
  CheckpointConflictError,
  ProjectionGapError,
  keptTargets,
  type DispatchSlices,
  type DispatchView,
  type IdempotencyKeyEntry,
  type ListQuery,
  type ReadModel,
  type RebuildTarget,
} from '../readModel.ts';

export interface SqliteReadModelOptions {
  readonly path: string;
}

/** Where a table set lives: a database of the connection and a name suffix. */
interface TableSet {
  readonly schema: string;
  readonly suffix: string;
}

const STAGE_SCHEMA = 'rebuild_stage';
const LIVE: TableSet = { schema: 'main', suffix: '' };
const NEXT: TableSet = { schema: 'main', suffix: '_next' };
const STAGE: TableSet = { schema: STAGE_SCHEMA, suffix: '' };
const TABLES = ['webhooks', 'webhook_patterns', 'idempotency_keys', 'checkpoint'] as const;
type TableName = (typeof TABLES)[number];
/** Tables of earlier versions of this schema, dropped wherever a table set is replaced. */
const LEGACY_TABLES = ['webhook_partners', 'webhook_dispatch'] as const;
/** Primary-key columns, the order a rebuild copies each table in. */
const PRIMARY_KEYS: Record<TableName, readonly string[]> = {
  webhooks: ['seq'],
  webhook_patterns: ['pattern', 'seq'],
  idempotency_keys: ['organization_id', 'key_hash'],
  checkpoint: ['id'],
};
/** Rows per transaction when a rebuild copies its tables into the file (keeps write locks short). */
const COPY_CHUNK = 50_000;
/** Page cache of a rebuild's staging database, KiB: a 100 000-event log is staged without touching the disk. */
const STAGE_CACHE_KIB = 256 * 1024;
/** Views per read of allWebhooks. */
const ALL_WEBHOOKS_PAGE = 100;
/** Rows per read when an older layout is converted on open. */
const MIGRATE_CHUNK = 10_000;

function tableName(set: TableSet, name: string): string {
  return `${set.schema}.${name}${set.suffix}`;
}

/** The `webhooks` columns after `seq`, in the order statements bind and read them. */
const VIEW_COLUMNS = [
  'id',
  'organization_id',
  'url',
  'events', // JSON array
  'partner_ids', // JSON array; NULL: every partner the organization was authorized for
  'authorized_partner_ids', // JSON array
  'status',
  'disabled_reason',
  'secret_key_id',
  'secret_iv',
  'secret_ciphertext',
  'previous_secrets', // JSON [[keyId, iv, ciphertext, expiresAt], …], newest first; NULL when none
  'created_at',
  'updated_at',
  'revision',
  'position',
  'deleted',
] as const;
const VIEW_COLUMN_LIST = VIEW_COLUMNS.join(', ');

/**
 * A new, empty table set: `live` with every index and the checkpoint row;
 * `stage` (what a rebuild applies events to) without any index — its views
 * are found through a map of ids in memory (ViewTables, staged) and appended
 * in seq order — and with a list of key uses; `copy` bare, for a rebuild to
 * copy its staged rows into before indexing them.
 * Every index costs each registration a page write, so there are few: a
 * webhook's pattern and dispatch rows are deleted by their full keys (from the
 * previous view and its `seq`), not through an index by webhook.
 */
function createTables(db: Database.Database, set: TableSet, purpose: 'live' | 'stage' | 'copy' = 'live'): void {
  const t = (name: TableName): string => tableName(set, name);
  db.exec(`
    CREATE TABLE ${t('webhooks')} (
      seq                    INTEGER PRIMARY KEY,
      id                     TEXT NOT NULL, -- unique: webhooks_by_id_* (createIndexes; a rebuild's stage has none)
      organization_id        TEXT NOT NULL,
      url                    TEXT NOT NULL,
      events                 TEXT NOT NULL,
      partner_ids            TEXT,
      authorized_partner_ids TEXT NOT NULL,
      status                 TEXT NOT NULL,
      disabled_reason        TEXT,
      secret_key_id          TEXT NOT NULL,
      secret_iv              TEXT NOT NULL,
      secret_ciphertext      TEXT NOT NULL,
      previous_secrets       TEXT,
      created_at             TEXT NOT NULL,
      updated_at             TEXT NOT NULL,
      revision               INTEGER NOT NULL,
      position               TEXT NOT NULL,
      deleted                INTEGER NOT NULL
    );
    CREATE TABLE ${t('webhook_patterns')} (
      pattern TEXT NOT NULL,
      seq     INTEGER NOT NULL,
      PRIMARY KEY (pattern, seq)
    ) WITHOUT ROWID;
    CREATE TABLE ${t('idempotency_keys')} (
      organization_id TEXT NOT NULL,
      key_hash        TEXT NOT NULL,
      webhook_id      TEXT NOT NULL,
      fingerprint     TEXT NOT NULL,
      first_used_at   TEXT NOT NULL,
      PRIMARY KEY (organization_id, key_hash)
    ) WITHOUT ROWID;
    CREATE TABLE ${t('checkpoint')} (
      id       INTEGER PRIMARY KEY CHECK (id = 1),
      position TEXT
    );
  `);
  if (purpose === 'copy') return;
  db.exec(`INSERT INTO ${t('checkpoint')} (id, position) VALUES (1, NULL)`);
  if (purpose === 'live') createIndexes(db, set);
  else {
    // Every key use in log order; the first use of each key wins when the index is derived (deriveStagedIndexes).
    db.exec(`CREATE TABLE ${set.schema}.${KEY_LOG} (
      organization_id TEXT NOT NULL, key_hash TEXT NOT NULL, webhook_id TEXT NOT NULL,
      fingerprint TEXT NOT NULL, first_used_at TEXT NOT NULL)`);
  }
}

/** A rebuild's staging table of key uses (see createTables). */
const KEY_LOG = 'key_log';

/**
 * Fills a staged set's index tables from its final views, each in one pass
 * sorted by its primary key: what applying every change to them in turn
 * (writeIndexes) would have left, without the inserts and deletes of the
 * states in between.
 */
function deriveStagedIndexes(db: Database.Database, set: TableSet): void {
  const t = (name: TableName): string => tableName(set, name);
  db.exec(`
    INSERT OR IGNORE INTO ${t('webhook_patterns')} (pattern, seq)
      SELECT e.value, w.seq FROM ${t('webhooks')} w, json_each(w.events) e
      WHERE w.deleted = 0 ORDER BY 1, 2;
    INSERT OR IGNORE INTO ${t('idempotency_keys')} (organization_id, key_hash, webhook_id, fingerprint, first_used_at)
      SELECT organization_id, key_hash, webhook_id, fingerprint, first_used_at FROM ${set.schema}.${KEY_LOG}
      ORDER BY organization_id, key_hash, rowid;
    DROP TABLE ${set.schema}.${KEY_LOG};
  `);
}

function createIndexes(db: Database.Database, set: TableSet): void {
  // Index names carry a generation so a rebuilt table set can be renamed into
  // place without colliding with the indexes of the set it replaces.
  const gen = randomBytes(4).toString('hex');
  db.exec(`
    CREATE UNIQUE INDEX ${set.schema}.webhooks_by_id_${gen} ON webhooks${set.suffix} (id);
    CREATE INDEX ${set.schema}.webhooks_by_org_${gen} ON webhooks${set.suffix} (organization_id, created_at, id) WHERE deleted = 0;
    CREATE INDEX ${set.schema}.${POSITION_INDEX}${gen} ON webhooks${set.suffix} (position);
  `);
}

/**
 * Rows by the log position of their last event: how a process finds the rows
 * changed since the checkpoint its routing index reflects. Positions only
 * grow, so this b-tree is appended to.
 */
const POSITION_INDEX = 'webhooks_by_position_';

function hasPositionIndex(db: Database.Database): boolean {
  return (
    db
      .prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'index' AND tbl_name = 'webhooks' AND name LIKE ? ESCAPE '\\'")
      .get(`${POSITION_INDEX.replaceAll('_', '\\_')}%`) !== undefined
  );
}

function dropTables(db: Database.Database, set: TableSet): void {
  for (const t of [...TABLES, ...LEGACY_TABLES]) db.exec(`DROP TABLE IF EXISTS ${tableName(set, t)}`);
}

function columnExists(db: Database.Database, table: string, column: string): boolean {
  return db.prepare<[string, string], { n: number }>('SELECT count(*) AS n FROM pragma_table_info(?) WHERE name = ?').get(table, column)!.n > 0;
}

function tableExists(db: Database.Database, name: string): boolean {
  return db.prepare('SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?').get('table', name) !== undefined;
}

/** True when the live tables are in today's layout (typed view rows, pattern rows keyed by `seq`). */
function currentLayout(db: Database.Database): boolean {
  return columnExists(db, 'webhooks', 'seq') && tableExists(db, 'webhook_patterns') && columnExists(db, 'webhook_patterns', 'seq');
}

/**
 * Converts a read model written by an earlier version — views as JSON
 * documents (in any of their shapes, see upgradeStoredView), index rows keyed
 * by webhook id and carrying their targets, or index tables missing — into
 * today's layout: the views are read in the order they were stored and
 * written into a fresh `_next` set with their index rows; the keys and the
 * checkpoint are copied; then the sets switch. One transaction, so a crash
 * leaves the old layout in place, converted again on the next open.
 * Exact for that version's state; a secret an early version had already
 * dropped (a second rotation inside a grace period) comes back only with
 * `projections rebuild`.
 */
function migrateLayout(db: Database.Database): void {
  dropTables(db, NEXT);
  createTables(db, NEXT);
  const next = new ViewTables(db, NEXT);
  const documents = columnExists(db, 'webhooks', 'doc');
  const read = documents
    ? db.prepare<[number], { rowid: number; doc: string }>(
        `SELECT rowid, doc FROM main.webhooks WHERE rowid > ? ORDER BY rowid LIMIT ${MIGRATE_CHUNK}`,
      )
    : db.prepare<[number], unknown[]>(
        `SELECT seq, ${VIEW_COLUMN_LIST} FROM main.webhooks WHERE seq > ? ORDER BY seq LIMIT ${MIGRATE_CHUNK}`,
      ).raw();
  for (let after = 0; ; ) {
    const views: WebhookView[] = [];
    if (documents) {
      const rows = (read as Database.Statement<[number], { rowid: number; doc: string }>).all(after);
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.rowid;
      for (const row of rows) views.push(upgradeStoredView(JSON.parse(row.doc) as StoredWebhookView));
    } else {
      const rows = (read as Database.Statement<[number], unknown[]>).all(after);
      if (rows.length === 0) break;
      after = rows[rows.length - 1]![0] as number;
      for (const row of rows) views.push(viewOfColumns(row, 1));
    }
    for (const view of views) next.store(null, view);
  }
  db.exec(`
    INSERT INTO ${tableName(NEXT, 'idempotency_keys')} SELECT organization_id, key_hash, webhook_id, fingerprint, first_used_at
      FROM main.idempotency_keys;
    UPDATE ${tableName(NEXT, 'checkpoint')} SET position = (SELECT position FROM main.checkpoint WHERE id = 1);
  `);
  dropTables(db, LIVE);
  for (const t of TABLES) db.exec(`ALTER TABLE ${tableName(NEXT, t)} RENAME TO ${t}`);
}

/** A `webhooks` row as better-sqlite3 returns it raw: `seq` (when selected) and then VIEW_COLUMNS in order. */
type ViewColumns = readonly unknown[];

/** The bound values of VIEW_COLUMNS for a view, in order. */
function viewColumns(view: WebhookView): unknown[] {
  return [
    view.id,
    view.organizationId,
    view.url,
    JSON.stringify(view.events),
    view.partnerIds === null ? null : JSON.stringify(view.partnerIds),
    JSON.stringify(view.authorizedPartnerIds),
    view.status,
    view.disabledReason,
    view.secret.keyId,
    view.secret.iv,
    view.secret.ciphertext,
    view.previousSecrets.length === 0 ? null : JSON.stringify(previousSecretRows(view.previousSecrets)),
    view.createdAt,
    view.updatedAt,
    view.revision,
    view.position,
    view.deleted ? 1 : 0,
  ];
}

/** The view of a raw `webhooks` row whose VIEW_COLUMNS start at `from`. */
function viewOfColumns(row: ViewColumns, from: number): WebhookView {
  const c = (i: number): unknown => row[from + i];
  const partnerIds = c(4) === null ? null : (JSON.parse(c(4) as string) as string[]);
  const previous = c(11);
  const webhook = {
    id: c(0) as string,
    organizationId: c(1) as string,
    url: c(2) as string,
    events: JSON.parse(c(3) as string) as string[],
    partnerIds,
    authorizedPartnerIds: JSON.parse(c(5) as string) as string[],
    status: c(6) as WebhookStatus,
    disabledReason: c(7) as string | null,
    secret: { keyId: c(8) as string, iv: c(9) as string, ciphertext: c(10) as string },
    previousSecrets: previous === null ? [] : previousSecretsOfRows(JSON.parse(previous as string) as PreviousSecretRow[]),
    createdAt: c(12) as string,
    updatedAt: c(13) as string,
  };
  return viewOf(webhook, c(14) as number, c(15) as string, c(16) === 1);
}

/** A stored view and the `seq` its index rows point at. */
interface StoredView {
  readonly seq: number;
  readonly view: WebhookView;
}

/** Statements over one table set (the live one, or the one a rebuild fills). */
class ViewTables {
  private readonly s;
  /** Staged sets only: id → seq of every view, instead of a b-tree of random ids to insert into. */
  private readonly stagedIds: Map<string, number> | undefined;
  /** Applies a batch atomically; returns the rows it wrote (each webhook's last state in the batch). */
  readonly applyBatch: (events: readonly RecordedEvent[], expectedCheckpoint: string | null) => StoredView[];

  /**
   * `staged`: the set a rebuild fills, which keeps only the views and a list
   * of key uses while events are applied; deriveStagedIndexes fills the rest.
   */
  constructor(
    private readonly db: Database.Database,
    set: TableSet,
    private readonly staged = false,
  ) {
    const t = (name: TableName): string => tableName(set, name);
    this.stagedIds = staged ? new Map() : undefined;
    const placeholders = VIEW_COLUMNS.map(() => '?').join(', ');
    this.s = {
      get: db.prepare<[string], unknown[]>(`SELECT seq, ${VIEW_COLUMN_LIST} FROM ${t('webhooks')} WHERE id = ?`).raw(),
      getBySeq: db.prepare<[number], unknown[]>(`SELECT seq, ${VIEW_COLUMN_LIST} FROM ${t('webhooks')} WHERE seq = ?`).raw(),
      append: db.prepare<unknown[]>(`INSERT INTO ${t('webhooks')} (${VIEW_COLUMN_LIST}) VALUES (${placeholders})`),
      replace: db.prepare<unknown[]>(
        `UPDATE ${t('webhooks')} SET (${VIEW_COLUMN_LIST}) = (${placeholders}) WHERE seq = ?`,
      ),
      // `seq` comes from the row: new rows get the next integer, so they append to every b-tree keyed by it.
      // (Not on a staged set, which has no unique index to conflict on.)
      upsert: staged
        ? undefined
        : db
        .prepare<unknown[], number>(
          `INSERT INTO ${t('webhooks')} (${VIEW_COLUMN_LIST}) VALUES (${placeholders})
           ON CONFLICT (id) DO UPDATE SET ${VIEW_COLUMNS.filter((c) => c !== 'id')
             .map((c) => `${c} = excluded.${c}`)
             .join(', ')}
           RETURNING seq`,
        )
        .pluck(),
      insertNew: staged
        ? undefined
        : db
        .prepare<unknown[], number>(
          `INSERT INTO ${t('webhooks')} (${VIEW_COLUMN_LIST}) VALUES (${placeholders}) ON CONFLICT (id) DO NOTHING RETURNING seq`,
        )
        .pluck(),
      deletePattern: db.prepare<[string, number]>(`DELETE FROM ${t('webhook_patterns')} WHERE pattern = ? AND seq = ?`),
      insertPattern: db.prepare<[string, number]>(`INSERT OR IGNORE INTO ${t('webhook_patterns')} (pattern, seq) VALUES (?, ?)`),
      insertKey: db.prepare<[string, string, string, string, string]>(
        staged
          ? `INSERT INTO ${set.schema}.${KEY_LOG} (organization_id, key_hash, webhook_id, fingerprint, first_used_at)
             VALUES (?, ?, ?, ?, ?)`
          : `INSERT OR IGNORE INTO ${t('idempotency_keys')} (organization_id, key_hash, webhook_id, fingerprint, first_used_at)
             VALUES (?, ?, ?, ?, ?)`,
      ),
      findKey: db.prepare<[string, string], KeyRow>(
        `SELECT * FROM ${t('idempotency_keys')} WHERE organization_id = ? AND key_hash = ?`,
      ),
      checkpoint: db.prepare<[], { position: string | null }>(`SELECT position FROM ${t('checkpoint')} WHERE id = 1`),
      setCheckpoint: db.prepare<[string]>(`UPDATE ${t('checkpoint')} SET position = ? WHERE id = 1`),
      allAfter: db
        .prepare<[string, number], unknown[]>(
          `SELECT ${VIEW_COLUMN_LIST} FROM ${t('webhooks')} WHERE id > ? ORDER BY id LIMIT ?`,
        )
        .raw(),
      list: (filter: string) =>
        db
          .prepare<unknown[], unknown[]>(
            `SELECT ${VIEW_COLUMNS.map((c) => `w.${c}`).join(', ')} FROM ${t('webhooks')} w
             WHERE w.organization_id = ? AND w.deleted = 0 ${filter}
             ORDER BY w.created_at, w.id LIMIT ?`,
          )
          .raw(),
      patternTable: t('webhook_patterns'),
      // What the routing index needs of a row: seq, status, deleted, events, partner_ids, authorized_partner_ids.
      routesChangedSince: db
        .prepare<[string], RouteColumns>(`SELECT ${ROUTE_COLUMNS} FROM ${t('webhooks')} WHERE position > ? ORDER BY position`)
        .raw(),
      routesOfDispatchable: db
        .prepare<[], RouteColumns>(`SELECT ${ROUTE_COLUMNS} FROM ${t('webhooks')} WHERE deleted = 0 AND status = 'ACTIVE'`)
        .raw(),
      target: db
        .prepare<[number], TargetColumns>(
          `SELECT ${ROUTE_COLUMNS}, id, organization_id, url, secret_key_id, secret_iv, secret_ciphertext, previous_secrets
           FROM ${t('webhooks')} WHERE seq = ?`,
        )
        .raw(),
    };
    this.applyBatch = db.transaction((events: readonly RecordedEvent[], expectedCheckpoint: string | null) => {
      const actual = this.checkpoint();
      if (actual !== expectedCheckpoint) throw new CheckpointConflictError(expectedCheckpoint, actual);
      if (events.length === 0) return [];
      // Views touched earlier in this batch, so one webhook's events chain without re-reading.
      const touched = new Map<string, StoredView | null>();
      for (const event of events) {
        const id = (event.data as { webhookId: string }).webhookId;
        let current: StoredView | null;
        if (touched.has(id)) current = touched.get(id)!;
        else if (event.revision === 0 && event.type === 'WebhookRegistered') {
          // Most events create a webhook: insert it without reading first. A row
          // already there (a batch applied again) takes the general path.
          const change = nextView(null, event);
          const inserted = change.kind === 'apply' ? this.insertNew(change.view) : null;
          if (inserted !== null) {
            touched.set(id, inserted);
            this.recordKey(change.kind === 'apply' ? change.key : null);
            continue;
          }
          current = this.getStored(id);
        } else current = this.getStored(id);
        let change;
        try {
          change = nextView(current?.view ?? null, event);
        } catch (error) {
          throw new ProjectionGapError((error as Error).message);
        }
        if (change.kind === 'skip') continue;
        touched.set(id, this.store(current, change.view));
        this.recordKey(change.key);
      }
      // Never backwards: re-applying a batch that is already applied must not rewind the checkpoint.
      const next = encodeLast(events);
      if (actual === null || comparePositions(decodePosition(next), decodePosition(actual)) > 0) {
        this.s.setCheckpoint.run(next);
      }
      const written: StoredView[] = [];
      for (const stored of touched.values()) if (stored !== null) written.push(stored);
      return written;
    });
  }

  private recordKey(key: IdempotencyKeyEntry | null): void {
    if (key) this.s.insertKey.run(key.organizationId, key.keyHash, key.webhookId, key.fingerprint, key.firstUsedAt);
  }

  /** Writes the view of a webhook not stored yet; null (and nothing written) when it is stored. */
  private insertNew(view: WebhookView): StoredView | null {
    if (this.stagedIds !== undefined) {
      if (this.stagedIds.has(view.id)) return null;
      return this.store(null, view);
    }
    const seq = this.s.insertNew!.get(...viewColumns(view));
    if (seq === undefined) return null;
    const stored = { seq, view };
    this.writeIndexes(null, stored);
    return stored;
  }

  /** Writes `view` over `previous` (null: not stored) with the index rows that changed. */
  store(previous: StoredView | null, view: WebhookView): StoredView {
    let seq: number;
    if (this.stagedIds === undefined) seq = this.s.upsert!.get(...viewColumns(view))!;
    else if (previous !== null) {
      seq = previous.seq;
      this.s.replace.run(...viewColumns(view), seq);
    } else {
      seq = Number(this.s.append.run(...viewColumns(view)).lastInsertRowid);
      this.stagedIds.set(view.id, seq);
    }
    const stored = { seq, view };
    this.writeIndexes(previous, stored);
    return stored;
  }

  private writeIndexes(previous: StoredView | null, { seq, view }: StoredView): void {
    if (this.staged) return;
    const before = previous?.view ?? null;
    if (!samePatterns(before, view)) {
      if (before !== null && !before.deleted) for (const p of before.events) this.s.deletePattern.run(p, seq);
      if (!view.deleted) for (const p of view.events) this.s.insertPattern.run(p, seq);
    }
  }

  private getStored(id: string): StoredView | null {
    let row: unknown[] | undefined;
    if (this.stagedIds === undefined) row = this.s.get.get(id);
    else {
      const seq = this.stagedIds.get(id);
      row = seq === undefined ? undefined : this.s.getBySeq.get(seq);
    }
    return row ? { seq: row[0] as number, view: viewOfColumns(row, 1) } : null;
  }

  get(id: string): WebhookView | null {
    return this.getStored(id)?.view ?? null;
  }

  checkpoint(): string | null {
    return this.s.checkpoint.get()?.position ?? null;
  }

  private readonly listStatements = new Map<string, Database.Statement<unknown[], unknown[]>>();

  list(query: ListQuery): WebhookView[] {
    const clauses: string[] = [];
    const params: unknown[] = [query.organizationId];
    if (query.after) {
      clauses.push('AND (w.created_at, w.id) > (?, ?)');
      params.push(query.after.createdAt, query.after.id);
    }
    if (query.status) {
      clauses.push('AND w.status = ?');
      params.push(query.status);
    }
    if (query.event) {
      const keys = eventFilterPatterns(query.event);
      clauses.push(
        `AND EXISTS (SELECT 1 FROM ${this.s.patternTable} p WHERE p.seq = w.seq AND p.pattern IN (${keys.map(() => '?').join(',')}))`,
      );
      params.push(...keys);
    }
    params.push(query.limit);
    const sql = clauses.join(' ');
    let stmt = this.listStatements.get(sql);
    if (!stmt) {
      stmt = this.s.list(sql);
      this.listStatements.set(sql, stmt);
    }
    return stmt.all(...params).map((r) => viewOfColumns(r, 0));
  }

  /**
   * The routes of every dispatchable row, one at a time, for a routing index
   * built from scratch: a million rows decoded at once would be hundreds of
   * MB of short-lived objects the heap keeps after. No other statement may
   * run on this connection until the iteration ends.
   */
  *dispatchableRoutes(): Generator<RoutedRow> {
    for (const row of this.s.routesOfDispatchable.iterate()) yield routedRow(row);
  }

  /** The rows written after `checkpoint` (every row when null), dispatchable or not. */
  routesChangedSince(checkpoint: string | null): RoutedRow[] {
    return this.s.routesChangedSince.all(checkpoint ?? '').map(routedRow);
  }

  /** The dispatch view of row `seq` if, as stored now, it must receive `patterns` for `partnerId`; else null. */
  target(seq: number, partnerId: string, patterns: readonly string[]): DispatchView | null {
    const row = this.s.target.get(seq);
    if (row === undefined) return null;
    const routed = routedRow(row);
    if (!rowQualifies(routed, partnerId, patterns)) return null;
    const [, , , , , , id, organizationId, url, keyId, iv, ciphertext, previous] = row;
    return {
      id,
      organizationId,
      url,
      events: routed.events,
      secret: { keyId, iv, ciphertext },
      previousSecrets: previous === null ? [] : previousSecretsOfRows(JSON.parse(previous) as PreviousSecretRow[]),
    };
  }

  findKey(organizationId: string, keyHash: string): IdempotencyKeyEntry | null {
    const row = this.s.findKey.get(organizationId, keyHash);
    return row ? keyEntryOfRow(row) : null;
  }

  /** Up to `limit` views with an id after `after`, by id. */
  page(after: string, limit: number): WebhookView[] {
    return this.s.allAfter.all(after, limit).map((row) => viewOfColumns(row, 0));
  }
}

/** The columns the routing index reads, in order. */
const ROUTE_COLUMNS = 'seq, status, deleted, events, partner_ids, authorized_partner_ids';
type RouteColumns = [seq: number, status: string, deleted: number, events: string, partnerIds: string | null, authorized: string];
/** ROUTE_COLUMNS, then what a dispatcher needs (id, organization, url, secret, previous secrets). */
type TargetColumns = [
  ...RouteColumns,
  id: string,
  organizationId: string,
  url: string,
  keyId: string,
  iv: string,
  ciphertext: string,
  previousSecrets: string | null,
];

function routedRow(row: RouteColumns | TargetColumns): RoutedRow {
  const events = JSON.parse(row[3]) as string[];
  return {
    seq: row[0],
    status: row[1],
    deleted: row[2] === 1,
    events,
    partners: JSON.parse(row[4] ?? row[5]) as string[],
  };
}

function encodeLast(events: readonly RecordedEvent[]): string {
  return encodePosition(events[events.length - 1]!.position);
}

export class SqliteReadModel implements ReadModel {
  private readonly db: Database.Database;
  private live: ViewTables;
  private closed = false;
  private readonly checkpointer: WalCheckpointer;
  /** The dispatch index (routingIndex.ts), built by prepareDispatch or the first lookup and kept current from then on. */
  private readonly routing = new RoutingIndex();
  private routingState:
    | { readonly built: false }
    | {
        readonly built: true;
        /** The checkpoint the index reflects: every row written up to it is in. */
        checkpoint: string | null;
        /** PRAGMA data_version then: it changes when another connection commits to the file. */
        dataVersion: number;
        /** PRAGMA schema_version then: a rebuild in another process renames the tables. */
        schemaVersion: number;
        /** Set when a batch was applied here that the index did not take (it then syncs like for another writer). */
        behind: boolean;
      } = { built: false };
  /** ReadModel.dispatchVersion: moved by every batch applied here and every change syncRouting finds. */
  private answersVersion = 0;
  private readonly lookupTransaction: <T>(work: () => T) => T;
  // Prepared once: db.pragma() prepares a statement on every call (2 % of a lookup bench's profile).
  private readonly dataVersion: Database.Statement<[], number>;
  private readonly schemaVersion: Database.Statement<[], number>;

  constructor(options: SqliteReadModelOptions) {
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.checkpointer = new WalCheckpointer(this.db, { path: options.path, synchronous: 'NORMAL' });
    this.db.transaction(() => {
      if (!tableExists(this.db, 'webhooks')) createTables(this.db, LIVE);
      else if (!currentLayout(this.db)) migrateLayout(this.db);
      else {
        // Today's layout, maybe without the position index or with a dispatch table of an earlier version.
        for (const t of LEGACY_TABLES) this.db.exec(`DROP TABLE IF EXISTS main.${t}`);
        if (!hasPositionIndex(this.db)) {
          this.db.exec(`CREATE INDEX main.${POSITION_INDEX}${randomBytes(4).toString('hex')} ON webhooks (position)`);
        }
      }
    }).immediate();
    this.live = new ViewTables(this.db, LIVE);
    // A read transaction: the sync and the rows a lookup reads are one snapshot of the file.
    const lookup = this.db.transaction((work: () => unknown) => work());
    this.lookupTransaction = <T>(work: () => T): T => lookup(work) as T;
    this.dataVersion = this.db.prepare<[], number>('PRAGMA data_version').pluck();
    this.schemaVersion = this.db.prepare<[], number>('PRAGMA schema_version').pluck();
  }

  applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void> {
    return run(() => {
      const written = this.live.applyBatch(events, expectedCheckpoint);
      this.checkpointer.committed();
      if (written.length > 0) this.answersVersion += 1;
      const state = this.routingState;
      if (!state.built || written.length === 0) return;
      // The batch moved the checkpoint from expectedCheckpoint: if the index was there, it takes the batch's rows.
      if (state.behind || state.checkpoint !== expectedCheckpoint) {
        state.behind = true;
        return;
      }
      for (const { seq, view } of written) {
        this.routing.add({ seq, status: view.status, deleted: view.deleted, events: view.events, partners: view.effectivePartnerIds });
      }
      state.checkpoint = this.live.checkpoint();
    });
  }

  /**
   * Builds the dispatch index now rather than at the first lookup: with a
   * million webhooks that takes seconds of one thread, which a server does
   * before it listens, not on the event loop under load (a bench run at
   * 1 000 000 registrations answered no registration at all in the 10 s
   * after its first lookups). Returns how many routes it holds.
   */
  prepareDispatch(): Promise<number> {
    return run(() => {
      this.lookupTransaction(() => this.syncRouting());
      return this.routing.size;
    });
  }

  /** Brings the routing index up to what the file holds now; call inside lookupTransaction. */
  private syncRouting(): void {
    const state = this.routingState;
    const dataVersion = this.dataVersion.get()!;
    if (state.built && !state.behind && state.dataVersion === dataVersion) return;
    // Another writer committed (or the index was behind): answers may differ from here on.
    this.answersVersion += 1;
    const schemaVersion = this.schemaVersion.get()!;
    const checkpoint = this.live.checkpoint();
    if (!state.built || state.schemaVersion !== schemaVersion) {
      this.routing.clear();
      for (const row of this.live.dispatchableRoutes()) this.routing.add(row);
    } else if (state.checkpoint !== checkpoint) {
      for (const row of this.live.routesChangedSince(state.checkpoint)) this.routing.add(row);
    }
    this.routingState = { built: true, checkpoint, dataVersion, schemaVersion, behind: false };
  }

  /** After this process switched table sets: the index is built afresh at the next lookup. */
  private resetRouting(): void {
    this.answersVersion += 1;
    this.routing.clear();
    this.routingState = { built: false };
  }

  checkpoint(): Promise<string | null> {
    return run(() => this.live.checkpoint());
  }

  /**
   * This process's own batches move the number as they commit. Another
   * writer's commits are found through PRAGMA data_version, a read
   * transaction of its own (~10 µs, a tenth of a kept answer's cost in the
   * bench's profile), so that check is shared by every call within one turn
   * of the event loop (requests read in one poll phase): another process's
   * commit shows at the latest one turn later, as if those requests had
   * arrived a moment earlier.
   */
  dispatchVersion(): Promise<number> {
    return run(() => {
      if (!this.versionChecked) {
        this.lookupTransaction(() => this.syncRouting());
        this.versionChecked = true;
        setImmediate(this.versionCheckExpires);
      }
      return this.answersVersion;
    });
  }

  private versionChecked = false;
  private readonly versionCheckExpires = (): void => {
    this.versionChecked = false;
  };

  getWebhook(id: string): Promise<WebhookView | null> {
    return run(() => this.live.get(id));
  }

  listWebhooks(query: ListQuery): Promise<WebhookView[]> {
    return run(() => this.live.list(query));
  }

  dispatchTargets<T extends { readonly id: string } = DispatchView>(
    eventType: string,
    partnerId: string,
    slices?: DispatchSlices<T>,
  ): Promise<T[]> {
    const patterns = patternsMatching(eventType);
    if (slices !== undefined) return this.dispatchTargetsInSlices(partnerId, patterns, slices);
    return run(() =>
      this.lookupTransaction(() => {
        this.syncRouting();
        const targets = this.routing.lookup(partnerId, patterns, (seq) => this.live.target(seq, partnerId, patterns));
        return keptTargets(targets.sort(byId), undefined);
      }),
    );
  }

  /**
   * The same answer, its candidates' rows read LOOKUP_SLICE at a time, each
   * slice its own read transaction with `between` awaited before it, and
   * each row turned into what the caller keeps of it in the slice that read
   * it. Seqs stay a webhook's own while the table set does; if it was
   * switched meanwhile (a rebuild), the lookup starts again.
   */
  private async dispatchTargetsInSlices<T extends { readonly id: string }>(
    partnerId: string,
    patterns: readonly string[],
    { keep, between }: DispatchSlices<T>,
  ): Promise<T[]> {
    for (;;) {
      let candidates: number[] = [];
      let schemaVersion = 0;
      let at = 0;
      let switched = false;
      const found: T[] = [];
      const slice = (): void => {
        this.syncRouting();
        const state = this.routingState as { readonly schemaVersion: number };
        if (at === 0) {
          schemaVersion = state.schemaVersion;
          candidates = this.routing.candidates(partnerId, patterns);
        } else if (state.schemaVersion !== schemaVersion) {
          switched = true;
          return;
        }
        for (const end = Math.min(at + LOOKUP_SLICE, candidates.length); at < end; at++) {
          const seq = candidates[at]!;
          const view = this.live.target(seq, partnerId, patterns);
          if (view === null) this.routing.drop(partnerId, patterns, seq);
          else found.push(keep(view));
        }
      };
      this.lookupTransaction(slice);
      while (!switched && at < candidates.length) {
        await between();
        this.lookupTransaction(slice);
      }
      if (!switched) return found.sort(byId);
    }
  }

  findIdempotencyKey(organizationId: string, keyHash: string): Promise<IdempotencyKeyEntry | null> {
    return run(() => this.live.findKey(organizationId, keyHash));
  }

  /**
   * Page by page (by id), each page its own read: an open iterator would hold
   * a read transaction across awaits, and a million views read at once were
   * gigabytes (the dispatch snapshot streams them). So the pages are not one
   * snapshot: a webhook written meanwhile may show its newer state. Callers
   * that need a state at a position compare each view's position with it
   * (the snapshot folds newer ones back from the log; audit verify reads the
   * checkpoint after the listing).
   */
  async *allWebhooks(): AsyncIterable<WebhookView> {
    for (let after = ''; ; ) {
      const page = this.live.page(after, ALL_WEBHOOKS_PAGE);
      for (const view of page) yield await Promise.resolve(view);
      if (page.length < ALL_WEBHOOKS_PAGE) return;
      after = page[page.length - 1]!.id;
    }
  }

  reset(): Promise<void> {
    return run(() => {
      this.db.transaction(() => {
        dropTables(this.db, LIVE);
        createTables(this.db, LIVE);
      })();
      this.live = new ViewTables(this.db, LIVE);
      this.resetRouting();
    });
  }

  beginRebuild(): Promise<RebuildTarget> {
    return run(() => {
      this.detachStage();
      this.db.transaction(() => dropTables(this.db, NEXT))();
      // '' is a private temporary database, deleted when detached or closed.
      this.db.exec(`ATTACH DATABASE '' AS ${STAGE_SCHEMA}`);
      this.db.pragma(`${STAGE_SCHEMA}.journal_mode = MEMORY`);
      this.db.pragma(`${STAGE_SCHEMA}.cache_size = ${-STAGE_CACHE_KIB}`);
      this.db.transaction(() => createTables(this.db, STAGE, 'stage'))();
      const stage = new ViewTables(this.db, STAGE, true);
      let finished = false;
      const target: RebuildTarget = {
        applyBatch: (events, expected) =>
          run(() => {
            if (finished) throw new Error('rebuild already finished');
            stage.applyBatch(events, expected);
          }),
        checkpoint: () => run(() => (finished ? null : stage.checkpoint())),
        commit: () =>
          run(() => {
            if (finished) throw new Error('rebuild already finished');
            finished = true;
            try {
              this.db.transaction(() => deriveStagedIndexes(this.db, STAGE))();
              this.db.transaction(() => createTables(this.db, NEXT, 'copy'))();
              for (const t of TABLES) this.copyStaged(t);
              this.db.transaction(() => createIndexes(this.db, NEXT))();
              this.detachStage();
              // One transaction: readers see either the old set or the new one.
              this.db.transaction(() => {
                dropTables(this.db, LIVE);
                for (const t of TABLES) this.db.exec(`ALTER TABLE ${tableName(NEXT, t)} RENAME TO ${t}`);
              })();
            } catch (error) {
              this.detachStage();
              this.db.transaction(() => dropTables(this.db, NEXT))();
              throw error;
            }
            this.live = new ViewTables(this.db, LIVE);
            this.resetRouting();
          }),
        abort: () =>
          run(() => {
            if (finished) return;
            finished = true;
            this.detachStage();
            this.db.transaction(() => dropTables(this.db, NEXT))();
          }),
      };
      return target;
    });
  }

  /**
   * Copies one staged table into its `_next` twin in primary-key order (so the
   * file's b-tree is written front to back), a chunk per transaction so a
   * projector in another process is never locked out for long.
   */
  private copyStaged(table: TableName): void {
    const from = tableName(STAGE, table);
    const to = tableName(NEXT, table);
    const key = PRIMARY_KEYS[table];
    const columns = key.join(', ');
    const first = this.db.prepare(`INSERT INTO ${to} SELECT * FROM ${from} ORDER BY ${columns} LIMIT ${COPY_CHUNK}`);
    const after = this.db.prepare<unknown[]>(
      `INSERT INTO ${to} SELECT * FROM ${from} WHERE (${columns}) > (${key.map(() => '?').join(', ')})
       ORDER BY ${columns} LIMIT ${COPY_CHUNK}`,
    );
    const last = this.db
      .prepare<[], unknown[]>(`SELECT ${columns} FROM ${to} ORDER BY ${key.map((k) => `${k} DESC`).join(', ')} LIMIT 1`)
      .raw();
    let copied = this.db.transaction(() => first.run().changes)();
    while (copied === COPY_CHUNK) {
      const bound = last.get()!;
      copied = this.db.transaction(() => after.run(...bound).changes)();
    }
  }

  private detachStage(): void {
    const attached = this.db
      .prepare<[], { name: string }>('PRAGMA database_list')
      .all()
      .some((d) => d.name === STAGE_SCHEMA);
    if (attached) this.db.exec(`DETACH DATABASE ${STAGE_SCHEMA}`);
  }

  ping(): Promise<void> {
    return run(() => {
      this.live.checkpoint();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.checkpointer.close();
    this.db.close();
  }

  get database(): Database.Database {
    return this.db;
  }
}

export function openSqliteReadModel(options: SqliteReadModelOptions): SqliteReadModel {
  return new SqliteReadModel(options);
}

/** Dispatch answers are ordered by id. */
function byId(a: { readonly id: string }, b: { readonly id: string }): number {
  return a.id < b.id ? -1 : 1;
}

/** Runs synchronous SQLite work and turns a throw into a rejected promise. */
function run<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
