// Regressions for defects a code review found: each test failed before its fix.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Projector } from '../../src/projections/projector.ts';
import { rebuildReadModel } from '../../src/projections/rebuild.ts';
import { EVENTS_FILE, READ_MODEL_FILE } from '../../src/runtime.ts';
import type { EventStore, RecordedEvent } from '../../src/stores/eventStore.ts';
import { openSqliteEventStore } from '../../src/stores/sqlite/sqliteEventStore.ts';
import { openSqliteReadModel } from '../../src/stores/sqlite/sqliteReadModel.ts';
import {
  PARTNER_A,
  SQLITE_ENGINES,
  startRegistry,
  tempDataDir,
  VALID_REGISTRATION,
  type TestRegistry,
} from '../support/registry.ts';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function until(condition: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return condition();
}

describe('through the HTTP app', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ env: SQLITE_ENGINES });
  });
  afterAll(async () => {
    await registry.close();
  });

  it('given many concurrent writers on one webhook, when retries run out, then the answer is a retryable 409, never a 500', async () => {
    const token = await registry.token();
    const created = await registry.request<{ id: string }>('POST', '/v1/webhooks', {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(created.status).toBe(201);
    const responses = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        registry.request('PATCH', `/v1/webhooks/${created.body.id}`, {
          token,
          body: { url: `https://hooks.example.com/contended/${i}` },
          headers: { 'idempotency-key': randomUUID() },
        }),
      ),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(10);
    for (const r of responses.filter((x) => x.status === 409)) expect(r.headers.get('retry-after')).toBe('1');
  });

  it('given duplicate partner ids, when one is unauthorized, then the 403 pointer indexes the list as sent', async () => {
    const unknown = 'eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee';
    const response = await registry.request<{ errors: { pointer: string }[] }>('POST', '/v1/webhooks', {
      token: await registry.token(),
      body: { ...VALID_REGISTRATION, partnerIds: [PARTNER_A, PARTNER_A.toUpperCase(), unknown] },
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(response.status).toBe(403);
    expect(response.body.errors.map((e) => e.pointer)).toEqual(['/partnerIds/2']);
  });

  it('given a host name with several trailing dots, then localhost and metadata names are still refused', async () => {
    for (const url of ['https://localhost../x', 'https://foo.localhost../x', 'https://metadata.google.internal../x']) {
      const response = await registry.request('POST', '/v1/webhooks', {
        token: await registry.token(),
        body: { ...VALID_REGISTRATION, url },
        headers: { 'idempotency-key': randomUUID() },
      });
      expect(response.status, url).toBe(400);
    }
  });
});

describe('the embedded engine across processes and rebuilds', () => {
  it('given two handles on one log file, when one appends, then a live subscription on the other sees it', async () => {
    const dir = tempDataDir();
    const writer = openSqliteEventStore({ path: path.join(dir, EVENTS_FILE) });
    const reader = openSqliteEventStore({ path: path.join(dir, EVENTS_FILE) });
    const controller = new AbortController();
    const seen: RecordedEvent[] = [];
    const subscription = (async () => {
      for await (const batch of reader.subscribe({ signal: controller.signal })) seen.push(...batch);
    })();
    await writer.append('webhook-x', [event('x', 0)], 'no_stream');
    expect(await until(() => seen.length === 1, 3000)).toBe(true);
    controller.abort();
    await subscription;
    await writer.close();
    await reader.close();
  });

  it('given an idle projector, when a rebuild elsewhere switches to a copy that lacks its newest event, then it re-applies it', async () => {
    const dir = tempDataDir();
    const store = openSqliteEventStore({ path: path.join(dir, EVENTS_FILE) });
    const readModel = openSqliteReadModel({ path: path.join(dir, READ_MODEL_FILE) });
    const projector = new Projector(store, readModel, { logger: silent });
    projector.start();
    await store.append('webhook-a', [event('a', 0)], 'no_stream');
    const late = await store.append('webhook-b', [event('b', 0)], 'no_stream');
    expect(await projector.waitFor(late.position, 3000)).toBe(true);

    // A rebuild in another connection that read the log just before the last append.
    const cli = openSqliteReadModel({ path: path.join(dir, READ_MODEL_FILE) });
    const beforeLate: EventStore = {
      ...store,
      readAll: async (options) => (await store.readAll(options)).filter((e) => e.streamId !== 'webhook-b'),
    } as EventStore;
    await rebuildReadModel(beforeLate, cli);
    expect(await cli.getWebhook('b')).toBeNull();

    expect(await until(async () => (await readModel.getWebhook('b')) !== null, 5000)).toBe(true);
    await projector.stop();
    await cli.close();
    await readModel.close();
    await store.close();
  });
});

function event(webhookId: string, revision: number) {
  return {
    type: 'WebhookRegistered',
    data: {
      webhookId,
      organizationId: 'acme',
      url: 'https://hooks.example.com/x',
      events: ['kyc.*'],
      partnerIds: null,
      authorizedPartnerIds: [PARTNER_A],
      secret: { keyId: 'k', iv: 'aXY=', ciphertext: 'Y3Q=' },
      at: '2026-01-01T00:00:00.000Z',
    },
    metadata: {
      actor: { clientId: 'c', subject: 's' },
      organizationId: 'acme',
      requestId: `r${revision}`,
      idempotencyKeyHash: null,
      requestFingerprint: null,
      occurredAt: '2026-01-01T00:00:00.000Z',
      previousHash: null,
      hash: 'h',
    },
  };
}
