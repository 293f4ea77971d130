// The embedded read model: a SQLite file beside the log. Rows hold each
// webhook's view as JSON plus the columns that listing and the dispatch lookup
// filter on; patterns and effective partners are exploded into their own
// tables so a dispatch lookup is two index probes, not a scan.
// It is rebuildable from the log at any time, so it runs with synchronous=NORMAL.
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { patternsMatching } from '../../domain/eventTypes.ts';
import { encodePosition, type RecordedEvent } from '../eventStore.ts';
import { nextView, type WebhookView } from '../../projections/webhookView.ts';
import {
  CheckpointConflictError,
  ProjectionGapError,
  type IdempotencyKeyEntry,
  type ListQuery,
  type ReadModel,
  type RebuildTarget,
} from '../readModel.ts';

export interface SqliteReadModelOptions {
  readonly path: string;
}

const LIVE = '';
const NEXT = '_next';
const TABLES = ['webhooks', 'webhook_patterns', 'webhook_partners', 'idempotency_keys', 'checkpoint'] as const;

function createSchema(db: Database.Database, suffix: string): void {
  // Index names carry a generation so a rebuilt table set can be renamed into
  // place without colliding with the indexes of the set it replaces.
  const gen = randomBytes(4).toString('hex');
  db.exec(`
    CREATE TABLE webhooks${suffix} (
      id              TEXT PRIMARY KEY,
      organization_id TEXT NOT NULL,
      created_at      TEXT NOT NULL,
      status          TEXT NOT NULL,
      deleted         INTEGER NOT NULL,
      revision        INTEGER NOT NULL,
      doc             TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX webhooks_by_org_${gen} ON webhooks${suffix} (organization_id, created_at, id) WHERE deleted = 0;
    CREATE TABLE webhook_patterns${suffix} (
      pattern    TEXT NOT NULL,
      webhook_id TEXT NOT NULL,
      PRIMARY KEY (pattern, webhook_id)
    ) WITHOUT ROWID;
    CREATE INDEX webhook_patterns_by_webhook_${gen} ON webhook_patterns${suffix} (webhook_id);
    CREATE TABLE webhook_partners${suffix} (
      webhook_id TEXT NOT NULL,
      partner_id TEXT NOT NULL,
      PRIMARY KEY (webhook_id, partner_id)
    ) WITHOUT ROWID;
    CREATE TABLE idempotency_keys${suffix} (
      organization_id TEXT NOT NULL,
      key_hash        TEXT NOT NULL,
      webhook_id      TEXT NOT NULL,
      fingerprint     TEXT NOT NULL,
      first_used_at   TEXT NOT NULL,
      PRIMARY KEY (organization_id, key_hash)
    ) WITHOUT ROWID;
    CREATE TABLE checkpoint${suffix} (
      id       INTEGER PRIMARY KEY CHECK (id = 1),
      position TEXT
    );
    INSERT INTO checkpoint${suffix} (id, position) VALUES (1, NULL);
  `);
}

function tableExists(db: Database.Database, name: string): boolean {
  return db.prepare('SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?').get('table', name) !== undefined;
}

interface KeyRow {
  organization_id: string;
  key_hash: string;
  webhook_id: string;
  fingerprint: string;
  first_used_at: string;
}

/** Statements over one table set (the live one, or the one a rebuild fills). */
class ViewTables {
  private readonly s;
  readonly applyBatch: (events: readonly RecordedEvent[], expectedCheckpoint: string | null) => void;

  constructor(
    private readonly db: Database.Database,
    suffix: string,
  ) {
    const t = (name: (typeof TABLES)[number]): string => `${name}${suffix}`;
    this.s = {
      get: db.prepare<[string], { doc: string }>(`SELECT doc FROM ${t('webhooks')} WHERE id = ?`),
      upsert: db.prepare<[string, string, string, string, number, number, string]>(
        `INSERT INTO ${t('webhooks')} (id, organization_id, created_at, status, deleted, revision, doc)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, deleted = excluded.deleted,
           revision = excluded.revision, doc = excluded.doc`,
      ),
      deletePatterns: db.prepare<[string]>(`DELETE FROM ${t('webhook_patterns')} WHERE webhook_id = ?`),
      insertPattern: db.prepare<[string, string]>(
        `INSERT OR IGNORE INTO ${t('webhook_patterns')} (pattern, webhook_id) VALUES (?, ?)`,
      ),
      deletePartners: db.prepare<[string]>(`DELETE FROM ${t('webhook_partners')} WHERE webhook_id = ?`),
      insertPartner: db.prepare<[string, string]>(
        `INSERT OR IGNORE INTO ${t('webhook_partners')} (webhook_id, partner_id) VALUES (?, ?)`,
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
      partnerTable: t('webhook_partners'),
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
        const current = touched.has(id) ? touched.get(id)! : this.get(id);
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
      this.s.setCheckpoint.run(encodeLast(events));
    });
  }

