// The read model on PostgreSQL (POSTGRES_URL), in the schema `read_model`
// beside the event log. Compact: one row of typed columns per webhook (see
// ../webhookRows.ts, shared by the engines), a pattern index (pattern,
// webhook) for listing by event, and a dispatch index (partner, pattern,
// webhook) of the ACTIVE webhooks: a dispatch lookup is one range scan of
// that index per matching pattern plus a primary-key lookup per target, so it
// costs what the answer holds, not what the registry holds.
//
// A batch is one transaction of five round trips: lock the checkpoint row
// (FOR UPDATE: appliers in several processes queue; a moved checkpoint is a
// CheckpointConflictError), read the batch's webhooks, fold the events in
// memory with the shared nextView, then write every changed row, index
// difference, key and the checkpoint in one statement. It is rebuildable from
// the log, so commits are asynchronous (synchronous_commit = off): a crash
// loses at most the last moments of projection, never consistency — the
// checkpoint moves with the rows, and the projector resumes from it.
//
// A rebuild fills a schema of its own and swaps it in by renaming both
// schemas in one transaction; readers see the old model or the new one.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { StoreUnavailableError, comparePositions, decodePosition, encodePosition, type RecordedEvent } from '../eventStore.ts';
import { nextView, type WebhookView } from '../../projections/webhookView.ts';
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
import {
  dispatchKeyOf,
  dispatchKeys,
  eventFilterPatterns,
  indexChanges,
  keyEntryOfRow,
  patternKeyOf,
  patternKeys,
  previousSecretsOfRows,
  secretOfRow,
  viewOfRow,
  webhookRow,
  type KeyRow,
  type PreviousSecretRow,
  type WebhookRow,
} from '../webhookRows.ts';
import { patternsMatching } from '../../domain/eventTypes.ts';
import { migrate, openPool, pingPool, storeError, type Migration, type PgConnectionOptions } from './pgDatabase.ts';

export const LIVE_SCHEMA = 'read_model';
const REBUILD_PREFIX = 'read_model_rebuild_';
const RETIRED_PREFIX = 'read_model_retired_';

/** Migrations as functions of the schema, so a rebuild's schema is created exactly like the live one. */
const SCHEMA_VERSIONS: readonly { version: number; description: string; sql: (schema: string) => string }[] = [
  {
    version: 1,
    description: 'webhooks, pattern and dispatch indexes, idempotency keys, checkpoint',
    sql: (s) => `
      CREATE SCHEMA ${s};
      CREATE TABLE ${s}.webhooks (
        id                     text COLLATE "C" PRIMARY KEY,
        organization_id        text COLLATE "C" NOT NULL,
        url                    text        NOT NULL,
        events                 text[]      NOT NULL,
        partner_ids            text[],
        authorized_partner_ids text[]      NOT NULL,
        status                 text        NOT NULL CHECK (status IN ('ACTIVE', 'PAUSED', 'DISABLED')),
        disabled_reason        text,
        secret_key_id          text        NOT NULL,
        secret_iv              text        NOT NULL,
        secret_ciphertext      text        NOT NULL,
        -- newest first: {key id, iv, ciphertext, expires at} each
        previous_secrets       text[][]    NOT NULL,
        created_at             timestamptz NOT NULL,
        updated_at             timestamptz NOT NULL,
        revision               integer     NOT NULL,
        position               text        NOT NULL,
        deleted                boolean     NOT NULL
      );
      CREATE INDEX webhooks_by_organization ON ${s}.webhooks (organization_id, created_at, id) WHERE NOT deleted;
      CREATE TABLE ${s}.webhook_patterns (
        pattern    text COLLATE "C" NOT NULL,
        webhook_id text COLLATE "C" NOT NULL,
        PRIMARY KEY (pattern, webhook_id)
      );
      CREATE TABLE ${s}.webhook_dispatch (
        partner_id text COLLATE "C" NOT NULL,
        pattern    text COLLATE "C" NOT NULL,
        webhook_id text COLLATE "C" NOT NULL,
        PRIMARY KEY (partner_id, pattern, webhook_id)
      );
      CREATE TABLE ${s}.idempotency_keys (
        organization_id text COLLATE "C" NOT NULL,
        key_hash        text COLLATE "C" NOT NULL,
        webhook_id      text        NOT NULL,
        fingerprint     text        NOT NULL,
        first_used_at   timestamptz NOT NULL,
        PRIMARY KEY (organization_id, key_hash)
      );
      CREATE TABLE ${s}.checkpoint (
        id       smallint PRIMARY KEY CHECK (id = 1),
        position text
      );
      INSERT INTO ${s}.checkpoint (id, position) VALUES (1, NULL);
    `,
  },
];

