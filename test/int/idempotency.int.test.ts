// Every row of DESIGN.md §2's idempotency table, through the real HTTP app on
// real SQLite files, with a clock the test can move.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARTNER_A, PARTNER_C, startRegistry, VALID_REGISTRATION, type TestRegistry, type TestResponse } from '../support/registry.ts';
import type { ProblemBody, RegistrationBody } from '../support/webhookApi.ts';

/** Typed asymmetric matcher (expect.any returns `any`). */
const anyString: unknown = expect.any(String);

type Problem = ProblemBody;
type Registered = RegistrationBody;

function expectProblem(res: TestResponse<unknown>, status: number): Problem {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.text) as Problem;
  expect(body).toMatchObject({ type: anyString, title: anyString, status, detail: anyString });
  return body;
}

const HOUR = 3600_000;

describe('Idempotency-Key on POST /v1/webhooks', () => {
  let registry: TestRegistry;
  let token: string;
  // The registry's clock: real time plus an offset the tests move forward.
  let offsetMs = 0;

  beforeAll(async () => {
    registry = await startRegistry({ now: () => new Date(Date.now() + offsetMs) });
    token = await registry.token();
  });
  afterAll(async () => {
    await registry.close();
  });

  const post = (body: unknown, key: string | undefined, tokenOverride?: string) =>
    registry.request<Registered>('POST', '/v1/webhooks', {
      token: tokenOverride ?? token,
      body,
      headers: key === undefined ? {} : { 'idempotency-key': key },
    });

  const get = (id: string, tokenOverride?: string) =>
    registry.request<Omit<Registered, 'secret'>>('GET', `/v1/webhooks/${id}`, { token: tokenOverride ?? token });

  describe('key missing or malformed → 400', () => {
    it.each([
      ['missing', undefined],
      ['empty', ''],
      ['quoted empty', '""'],
      ['256 characters', 'k'.repeat(256)],
      ['inner space', 'my key'],
      ['tab', 'my\tkey'],
      ['quoted with an inner quote', '"a"b"'],
    ])('%s', async (_label, key) => {
      const problem = expectProblem(await post(VALID_REGISTRATION, key), 400);
      expect(problem.type).toMatch(/idempotency/);
      expect(problem.errors?.map((e) => e.pointer)).toEqual(['/headers/idempotency-key']);
    });

    it('a non-ASCII key (sent as raw bytes) is refused', async () => {
      // fetch only sends ByteStrings; Latin-1 "é" goes out as the single byte 0xE9.
      expectProblem(await post(VALID_REGISTRATION, 'cl\u00e9'), 400);
    });

    it('a key that was refused as malformed recorded nothing', async () => {
      const list = await registry.request<{ data: unknown[] }>('GET', '/v1/webhooks', { token });
      expect(list.status).toBe(200);
      expect(list.body.data).toHaveLength(0);
    });

    it('255 visible characters is the longest key accepted', async () => {
      const key = `${randomUUID()}${'~'.repeat(255 - 36)}`;
      expect(key).toHaveLength(255);
      const res = await post(VALID_REGISTRATION, key);
      expect(res.status, res.text).toBe(201);
    });

    it('every visible ASCII character is allowed', async () => {
      const visible = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
      const key = `${randomUUID()}${visible.replace(/"/g, '')}`;
      const res = await post(VALID_REGISTRATION, key);
      expect(res.status, res.text).toBe(201);
      const again = await post(VALID_REGISTRATION, key);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body.id).toBe(res.body.id);
    });

    it('the quoted structured-field form "abc" is the same key as abc', async () => {
      const key = randomUUID();
      const plain = await post(VALID_REGISTRATION, key);
      expect(plain.status, plain.text).toBe(201);
      expect(plain.headers.get('idempotent-replayed')).toBeNull();
      const quoted = await post(VALID_REGISTRATION, `"${key}"`);
      expect(quoted.status, quoted.text).toBe(201);
      expect(quoted.headers.get('idempotent-replayed')).toBe('true');
      expect(quoted.body).toEqual(plain.body);
    });

    it('the quoted form can come first too', async () => {
      const key = randomUUID();
      const quoted = await post(VALID_REGISTRATION, `"${key}"`);
      expect(quoted.status).toBe(201);
      const plain = await post(VALID_REGISTRATION, key);
      expect(plain.headers.get('idempotent-replayed')).toBe('true');
      expect(plain.body).toEqual(quoted.body);
    });
  });

  describe('same key, same request → the original answer again', () => {
    it('replays status and body (same id, createdAt, secret) with Idempotent-Replayed: true', async () => {
      const key = randomUUID();
      const first = await post(VALID_REGISTRATION, key);
      expect(first.status, first.text).toBe(201);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      for (let i = 0; i < 3; i++) {
        const again = await post(VALID_REGISTRATION, key);
        expect(again.status).toBe(201);
        expect(again.headers.get('idempotent-replayed')).toBe('true');
        expect(again.body).toEqual(first.body);
        expect(again.body.secret).toBe(first.body.secret);
        expect(again.body.createdAt).toBe(first.body.createdAt);
        expect(again.headers.get('location')).toBe(first.headers.get('location'));
      }
    });

    it('replays a provided secret and a response without partnerIds unchanged', async () => {
      const key = randomUUID();
      const body = { url: 'https://hooks.example.com/own-secret', events: ['kyc.*'], secret: `whsec_${Buffer.alloc(24, 7).toString('base64')}` };
      const first = await post(body, key);
      expect(first.status, first.text).toBe(201);
      const again = await post(body, key);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toEqual(first.body);
      expect(again.body).not.toHaveProperty('partnerIds');
    });

    it('the same body with its fields in another order is the same request', async () => {
      const key = randomUUID();
      const first = await post({ url: VALID_REGISTRATION.url, events: VALID_REGISTRATION.events, partnerIds: [PARTNER_A] }, key);
      expect(first.status).toBe(201);
      const again = await post({ partnerIds: [PARTNER_A], events: VALID_REGISTRATION.events, url: VALID_REGISTRATION.url }, key);
      expect(again.status, again.text).toBe(201);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toEqual(first.body);
    });

    it('keys are scoped to the organization: the same key in another organization is another webhook', async () => {
      const key = randomUUID();
      const globex = await registry.token('globex-integration');
      const acme = await post({ url: 'https://hooks.example.com/acme', events: ['kyc.*'] }, key);
      const other = await post({ url: 'https://hooks.example.com/acme', events: ['kyc.*'] }, key, globex);
      expect(acme.status).toBe(201);
      expect(other.status, other.text).toBe(201);
      expect(other.headers.get('idempotent-replayed')).toBeNull();
      expect(other.body.id).not.toBe(acme.body.id);
      expect(other.body.secret).not.toBe(acme.body.secret);
      expect((await get(other.body.id, globex)).status).toBe(200);
      expect((await get(other.body.id)).status).toBe(404);
    });

    it('creates exactly one webhook for a replayed key', async () => {
      const key = randomUUID();
      const url = `https://hooks.example.com/once/${randomUUID()}`;
      for (let i = 0; i < 3; i++) expect((await post({ url, events: ['kyc.*'] }, key)).status).toBe(201);
      const list = await registry.request<{ data: { url: string }[] }>('GET', '/v1/webhooks?limit=100', { token });
      expect(list.body.data.filter((w) => w.url === url)).toHaveLength(1);
    });
  });

  describe('same key, different request → 422', () => {
    it.each([
      ['another url', { ...VALID_REGISTRATION, url: 'https://hooks.example.com/other' }],
      ['other events', { ...VALID_REGISTRATION, events: ['kyc.*'] }],
      ['events in another order', { ...VALID_REGISTRATION, events: [...VALID_REGISTRATION.events].reverse() }],
      ['partnerIds omitted', { url: VALID_REGISTRATION.url, events: VALID_REGISTRATION.events }],
      ['a secret added', { ...VALID_REGISTRATION, secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}` }],
    ])('%s', async (_label, different) => {
      const key = randomUUID();
      const first = await post(VALID_REGISTRATION, key);
      expect(first.status).toBe(201);
      const problem = expectProblem(await post(different, key), 422);
      expect(problem.type).toMatch(/idempotency-key/);
      expect(JSON.stringify(problem)).not.toContain(first.body.secret);
      // the original stays untouched and still replays
      const got = await get(first.body.id);
      expect(got.body.url).toBe(VALID_REGISTRATION.url);
      expect(got.body.events).toEqual(VALID_REGISTRATION.events);
      const again = await post(VALID_REGISTRATION, key);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toEqual(first.body);
    });

    it('a registration key cannot be reused to write to another webhook', async () => {
      const key = randomUUID();
      const target = await post(VALID_REGISTRATION, randomUUID());
      expect((await post(VALID_REGISTRATION, key)).status).toBe(201);
      const res = await registry.request('PATCH', `/v1/webhooks/${target.body.id}`, {
        token,
        body: { url: 'https://hooks.example.com/patched' },
        headers: { 'idempotency-key': key },
      });
      expectProblem(res, 422);
      expect((await get(target.body.id)).body.url).toBe(VALID_REGISTRATION.url);
    });
  });

  describe('same key, first use older than 24 h → 422', () => {
    it('replays until 24 h have passed, then answers 422 (key expired)', async () => {
      const key = randomUUID();
      const body = { url: `https://hooks.example.com/expiry/${randomUUID()}`, events: ['kyc.*'] };
      const first = await post(body, key);
      expect(first.status).toBe(201);
      try {
        offsetMs = 23 * HOUR + 59 * 60_000;
        const late = await post(body, key);
        expect(late.status, late.text).toBe(201);
        expect(late.headers.get('idempotent-replayed')).toBe('true');
        expect(late.body).toEqual(first.body);

        offsetMs = 24 * HOUR + 1000;
        const expired = expectProblem(await post(body, key), 422);
        expect(expired.type).toMatch(/expired/);
        expect(expired.detail).toMatch(/new key/i);
        // a different body is refused too
        expectProblem(await post({ ...body, url: 'https://hooks.example.com/other' }, key), 422);

        // the webhook itself is still there, unchanged, and a new key works
        const got = await get(first.body.id);
        expect(got.status).toBe(200);
        expect(got.body.createdAt).toBe(first.body.createdAt);
        const fresh = await post(body, randomUUID());
        expect(fresh.status).toBe(201);
        expect(fresh.body.id).not.toBe(first.body.id);
        expect(Date.parse(fresh.body.createdAt) - Date.parse(first.body.createdAt)).toBeGreaterThan(24 * HOUR);
      } finally {
        offsetMs = 0;
      }
    });
  });

  describe('a failed request records nothing: the key stays free', () => {
    it.each([
      ['400 invalid url', { ...VALID_REGISTRATION, url: 'http://localhost/' }, 400],
      ['400 bad pattern', { ...VALID_REGISTRATION, events: ['*'] }, 400],
      ['400 unknown field', { ...VALID_REGISTRATION, extra: true }, 400],
      ['403 unauthorized partner', { ...VALID_REGISTRATION, partnerIds: [PARTNER_C] }, 403],
    ])('after a %s the same key registers normally', async (_label, bad, status) => {
      const key = randomUUID();
      expectProblem(await post(bad, key), status);
      const ok = await post(VALID_REGISTRATION, key);
      expect(ok.status, ok.text).toBe(201);
      expect(ok.headers.get('idempotent-replayed')).toBeNull();
      // and the failure is still a failure when repeated (nothing was cached)
      expectProblem(await post(bad, key), status === 403 ? 403 : 400);
    });

    it('after a malformed JSON body, a 415 and a 401 the same key registers normally', async () => {
      const key = randomUUID();
      const raw = (contentType: string, rawBody: string, t?: string) =>
        registry.request('POST', '/v1/webhooks', {
          token: t ?? token,
          rawBody,
          headers: { 'idempotency-key': key, 'content-type': contentType },
        });
      expectProblem(await raw('application/json', '{"url":'), 400);
      expectProblem(await raw('application/xml', JSON.stringify(VALID_REGISTRATION)), 415);
      expectProblem(await raw('application/json', JSON.stringify(VALID_REGISTRATION), 'not-a-jwt'), 401);
      expectProblem(await raw('application/json', JSON.stringify(VALID_REGISTRATION), await registry.token('acme-reader')), 403);
      const ok = await post(VALID_REGISTRATION, key);
      expect(ok.status, ok.text).toBe(201);
      expect(ok.headers.get('idempotent-replayed')).toBeNull();
    });

    it('a failed request that reuses a used key does not disturb the original', async () => {
      const key = randomUUID();
      const first = await post(VALID_REGISTRATION, key);
      expectProblem(await post({ ...VALID_REGISTRATION, events: ['*'] }, key), 400);
      const again = await post(VALID_REGISTRATION, key);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toEqual(first.body);
    });
  });
});
