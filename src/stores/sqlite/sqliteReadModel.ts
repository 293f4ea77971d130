// The embedded read model: a SQLite file beside the log. Rows hold each
// webhook's view as JSON plus the columns that listing filters on; patterns
// are exploded into their own table (for listing by event), and every
// (partner, pattern) an ACTIVE webhook must receive is a row of the dispatch
// index, so a dispatch lookup is one index range per matching pattern — its
// cost follows the number of targets, not the number of webhooks.
// It is rebuildable from the log at any time, so it runs with synchronous=NORMAL.
//
// A rebuild fills a private temporary database first (no WAL, no fsync, pages
// kept in memory as far as they fit), then copies each table into the `_next`
// set of the file in primary-key order — sequential page writes instead of
// random ones into a growing file — builds the secondary indexes by sorting,
// and switches the sets in one transaction.
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { WalCheckpointer } from './walCheckpointer.ts';
import { patternsMatching } from '../../domain/eventTypes.ts';
import { comparePositions, decodePosition, encodePosition, type RecordedEvent } from '../eventStore.ts';
import { nextView, upgradeStoredView, type StoredWebhookView, type WebhookView } from '../../projections/webhookView.ts';
import type { EncryptedSecret, PreviousSecret } from '../../domain/webhook.ts';
import { dispatchable, eventFilterPatterns, keyEntryOfRow, sameDispatch, samePatterns, type KeyRow } from '../webhookRows.ts';
import {
  CheckpointConflictError,
  ProjectionGapError,
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
const TABLES = ['webhooks', 'webhook_patterns', 'webhook_dispatch', 'idempotency_keys', 'checkpoint'] as const;
type TableName = (typeof TABLES)[number];
/** Tables of earlier versions of this schema, dropped wherever a table set is replaced. */
const LEGACY_TABLES = ['webhook_partners'] as const;
/** Primary-key columns, the order a rebuild copies each table in. */
const PRIMARY_KEYS: Record<TableName, readonly string[]> = {
  webhooks: ['id'],
  webhook_patterns: ['pattern', 'webhook_id'],
  webhook_dispatch: ['partner_id', 'pattern', 'webhook_id'],
  idempotency_keys: ['organization_id', 'key_hash'],
  checkpoint: ['id'],
};
/** Rows per transaction when a rebuild copies its tables into the file (keeps write locks short). */
const COPY_CHUNK = 50_000;
/** Page cache of a rebuild's staging database, KiB: a 100 000-event log is staged without touching the disk. */
const STAGE_CACHE_KIB = 256 * 1024;

function tableName(set: TableSet, name: string): string {
  return `${set.schema}.${name}${set.suffix}`;
}

/**
 * A new, empty table set: `live` with every index and the checkpoint row;
 * `stage` (what a rebuild applies events to) without the listing index, which
 * only readers of the live set use; `copy` bare, for a rebuild to copy its
 * staged rows into before indexing them.
 * Every index costs each registration a random page write, so there are few:
 * a webhook's pattern and dispatch rows are deleted by their full keys (from
 * the previous view), not through an index by webhook.
 */
function createTables(db: Database.Database, set: TableSet, purpose: 'live' | 'stage' | 'copy' = 'live'): void {
  const t = (name: TableName): string => tableName(set, name);
  db.exec(`
    -- A rowid table: the JSON view is ~1 KB, and a WITHOUT ROWID b-tree keyed
    -- by random UUIDs moves whole rows on every page split (3× the cost per write).
    CREATE TABLE ${t('webhooks')} (
      id              TEXT NOT NULL UNIQUE,
      organization_id TEXT NOT NULL,
      created_at      TEXT NOT NULL,
      status          TEXT NOT NULL,
      deleted         INTEGER NOT NULL,
      revision        INTEGER NOT NULL,
      doc             TEXT NOT NULL
    );
    CREATE TABLE ${t('webhook_patterns')} (
      pattern    TEXT NOT NULL,
      webhook_id TEXT NOT NULL,
      PRIMARY KEY (pattern, webhook_id)
    ) WITHOUT ROWID;
    -- Each row carries what a dispatcher needs of its webhook, so a lookup is
    -- one range of this b-tree and never visits the (large) views.
    CREATE TABLE ${t('webhook_dispatch')} (${DISPATCH_COLUMNS}) WITHOUT ROWID;
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
}

function createIndexes(db: Database.Database, set: TableSet): void {
  // Index names carry a generation so a rebuilt table set can be renamed into
  // place without colliding with the indexes of the set it replaces.
  const gen = randomBytes(4).toString('hex');
  db.exec(
    `CREATE INDEX ${set.schema}.webhooks_by_org_${gen} ON webhooks${set.suffix} (organization_id, created_at, id) WHERE deleted = 0`,
  );
}

function dropTables(db: Database.Database, set: TableSet): void {
  for (const t of [...TABLES, ...LEGACY_TABLES]) db.exec(`DROP TABLE IF EXISTS ${tableName(set, t)}`);
}

/** Indexes of earlier versions of this schema that nothing reads any more (they only cost writes). */
function dropLegacyIndexes(db: Database.Database): void {
  const legacy = db
    .prepare<[], { name: string }>(
      "SELECT name FROM main.sqlite_master WHERE type = 'index' AND name LIKE 'webhook\\_patterns\\_by\\_webhook\\_%' ESCAPE '\\'",
    )
    .all();
  for (const { name } of legacy) db.exec(`DROP INDEX main."${name}"`);
}

const DISPATCH_COLUMNS = `
      partner_id                 TEXT NOT NULL,
      pattern                    TEXT NOT NULL,
      webhook_id                 TEXT NOT NULL,
      organization_id            TEXT NOT NULL,
      url                        TEXT NOT NULL,
      events                     TEXT NOT NULL, -- JSON array
      secret                     TEXT NOT NULL, -- JSON of the encrypted secret
      previous_secrets           TEXT,          -- JSON [{secret, expiresAt}], newest first; NULL when none
      PRIMARY KEY (partner_id, pattern, webhook_id)`;

const DISPATCH_COLUMN_NAMES = 'partner_id, pattern, webhook_id, organization_id, url, events, secret, previous_secrets';

/**
 * Read models written before the dispatch index existed, before it carried
 * the dispatch columns, or before it held a list of previous secrets: derive
 * it from the stored views (upgraded first, see upgradeStoredViews).
 */
function migrateDispatchIndex(db: Database.Database): void {
  db.exec(`
    DROP TABLE IF EXISTS main.webhook_dispatch;
    CREATE TABLE main.webhook_dispatch (${DISPATCH_COLUMNS}) WITHOUT ROWID;
    INSERT OR IGNORE INTO main.webhook_dispatch (${DISPATCH_COLUMN_NAMES})
      SELECT p.value, e.value, w.id, w.organization_id, json_extract(w.doc, '$.url'), json(json_extract(w.doc, '$.events')),
        json(json_extract(w.doc, '$.secret')),
        CASE WHEN json_array_length(w.doc, '$.previousSecrets') > 0 THEN json(json_extract(w.doc, '$.previousSecrets')) END
      FROM main.webhooks w, json_each(w.doc, '$.effectivePartnerIds') p, json_each(w.doc, '$.events') e
      WHERE w.deleted = 0 AND w.status = 'ACTIVE';
    DROP TABLE IF EXISTS main.webhook_partners;
  `);
}

/**
 * Views written before webhooks kept a list of previous secrets hold one in
 * `previousSecret` / `previousSecretExpiresAt`: rewrite them in today's shape.
 * Exact for that version's state; a secret it had already dropped (a second
 * rotation inside a grace period) comes back only with `projections rebuild`.
 */
function upgradeStoredViews(db: Database.Database): void {
  const legacy = db
    .prepare<[], { id: string; doc: string }>("SELECT id, doc FROM main.webhooks WHERE json_type(doc, '$.previousSecrets') IS NULL")
    .all();
  const update = db.prepare<[string, string]>('UPDATE main.webhooks SET doc = ? WHERE id = ?');
  for (const row of legacy) {
    update.run(JSON.stringify(upgradeStoredView(JSON.parse(row.doc) as StoredWebhookView)), row.id);
  }
}

function columnExists(db: Database.Database, table: string, column: string): boolean {
  return db.prepare<[string, string], { n: number }>('SELECT count(*) AS n FROM pragma_table_info(?) WHERE name = ?').get(table, column)!.n > 0;
}

function tableExists(db: Database.Database, name: string): boolean {
  return db.prepare('SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?').get('table', name) !== undefined;
}

/** Statements over one table set (the live one, or the one a rebuild fills). */
class ViewTables {
  private readonly s;
  readonly applyBatch: (events: readonly RecordedEvent[], expectedCheckpoint: string | null) => void;

  constructor(
    private readonly db: Database.Database,
    set: TableSet,
  ) {
    const t = (name: TableName): string => tableName(set, name);
    this.s = {
      get: db.prepare<[string], { doc: string }>(`SELECT doc FROM ${t('webhooks')} WHERE id = ?`),
      upsert: db.prepare<[string, string, string, string, number, number, string]>(
        `INSERT INTO ${t('webhooks')} (id, organization_id, created_at, status, deleted, revision, doc)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, deleted = excluded.deleted,
           revision = excluded.revision, doc = excluded.doc`,
      ),
      insertNew: db.prepare<[string, string, string, string, number, number, string]>(
        `INSERT INTO ${t('webhooks')} (id, organization_id, created_at, status, deleted, revision, doc)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING`,
      ),
      deletePattern: db.prepare<[string, string]>(`DELETE FROM ${t('webhook_patterns')} WHERE pattern = ? AND webhook_id = ?`),
      insertPattern: db.prepare<[string, string]>(
        `INSERT OR IGNORE INTO ${t('webhook_patterns')} (pattern, webhook_id) VALUES (?, ?)`,
      ),
      deleteDispatch: db.prepare<[string, string, string]>(
        `DELETE FROM ${t('webhook_dispatch')} WHERE partner_id = ? AND pattern = ? AND webhook_id = ?`,
      ),
      insertDispatch: db.prepare<[string, string, string, string, string, string, string, string | null]>(
        `INSERT OR IGNORE INTO ${t('webhook_dispatch')} (${DISPATCH_COLUMN_NAMES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertKey: db.prepare<[string, string, string, string, string]>(
        `INSERT OR IGNORE INTO ${t('idempotency_keys')} (organization_id, key_hash, webhook_id, fingerprint, first_used_at)
         VALUES (?, ?, ?, ?, ?)`,
      ),
      findKey: db.prepare<[string, string], KeyRow>(
        `SELECT * FROM ${t('idempotency_keys')} WHERE organization_id = ? AND key_hash = ?`,
      ),
      checkpoint: db.prepare<[], { position: string | null }>(`SELECT position FROM ${t('checkpoint')} WHERE id = 1`),
      setCheckpoint: db.prepare<[string]>(`UPDATE ${t('checkpoint')} SET position = ? WHERE id = 1`),
      all: db.prepare<[], { doc: string }>(`SELECT doc FROM ${t('webhooks')} ORDER BY id`),
      list: (filter: string) =>
        db.prepare<unknown[], { doc: string }>(
          `SELECT w.doc FROM ${t('webhooks')} w
           WHERE w.organization_id = ? AND w.deleted = 0 ${filter}
           ORDER BY w.created_at, w.id LIMIT ?`,
        ),
      patternTable: t('webhook_patterns'),
      dispatchTable: t('webhook_dispatch'),
      webhookTable: t('webhooks'),
    };
    this.applyBatch = db.transaction((events: readonly RecordedEvent[], expectedCheckpoint: string | null) => {
      const actual = this.checkpoint();
      if (actual !== expectedCheckpoint) throw new CheckpointConflictError(expectedCheckpoint, actual);
      if (events.length === 0) return;
      // Views touched earlier in this batch, so one webhook's events chain without re-reading.
      const touched = new Map<string, WebhookView | null>();
      for (const event of events) {
        const id = (event.data as { webhookId: string }).webhookId;
        let current: WebhookView | null;
        if (touched.has(id)) current = touched.get(id)!;
        else if (event.revision === 0 && event.type === 'WebhookRegistered') {
          // Most events create a webhook: insert it without reading first. A row
          // already there (a batch applied again) takes the general path.
          const change = nextView(null, event);
          if (change.kind === 'apply' && this.insertNew(change.view)) {
            touched.set(id, change.view);
            const key = change.key;
            if (key) this.s.insertKey.run(key.organizationId, key.keyHash, key.webhookId, key.fingerprint, key.firstUsedAt);
            continue;
          }
          current = this.get(id);
        } else current = this.get(id);
        let change;
        try {
          change = nextView(current, event);
        } catch (error) {
          throw new ProjectionGapError((error as Error).message);
        }
        if (change.kind === 'skip') continue;
        this.write(current, change.view);
        touched.set(id, change.view);
        const key = change.key;
        if (key) this.s.insertKey.run(key.organizationId, key.keyHash, key.webhookId, key.fingerprint, key.firstUsedAt);
      }
      // Never backwards: re-applying a batch that is already applied must not rewind the checkpoint.
      const next = encodeLast(events);
      if (actual === null || comparePositions(decodePosition(next), decodePosition(actual)) > 0) {
        this.s.setCheckpoint.run(next);
      }
    });
  }

  /** Writes the view of a webhook not stored yet; false (and nothing written) when it is stored. */
  private insertNew(view: WebhookView): boolean {
    const inserted = this.s.insertNew.run(...viewRow(view));
    if (inserted.changes === 0) return false;
    this.writeIndexes(null, view);
    return true;
  }

  private write(previous: WebhookView | null, view: WebhookView): void {
    this.s.upsert.run(...viewRow(view));
    this.writeIndexes(previous, view);
  }

  private writeIndexes(previous: WebhookView | null, view: WebhookView): void {
    if (!samePatterns(previous, view)) {
      if (previous !== null) for (const p of previous.events) this.s.deletePattern.run(p, view.id);
      if (!view.deleted) for (const p of view.events) this.s.insertPattern.run(p, view.id);
    }
    if (!sameDispatch(previous, view)) {
      if (previous !== null && dispatchable(previous)) {
        for (const partner of previous.effectivePartnerIds) {
          for (const pattern of previous.events) this.s.deleteDispatch.run(partner, pattern, view.id);
        }
      }
      if (dispatchable(view)) {
        const events = JSON.stringify(view.events);
        const secret = JSON.stringify(view.secret);
        const previous = view.previousSecrets.length === 0 ? null : JSON.stringify(view.previousSecrets);
        for (const partner of view.effectivePartnerIds) {
          for (const pattern of view.events) {
            this.s.insertDispatch.run(partner, pattern, view.id, view.organizationId, view.url, events, secret, previous);
          }
        }
      }
    }
  }

  get(id: string): WebhookView | null {
    const row = this.s.get.get(id);
    return row ? (JSON.parse(row.doc) as WebhookView) : null;
  }

  checkpoint(): string | null {
    return this.s.checkpoint.get()?.position ?? null;
  }

  private readonly listStatements = new Map<string, Database.Statement<unknown[], { doc: string }>>();

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
        `AND EXISTS (SELECT 1 FROM ${this.s.patternTable} p WHERE p.webhook_id = w.id AND p.pattern IN (${keys.map(() => '?').join(',')}))`,
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
    return stmt.all(...params).map((r) => JSON.parse(r.doc) as WebhookView);
  }

  private readonly dispatchStatements = new Map<number, Database.Statement<unknown[], DispatchRow>>();

  dispatchTargets(eventType: string, partnerId: string): DispatchView[] {
    const keys = patternsMatching(eventType);
    let stmt = this.dispatchStatements.get(keys.length);
    if (!stmt) {
      // Rows as arrays (no object per row), de-duplicated and ordered here: cheaper than GROUP BY's temp b-tree.
      stmt = this.db
        .prepare<unknown[], DispatchRow>(
          `SELECT webhook_id, organization_id, url, events, secret, previous_secrets
           FROM ${this.s.dispatchTable}
           WHERE partner_id = ? AND pattern IN (${keys.map(() => '?').join(',')})${keys.length === 1 ? ' ORDER BY webhook_id' : ''}`,
        )
        .raw(true);
      this.dispatchStatements.set(keys.length, stmt);
    }
    const rows = stmt.all(partnerId, ...keys);
    if (keys.length > 1) {
      // A webhook matching through two of its patterns has a row for each, with the same columns.
      const seen = new Set<string>();
      const unique: DispatchRow[] = [];
      for (const row of rows) {
        if (seen.has(row[0])) continue;
        seen.add(row[0]);
        unique.push(row);
      }
      unique.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      return unique.map(dispatchViewOfRow);
    }
    return rows.map(dispatchViewOfRow);
  }

  findKey(organizationId: string, keyHash: string): IdempotencyKeyEntry | null {
    const row = this.s.findKey.get(organizationId, keyHash);
    return row ? keyEntryOfRow(row) : null;
  }

  *all(): Generator<WebhookView> {
    for (const row of this.s.all.iterate()) yield JSON.parse(row.doc) as WebhookView;
  }
}

/** A dispatch index row in column order: webhook id, organization, url, events, secret, previous secrets (JSON or null). */
type DispatchRow = [string, string, string, string, string, string | null];

function dispatchViewOfRow([id, organizationId, url, events, secret, previous]: DispatchRow): DispatchView {
  return {
    id,
    organizationId,
    url,
    events: JSON.parse(events) as string[],
    secret: JSON.parse(secret) as EncryptedSecret,
    previousSecrets: previous === null ? [] : (JSON.parse(previous) as PreviousSecret[]),
  };
}

/** The `webhooks` row of a view, in column order. */
function viewRow(view: WebhookView): [string, string, string, string, number, number, string] {
  return [view.id, view.organizationId, view.createdAt, view.status, view.deleted ? 1 : 0, view.revision, JSON.stringify(view)];
}

function encodeLast(events: readonly RecordedEvent[]): string {
  return encodePosition(events[events.length - 1]!.position);
}

export class SqliteReadModel implements ReadModel {
  private readonly db: Database.Database;
  private live: ViewTables;
  private closed = false;
  private readonly checkpointer: WalCheckpointer;

  constructor(options: SqliteReadModelOptions) {
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.checkpointer = new WalCheckpointer(this.db, { path: options.path, synchronous: 'NORMAL' });
    this.db.transaction(() => {
      if (!tableExists(this.db, 'webhooks')) createTables(this.db, LIVE);
      else {
        if (!tableExists(this.db, 'webhook_dispatch') || !columnExists(this.db, 'webhook_dispatch', 'previous_secrets')) {
          upgradeStoredViews(this.db);
          migrateDispatchIndex(this.db);
        }
        dropLegacyIndexes(this.db);
      }
    }).immediate();
    this.live = new ViewTables(this.db, LIVE);
  }

  applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void> {
    return run(() => {
      this.live.applyBatch(events, expectedCheckpoint);
      this.checkpointer.committed();
    });
  }

  checkpoint(): Promise<string | null> {
    return run(() => this.live.checkpoint());
  }

  getWebhook(id: string): Promise<WebhookView | null> {
    return run(() => this.live.get(id));
  }

  listWebhooks(query: ListQuery): Promise<WebhookView[]> {
    return run(() => this.live.list(query));
  }

  dispatchTargets(eventType: string, partnerId: string): Promise<DispatchView[]> {
    return run(() => this.live.dispatchTargets(eventType, partnerId));
  }

  findIdempotencyKey(organizationId: string, keyHash: string): Promise<IdempotencyKeyEntry | null> {
    return run(() => this.live.findKey(organizationId, keyHash));
  }

  async *allWebhooks(): AsyncIterable<WebhookView> {
    // Materialize first: an open iterator would hold a read transaction across awaits.
    const all = [...this.live.all()];
    for (const view of all) yield await Promise.resolve(view);
  }

  reset(): Promise<void> {
    return run(() => {
      this.db.transaction(() => {
        dropTables(this.db, LIVE);
        createTables(this.db, LIVE);
      })();
      this.live = new ViewTables(this.db, LIVE);
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
      const stage = new ViewTables(this.db, STAGE);
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

/** Runs synchronous SQLite work and turns a throw into a rejected promise. */
function run<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