export const READ_MODEL_MIGRATIONS: readonly Migration[] = SCHEMA_VERSIONS.map((v) => ({
  version: v.version,
  description: v.description,
  sql: v.sql(LIVE_SCHEMA),
}));

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const iso = (column: string): string => `to_char(${column} AT TIME ZONE 'UTC', ${ISO})`;

/** The columns of a WebhookRow, timestamps as the RFC 3339 text the views carry. */
const ROW_COLUMNS = `w.id, w.organization_id, w.url, w.events, w.partner_ids, w.authorized_partner_ids, w.status,
  w.disabled_reason, w.secret_key_id, w.secret_iv, w.secret_ciphertext, w.previous_secrets,
  ${iso('w.created_at')} AS created_at, ${iso('w.updated_at')} AS updated_at, w.revision, w.position, w.deleted`;

const RECORD_TYPE = `id text, organization_id text, url text, events text[], partner_ids text[], authorized_partner_ids text[],
  status text, disabled_reason text, secret_key_id text, secret_iv text, secret_ciphertext text, previous_secrets text[][],
  created_at timestamptz, updated_at timestamptz, revision integer, position text, deleted boolean`;

const ROW_NAMES = RECORD_TYPE.split(',').map((c) => c.trim().split(' ')[0]).join(', ');

const UPDATED_COLUMNS = [
  'url',
  'events',
  'partner_ids',
  'authorized_partner_ids',
  'status',
  'disabled_reason',
  'secret_key_id',
  'secret_iv',
  'secret_ciphertext',
  'previous_secrets',
  'updated_at',
  'revision',
  'position',
  'deleted',
];

interface DispatchRow {
  id: string;
  organization_id: string;
  url: string;
  events: string[];
  secret_key_id: string;
  secret_iv: string;
  secret_ciphertext: string;
  previous_secrets: PreviousSecretRow[];
}

/** The statements over one schema (the live one, or the one a rebuild fills). */
class ViewTables {
  private readonly sql;

