// The read model is an idempotent function of the log: applying any event a
// second time changes nothing. A scenario is driven over HTTP, its events are
// read back from the SQLite event store, and applied to fresh read models
// once, twice (whole log, batch by batch, event by event, overlapping
// batches, an old batch again) — every read (webhooks, dispatch results,
// idempotency keys, lists, checkpoint) stays the same.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog.ts';
import { EVENTS_FILE, READ_MODEL_FILE } from '../../src/runtime.ts';
import { encodePosition, type RecordedEvent } from '../../src/stores/eventStore.ts';
import { CheckpointConflictError, ProjectionGapError, type WebhookView } from '../../src/stores/readModel.ts';
import { openSqliteEventStore } from '../../src/stores/sqlite/sqliteEventStore.ts';
import { openSqliteReadModel, type SqliteReadModel } from '../../src/stores/sqlite/sqliteReadModel.ts';
import { PARTNER_A, PARTNER_B, PARTNER_C, startRegistry, tempDataDir, type TestRegistry, SQLITE_ENGINES } from '../support/registry.ts';
import { DispatcherApi, settleProjection, TestClock, WebhookApi } from '../support/webhookApi.ts';

const PARTNERS = [PARTNER_A, PARTNER_B, PARTNER_C, 'eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee'];
const EXTRA_TYPES = ['kyc.new_kind', 'compliance.case', 'kyc.verification.approved.detail'];

interface Snapshot {
  readonly webhooks: WebhookView[];
  readonly dispatch: Record<string, string[]>;
  readonly keys: Record<string, unknown>;
  readonly lists: Record<string, string[]>;
  readonly checkpoint: string | null;
}

/** Everything a reader can get out of a read model, for the scenario's organizations and keys. */
async function snapshot(model: SqliteReadModel, log: readonly RecordedEvent[]): Promise<Snapshot> {
  const webhooks: WebhookView[] = [];
  for await (const view of model.allWebhooks()) webhooks.push(view);
  const dispatch: Record<string, string[]> = {};
  const types = [...loadCatalog().types.map((t) => t.name), ...EXTRA_TYPES];
  for (const type of types) {
    for (const partner of PARTNERS) {
      dispatch[`${type} ${partner}`] = (await model.dispatchTargets(type, partner)).map((v) => JSON.stringify(v));
    }
  }
  const keys: Record<string, unknown> = {};
  const orgs = new Set<string>();
  for (const e of log) {
    orgs.add(e.metadata.organizationId);
    const hash = e.metadata.idempotencyKeyHash;
    if (hash !== null) keys[`${e.metadata.organizationId} ${hash}`] = await model.findIdempotencyKey(e.metadata.organizationId, hash);
  }
  const lists: Record<string, string[]> = {};
  for (const organizationId of orgs) {
    for (const status of [undefined, 'ACTIVE', 'PAUSED', 'DISABLED'] as const) {
      lists[`${organizationId} ${status ?? '*'}`] = (await model.listWebhooks({ organizationId, limit: 1000, status })).map(
        (v) => v.id,
      );
    }
  }
  return { webhooks, dispatch, keys, lists, checkpoint: await model.checkpoint() };
}

