// The contract suites against the PostgreSQL engines, on the run's real
// PostgreSQL server (test/setup/postgres.globalSetup.ts), each test in a
// database of its own.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { StoreUnavailableError, StreamConflictError, comparePositions, type RecordedEvent } from '../../src/stores/eventStore.ts';
import { openPostgresEventStore } from '../../src/stores/postgres/postgresEventStore.ts';
import { openPostgresReadModel } from '../../src/stores/postgres/postgresReadModel.ts';
import { createTestDatabase } from '../support/postgres.ts';
import { eventStoreContract, makeEvent } from './eventStore.contract.ts';
import { readModelContract } from './readModel.contract.ts';

eventStoreContract('PostgreSQL', async () => {
  const database = await createTestDatabase();
  const store = await openPostgresEventStore({ url: database.url });
  return {
    store,
    async cleanup() {
      await store.close();
      await database.drop();
    },
  };
});

readModelContract('PostgreSQL', async () => {
  const database = await createTestDatabase();
  const readModel = await openPostgresReadModel({ url: database.url });
  return {
    readModel,
    async cleanup() {
      await readModel.close();
      await database.drop();
    },
  };
});

// ---- what only the PostgreSQL engine has to prove --------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const newStream = () => `webhook-${randomUUID()}`;

async function waitUntil(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Appends in a transaction of its own that stays open until `commit()`, through the engine's own append function. */
async function openTransactionAppending(url: string, streamId: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('BEGIN');
  const event = makeEvent(streamId);
  await client.query('SELECT * FROM append_events($1, $2, $3, $4, $5, $6)', [
    [streamId],
    [-1],
    [1],
    [event.type],
    [JSON.stringify(event.data)],
    [JSON.stringify(event.metadata)],
  ]);
  return {
    async commit() {
      await client.query('COMMIT');
      await client.end();
    },
    async rollback() {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end();
    },
  };
}

describe('PostgreSQL event store: positions under transactions that commit out of order', () => {
  it('a subscriber does not skip an event whose transaction committed after a later one became visible', async () => {
    const database = await createTestDatabase();
    const store = await openPostgresEventStore({ url: database.url, settleTimeoutMs: 200 });
    const controller = new AbortController();
    try {
      const warmup = newStream();
      await store.append(warmup, [makeEvent(warmup)], 'no_stream');
      const head = await store.headPosition();
      const received: RecordedEvent[] = [];
      const loop = (async () => {
        for await (const batch of store.subscribe({ after: head, signal: controller.signal })) received.push(...batch);
      })();

      // T1 begins and writes (it takes the lower transaction id and sequence value)...
      const early = newStream();
      const t1 = await openTransactionAppending(database.url, early);
      // ...T2 writes and commits while T1 is still open.
      const late = newStream();
      const t2 = await store.append(late, [makeEvent(late)], 'no_stream');
      // The subscriber reads (it is woken by T2's commit and polls): T2's event
      // is committed, but must be held back while T1 could still commit below it.
      expect(await store.readAll({ after: head, limit: 10 })).toEqual([]);
      await sleep(300);
      expect(received).toEqual([]);

      await t1.commit();
      await waitUntil('both events', () => received.length >= 2);
      expect(received.map((e) => e.streamId)).toEqual([early, late]);
      expect(comparePositions(received[0]!.position, received[1]!.position)).toBe(-1);
      expect(comparePositions(received[1]!.position, t2.position)).toBe(0);
      // Reading the log again gives the same order: what subscribers saw is the order of the log.
      expect((await store.readAll({ after: head, limit: 10 })).map((e) => e.streamId)).toEqual([early, late]);
      controller.abort();
      await loop;
    } finally {
      controller.abort();
      await store.close();
      await database.drop();
    }
  });

  it('an event of a transaction that started first but wrote last is still delivered first', async () => {
    const database = await createTestDatabase();
    const store = await openPostgresEventStore({ url: database.url, settleTimeoutMs: 200 });
    const controller = new AbortController();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const head = await store.headPosition();
      const received: RecordedEvent[] = [];
      const loop = (async () => {
        for await (const batch of store.subscribe({ after: head, signal: controller.signal })) received.push(...batch);
      })();
      // T1 takes its transaction id first, but its sequence value only after T2 committed.
      await client.query('BEGIN');
      await client.query('SELECT pg_current_xact_id()');
      const second = newStream();
      await store.append(second, [makeEvent(second)], 'no_stream');
      const first = newStream();
      const event = makeEvent(first);
      await client.query('SELECT * FROM append_events($1, $2, $3, $4, $5, $6)', [
        [first], [-1], [1], [event.type], [JSON.stringify(event.data)], [JSON.stringify(event.metadata)],
      ]);
      await sleep(200);
      expect(received).toEqual([]);
      await client.query('COMMIT');
      await waitUntil('both events', () => received.length >= 2);
      expect(received.map((e) => e.streamId)).toEqual([first, second]);
      expect(received[0]!.position.prepare > received[1]!.position.prepare).toBe(true); // sequence order differs
      controller.abort();
      await loop;
    } finally {
      controller.abort();
      await client.end().catch(() => undefined);
      await store.close();
      await database.drop();
    }
  });
});