  constructor(
    private readonly pool: pg.Pool,
    readonly schema: string,
  ) {
    const t = (name: string): string => `${schema}.${name}`;
    this.sql = {
      lockCheckpoint: `SELECT position FROM ${t('checkpoint')} WHERE id = 1 FOR UPDATE`,
      checkpoint: `SELECT position FROM ${t('checkpoint')} WHERE id = 1`,
      views: `SELECT ${ROW_COLUMNS} FROM ${t('webhooks')} w WHERE w.id = ANY($1::text[])`,
      view: `SELECT ${ROW_COLUMNS} FROM ${t('webhooks')} w WHERE w.id = $1`,
      // Every write of a batch in one statement. The index differences are disjoint
      // (never delete and insert one key), so the parts cannot see each other's effects.
      write: `
        WITH upserted AS (
          INSERT INTO ${t('webhooks')} AS w (${ROW_NAMES})
          SELECT ${ROW_NAMES} FROM json_to_recordset($1::json) AS r(${RECORD_TYPE})
          ON CONFLICT (id) DO UPDATE SET ${UPDATED_COLUMNS.map((c) => `${c} = excluded.${c}`).join(', ')}
          RETURNING 1
        ), patterns_removed AS (
          DELETE FROM ${t('webhook_patterns')} p USING unnest($2::text[], $3::text[]) AS r(pattern, webhook_id)
          WHERE p.pattern = r.pattern AND p.webhook_id = r.webhook_id
          RETURNING 1
        ), patterns_added AS (
          INSERT INTO ${t('webhook_patterns')} (pattern, webhook_id)
          SELECT * FROM unnest($4::text[], $5::text[]) ON CONFLICT DO NOTHING
          RETURNING 1
        ), dispatch_removed AS (
          DELETE FROM ${t('webhook_dispatch')} d USING unnest($6::text[], $7::text[], $8::text[]) AS r(partner_id, pattern, webhook_id)
          WHERE d.partner_id = r.partner_id AND d.pattern = r.pattern AND d.webhook_id = r.webhook_id
          RETURNING 1
        ), dispatch_added AS (
          INSERT INTO ${t('webhook_dispatch')} (partner_id, pattern, webhook_id)
          SELECT * FROM unnest($9::text[], $10::text[], $11::text[]) ON CONFLICT DO NOTHING
          RETURNING 1
        ), keys_added AS (
          INSERT INTO ${t('idempotency_keys')} (organization_id, key_hash, webhook_id, fingerprint, first_used_at)
          SELECT * FROM unnest($12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[]) ON CONFLICT DO NOTHING
          RETURNING 1
        ), checkpoint_moved AS (
          UPDATE ${t('checkpoint')} SET position = $17 WHERE id = 1 AND $17::text IS NOT NULL
          RETURNING 1
        )
        SELECT (SELECT count(*) FROM upserted) AS webhooks`,
      list: (filters: string) => `
        SELECT ${ROW_COLUMNS} FROM ${t('webhooks')} w
        WHERE w.organization_id = $1 AND NOT w.deleted ${filters}
        ORDER BY w.created_at, w.id
        LIMIT $2`,
      patterns: t('webhook_patterns'),
      // One range of the dispatch index per matching pattern; each target's row by its primary key.
      dispatch: `
        SELECT w.id, w.organization_id, w.url, w.events, w.secret_key_id, w.secret_iv, w.secret_ciphertext, w.previous_secrets
        FROM ${t('webhooks')} w
        WHERE w.id IN (SELECT d.webhook_id FROM ${t('webhook_dispatch')} d WHERE d.partner_id = $1 AND d.pattern = ANY($2::text[]))
        ORDER BY w.id`,
      findKey: `
        SELECT organization_id, key_hash, webhook_id, fingerprint, ${iso('first_used_at')} AS first_used_at
        FROM ${t('idempotency_keys')} WHERE organization_id = $1 AND key_hash = $2`,
      page: `SELECT ${ROW_COLUMNS} FROM ${t('webhooks')} w WHERE w.id > $1 ORDER BY w.id LIMIT $2`,
      reset: `
        TRUNCATE ${t('webhooks')}, ${t('webhook_patterns')}, ${t('webhook_dispatch')}, ${t('idempotency_keys')};
        UPDATE ${t('checkpoint')} SET position = NULL WHERE id = 1;`,
    };
  }

  async applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void> {
    await this.transaction('applyBatch', async (client) => {
      const stored = (await client.query<{ position: string | null }>(this.sql.lockCheckpoint)).rows[0]?.position ?? null;
      if (stored !== expectedCheckpoint) throw new CheckpointConflictError(expectedCheckpoint, stored);
      if (events.length === 0) return;

      const ids = [...new Set(events.map((e) => (e.data as { webhookId: string }).webhookId))];
      const before = new Map<string, WebhookView>();
      for (const row of (await client.query<WebhookRow>(this.sql.views, [ids])).rows) before.set(row.id, viewOfRow(row));

      const after = new Map<string, WebhookView | null>(ids.map((id) => [id, before.get(id) ?? null]));
      const keys = new Map<string, IdempotencyKeyEntry>();
      for (const event of events) {
        const id = (event.data as { webhookId: string }).webhookId;
        let change;
        try {
          change = nextView(after.get(id) ?? null, event);
        } catch (error) {
          throw new ProjectionGapError((error as Error).message);
        }
        if (change.kind === 'skip') continue;
        after.set(id, change.view);
        const key = change.key;
        if (key) {
          const k = `${key.organizationId}\0${key.keyHash}`;
          if (!keys.has(k)) keys.set(k, key); // the first use wins
        }
      }

      const changed = [...after].filter(([id, view]) => view !== null && view !== (before.get(id) ?? null));
      const patterns = { remove: [] as { pattern: string; webhookId: string }[], add: [] as { pattern: string; webhookId: string }[] };
      const dispatch = {
        remove: [] as { partnerId: string; pattern: string; webhookId: string }[],
        add: [] as { partnerId: string; pattern: string; webhookId: string }[],
      };
      for (const [id, view] of changed) {
        const old = before.get(id) ?? null;
        const p = indexChanges(patternKeys(old), patternKeys(view), patternKeyOf);
        patterns.remove.push(...p.remove);
        patterns.add.push(...p.add);
        const d = indexChanges(dispatchKeys(old), dispatchKeys(view), dispatchKeyOf);
        dispatch.remove.push(...d.remove);
        dispatch.add.push(...d.add);
      }
      // Never backwards: re-applying a batch that is already applied must not rewind the checkpoint.
      const last = encodePosition(events[events.length - 1]!.position);
      const moved = stored === null || comparePositions(decodePosition(last), decodePosition(stored)) > 0 ? last : null;
      const keyList = [...keys.values()];
      await client.query(this.sql.write, [
        JSON.stringify(changed.map(([, view]) => webhookRow(view!))),
        patterns.remove.map((k) => k.pattern),
        patterns.remove.map((k) => k.webhookId),
        patterns.add.map((k) => k.pattern),
        patterns.add.map((k) => k.webhookId),
        dispatch.remove.map((k) => k.partnerId),
        dispatch.remove.map((k) => k.pattern),
        dispatch.remove.map((k) => k.webhookId),
        dispatch.add.map((k) => k.partnerId),
        dispatch.add.map((k) => k.pattern),
        dispatch.add.map((k) => k.webhookId),
        keyList.map((k) => k.organizationId),
        keyList.map((k) => k.keyHash),
        keyList.map((k) => k.webhookId),
        keyList.map((k) => k.fingerprint),
        keyList.map((k) => k.firstUsedAt),
        moved,
      ]);
    });
  }

