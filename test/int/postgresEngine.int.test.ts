// The registry configured with POSTGRES_URL, on the run's real PostgreSQL
// server: start-up errors that name the variable, readiness that follows the
// connection, and two registries on one database serving the same webhooks.
// (The whole HTTP suite also runs on PostgreSQL, in the `postgres` test
// project; this file runs once, in the default project.)
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { StoreUnavailableError } from '../../src/stores/eventStore.ts';
import { postgresServerUrl, createTestDatabase, type TestDatabase } from '../support/postgres.ts';
import { startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import type { ListBody } from '../support/webhookApi.ts';

describe('POSTGRES_URL', () => {
  const open: TestRegistry[] = [];
  let database: TestDatabase | undefined;
  afterEach(async () => {
    for (const r of open.splice(0)) await r.close();
    await database?.drop();
    database = undefined;
  });

  it('selects PostgreSQL for the log and the read model', async () => {
    database = await createTestDatabase();
    const registry = await startRegistry({ env: { POSTGRES_URL: database.url } });
    open.push(registry);
    expect(registry.server.core.engines.log).toMatch(/^PostgreSQL \(127\.0\.0\.1:\d+\/test_/);
    expect(registry.server.core.engines.readModel).toMatch(/^PostgreSQL \(127\.0\.0\.1:\d+\/test_[0-9a-f]+, schema read_model\)$/);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const created = await registry.request('POST', '/v1/webhooks', {
        token: await registry.token(),
        body: VALID_REGISTRATION,
        headers: { 'idempotency-key': randomUUID() },
      });
      expect(created.status).toBe(201);
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
      expect(rows[0]!.n).toBe(1);
    } finally {
      await client.end();
    }
  });

  it('a malformed URL stops start-up with a message naming the variable, not its password', () => {
    let error: unknown;
    try {
      loadConfig({ POSTGRES_URL: 'mysql://app:pw-123@db/registry' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('POSTGRES_URL');
    expect((error as Error).message).not.toContain('pw-123');
  });

  it('an unreachable server stops start-up with a StoreUnavailableError naming the variable, not its password', async () => {
    const error = await startRegistry({ env: { POSTGRES_URL: 'postgres://app:sup3r-s3cret@127.0.0.1:1/registry' } }).then(
      (r) => {
        open.push(r);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/PostgreSQL at .*127\.0\.0\.1:1.*\(POSTGRES_URL\) cannot be reached/);
    expect((error as Error).message).not.toContain('sup3r-s3cret');
  });

  it('/health/ready follows the connection: 503 while the database refuses connections, ready again after', async () => {
    database = await createTestDatabase();
    const registry = await startRegistry({ env: { POSTGRES_URL: database.url } });
    open.push(registry);
    const ready = async () => (await registry.request('GET', '/health/ready')) as { status: number; body: { checks: Record<string, { status: string }> } };
    await expect.poll(async () => (await ready()).status).toBe(200);

    const admin = new pg.Client({ connectionString: postgresServerUrl() });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE "${database.name}" ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [database.name]);
      const down = await ready();
      expect(down.status).toBe(503);
      expect(down.body.checks.eventStore?.status).toBe('down');
      expect(down.body.checks.readModel?.status).toBe('down');

      await admin.query(`ALTER DATABASE "${database.name}" ALLOW_CONNECTIONS true`);
      await expect.poll(async () => (await ready()).status, { timeout: 10_000 }).toBe(200);
    } finally {
      await admin.query(`ALTER DATABASE "${database.name}" ALLOW_CONNECTIONS true`).catch(() => undefined);
      await admin.end();
    }
  });

  it('two registries on one database serve the same webhooks', async () => {
    database = await createTestDatabase();
    // Replicas share the encryption keys (each test registry would otherwise generate its own).
    const keys = `k1:${randomBytes(32).toString('base64')}`;
    const a = await startRegistry({ env: { POSTGRES_URL: database.url, SECRET_ENCRYPTION_KEYS: keys } });
    open.push(a);
    const b = await startRegistry({
      env: { POSTGRES_URL: database.url, SECRET_ENCRYPTION_KEYS: keys, PROJECTOR: 'off' },
      oauth: a.oauth,
    });
    open.push(b);
    const token = await a.token();
    const key = randomUUID();
    const created = await a.request('POST', '/v1/webhooks', {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': key },
    });
    expect(created.status).toBe(201);
    const id = (created.body as { id: string }).id;

    // A single read comes from the log; the replay of the same key on the other registry too.
    expect((await b.request('GET', `/v1/webhooks/${id}`, { token })).status).toBe(200);
    const replay = await b.request('POST', '/v1/webhooks', { token, body: VALID_REGISTRATION, headers: { 'idempotency-key': key } });
    expect(replay.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(created.body);
    // The list comes from the read model a's projector keeps.
    await expect
      .poll(async () => ((await b.request('GET', '/v1/webhooks', { token })).body as ListBody).data.map((w) => w.id))
      .toEqual([id]);
  });
});