describe('PostgreSQL event store: group commit, several processes, schema', () => {
  it('appends queued in one turn share a commit, and a conflict fails only its own append', async () => {
    const database = await createTestDatabase();
    const commits: number[] = [];
    const store = await openPostgresEventStore({ url: database.url, onCommit: (size) => commits.push(size) });
    try {
      const existing = newStream();
      await store.append(existing, [makeEvent(existing)], 'no_stream');
      commits.length = 0;
      const fresh = Array.from({ length: 5 }, newStream);
      const results = await Promise.allSettled([
        ...fresh.map((s) => store.append(s, [makeEvent(s), makeEvent(s)], 'no_stream')),
        store.append(existing, [makeEvent(existing)], 'no_stream'), // conflicts
        store.append(existing, [makeEvent(existing)], 0), // succeeds
      ]);
      expect(commits).toEqual([7]);
      expect(results.map((r) => r.status)).toEqual([...fresh.map(() => 'fulfilled'), 'rejected', 'fulfilled']);
      const conflict = (results[5] as PromiseRejectedResult).reason as StreamConflictError;
      expect(conflict).toBeInstanceOf(StreamConflictError);
      expect(conflict.actual).toBe(0);
      for (const s of fresh) expect((await store.readStream(s)).map((e) => e.revision)).toEqual([0, 1]);
      expect((await store.readStream(existing)).map((e) => e.revision)).toEqual([0, 1]);
    } finally {
      await store.close();
      await database.drop();
    }
  });

  it('another process writing the same new stream: that append conflicts, the rest of the batch commits', async () => {
    const database = await createTestDatabase();
    const store = await openPostgresEventStore({ url: database.url });
    try {
      // The other process has written `contested` and not committed yet.
      const contested = newStream();
      const other = await openTransactionAppending(database.url, contested);
      const own = newStream();
      const batch = Promise.allSettled([
        store.append(contested, [makeEvent(contested)], 'no_stream'),
        store.append(own, [makeEvent(own)], 'no_stream'),
      ]);
      await sleep(200); // our batch now waits for the other transaction
      await other.commit();
      const [lost, won] = await batch;
      expect(lost.status).toBe('rejected');
      expect((lost as PromiseRejectedResult).reason).toBeInstanceOf(StreamConflictError);
      expect(((lost as PromiseRejectedResult).reason as StreamConflictError).actual).toBe(0);
      expect(won.status).toBe('fulfilled');
      expect(await store.readStream(contested)).toHaveLength(1);
      expect(await store.readStream(own)).toHaveLength(1);
    } finally {
      await store.close();
      await database.drop();
    }
  });

  it('two processes racing for the same new streams: one winner each', async () => {
    const database = await createTestDatabase();
    const [a, b] = await Promise.all([
      openPostgresEventStore({ url: database.url }),
      openPostgresEventStore({ url: database.url }),
    ]);
    try {
      for (let round = 0; round < 5; round++) {
        const shared = Array.from({ length: 20 }, newStream);
        const attempts = await Promise.allSettled(
          shared.flatMap((s) => [a.append(s, [makeEvent(s)], 'no_stream'), b.append(s, [makeEvent(s)], 'no_stream')]),
        );
        for (let i = 0; i < shared.length; i++) {
          const pair = attempts.slice(i * 2, i * 2 + 2);
          expect(pair.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
          expect((pair.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(StreamConflictError);
          expect(await a.readStream(shared[i]!)).toHaveLength(1);
        }
      }
    } finally {
      await a.close();
      await b.close();
      await database.drop();
    }
  });

  it('processes starting at once on an empty database migrate it exactly once', async () => {
    const database = await createTestDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => openPostgresEventStore({ url: database.url })));
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ component: string; version: number }>(
        'SELECT component, version FROM schema_migrations ORDER BY component, version',
      );
      expect(rows).toEqual([{ component: 'event_store', version: 1 }]);
      const s = newStream();
      await stores[3]!.append(s, [makeEvent(s)], 'no_stream');
      expect(await stores[0]!.readStream(s)).toHaveLength(1);
      // Opening again changes nothing.
      const again = await openPostgresEventStore({ url: database.url });
      await again.close();
      expect((await client.query('SELECT count(*)::int AS n FROM schema_migrations')).rows[0]).toEqual({ n: 1 });
    } finally {
      await client.end();
      for (const store of stores) await store.close();
      await database.drop();
    }
  });

  it('refuses a database whose schema is newer than this program', async () => {
    const database = await createTestDatabase();
    const store = await openPostgresEventStore({ url: database.url });
    await store.close();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query(`INSERT INTO schema_migrations (component, version, description) VALUES ('event_store', 99, 'future')`);
      await expect(openPostgresEventStore({ url: database.url })).rejects.toThrow(/version 99, newer than this program/);
    } finally {
      await client.end();
      await database.drop();
    }
  });

  it('close() ends running subscriptions, and later calls fail as unavailable', async () => {
    const database = await createTestDatabase();
    const store = await openPostgresEventStore({ url: database.url });
    try {
      const loop = (async () => {
        for await (const _ of store.subscribe({ signal: new AbortController().signal })) {
          // nothing is appended
        }
      })();
      await sleep(50);
      await store.close();
      await loop;
      await expect(store.readStream(newStream())).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    } finally {
      await store.close();
      await database.drop();
    }
  });
});