  async checkpoint(): Promise<string | null> {
    return (await this.query<{ position: string | null }>('checkpoint', this.sql.checkpoint)).rows[0]?.position ?? null;
  }

  async get(id: string): Promise<WebhookView | null> {
    const row = (await this.query<WebhookRow>('getWebhook', this.sql.view, [id])).rows[0];
    return row ? viewOfRow(row) : null;
  }

  async list(query: ListQuery): Promise<WebhookView[]> {
    const params: unknown[] = [query.organizationId, query.limit];
    const filters: string[] = [];
    if (query.after) {
      params.push(query.after.createdAt, query.after.id);
      filters.push(`AND (w.created_at, w.id) > ($${params.length - 1}::timestamptz, $${params.length}::text)`);
    }
    if (query.status) {
      params.push(query.status);
      filters.push(`AND w.status = $${params.length}`);
    }
    if (query.event) {
      params.push(eventFilterPatterns(query.event));
      filters.push(
        `AND EXISTS (SELECT 1 FROM ${this.sql.patterns} p WHERE p.webhook_id = w.id AND p.pattern = ANY($${params.length}::text[]))`,
      );
    }
    return (await this.query<WebhookRow>('listWebhooks', this.sql.list(filters.join(' ')), params)).rows.map(viewOfRow);
  }

  async dispatchTargets<T extends { readonly id: string } = DispatchView>(
    eventType: string,
    partnerId: string,
    slices?: DispatchSlices<T>,
  ): Promise<T[]> {
    const { rows } = await this.query<DispatchRow>('dispatchTargets', this.sql.dispatch, [partnerId, patternsMatching(eventType)]);
    const views = rows.map((r) => ({
      id: r.id,
      organizationId: r.organization_id,
      url: r.url,
      events: r.events,
      secret: secretOfRow(r),
      previousSecrets: previousSecretsOfRows(r.previous_secrets),
    }));
    return keptTargets(views, slices);
  }

  /** The dispatch query as the server would run it (for tests and docs: which index serves it). */
  async explainDispatch(eventType: string, partnerId: string): Promise<string> {
    const { rows } = await this.query<{ 'QUERY PLAN': string }>('explain', `EXPLAIN ${this.sql.dispatch}`, [
      partnerId,
      patternsMatching(eventType),
    ]);
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  }

  async findKey(organizationId: string, keyHash: string): Promise<IdempotencyKeyEntry | null> {
    const row = (await this.query<KeyRow>('findIdempotencyKey', this.sql.findKey, [organizationId, keyHash])).rows[0];
    return row ? keyEntryOfRow(row) : null;
  }

  /** Every webhook ordered by id, a page at a time (no transaction held open between pages). */
  async *all(pageSize = 1000): AsyncGenerator<WebhookView> {
    let after = '';
    for (;;) {
      const { rows } = await this.query<WebhookRow>('allWebhooks', this.sql.page, [after, pageSize]);
      for (const row of rows) yield viewOfRow(row);
      if (rows.length < pageSize) return;
      after = rows[rows.length - 1]!.id;
    }
  }

  async reset(): Promise<void> {
    await this.query('reset', this.sql.reset);
  }

  private async query<R extends pg.QueryResultRow>(operation: string, sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (error) {
      throw storeError(error, operation);
    }
  }

