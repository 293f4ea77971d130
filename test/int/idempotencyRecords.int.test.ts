// What the log remembers of each Idempotency-Key (issue 11 H3, H6): a write
// that changes nothing still records its key, so the key cannot later be
// reused with another body; and the fingerprint stored beside each key is an
// HMAC under a server key, so a reader of the log cannot confirm a guessed
// secret offline. Rotating the encryption keys keeps replays working.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/domain/canonicalJson.ts';
import { closeCore, openStores } from '../../src/runtime.ts';
import { webhookStreamName } from '../../src/stores/eventStore.ts';
import { PARTNER_A, startRegistry, tempDataDir, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import type { ProblemBody, RegistrationBody } from '../support/webhookApi.ts';

const key = (): string => `k-${randomUUID()}`;
const encryptionKey = (id: string): string => `${id}:${randomBytes(32).toString('base64')}`;

describe('Idempotency-Key records', () => {
  const registries: TestRegistry[] = [];
  afterEach(async () => {
    for (const r of registries.splice(0)) await r.close();
  });
  async function start(env: Record<string, string> = {}, dataDir?: string): Promise<TestRegistry> {
    const registry = await startRegistry({ env, ...(dataDir ? { dataDir } : {}) });
    registries.push(registry);
    return registry;
  }

  async function register(r: TestRegistry, body: object, k = key()): Promise<RegistrationBody> {
    const created = await r.request<RegistrationBody>('POST', '/v1/webhooks', {
      token: await r.token(),
      body,
      headers: { 'idempotency-key': k },
    });
    expect(created.status).toBe(201);
    return created.body;
  }

  it('a PATCH that changes nothing records its key: reused with another body it is 422, repeated it replays', async () => {
    const r = await start();
    const token = await r.token();
    const { id } = await register(r, VALID_REGISTRATION);
    const before = await r.request('GET', `/v1/webhooks/${id}`, { token });
    const etag = before.headers.get('etag')!;

    const noOpKey = key();
    const same = { url: VALID_REGISTRATION.url };
    const noOp = await r.request('PATCH', `/v1/webhooks/${id}`, { token, body: same, headers: { 'idempotency-key': noOpKey } });
    expect(noOp.status).toBe(200);
    // Nothing changed, so neither the representation nor its ETag did.
    expect(noOp.body).toEqual(before.body);
    expect(noOp.headers.get('etag')).toBe(etag);

    const reused = await r.request<ProblemBody>('PATCH', `/v1/webhooks/${id}`, {
      token,
      body: { url: 'https://hooks.example.com/elsewhere' },
      headers: { 'idempotency-key': noOpKey },
    });
    expect(reused.status).toBe(422);
    const unchanged = await r.request('GET', `/v1/webhooks/${id}`, { token });
    expect(unchanged.body).toEqual(before.body);

    const replay = await r.request('PATCH', `/v1/webhooks/${id}`, { token, body: same, headers: { 'idempotency-key': noOpKey } });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(noOp.body);
    expect(replay.headers.get('etag')).toBe(etag);

    // The ETag a client held before the no-op still matches.
    const guarded = await r.request('PATCH', `/v1/webhooks/${id}`, {
      token,
      body: { events: ['kyc.*'] },
      headers: { 'idempotency-key': key(), 'if-match': etag },
    });
    expect(guarded.status).toBe(200);
    expect(guarded.headers.get('etag')).not.toBe(etag);
  });

  it('after a recorded no-op, the ETag a dispatcher disable answers is the one GET gives and If-Match accepts', async () => {
    const r = await start();
    const token = await r.token();
    const { id } = await register(r, VALID_REGISTRATION);
    const noOp = await r.request('PATCH', `/v1/webhooks/${id}`, { token, body: { status: 'ACTIVE' }, headers: { 'idempotency-key': key() } });
    expect(noOp.headers.get('etag')).toBe('"0"');
    const disabled = await r.request('POST', `/internal/v1/webhooks/${id}/disable`, {
      token: await r.token('dispatcher'),
      body: { reason: 'endpoint answered 410 Gone' },
    });
    expect(disabled.status).toBe(200);
    const got = await r.request('GET', `/v1/webhooks/${id}`, { token });
    expect(disabled.headers.get('etag')).toBe(got.headers.get('etag'));
    expect(got.headers.get('etag')).toBe('"1"');
    const guarded = await r.request('PATCH', `/v1/webhooks/${id}`, {
      token,
      body: { status: 'ACTIVE' },
      headers: { 'idempotency-key': key(), 'if-match': disabled.headers.get('etag')! },
    });
    expect(guarded.status).toBe(200);
  });

  it('the no-op is in the audit trail, with who asked and no change', async () => {
    const r = await start();
    const { id } = await register(r, VALID_REGISTRATION);
    const patched = await r.request('PATCH', `/v1/webhooks/${id}`, {
      token: await r.token(),
      body: { status: 'ACTIVE' },
      headers: { 'idempotency-key': key() },
    });
    expect(patched.status).toBe(200);
    const history = await r.request<{ data: { type: string; changes: object; actor: { clientId: string } }[] }>(
      'GET',
      `/v1/webhooks/${id}/history`,
      { token: await r.token('compliance-auditor') },
    );
    expect(history.status).toBe(200);
    expect(history.body.data.map((e) => e.type)).toEqual(['WebhookRegistered', 'WebhookUnchanged']);
    expect(history.body.data[1]).toMatchObject({ changes: {}, actor: { clientId: 'acme-integration' } });
  });

  it('stores fingerprints as HMACs naming their key, never the bare SHA-256 of the request', async () => {
    const r = await start({ SECRET_ENCRYPTION_KEYS: encryptionKey('fp1') });
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const body = { ...VALID_REGISTRATION, secret };
    const { id } = await register(r, body);
    await r.stop();
    const stores = await openStores(r.config);
    try {
      const [registered] = await stores.store.readStream(webhookStreamName(id));
      const stored = registered!.metadata.requestFingerprint!;
      expect(stored).toMatch(/^hmac-sha256:fp1:[0-9a-f]{64}$/);
      // A guess at the secret can no longer be checked against the log without the server's key.
      const guess = createHash('sha256').update(`POST\n/v1/webhooks\n${canonicalJson(body)}`).digest('hex');
      expect(stored).not.toContain(guess);
    } finally {
      await closeCore(stores);
    }
  });

  it('after the encryption keys rotate, a retry of a write made under the old key still replays', async () => {
    const dataDir = tempDataDir();
    const old = encryptionKey('old');
    const first = await start({ SECRET_ENCRYPTION_KEYS: old }, dataDir);
    const k = key();
    const body = { ...VALID_REGISTRATION, partnerIds: [PARTNER_A] };
    const created = await register(first, body, k);
    await first.stop();

    const rotated = await start({ SECRET_ENCRYPTION_KEYS: `${encryptionKey('new')},${old}` }, dataDir);
    const token = await rotated.token();
    const replay = await rotated.request<RegistrationBody>('POST', '/v1/webhooks', { token, body, headers: { 'idempotency-key': k } });
    expect(replay.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(created);
    const other = await rotated.request('POST', '/v1/webhooks', {
      token,
      body: { ...body, url: 'https://hooks.example.com/other' },
      headers: { 'idempotency-key': k },
    });
    expect(other.status).toBe(422);
  });
});