describe('PostgreSQL read model: the indexes behind the queries', () => {
  /** A registration at position n: organization n % 50, partner n % 200, one exact pattern of 40 and kyc.* for a tenth. */
  function registration(n: number): RecordedEvent {
    const id = `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
    const at = new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString();
    const partner = `a0000000-0000-4000-8000-${(n % 200).toString(16).padStart(12, '0')}`;
    return {
      streamId: `webhook-${id}`,
      revision: 0,
      position: { commit: BigInt(n + 1), prepare: BigInt(n + 1) },
      type: 'WebhookRegistered',
      data: {
        webhookId: id,
        organizationId: `org-${n % 50}`,
        url: `https://hooks.example.com/${n}`,
        events: n % 10 === 0 ? ['kyc.*'] : [`kyc.check${n % 40}.completed`],
        partnerIds: [partner],
        authorizedPartnerIds: [partner],
        secret: { keyId: 'k1', iv: `iv-${n}`, ciphertext: `ct-${n}` },
        at,
      },
      metadata: {
        actor: { clientId: 'c', subject: 's' },
        organizationId: `org-${n % 50}`,
        requestId: `r-${n}`,
        idempotencyKeyHash: `key-${n}`,
        requestFingerprint: `fp-${n}`,
        occurredAt: at,
        previousHash: null,
        hash: `h-${n}`,
      },
    };
  }

  it('a dispatch lookup is a range of the dispatch index and primary-key lookups, never a scan (EXPLAIN)', async () => {
    const database = await createTestDatabase();
    const readModel = await openPostgresReadModel({ url: database.url });
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      let checkpoint: string | null = null;
      for (let page = 0; page < 10; page++) {
        const batch = Array.from({ length: 1000 }, (_, i) => registration(page * 1000 + i));
        await readModel.applyBatch(batch, checkpoint);
        checkpoint = await readModel.checkpoint();
      }
      await client.query('ANALYZE');
      const partner = `a0000000-0000-4000-8000-${(7).toString(16).padStart(12, '0')}`;
      const targets = await readModel.dispatchTargets('kyc.check7.completed', partner);
      expect(targets.length).toBeGreaterThan(0);
      const plan = await readModel.explainDispatch('kyc.check7.completed', partner);
      console.log(`dispatch query plan at 10 000 webhooks:\n${plan}`);
      expect(plan).toMatch(/(Index (Only )?Scan using|Bitmap Index Scan on) webhook_dispatch_pkey/);
      expect(plan).toMatch(/Index Scan using webhooks_pkey on webhooks/);
      expect(plan).not.toMatch(/Seq Scan/);

      const explain = async (sql: string, params: unknown[]) =>
        (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
      // The idempotency-key lookup and the first page of a list use their indexes too.
      expect(
        await explain('SELECT * FROM read_model.idempotency_keys WHERE organization_id = $1 AND key_hash = $2', ['org-7', 'key-7']),
      ).toMatch(/Index Scan using idempotency_keys_pkey/);
      expect(
        await explain(
          'SELECT * FROM read_model.webhooks WHERE organization_id = $1 AND NOT deleted ORDER BY created_at, id LIMIT 20',
          ['org-7'],
        ),
      ).toMatch(/Index Scan using webhooks_by_organization/);
    } finally {
      await client.end();
      await readModel.close();
      await database.drop();
    }
  });
});

