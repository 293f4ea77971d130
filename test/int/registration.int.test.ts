// POST /v1/webhooks and GET /v1/webhooks/{id} through the real HTTP app on real
// SQLite files: every field rule, every "other answer" of DESIGN.md §2.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PARTNER_A,
  PARTNER_B,
  PARTNER_C,
  startRegistry,
  VALID_REGISTRATION,
  type TestRegistry,
  type TestResponse,
} from '../support/registry.ts';
import type { ProblemBody, RegistrationBody } from '../support/webhookApi.ts';

/** Typed asymmetric matcher (expect.any returns `any`). */
const anyString: unknown = expect.any(String);

type Problem = ProblemBody;
type Registered = RegistrationBody;

type WebhookView = Omit<Registered, 'secret'> & { secret?: unknown };

const BODY_LIMIT = 8192;

/** Every error is problem+json with {type, title, status, detail}; returns the parsed problem. */
function expectProblem(res: TestResponse<unknown>, status: number): Problem {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.text) as Problem;
  expect(body).toMatchObject({ type: anyString, title: anyString, status, detail: anyString });
  expect(body.type).toMatch(/^https?:\/\//);
  return body;
}

function pointers(problem: Problem): string[] {
  return (problem.errors ?? []).map((e) => e.pointer);
}

