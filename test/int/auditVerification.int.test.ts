// GET /internal/v1/audit/verification: the tamper check over HTTP (the
// engine of `audit verify`). A healthy registry passes; an event altered in
// the SQLite file is named by its stream and revision; only auditors may ask.
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENTS_FILE } from '../../src/runtime.ts';
import { webhookStreamName } from '../../src/stores/eventStore.ts';
import { SQLITE_ENGINES, startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import { settleProjection, WebhookApi } from '../support/webhookApi.ts';

interface Verification {
  ok: boolean;
  events: number;
  streams: number;
  brokenChains: { streamId: string; revision: number; problem: string; detail: string }[];
  readModelMismatches: unknown[];
  otherProblems: string[];
}

describe('the tamper check over HTTP', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  const ids: string[] = [];

  beforeAll(async () => {
    // The test alters the SQLite file itself.
    registry = await startRegistry({ env: SQLITE_ENGINES });
    acme = await WebhookApi.as(registry, 'acme-integration');
    for (let i = 0; i < 3; i++) {
      const w = await acme.registered({ ...VALID_REGISTRATION, url: `https://v${i}.example.com/h` });
      await acme.patched(w.id, { url: `https://v${i}.example.com/changed` });
      ids.push(w.id);
    }
    await settleProjection(registry);
  });

  afterAll(async () => {
    await registry.close();
  });

  const verification = async (client = 'compliance-auditor') =>
    registry.request<Verification>('GET', '/internal/v1/audit/verification', { token: await registry.token(client) });

  it('passes on a healthy registry, counting what it read', async () => {
    const answer = await verification();
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.body).toMatchObject({ ok: true, events: 6, streams: 3, brokenChains: [], readModelMismatches: [], otherProblems: [] });
  });

  it('is for auditors only', async () => {
    expect((await verification('acme-integration')).status).toBe(403);
    expect((await verification('dispatcher')).status).toBe(403);
    expect((await registry.request('GET', '/internal/v1/audit/verification')).status).toBe(401);
  });

  it('names the stream and revision of an event altered in the file', async () => {
    const events = new Database(path.join(registry.dataDir, EVENTS_FILE));
    try {
      events
        .prepare("UPDATE events SET data = json_set(data, '$.changes.url', 'https://evil.example.com/x') WHERE stream_id = ? AND revision = 1")
        .run(webhookStreamName(ids[1]!));
    } finally {
      events.close();
    }
    const answer = await verification();
    expect(answer.status).toBe(200);
    expect(answer.body.ok).toBe(false);
    expect(answer.body.brokenChains).toEqual([
      { streamId: webhookStreamName(ids[1]!), revision: 1, problem: 'hash-mismatch', detail: expect.any(String) as string },
    ]);
  });
});