  private write(previous: WebhookView | null, view: WebhookView): void {
    this.s.upsert.run(
      view.id,
      view.organizationId,
      view.createdAt,
      view.status,
      view.deleted ? 1 : 0,
      view.revision,
      JSON.stringify(view),
    );
    if (!samePatterns(previous, view)) {
      if (previous !== null) this.s.deletePatterns.run(view.id);
      if (!view.deleted) for (const p of view.events) this.s.insertPattern.run(p, view.id);
    }
    if (previous === null || !sameStrings(previous.effectivePartnerIds, view.effectivePartnerIds) || view.deleted) {
      if (previous !== null) this.s.deletePartners.run(view.id);
      if (!view.deleted) for (const p of view.effectivePartnerIds) this.s.insertPartner.run(view.id, p);
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
      const keys = [...new Set([query.event, ...patternsMatching(query.event)])];
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

  private readonly dispatchStatements = new Map<number, Database.Statement<unknown[], { doc: string }>>();

  dispatchTargets(eventType: string, partnerId: string): WebhookView[] {
    const keys = patternsMatching(eventType);
    let stmt = this.dispatchStatements.get(keys.length);
    if (!stmt) {
      stmt = this.db.prepare<unknown[], { doc: string }>(
        `SELECT w.doc FROM ${this.s.webhookTable} w
         WHERE w.id IN (
           SELECT p.webhook_id FROM ${this.s.patternTable} p
           JOIN ${this.s.partnerTable} q ON q.webhook_id = p.webhook_id AND q.partner_id = ?
           WHERE p.pattern IN (${keys.map(() => '?').join(',')})
         ) AND w.status = 'ACTIVE' AND w.deleted = 0
         ORDER BY w.id`,
      );
      this.dispatchStatements.set(keys.length, stmt);
    }
    return stmt.all(partnerId, ...keys).map((r) => JSON.parse(r.doc) as WebhookView);
  }

  findKey(organizationId: string, keyHash: string): IdempotencyKeyEntry | null {
    const row = this.s.findKey.get(organizationId, keyHash);
    return row
      ? {
          organizationId: row.organization_id,
          keyHash: row.key_hash,
          webhookId: row.webhook_id,
          fingerprint: row.fingerprint,
          firstUsedAt: row.first_used_at,
        }
      : null;
  }

  *all(): Generator<WebhookView> {
    for (const row of this.s.all.iterate()) yield JSON.parse(row.doc) as WebhookView;
  }
}

function samePatterns(a: WebhookView | null, b: WebhookView): boolean {
  return a !== null && a.deleted === b.deleted && sameStrings(a.events, b.events);
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function encodeLast(events: readonly RecordedEvent[]): string {
  return encodePosition(events[events.length - 1]!.position);
}

export class SqliteReadModel implements ReadModel {
  private readonly db: Database.Database;
  private live: ViewTables;
  private closed = false;

  constructor(options: SqliteReadModelOptions) {
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.transaction(() => {
      if (!tableExists(this.db, 'webhooks')) createSchema(this.db, LIVE);
    }).immediate();
    this.live = new ViewTables(this.db, LIVE);
  }

  applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void> {
    return run(() => this.live.applyBatch(events, expectedCheckpoint));
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

  dispatchTargets(eventType: string, partnerId: string): Promise<WebhookView[]> {
    return run(() => this.live.dispatchTargets(eventType, partnerId));
  }

  /** Synchronous form for in-process dispatchers on the embedded engine. */
  dispatchTargetsSync(eventType: string, partnerId: string): WebhookView[] {
    return this.live.dispatchTargets(eventType, partnerId);
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
        for (const t of TABLES) this.db.exec(`DROP TABLE IF EXISTS ${t}`);
        createSchema(this.db, LIVE);
      })();
      this.live = new ViewTables(this.db, LIVE);
    });
  }

  beginRebuild(): Promise<RebuildTarget> {
    return run(() => {
      this.db.transaction(() => {
        for (const t of TABLES) this.db.exec(`DROP TABLE IF EXISTS ${t}${NEXT}`);
        createSchema(this.db, NEXT);
      })();
      const next = new ViewTables(this.db, NEXT);
      let finished = false;
      const target: RebuildTarget = {
        applyBatch: (events, expected) => run(() => next.applyBatch(events, expected)),
        checkpoint: () => run(() => next.checkpoint()),
        commit: () =>
          run(() => {
            if (finished) throw new Error('rebuild already finished');
            finished = true;
            // One transaction: readers see either the old set or the new one.
            this.db.transaction(() => {
              for (const t of TABLES) this.db.exec(`DROP TABLE ${t}`);
              for (const t of TABLES) this.db.exec(`ALTER TABLE ${t}${NEXT} RENAME TO ${t}`);
            })();
            this.live = new ViewTables(this.db, LIVE);
          }),
        abort: () =>
          run(() => {
            if (finished) return;
            finished = true;
            for (const t of TABLES) this.db.exec(`DROP TABLE IF EXISTS ${t}${NEXT}`);
          }),
      };
      return target;
    });
  }

  ping(): Promise<void> {
    return run(() => {
      this.live.checkpoint();
    });
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.db.close();
    }
    return Promise.resolve();
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
    return Promise.reject(error);
  }
}