describe('registering a webhook', () => {
  let registry: TestRegistry;
  let token: string;

  beforeAll(async () => {
    registry = await startRegistry({ env: { BODY_LIMIT_BYTES: String(BODY_LIMIT) } });
    token = await registry.token();
  });
  afterAll(async () => {
    await registry.close();
  });

  const post = (body: unknown, options: { key?: string | null; token?: string; headers?: Record<string, string> } = {}) =>
    registry.request<Registered>('POST', '/v1/webhooks', {
      token: options.token ?? token,
      body,
      headers: {
        ...(options.key === null ? {} : { 'idempotency-key': options.key ?? randomUUID() }),
        ...options.headers,
      },
    });

  const postRaw = (rawBody: string, contentType: string, key: string = randomUUID()) =>
    registry.request('POST', '/v1/webhooks', {
      token,
      rawBody,
      headers: { 'idempotency-key': key, 'content-type': contentType },
    });

  /** Expects a 400 validation problem with exactly these pointers. */
  async function expect400(body: unknown, expectedPointers: string[]): Promise<Problem> {
    const problem = expectProblem(await post(body), 400);
    expect(pointers(problem).sort()).toEqual([...expectedPointers].sort());
    return problem;
  }

  describe('the happy path', () => {
    it('answers 201 with the documented body, Location and ETag', async () => {
      const res = await post(VALID_REGISTRATION);
      expect(res.status, res.text).toBe(201);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = res.body;
      expect(Object.keys(body).sort()).toEqual(['createdAt', 'events', 'id', 'partnerIds', 'secret', 'status', 'updatedAt', 'url']);
      expect(body).toMatchObject({ ...VALID_REGISTRATION, status: 'ACTIVE' });
      expect(body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(body.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
      expect(Math.abs(Date.parse(body.createdAt) - Date.now())).toBeLessThan(60_000);
      expect(body.updatedAt).toBe(body.createdAt);
      expect(res.headers.get('location')).toBe(`/v1/webhooks/${body.id}`);
      expect(res.headers.get('etag')).toEqual(anyString);
      expect(res.headers.get('idempotent-replayed')).toBeNull();
    });

    it('GET at the Location answers the webhook without its secret, with an ETag', async () => {
      const created = await post(VALID_REGISTRATION);
      expect(created.status).toBe(201);
      const location = created.headers.get('location')!;
      const got = await registry.request<WebhookView>('GET', location, { token });
      expect(got.status, got.text).toBe(200);
      expect(got.headers.get('etag')).toMatch(/^(W\/)?".+"$/);
      expect(got.body.secret).toBeUndefined();
      expect(got.text).not.toContain(created.body.secret);
      expect(got.text).not.toContain(created.body.secret.slice('whsec_'.length));
      const { secret: _secret, ...withoutSecret } = created.body;
      expect(got.body).toEqual(withoutSecret);
    });

    it('GET works with a read-only token of the same organization', async () => {
      const created = await post(VALID_REGISTRATION);
      const got = await registry.request<WebhookView>('GET', `/v1/webhooks/${created.body.id}`, {
        token: await registry.token('acme-reader'),
      });
      expect(got.status).toBe(200);
      expect(got.body.id).toBe(created.body.id);
    });

    it("another organization's webhook is 404, exactly like an unknown id", async () => {
      const created = await post(VALID_REGISTRATION);
      const globex = await registry.token('globex-integration');
      const foreign = expectProblem(await registry.request('GET', `/v1/webhooks/${created.body.id}`, { token: globex }), 404);
      const unknown = expectProblem(await registry.request('GET', `/v1/webhooks/${randomUUID()}`, { token: globex }), 404);
      expect(foreign.type).toBe(unknown.type);
      expect(foreign.detail).toBe(unknown.detail);
      expect(JSON.stringify(foreign)).not.toContain(VALID_REGISTRATION.url);
    });

    it('GET with an id that is not a UUID is 400', async () => {
      expectProblem(await registry.request('GET', '/v1/webhooks/not-a-uuid', { token }), 400);
    });

    it('omitting partnerIds leaves it out of the answer', async () => {
      const res = await post({ url: 'https://hooks.example.com/all', events: ['kyc.*'] });
      expect(res.status, res.text).toBe(201);
      expect(res.body).not.toHaveProperty('partnerIds');
      const got = await registry.request<WebhookView>('GET', `/v1/webhooks/${res.body.id}`, { token });
      expect(got.body).not.toHaveProperty('partnerIds');
    });
  });

  describe('events', () => {
    it('removes duplicates, keeping first-seen order', async () => {
      const res = await post({ ...VALID_REGISTRATION, events: ['kyc.*', 'compliance.case.opened', 'kyc.*', 'compliance.case.opened'] });
      expect(res.status, res.text).toBe(201);
      expect(res.body.events).toEqual(['kyc.*', 'compliance.case.opened']);
      const got = await registry.request<WebhookView>('GET', `/v1/webhooks/${res.body.id}`, { token });
      expect(got.body.events).toEqual(['kyc.*', 'compliance.case.opened']);
    });

    it.each(['kyc.*', 'kyc.verification.*', 'compliance.case.opened', 'self_service_invitation.*'])('accepts %j', async (pattern) => {
      const res = await post({ ...VALID_REGISTRATION, events: [pattern] });
      expect(res.status, res.text).toBe(201);
      expect(res.body.events).toEqual([pattern]);
    });

    it('refuses the root wildcard "*" with its own message', async () => {
      const problem = await expect400({ ...VALID_REGISTRATION, events: ['*'] }, ['/events/0']);
      expect(problem.errors![0]!.detail).toMatch(/root wildcard/i);
    });

    it.each(['kyc*', '*.x', 'a.*.b', 'kyc..x', 'KYC.*', '**', 'kyc.', '.kyc', 'kyc.**', ''])('refuses %j as malformed', async (pattern) => {
      const problem = await expect400({ ...VALID_REGISTRATION, events: ['kyc.*', pattern] }, ['/events/1']);
      expect(problem.errors![0]!.detail).not.toMatch(/root wildcard/i);
    });

    it.each(['foo.*', 'foo.bar', 'kyc.nope', 'kyc.verification.approved.*'])('refuses %j, which matches no catalog type', async (pattern) => {
      const problem = await expect400({ ...VALID_REGISTRATION, events: [pattern] }, ['/events/0']);
      expect(problem.errors![0]!.detail).toMatch(/no known event type/i);
    });

    it('points at every bad entry', async () => {
      await expect400({ ...VALID_REGISTRATION, events: ['*', 'kyc.*', 'kyc*', 'foo.*'] }, ['/events/0', '/events/2', '/events/3']);
    });

    it('accepts 50 entries and refuses 51', async () => {
      const fifty = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? 'kyc.*' : 'compliance.case.opened'));
      const ok = await post({ ...VALID_REGISTRATION, events: fifty });
      expect(ok.status, ok.text).toBe(201);
      expect(ok.body.events).toEqual(['kyc.*', 'compliance.case.opened']);
      await expect400({ ...VALID_REGISTRATION, events: [...fifty, 'kyc.*'] }, ['/events']);
    });

    it('refuses an empty list, a missing list and non-arrays', async () => {
      await expect400({ ...VALID_REGISTRATION, events: [] }, ['/events']);
      await expect400({ url: VALID_REGISTRATION.url }, ['/events']);
      await expect400({ ...VALID_REGISTRATION, events: 'kyc.*' }, ['/events']);
      await expect400({ ...VALID_REGISTRATION, events: [42] }, ['/events/0']);
    });
  });

  describe('url', () => {
    it.each([
      ['http', 'http://hooks.example.com/nt24'],
      ['userinfo', 'https://user:pass@hooks.example.com/nt24'],
      ['localhost', 'https://localhost/nt24'],
      ['*.localhost', 'https://sub.localhost/nt24'],
      ['loopback IPv4', 'https://127.0.0.1/nt24'],
      ['private IPv4', 'https://10.0.0.1/nt24'],
      ['cloud metadata IP', 'https://169.254.169.254/latest/meta-data'],
      ['cloud metadata name', 'https://metadata.google.internal/computeMetadata/v1/'],
      ['loopback IPv6', 'https://[::1]/nt24'],
      ['IPv4-mapped loopback', 'https://[::ffff:127.0.0.1]/nt24'],
      ['unique-local IPv6', 'https://[fd00::1]/nt24'],
      ['CGNAT', 'https://100.64.0.1/nt24'],
      ['documentation', 'https://192.0.2.1/nt24'],
      ['IPv6 documentation', 'https://[2001:db8::1]/nt24'],
      ['multicast', 'https://224.0.0.1/nt24'],
      ['loopback in hex', 'https://0x7f000001/nt24'],
      ['not a URL', 'hooks.example.com/nt24'],
      ['over 2048 characters', `https://hooks.example.com/${'a'.repeat(2048)}`],
    ])('refuses %s', async (_label, url) => {
      const problem = await expect400({ ...VALID_REGISTRATION, url }, ['/url']);
      expect(problem.errors![0]!.detail.length).toBeGreaterThan(0);
    });

    it('refuses a missing url and a non-string url', async () => {
      await expect400({ events: ['kyc.*'] }, ['/url']);
      await expect400({ ...VALID_REGISTRATION, url: 42 }, ['/url']);
    });

    it.each([
      ['a public https host', 'https://hooks.example.com/nt24?x=1'],
      ['a public IPv4 literal', 'https://8.8.8.8/nt24'],
      ['a public IPv6 literal', 'https://[2606:4700:4700::1111]/nt24'],
      ['exactly 2048 characters', `https://hooks.example.com/${'a'.repeat(2048 - 'https://hooks.example.com/'.length)}`],
    ])('accepts %s', async (_label, url) => {
      const res = await post({ ...VALID_REGISTRATION, url });
      expect(res.status, res.text).toBe(201);
      expect(res.body.url).toBe(url);
    });
  });

  describe('partnerIds', () => {
    it('refuses a non-UUID with a pointer at it', async () => {
      await expect400({ ...VALID_REGISTRATION, partnerIds: [PARTNER_A, 'not-a-uuid'] }, ['/partnerIds/1']);
    });

    it('refuses [] (omit it instead)', async () => {
      const problem = await expect400({ ...VALID_REGISTRATION, partnerIds: [] }, ['/partnerIds']);
      expect(problem.errors![0]!.detail).toMatch(/omit/i);
    });

    it('refuses more than 100 entries', async () => {
      await expect400({ ...VALID_REGISTRATION, partnerIds: Array.from({ length: 101 }, () => PARTNER_A) }, ['/partnerIds']);
    });

    it('answers 403 with one pointer per unauthorized id', async () => {
      const res = await post({ ...VALID_REGISTRATION, partnerIds: [PARTNER_A, PARTNER_C, PARTNER_B, randomUUID()] });
      const problem = expectProblem(res, 403);
      expect(pointers(problem)).toEqual(['/partnerIds/1', '/partnerIds/3']);
    });

    it('gives the same answer for an unknown id as for another organization’s partner', async () => {
      const unauthorized = expectProblem(await post({ ...VALID_REGISTRATION, partnerIds: [PARTNER_A, PARTNER_C] }), 403);
      const unknown = expectProblem(await post({ ...VALID_REGISTRATION, partnerIds: [PARTNER_A, randomUUID()] }), 403);
      const strip = ({ type, title, status, detail, errors }: Problem) => ({ type, title, status, detail, errors });
      expect(strip(unknown)).toEqual(strip(unauthorized));
      expect(unauthorized.errors).toEqual([{ pointer: '/partnerIds/1', detail: anyString }]);
      expect(JSON.stringify(unauthorized)).not.toContain(PARTNER_C);
    });

    it('normalizes an uppercase UUID to lowercase', async () => {
      const res = await post({ ...VALID_REGISTRATION, partnerIds: [PARTNER_B.toUpperCase()] });
      expect(res.status, res.text).toBe(201);
      expect(res.body.partnerIds).toEqual([PARTNER_B]);
      const got = await registry.request<WebhookView>('GET', `/v1/webhooks/${res.body.id}`, { token });
      expect(got.body.partnerIds).toEqual([PARTNER_B]);
    });
  });

  describe('secret', () => {
    const malformed: [string, string][] = [
      ['whsec_ + too short', `whsec_${randomBytes(16).toString('base64')}`],
      ['whsec_ + too long', `whsec_${randomBytes(65).toString('base64')}`],
      ['not base64', `whsec_${'!$%&'.repeat(11)}`],
      ['wrong prefix', `sk_live_${randomBytes(32).toString('base64')}`],
      ['no prefix', randomBytes(32).toString('base64')],
      ['url-safe base64', `whsec_${randomBytes(33).toString('base64url')}_-`],
    ];

    it.each(malformed)('refuses %s at /secret without echoing it', async (_label, secret) => {
      const res = await post({ ...VALID_REGISTRATION, secret });
      const problem = expectProblem(res, 400);
      expect(pointers(problem)).toEqual(['/secret']);
      expect(res.text).not.toContain(secret);
      const body = secret.replace(/^whsec_/, '');
      expect(res.text).not.toContain(body);
      for (const line of registry.logs) {
        expect(line).not.toContain(secret);
        expect(line).not.toContain(body);
      }
    });

    it('refuses a non-string secret and a bare prefix', async () => {
      await expect400({ ...VALID_REGISTRATION, secret: 12345 }, ['/secret']);
      await expect400({ ...VALID_REGISTRATION, secret: 'whsec_' }, ['/secret']);
    });

    it.each([24, 32, 64])('returns a valid provided secret (%i bytes) as-is', async (bytes) => {
      const secret = `whsec_${randomBytes(bytes).toString('base64')}`;
      const res = await post({ ...VALID_REGISTRATION, secret });
      expect(res.status, res.text).toBe(201);
      expect(res.body.secret).toBe(secret);
    });

    it('generates whsec_ + base64 of 32 random bytes when omitted', async () => {
      const a = await post(VALID_REGISTRATION);
      const b = await post(VALID_REGISTRATION);
      for (const res of [a, b]) {
        expect(res.status).toBe(201);
        expect(res.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
        expect(Buffer.from(res.body.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
      }
      expect(a.body.secret).not.toBe(b.body.secret);
    });
  });

  describe('unknown and malformed fields', () => {
    it('refuses an unknown field with a pointer at it', async () => {
      await expect400({ ...VALID_REGISTRATION, fieldName: 1 }, ['/fieldName']);
    });

    it('refuses fields that exist only on other operations', async () => {
      await expect400({ ...VALID_REGISTRATION, status: 'ACTIVE', id: randomUUID() }, ['/status', '/id']);
    });

    it('refuses a body that is not an object', async () => {
      expectProblem(await post([VALID_REGISTRATION]), 400);
      expectProblem(await post('hello'), 400);
      expectProblem(await post(null), 400);
    });

    it('reports every problem at once', async () => {
      await expect400(
        { url: 'http://localhost/', events: ['*'], partnerIds: ['x'], secret: 'nope', extra: true },
        ['/url', '/events/0', '/partnerIds/0', '/secret', '/extra'],
      );
    });
  });

  describe('other answers', () => {
    it('400 for malformed JSON, without echoing the body', async () => {
      const secretish = `whsec_${randomBytes(32).toString('base64')}`;
      const raw = `{"url":"https://hooks.example.com/nt24","events":["kyc.*"],"secret":"${secretish}",`;
      const res = await postRaw(raw, 'application/json');
      expectProblem(res, 400);
      expect(res.text).not.toContain(secretish);
      expect(res.text).not.toContain('hooks.example.com');
      for (const line of registry.logs) expect(line).not.toContain(secretish);
    });

    it('400 for an empty JSON body', async () => {
      expectProblem(await postRaw('', 'application/json'), 400);
    });

    it('413 for a body over the limit', async () => {
      const big = JSON.stringify({ ...VALID_REGISTRATION, padding: 'x'.repeat(BODY_LIMIT * 2) });
      const problem = expectProblem(await postRaw(big, 'application/json'), 413);
      expect(problem.detail).not.toContain('xxxx');
    });

    it('accepts a body just under the limit (the limit is the configured one)', async () => {
      const url = `https://hooks.example.com/${'a'.repeat(2000)}`;
      const body = JSON.stringify({ ...VALID_REGISTRATION, url });
      expect(body.length).toBeLessThan(BODY_LIMIT);
      const res = await postRaw(body, 'application/json');
      expect(res.status, res.text).toBe(201);
    });

    it.each(['text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x'])(
      '415 for Content-Type %s',
      async (contentType) => {
        expectProblem(await postRaw(JSON.stringify(VALID_REGISTRATION), contentType), 415);
      },
    );

    it('accepts application/json with a charset parameter', async () => {
      const res = await postRaw(JSON.stringify(VALID_REGISTRATION), 'application/json; charset=utf-8');
      expect(res.status, res.text).toBe(201);
    });

    it('403 for a token without the write scope', async () => {
      const reader = await registry.token('acme-reader');
      const problem = expectProblem(await post(VALID_REGISTRATION, { token: reader }), 403);
      expect(problem.detail).toContain('webhooks:write');
    });

    it('403 for a token of the right scope that was not issued to an organization', async () => {
      const orgless = await registry.oauth.mintToken('dispatcher', { scope: 'webhooks:read webhooks:write' });
      expectProblem(await post(VALID_REGISTRATION, { token: orgless }), 403);
    });

    it('404 problem+json for unknown routes, with or without a token', async () => {
      for (const [method, path] of [
        ['GET', '/nope'],
        ['GET', '/v1/webhookz'],
        ['POST', '/v1/webhooks/extra/segments'],
        ['DELETE', '/v1/event-types'],
      ] as const) {
        expectProblem(await registry.request(method, path), 404);
        expectProblem(await registry.request(method, path, { token }), 404);
      }
    });

    it('no webhook was recorded by any failed request above', async () => {
      // Every 201 in this file came from a distinct key; a failed request must not have left a webhook behind.
      const list = await registry.request<{ data: WebhookView[]; nextCursor: string | null }>('GET', '/v1/webhooks?limit=100', { token });
      expect(list.status).toBe(200);
      for (const w of list.body.data) {
        expect(w.url.startsWith('https://')).toBe(true);
        expect(w.url).not.toMatch(/localhost|127\.0\.0\.1|10\.0\.0\.1/);
        expect(w.events).not.toContain('*');
      }
    });
  });
});

describe('registering with ALLOW_INSECURE_URLS (local development)', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ env: { ALLOW_INSECURE_URLS: 'true' } });
  });
  afterAll(async () => {
    await registry.close();
  });

  it('accepts http://localhost, still refuses userinfo', async () => {
    const token = await registry.token();
    const ok = await registry.request<Registered>('POST', '/v1/webhooks', {
      token,
      body: { ...VALID_REGISTRATION, url: 'http://localhost:8080/hook' },
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.url).toBe('http://localhost:8080/hook');
    const bad = await registry.request('POST', '/v1/webhooks', {
      token,
      body: { ...VALID_REGISTRATION, url: 'http://user:pw@localhost:8080/hook' },
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(pointers(expectProblem(bad, 400))).toEqual(['/url']);
  });
});