  private async transaction(operation: string, work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    await runTransaction(this.pool, operation, async (client) => {
      // Rebuildable from the log: no need to wait for the WAL flush (see the top of this file).
      await client.query('SET LOCAL synchronous_commit = off');
      await work(client);
    });
  }
}

/** BEGIN … COMMIT on one connection; ROLLBACK on any error, which is rethrown (driver failures as StoreUnavailableError). */
async function runTransaction(pool: pg.Pool, operation: string, work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw storeError(error, operation);
  }
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    await work(client);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch((e: unknown) => {
      broken = e instanceof Error ? e : new Error(String(e)); // the connection is unusable: the pool drops it
    });
    if (error instanceof CheckpointConflictError || error instanceof ProjectionGapError) throw error;
    throw storeError(error, operation);
  } finally {
    client.release(broken);
  }
}

export class PostgresReadModel implements ReadModel {
  private readonly live: ViewTables;
  private closed = false;

  constructor(private readonly pool: pg.Pool) {
    this.live = new ViewTables(pool, LIVE_SCHEMA);
  }

  async applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void> {
    return await this.open().applyBatch(events, expectedCheckpoint);
  }

  async checkpoint(): Promise<string | null> {
    return await this.open().checkpoint();
  }

  async getWebhook(id: string): Promise<WebhookView | null> {
    return await this.open().get(id);
  }

  async listWebhooks(query: ListQuery): Promise<WebhookView[]> {
    return await this.open().list(query);
  }

  async dispatchTargets<T extends { readonly id: string } = DispatchView>(
    eventType: string,
    partnerId: string,
    slices?: DispatchSlices<T>,
  ): Promise<T[]> {
    return await this.open().dispatchTargets(eventType, partnerId, slices);
  }

  async explainDispatch(eventType: string, partnerId: string): Promise<string> {
    return await this.open().explainDispatch(eventType, partnerId);
  }

  async findIdempotencyKey(organizationId: string, keyHash: string): Promise<IdempotencyKeyEntry | null> {
    return await this.open().findKey(organizationId, keyHash);
  }

  async *allWebhooks(): AsyncIterable<WebhookView> {
    yield* this.open().all();
  }

  async reset(): Promise<void> {
    return await this.open().reset();
  }

  async beginRebuild(): Promise<RebuildTarget> {
    this.open();
    const generation = randomBytes(6).toString('hex');
    const schema = `${REBUILD_PREFIX}${generation}`;
    await runTransaction(this.pool, 'beginRebuild', async (client) => {
      for (const v of SCHEMA_VERSIONS) await client.query(v.sql(schema));
    });
    const copy = new ViewTables(this.pool, schema);
    let finished = false;
    const unfinished = (): ViewTables => {
      if (finished) throw new Error('rebuild already finished');
      return copy;
    };
    return {
      applyBatch: (events, expected) => unfinished().applyBatch(events, expected),
      checkpoint: () => (finished ? Promise.resolve(null) : copy.checkpoint()),
      commit: async () => {
        unfinished();
        finished = true;
        const retired = `${RETIRED_PREFIX}${generation}`;
        // One transaction: every reader sees the old schema or the new one.
        await runTransaction(this.pool, 'rebuild commit', async (client) => {
          await client.query(`ALTER SCHEMA ${LIVE_SCHEMA} RENAME TO ${retired}`);
          await client.query(`ALTER SCHEMA ${schema} RENAME TO ${LIVE_SCHEMA}`);
        });
        // Waits for transactions still using the old tables, then frees them.
        await this.pool.query(`DROP SCHEMA IF EXISTS ${retired} CASCADE`).catch(() => undefined);
      },
      abort: async () => {
        if (finished) return;
        finished = true;
        await this.pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      },
    };
  }

  async ping(): Promise<void> {
    this.open();
    await pingPool(this.pool);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }

  private open(): ViewTables {
    if (this.closed) throw new StoreUnavailableError('the PostgreSQL read model is closed');
    return this.live;
  }
}

/** Connects (a clear StoreUnavailableError naming POSTGRES_URL when unreachable) and migrates the schema. */
export async function openPostgresReadModel(options: PgConnectionOptions): Promise<PostgresReadModel> {
  const pool = await openPool(options);
  try {
    await migrate(pool, 'read_model', READ_MODEL_MIGRATIONS);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  return new PostgresReadModel(pool);
}