/** A TCP proxy in front of the server that can stop forwarding (a server that no longer answers). */
async function blackHoleProxy(target: URL): Promise<{ url: (u: string) => string; freeze(): void; thaw(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => (frozen ? undefined : upstream.write(chunk)));
    upstream.on('data', (chunk) => (frozen ? undefined : client.write(chunk)));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: (u) => {
      const proxied = new URL(u);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(port);
      return proxied.toString();
    },
    freeze: () => (frozen = true),
    thaw: () => (frozen = false),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('PostgreSQL event store when the server cannot be reached', () => {
  it('open fails fast with a StoreUnavailableError naming POSTGRES_URL, without the password', async () => {
    const started = Date.now();
    const error = await rejection(
      openPostgresEventStore({ url: 'postgres://app:sup3r-s3cret@127.0.0.1:1/registry', connectTimeoutMs: 1_000 }),
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain('POSTGRES_URL');
    expect((error as Error).message).toContain('cannot be reached');
    expect((error as Error).message).not.toContain('sup3r-s3cret');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it.each(['http://app:pw-123@example.com/registry', 'postgres://app:pw-123@[not-a-host/registry', 'postgres:///registry'])(
    'rejects %s as POSTGRES_URL without quoting its password',
    async (url) => {
      const error = await rejection(openPostgresEventStore({ url }));
      expect(error).toBeInstanceOf(Error);
      expect(error).not.toBeInstanceOf(StoreUnavailableError);
      expect((error as Error).message).toContain('POSTGRES_URL');
      expect((error as Error).message).not.toContain('pw-123');
    },
  );

  it('a server that stops answering gives StoreUnavailableError on every call, not a hang, and service resumes', async () => {
    const database = await createTestDatabase();
    const proxy = await blackHoleProxy(new URL(database.url));
    const store = await openPostgresEventStore({
      url: proxy.url(database.url),
      statementTimeoutMs: 300,
      connectTimeoutMs: 500,
      settleTimeoutMs: 100,
    });
    try {
      const s = newStream();
      await store.append(s, [makeEvent(s)], 'no_stream');
      proxy.freeze();
      const calls: [string, Promise<unknown>][] = [
        ['append', store.append(s, [makeEvent(s)], 0)],
        ['readStream', store.readStream(s)],
        ['readAll', store.readAll({ limit: 10 })],
        ['headPosition', store.headPosition()],
        ['ping', store.ping()],
      ];
      const outcomes = await Promise.all(calls.map(([, call]) => rejection(call)));
      outcomes.forEach((error, i) => expect(error, calls[i]![0]).toBeInstanceOf(StoreUnavailableError));
      proxy.thaw();
      await store.append(s, [makeEvent(s)], 0);
      expect(await store.readStream(s)).toHaveLength(2);
    } finally {
      await store.close();
      await proxy.close();
      await database.drop();
    }
  });
});