describe('applying events twice changes nothing', () => {
  let registry: TestRegistry;
  let log: RecordedEvent[] = [];
  let scratch: string;
  let models: SqliteReadModel[] = [];
  let reference: Snapshot;
  const clock = new TestClock('2033-07-01T00:00:00.000Z');

  const freshModel = (): SqliteReadModel => {
    const model = openSqliteReadModel({ path: path.join(scratch, `rm-${randomUUID()}.sqlite`) });
    models.push(model);
    return model;
  };

  beforeAll(async () => {
    scratch = tempDataDir();
    registry = await startRegistry({ now: clock.now, env: SQLITE_ENGINES });
    const acme = await WebhookApi.as(registry, 'acme-integration');
    const globex = await WebhookApi.as(registry, 'globex-integration');
    const dispatcher = await DispatcherApi.as(registry);

    // A scenario touching every event type, several streams interleaved, replays and concurrency.
    const hooks = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        acme.registered(
          {
            url: `https://hooks.example.com/p/${i}`,
            events: [['kyc.*'], ['compliance.case.opened', 'kyc.document.*'], ['self_service_invitation.*']][i % 3],
            ...(i % 2 === 0 ? { partnerIds: [PARTNER_A] } : {}),
          },
          `projection-${i}`,
        ),
      ),
    );
    const g = await globex.registered({ url: 'https://hooks.example.com/p/g', events: ['compliance.*'] });
    clock.advance(1000);
    const [h0, h1, h2, h3, h4, h5, h6, h7] = hooks.map((h) => h.id) as [string, string, string, string, string, string, string, string];
    expect((await acme.patch(h0, { url: 'https://hooks.example.com/p/0b', events: ['kyc.verification.*'] }, { key: 'p-patch' })).status).toBe(200);
    expect((await acme.patch(h0, { url: 'https://hooks.example.com/p/0b', events: ['kyc.verification.*'] }, { key: 'p-patch' })).status).toBe(200);
    expect((await acme.patch(h1, { partnerIds: [PARTNER_B], status: 'PAUSED' })).status).toBe(200);
    expect((await acme.patch(h2, { partnerIds: null })).status).toBe(200);
    clock.advance(1000);
    expect((await acme.patch(h1, { status: 'ACTIVE' })).status).toBe(200);
    expect((await dispatcher.disable(h3, 'gone')).status).toBe(200);
    expect((await acme.patch(h3, { status: 'ACTIVE' })).status).toBe(200);
    expect((await dispatcher.disable(h4, 'gone for good')).status).toBe(200);
    expect((await acme.rotate(h5, { gracePeriodSeconds: 3600 }, 'p-rotate')).status).toBe(200);
    expect((await acme.rotate(h5, { gracePeriodSeconds: 3600 }, 'p-rotate')).status).toBe(200);
    expect((await acme.rotate(h6, { gracePeriodSeconds: 0 })).status).toBe(200);
    expect((await acme.delete(h7, { key: 'p-delete' })).status).toBe(204);
    expect((await acme.patch(h6, { status: 'PAUSED' })).status).toBe(200);
    expect((await globex.patch(g.id, { events: ['compliance.screening.*'] })).status).toBe(200);
    expect((await acme.delete(h6)).status).toBe(204);
    // Concurrent writes to several streams land in one group commit.
    await Promise.all([
      acme.patch(h0, { status: 'PAUSED' }),
      acme.patch(h1, { url: 'https://hooks.example.com/p/1c' }),
      acme.rotate(h2, {}),
      globex.patch(g.id, { status: 'PAUSED' }),
    ]);
    // Wait for the projector so the server's own read model is complete, then stop writing.
    expect((await acme.list()).status).toBe(200);
    expect((await globex.list()).status).toBe(200);
    await settleProjection(registry);
    await registry.stop();

    const store = openSqliteEventStore({ path: path.join(registry.dataDir, EVENTS_FILE) });
    try {
      for (;;) {
        const page = await store.readAll({ after: log[log.length - 1]?.position, limit: 7 });
        if (page.length === 0) break;
        log = [...log, ...page];
      }
    } finally {
      await store.close();
    }

    const once = freshModel();
    await once.applyBatch(log, null);
    reference = await snapshot(once, log);
  });

  afterAll(async () => {
    for (const m of models) await m.close();
    models = [];
    await registry.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('the scenario covers every event type and leaves a non-trivial read model', () => {
    expect(new Set(log.map((e) => e.type))).toEqual(
      new Set([
        'WebhookRegistered',
        'WebhookUpdated',
        'WebhookPaused',
        'WebhookResumed',
        'WebhookDisabled',
        'WebhookSecretRotated',
        'WebhookDeleted',
      ]),
    );
    expect(log.length).toBeGreaterThan(25);
    expect(reference.webhooks).toHaveLength(9);
    expect(reference.webhooks.filter((w) => w.deleted)).toHaveLength(2);
    expect(Object.values(reference.dispatch).some((ids) => ids.length > 0)).toBe(true);
    expect(Object.values(reference.keys).every((k) => k !== null)).toBe(true);
    expect(reference.checkpoint).not.toBeNull();
  });

  it('matches the read model the server built live', async () => {
    const live = openSqliteReadModel({ path: path.join(registry.dataDir, READ_MODEL_FILE) });
    models.push(live);
    expect(await snapshot(live, log)).toEqual(reference);
  });

  it('the whole log applied a second time (with the right expected checkpoint) changes nothing', async () => {
    const model = freshModel();
    await model.applyBatch(log, null);
    await model.applyBatch(log, reference.checkpoint);
    expect(await snapshot(model, log)).toEqual(reference);
  });

  it('re-applying an old batch whose events are already applied changes nothing, the checkpoint included', async () => {
    const model = freshModel();
    await model.applyBatch(log, null);
    await model.applyBatch(log.slice(0, 10), reference.checkpoint);
    expect(await snapshot(model, log)).toEqual(reference);
    await model.applyBatch(log.slice(5, 6), reference.checkpoint);
    expect(await snapshot(model, log)).toEqual(reference);
  });

  it('every batch applied twice in a row gives the same read model, for several batch sizes', async () => {
    for (const size of [1, 2, 3, 7, 50]) {
      const model = freshModel();
      let checkpoint: string | null = null;
      for (let i = 0; i < log.length; i += size) {
        const batch = log.slice(i, i + size);
        await model.applyBatch(batch, checkpoint);
        checkpoint = await model.checkpoint();
        const between = await snapshot(model, log);
        await model.applyBatch(batch, checkpoint);
        expect(await snapshot(model, log)).toEqual(between);
      }
      expect(await snapshot(model, log), `batch size ${size}`).toEqual(reference);
    }
  });

  it('overlapping batches (each repeating the tail of the previous one) give the same read model', async () => {
    const model = freshModel();
    let checkpoint: string | null = null;
    for (let end = 4; end < log.length + 4; end += 4) {
      await model.applyBatch(log.slice(Math.max(0, end - 10), end), checkpoint);
      checkpoint = await model.checkpoint();
    }
    expect(await snapshot(model, log)).toEqual(reference);
  });

  it.each([1, 4, 1000])(
    'a rebuild (index rows derived from the final views) equals the model projected event by event, pages of %i',
    async (page) => {
      const model = freshModel();
      // Something stale in the live model, which the rebuild must replace entirely.
      await model.applyBatch(log.slice(0, 5), null);
      const target = await model.beginRebuild();
      let checkpoint: string | null = null;
      for (let i = 0; i < log.length; i += page) {
        const batch = log.slice(i, i + page);
        await target.applyBatch(batch, checkpoint);
        checkpoint = encodePosition(batch[batch.length - 1]!.position);
      }
      await target.commit();
      expect(await snapshot(model, log)).toEqual(reference);
    },
  );

  it('a second connection to the file answers dispatch lookups with what the first one writes, a rebuild included', async () => {
    const file = path.join(scratch, `rm-${randomUUID()}.sqlite`);
    const writer = openSqliteReadModel({ path: file });
    const reader = openSqliteReadModel({ path: file });
    models.push(writer, reader);
    const lookups = async (model: SqliteReadModel): Promise<Snapshot['dispatch']> => (await snapshot(model, log)).dispatch;
    // Both build their routing index on the empty file; then the writer's index follows its own batches
    // and the reader's follows the file (rows changed since the checkpoint it reflects).
    expect(Object.values(await lookups(reader)).flat()).toEqual([]);
    expect(Object.values(await lookups(writer)).flat()).toEqual([]);
    let checkpoint: string | null = null;
    for (let i = 0; i < log.length; i += 7) {
      const batch = log.slice(i, i + 7);
      await writer.applyBatch(batch, checkpoint);
      checkpoint = encodePosition(batch[batch.length - 1]!.position);
      const fresh = openSqliteReadModel({ path: file });
      models.push(fresh);
      const expected = await lookups(fresh);
      expect(await lookups(reader)).toEqual(expected);
      expect(await lookups(writer)).toEqual(expected);
    }
    expect(await lookups(reader)).toEqual(reference.dispatch);
    // A rebuild by the writer (from a shorter log) switches the tables under the reader.
    const target = await writer.beginRebuild();
    const half = log.slice(0, Math.floor(log.length / 2));
    await target.applyBatch(half, null);
    await target.commit();
    const fresh = openSqliteReadModel({ path: file });
    models.push(fresh);
    const expected = await lookups(fresh);
    expect(expected).not.toEqual(reference.dispatch);
    expect(await lookups(reader)).toEqual(expected);
    expect(await lookups(writer)).toEqual(expected);
  });

  it('each event duplicated inside one batch changes nothing', async () => {
    const model = freshModel();
    await model.applyBatch(
      log.flatMap((e) => [e, e]),
      null,
    );
    expect(await snapshot(model, log)).toEqual(reference);
  });

  /**
   * Turns today's layout into the one before it: each view a JSON document
   * beside the listing columns (a rowid table), pattern rows keyed by webhook
   * id, and dispatch rows keyed by webhook id carrying url, events and secrets.
   */
  const DOCUMENT_LAYOUT = `
    CREATE TABLE webhooks_doc (id TEXT NOT NULL UNIQUE, organization_id TEXT NOT NULL, created_at TEXT NOT NULL,
      status TEXT NOT NULL, deleted INTEGER NOT NULL, revision INTEGER NOT NULL, doc TEXT NOT NULL);
    INSERT INTO webhooks_doc
      SELECT id, organization_id, created_at, status, deleted, revision, json_object(
        'id', id, 'organizationId', organization_id, 'url', url, 'events', json(events),
        'partnerIds', json(coalesce(partner_ids, 'null')), 'authorizedPartnerIds', json(authorized_partner_ids),
        'status', status, 'disabledReason', disabled_reason,
        'secret', json_object('keyId', secret_key_id, 'iv', secret_iv, 'ciphertext', secret_ciphertext),
        'previousSecrets', (SELECT json_group_array(json_object(
            'secret', json_object('keyId', p.value ->> 0, 'iv', p.value ->> 1, 'ciphertext', p.value ->> 2),
            'expiresAt', p.value ->> 3)) FROM json_each(coalesce(previous_secrets, '[]')) p),
        'createdAt', created_at, 'updatedAt', updated_at, 'revision', revision, 'position', position,
        'deleted', json(CASE deleted WHEN 1 THEN 'true' ELSE 'false' END),
        'effectivePartnerIds', json(coalesce(partner_ids, authorized_partner_ids)))
      FROM webhooks ORDER BY seq;
    DROP TABLE webhooks;
    ALTER TABLE webhooks_doc RENAME TO webhooks;
    CREATE INDEX webhooks_by_org_0 ON webhooks (organization_id, created_at, id) WHERE deleted = 0;
    DROP TABLE webhook_patterns;
    CREATE TABLE webhook_patterns (pattern TEXT NOT NULL, webhook_id TEXT NOT NULL, PRIMARY KEY (pattern, webhook_id)) WITHOUT ROWID;
    INSERT INTO webhook_patterns SELECT e.value, w.id FROM webhooks w, json_each(w.doc, '$.events') e WHERE w.deleted = 0;
    DROP TABLE IF EXISTS webhook_dispatch;
    CREATE TABLE webhook_dispatch (partner_id TEXT NOT NULL, pattern TEXT NOT NULL, webhook_id TEXT NOT NULL,
      organization_id TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL, previous_secrets TEXT,
      PRIMARY KEY (partner_id, pattern, webhook_id)) WITHOUT ROWID;
    INSERT INTO webhook_dispatch
      SELECT p.value, e.value, w.id, w.organization_id, w.doc ->> '$.url', json(w.doc -> '$.events'), json(w.doc -> '$.secret'),
        CASE WHEN json_array_length(w.doc, '$.previousSecrets') > 0 THEN json(w.doc -> '$.previousSecrets') END
      FROM webhooks w, json_each(w.doc, '$.effectivePartnerIds') p, json_each(w.doc, '$.events') e
      WHERE w.deleted = 0 AND w.status = 'ACTIVE';`;

  it.each([
    [
      'without the position index',
      (db: Database.Database) => {
        const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'webhooks_by_position_%'").pluck().all();
        expect(names).toHaveLength(1);
        db.exec(`DROP INDEX "${String(names[0])}"`);
      },
    ],
    [
      'with a dispatch table of seqs',
      `CREATE TABLE webhook_dispatch (partner_id TEXT NOT NULL, pattern TEXT NOT NULL, seq INTEGER NOT NULL,
         PRIMARY KEY (partner_id, pattern, seq)) WITHOUT ROWID;`,
    ],
    ['with views as JSON documents and index rows carrying their targets', DOCUMENT_LAYOUT],
    [
      'with one previous secret per webhook, before the list of previous secrets',
      `${DOCUMENT_LAYOUT}
       UPDATE webhooks SET doc = json_remove(json_set(doc,
           '$.previousSecret', json(json_extract(doc, '$.previousSecrets[0].secret')),
           '$.previousSecretExpiresAt', json_extract(doc, '$.previousSecrets[0].expiresAt')), '$.previousSecrets');
       DROP TABLE webhook_dispatch;
       CREATE TABLE webhook_dispatch (partner_id TEXT NOT NULL, pattern TEXT NOT NULL, webhook_id TEXT NOT NULL,
         organization_id TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL,
         previous_secret TEXT, previous_secret_expires_at TEXT,
         PRIMARY KEY (partner_id, pattern, webhook_id)) WITHOUT ROWID;
       INSERT INTO webhook_dispatch
         SELECT p.value, e.value, w.id, w.organization_id, json_extract(w.doc, '$.url'), json(json_extract(w.doc, '$.events')),
           json(json_extract(w.doc, '$.secret')), json(json_extract(w.doc, '$.previousSecret')),
           json_extract(w.doc, '$.previousSecretExpiresAt')
         FROM webhooks w, json_each(w.doc, '$.effectivePartnerIds') p, json_each(w.doc, '$.events') e
         WHERE w.deleted = 0 AND w.status = 'ACTIVE';`,
    ],
  ])('a read model file written by an earlier version (%s) is migrated on open and answers the same', async (_, downgrade) => {
    const file = path.join(scratch, `rm-${randomUUID()}.sqlite`);
    const model = openSqliteReadModel({ path: file });
    await model.applyBatch(log, null);
    await model.close();
    const raw = new Database(file);
    if (typeof downgrade === 'function') downgrade(raw);
    else raw.exec(downgrade);
    if (typeof downgrade === 'string' && downgrade.includes('$.previousSecretExpiresAt')) {
      // The scenario's rotations leave previous secrets in the old shape for the migration to carry over.
      const legacy = raw.prepare("SELECT count(*) AS n FROM webhooks WHERE json_type(doc, '$.previousSecret') = 'object'").get();
      expect(legacy).not.toEqual({ n: 0 });
    }
    raw.close();
    const reopened = openSqliteReadModel({ path: file });
    models.push(reopened);
    expect(await snapshot(reopened, log)).toEqual(reference);
    const schema = reopened.database.prepare("SELECT type, name FROM sqlite_master WHERE name LIKE 'webhook%'").all();
    expect(schema).toContainEqual({ type: 'index', name: expect.stringMatching(/^webhooks_by_position_/) as string });
    expect(schema).not.toContainEqual(expect.objectContaining({ name: 'webhook_dispatch' }));
  });

  it('a stale expected checkpoint is refused and leaves everything as it was', async () => {
    const model = freshModel();
    await model.applyBatch(log, null);
    await expect(model.applyBatch(log, null)).rejects.toBeInstanceOf(CheckpointConflictError);
    await expect(model.applyBatch(log.slice(0, 3), log[2]!.position.commit.toString())).rejects.toBeInstanceOf(
      CheckpointConflictError,
    );
    expect(await snapshot(model, log)).toEqual(reference);
  });

  it('a batch with a gap in a stream is refused atomically', async () => {
    const model = freshModel();
    const registeredAt = log.findIndex((e) => e.type === 'WebhookRegistered');
    const stream = log[registeredAt]!.streamId;
    const later = log.filter((e) => e.streamId === stream && e.revision >= 2);
    expect(later.length).toBeGreaterThan(0);
    // Event 0 of the stream, then skipping to revision 2.
    await expect(model.applyBatch([log[registeredAt]!, later[0]!], null)).rejects.toBeInstanceOf(ProjectionGapError);
    expect(await model.checkpoint()).toBeNull();
    const empty: WebhookView[] = [];
    for await (const v of model.allWebhooks()) empty.push(v);
    expect(empty).toEqual([]);
    // The same model then takes the log normally.
    await model.applyBatch(log, null);
    expect(await snapshot(model, log)).toEqual(reference);
  });
});
