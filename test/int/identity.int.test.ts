// Identity against a running OAuth 2.0 server (test/support/oauthServer.ts, a
// stand-in for the Keycloak realm nt24-idp): tokens come from its token
// endpoint or are signed with its real keys; the registry fetches its JWKS over
// HTTP. Bad tokens are 401 invalid_token, missing scopes 403 insufficient_scope,
// provider outages 503 + Retry-After (never 401), rotations are picked up
// without a restart.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeUnverified,
  signForeignToken,
  signWithPublicKeyAsHmacSecret,
  startOAuthServer,
  unsignedToken,
  type OAuthClientConfig,
  type OAuthServer,
} from '../support/oauthServer.ts';
import {
  DEFAULT_CLIENTS,
  PARTNER_A,
  PARTNER_B,
  startRegistry,
  VALID_REGISTRATION,
  type RequestOptions,
  type TestRegistry,
  type TestResponse,
} from '../support/registry.ts';

const CLIENTS: OAuthClientConfig[] = [
  ...DEFAULT_CLIENTS,
  { clientId: 'acme-post', clientSecret: 'post-secret', orgId: 'acme', partnerIds: [PARTNER_A], scopes: ['webhooks:read', 'webhooks:write'], authMethod: 'client_secret_post' },
  { clientId: 'orgless-writer', clientSecret: 'ow', scopes: ['webhooks:read', 'webhooks:write'] },
  { clientId: 'orgless-all', clientSecret: 'oa', scopes: ['webhooks:read', 'webhooks:write', 'webhooks:dispatch', 'webhooks:audit'] },
  { clientId: 'no-partners', clientSecret: 'np', orgId: 'initech', scopes: ['webhooks:read', 'webhooks:write'] },
  { clientId: 'empty-partners', clientSecret: 'ep', orgId: 'initech', partnerIds: [], scopes: ['webhooks:read', 'webhooks:write'] },
  { clientId: 'one-partner-string', clientSecret: 'ps', orgId: 'initech', partnerIds: PARTNER_A, scopes: ['webhooks:read', 'webhooks:write'] },
  { clientId: 'partners-json-string', clientSecret: 'pj', orgId: 'initech', partnerIds: JSON.stringify([PARTNER_A]), scopes: ['webhooks:read'] },
  { clientId: 'partners-not-uuid', clientSecret: 'pn', orgId: 'initech', partnerIds: ['partner-a'], scopes: ['webhooks:read'] },
  { clientId: 'partners-numbers', clientSecret: 'pu', orgId: 'initech', partnerIds: [42], scopes: ['webhooks:read'] },
  { clientId: 'partners-object', clientSecret: 'po', orgId: 'initech', partnerIds: { a: PARTNER_A }, scopes: ['webhooks:read'] },
];

/** The fields these tests read from any answer (problem, webhook, list, registration). */
interface Body {
  id: string;
  url: string;
  status: number | string;
  secret: string;
  partnerIds?: string[];
  type: string;
  detail: string;
  errors?: { pointer: string; detail: string }[];
  data: { id: string }[];
}

const EVENT = 'compliance.case.opened';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function call(registry: TestRegistry, method: string, path: string, options?: RequestOptions): Promise<TestResponse<Body>> {
  return registry.request<Body>(method, path, options);
}

function register(registry: TestRegistry, token: string, body: unknown = VALID_REGISTRATION): Promise<TestResponse<Body>> {
  return call(registry, 'POST', '/v1/webhooks', { token, body, headers: { 'idempotency-key': randomUUID() } });
}

function expectInvalidToken(response: TestResponse<Body>, token?: string): void {
  expect(response.status).toBe(401);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="webhooks", error="invalid_token"/);
  expect(response.body.status).toBe(401);
  expect(response.body.type).toMatch(/\/unauthorized$/);
  if (token !== undefined) expect(response.text).not.toContain(token);
}

function expectInsufficientScope(response: TestResponse<Body>, scope: string): void {
  expect(response.status).toBe(403);
  expect(response.headers.get('www-authenticate')).toBe(`Bearer realm="webhooks", error="insufficient_scope", scope="${scope}"`);
  expect(response.body).toMatchObject({ status: 403 });
  expect(response.body.detail).toContain(scope);
}

function expectUnavailable(response: TestResponse<Body>): void {
  expect(response.status).toBe(503);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(response.headers.get('www-authenticate')).toBeNull();
}

describe('tokens from the provider', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ clients: CLIENTS, env: { JWKS_COOLDOWN_MS: '100', JWKS_TIMEOUT_MS: '500' } });
  });
  afterAll(async () => {
    await registry.close();
  });

  it('a client_credentials token from the token endpoint registers, reads, lists, changes and deletes a webhook', async () => {
    const response = await registry.oauth.requestToken('acme-integration');
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ token_type: 'Bearer', scope: 'webhooks:read webhooks:write' });
    const token = response.body.access_token as string;

    const created = await register(registry, token);
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.headers.get('location')).toBe(`/v1/webhooks/${id}`);
    expect((await call(registry, 'GET', `/v1/webhooks/${id}`, { token })).status).toBe(200);
    const list = await call(registry, 'GET', '/v1/webhooks', { token });
    expect(list.body.data.map((w) => w.id)).toContain(id);
    const patched = await call(registry, 'PATCH', `/v1/webhooks/${id}`, {
      token,
      body: { status: 'PAUSED' },
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(patched.status).toBe(200);
    const deleted = await call(registry, 'DELETE', `/v1/webhooks/${id}`, { token, headers: { 'idempotency-key': randomUUID() } });
    expect(deleted.status).toBe(204);
    expect((await call(registry, 'GET', `/v1/webhooks/${id}`, { token })).status).toBe(404);
  });

  it('client_secret_post authentication works the same', async () => {
    const token = await registry.oauth.getToken('acme-post');
    expect((await register(registry, token)).status).toBe(201);
  });

  it('the token endpoint itself refuses a wrong client secret (no token, nothing to present)', async () => {
    const response = await registry.oauth.requestToken('acme-integration', { clientSecret: 'wrong' });
    expect(response.status).toBe(401);
    expect(response.body.error).toBe('invalid_client');
  });

  it('a token with aud as an array that contains the registry is accepted (Keycloak with several audiences)', async () => {
    const token = await registry.oauth.mintToken('acme-integration', { aud: ['account', registry.oauth.audience] });
    expect((await call(registry, 'GET', '/v1/webhooks', { token })).status).toBe(200);
  });

  it('the scheme name is case-insensitive', async () => {
    const token = await registry.token();
    const response = await call(registry, 'GET', '/v1/webhooks', { headers: { authorization: `bearer ${token}` } });
    expect(response.status).toBe(200);
  });
});

describe('bad tokens: 401 invalid_token', () => {
  let registry: TestRegistry;
  let other: OAuthServer;
  beforeAll(async () => {
    registry = await startRegistry({ clients: CLIENTS, env: { JWKS_COOLDOWN_MS: '100', JWKS_TIMEOUT_MS: '500' } });
    other = await startOAuthServer({ clients: CLIENTS });
  });
  afterAll(async () => {
    await other.stop();
    await registry.close();
  });

  const claims = () => registry.oauth.claimsFor('acme-integration');

  it('no Authorization header', async () => {
    expectInvalidToken(await call(registry, 'GET', '/v1/webhooks'));
    expectInvalidToken(await call(registry, 'POST', '/v1/webhooks', { body: VALID_REGISTRATION, headers: { 'idempotency-key': randomUUID() } }));
  });

  it.each([['Basic YWNtZTpzZWNyZXQ='], ['Bearer'], ['Bearer '], ['Bearer a b'], ['Token abc'], ['Bearer ümlaut']])(
    'a malformed Authorization header: %s',
    async (authorization) => {
      expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { headers: { authorization } }));
    },
  );

  it('an expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await registry.oauth.mintToken('acme-integration', { iat: now - 900, exp: now - 600 });
    const response = await call(registry, 'GET', '/v1/webhooks', { token });
    expectInvalidToken(response, token);
    expect(response.body.detail).toMatch(/expired/);
  });

  it('a token from another issuer (another realm server, its own keys)', async () => {
    const token = await other.getToken('acme-integration');
    expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token }), token);
  });

  it("a token signed with the provider's key but naming another issuer", async () => {
    const token = await registry.oauth.mintToken('acme-integration', { iss: `${registry.oauth.origin}/realms/other` });
    const response = await call(registry, 'GET', '/v1/webhooks', { token });
    expectInvalidToken(response, token);
    expect(response.body.detail).toMatch(/iss/);
  });

  it('a token for another audience, from the token endpoint', async () => {
    const token = await registry.oauth.getToken('acme-integration', { audience: 'account' });
    const response = await call(registry, 'GET', '/v1/webhooks', { token });
    expectInvalidToken(response, token);
    expect(response.body.detail).toMatch(/aud/);
  });

  it('alg none (with the real kid, and without a kid)', async () => {
    for (const token of [unsignedToken(claims(), { kid: registry.oauth.currentKid }), unsignedToken(claims())]) {
      expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token }), token);
    }
  });

  it.each(['pem', 'der', 'jwk-json', 'modulus'] as const)('HS256 signed with the public key (%s)', async (encoding) => {
    const key = registry.oauth.publicKey();
    const token = await signWithPublicKeyAsHmacSecret(claims(), key.keyObject, { kid: key.kid, encoding });
    const response = await call(registry, 'GET', '/v1/webhooks', { token });
    expectInvalidToken(response, token);
    expect(response.body.detail).toMatch(/algorithm/);
  });

  it('an unknown kid', async () => {
    const token = await signForeignToken(claims());
    const response = await call(registry, 'GET', '/v1/webhooks', { token });
    expectInvalidToken(response, token);
  });

  it('the right kid, a foreign key', async () => {
    const token = await signForeignToken(claims(), { kid: registry.oauth.currentKid });
    expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token }), token);
  });

  it("an asymmetric algorithm outside the allow-list (RS512 with the provider's own key)", async () => {
    const token = await registry.oauth.mintToken('acme-integration', {}, { header: { alg: 'RS512' } });
    const response = await call(registry, 'GET', '/v1/webhooks', { token });
    expectInvalidToken(response, token);
    expect(response.body.detail).toMatch(/algorithm/);
  });

  it('a tampered payload (organization changed after signing)', async () => {
    const token = await registry.token();
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claimsSet = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claimsSet, org_id: 'globex' })).toString('base64url')}.${signature}`;
    expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token: forged }), forged);
  });

  it('a token without exp, without sub, or not yet valid', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const overrides of [{ exp: undefined }, { sub: undefined }, { nbf: now + 600 }]) {
      const token = await registry.oauth.mintToken('acme-integration', overrides);
      expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token }), token);
    }
  });

  it('a Keycloak ID token or refresh token (typ claim other than Bearer)', async () => {
    for (const typ of ['ID', 'Refresh']) {
      const token = await registry.oauth.mintToken('acme-integration', { typ });
      expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token }), token);
    }
  });

  it('a malformed organization claim', async () => {
    for (const org of [42, '', ['acme']]) {
      const token = await registry.oauth.mintToken('acme-integration', { org_id: org });
      expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token }), token);
    }
  });

  it.each(['partners-json-string', 'partners-not-uuid', 'partners-numbers', 'partners-object'])(
    'a malformed partner claim, from the token endpoint (%s)',
    async (clientId) => {
      const token = await registry.oauth.getToken(clientId);
      const response = await call(registry, 'GET', '/v1/webhooks', { token });
      expectInvalidToken(response, token);
      expect(response.body.detail).toMatch(/partner_ids claim is malformed/);
    },
  );

  it('a cached token is no longer accepted once expired', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await registry.oauth.mintToken('acme-integration', { iat: now - 10, exp: now + 2 });
    expect((await call(registry, 'GET', '/v1/webhooks', { token })).status).toBe(200);
    expect((await call(registry, 'GET', '/v1/webhooks', { token })).status).toBe(200);
    await sleep((now + 2 + 5) * 1000 + 100 - Date.now()); // past exp and the 5 s clock tolerance
    expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token }), token);
  }, 15_000);

  it('tokens never reach the logs', async () => {
    const token = await registry.token();
    await call(registry, 'GET', '/v1/webhooks', { token });
    const bad = await signForeignToken(claims());
    await call(registry, 'GET', '/v1/webhooks', { token: bad });
    const logs = registry.logs.join('\n');
    expect(logs).not.toContain(token.split('.')[2]);
    expect(logs).not.toContain(bad.split('.')[2]);
  });
});

describe('scopes and organizations: 403', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ clients: CLIENTS });
  });
  afterAll(async () => {
    await registry.close();
  });

  it('webhooks:write is needed to register, change, rotate and delete', async () => {
    const token = await registry.token('acme-reader');
    const key = { 'idempotency-key': randomUUID() };
    const id = randomUUID();
    expectInsufficientScope(await call(registry, 'POST', '/v1/webhooks', { token, body: VALID_REGISTRATION, headers: key }), 'webhooks:write');
    expectInsufficientScope(await call(registry, 'PATCH', `/v1/webhooks/${id}`, { token, body: { status: 'PAUSED' }, headers: key }), 'webhooks:write');
    expectInsufficientScope(await call(registry, 'POST', `/v1/webhooks/${id}/secret/rotate`, { token, body: {}, headers: key }), 'webhooks:write');
    expectInsufficientScope(await call(registry, 'DELETE', `/v1/webhooks/${id}`, { token, headers: key }), 'webhooks:write');
  });

  it('webhooks:read is needed to read and list', async () => {
    const token = await registry.token('acme-integration', 'webhooks:write');
    expectInsufficientScope(await call(registry, 'GET', '/v1/webhooks', { token }), 'webhooks:read');
    expectInsufficientScope(await call(registry, 'GET', `/v1/webhooks/${randomUUID()}`, { token }), 'webhooks:read');
    expectInsufficientScope(await call(registry, 'GET', '/v1/event-types', { token }), 'webhooks:read');
  });

  it('a token with no scope at all', async () => {
    const token = await registry.oauth.mintToken('acme-integration', { scope: undefined });
    expectInsufficientScope(await call(registry, 'GET', '/v1/webhooks', { token }), 'webhooks:read');
  });

  it('the scope check runs before the body is read: a reader gets 403, not 400, for a bad body', async () => {
    const token = await registry.token('acme-reader');
    const response = await call(registry, 'POST', '/v1/webhooks', { token, rawBody: '{not json', headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() } });
    expect(response.status).toBe(403);
  });

  it('webhooks:dispatch is needed for the dispatcher endpoints', async () => {
    for (const clientId of ['acme-integration', 'compliance-auditor']) {
      const token = await registry.token(clientId);
      expectInsufficientScope(
        await call(registry, 'GET', `/internal/v1/dispatch-targets?eventType=${EVENT}&partnerId=${PARTNER_A}`, { token }),
        'webhooks:dispatch',
      );
      expectInsufficientScope(
        await call(registry, 'POST', `/internal/v1/webhooks/${randomUUID()}/disable`, { token, body: { reason: 'x' } }),
        'webhooks:dispatch',
      );
    }
  });

  it('dispatcher and auditor tokens cannot use the client API', async () => {
    for (const clientId of ['dispatcher', 'compliance-auditor']) {
      const token = await registry.token(clientId);
      expectInsufficientScope(await call(registry, 'GET', '/v1/webhooks', { token }), 'webhooks:read');
      expectInsufficientScope(await register(registry, token), 'webhooks:write');
    }
  });

  it('a token without the organization claim gets 403 on every organization endpoint, whatever its scopes', async () => {
    for (const clientId of ['orgless-writer', 'orgless-all']) {
      const token = await registry.token(clientId);
      const key = { 'idempotency-key': randomUUID() };
      const id = randomUUID();
      const responses = [
        await register(registry, token),
        await call(registry, 'GET', '/v1/webhooks', { token }),
        await call(registry, 'GET', `/v1/webhooks/${id}`, { token }),
        await call(registry, 'PATCH', `/v1/webhooks/${id}`, { token, body: { status: 'PAUSED' }, headers: key }),
        await call(registry, 'DELETE', `/v1/webhooks/${id}`, { token, headers: key }),
        await call(registry, 'POST', `/v1/webhooks/${id}/secret/rotate`, { token, body: {}, headers: key }),
        await call(registry, 'GET', '/v1/event-types', { token }),
      ];
      for (const response of responses) {
        expect(response.status).toBe(403);
        expect(response.body.detail).toMatch(/organization/);
      }
    }
  });

  it('the same token minus its organization claim is refused on /v1 (mapper removed in Keycloak)', async () => {
    const token = await registry.oauth.mintToken('acme-integration', { org_id: undefined });
    const response = await register(registry, token);
    expect(response.status).toBe(403);
    expect(response.body.detail).toMatch(/organization/);
  });

  it('a token without the organization claim may use the dispatcher endpoints its scope allows', async () => {
    for (const clientId of ['dispatcher', 'orgless-all']) {
      const token = await registry.token(clientId);
      const response = await call(registry, 'GET', `/internal/v1/dispatch-targets?eventType=${EVENT}&partnerId=${PARTNER_A}`, { token });
      expect(response.status).toBe(200);
      expect(response.body).toHaveProperty('data');
    }
  });
});

describe('the partner claim: absent, empty or a single string', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ clients: CLIENTS });
  });
  afterAll(async () => {
    await registry.close();
  });

  it.each(['no-partners', 'empty-partners'])('%s: no authorized partners, so every listed partner is refused with a pointer', async (clientId) => {
    const token = await registry.token(clientId);
    const response = await register(registry, token, { ...VALID_REGISTRATION, partnerIds: [PARTNER_A, PARTNER_B] });
    expect(response.status).toBe(403);
    expect(response.body.errors).toEqual([
      { pointer: '/partnerIds/0', detail: 'is not an authorized partner of this organization' },
      { pointer: '/partnerIds/1', detail: 'is not an authorized partner of this organization' },
    ]);
  });

  it.each(['no-partners', 'empty-partners'])('%s: a webhook without partnerIds covers no partner at all', async (clientId) => {
    const token = await registry.token(clientId);
    const created = await register(registry, token, { url: VALID_REGISTRATION.url, events: [EVENT] });
    expect(created.status).toBe(201);
    expect(created.body.partnerIds).toBeUndefined();
    const dispatcher = await registry.token('dispatcher');
    const targets = await call(registry, 'GET', `/internal/v1/dispatch-targets?eventType=${EVENT}&partnerId=${PARTNER_A}`, { token: dispatcher });
    expect(targets.status).toBe(200);
    expect(targets.body.data.map((t) => t.id)).not.toContain(created.body.id);
  });

  it('a single UUID string is read as one authorized partner', async () => {
    const token = await registry.token('one-partner-string');
    expect((await register(registry, token, { ...VALID_REGISTRATION, partnerIds: [PARTNER_A] })).status).toBe(201);
    const refused = await register(registry, token, { ...VALID_REGISTRATION, partnerIds: [PARTNER_B] });
    expect(refused.status).toBe(403);
    expect(refused.body.errors).toEqual([{ pointer: '/partnerIds/0', detail: 'is not an authorized partner of this organization' }]);
  });
});

describe('signing-key rotation at the provider', () => {
  it('a token signed with the new key is accepted without a restart once the cooldown has passed; old-key tokens keep working', async () => {
    const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_COOLDOWN_MS: '200', JWKS_CACHE_MAX_AGE_MS: '600000' } });
    try {
      const oldToken = await registry.oauth.getToken('acme-integration');
      expect((await call(registry, 'GET', '/v1/webhooks', { token: oldToken })).status).toBe(200);
      const oldKid = registry.oauth.currentKid;
      const newKid = await registry.oauth.rotateKeys();
      expect(newKid).not.toBe(oldKid);
      await sleep(300);
      const newToken = await registry.oauth.getToken('acme-integration');
      expect(decodeUnverified(newToken).header.kid).toBe(newKid);
      const before = registry.oauth.jwksRequests;
      expect((await register(registry, newToken)).status).toBe(201);
      expect(registry.oauth.jwksRequests).toBe(before + 1);
      // The old key is still published: tokens it signed (even unseen ones) still pass.
      const unseenOld = await registry.oauth.mintToken('acme-integration', {}, { keyId: oldKid });
      expect((await call(registry, 'GET', '/v1/webhooks', { token: unseenOld })).status).toBe(200);
    } finally {
      await registry.close();
    }
  });

  it('requests keep succeeding while the provider rotates keys mid-traffic', async () => {
    const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_COOLDOWN_MS: '50' } });
    try {
      let rotating = true;
      const statuses: number[] = [];
      const traffic = (async () => {
        while (rotating) {
          const token = await registry.oauth.getToken('acme-integration');
          statuses.push((await call(registry, 'GET', '/v1/webhooks', { token })).status);
          await sleep(60);
        }
      })();
      for (let i = 0; i < 3; i++) {
        await sleep(150);
        await registry.oauth.rotateKeys();
      }
      await sleep(200);
      rotating = false;
      await traffic;
      expect(statuses.length).toBeGreaterThan(5);
      // A request that arrives within the cooldown of the previous fetch with a brand-new kid is
      // refused (the documented trade-off); with a 50 ms cooldown and 60 ms pacing none does.
      expect(statuses.every((s) => s === 200)).toBe(true);
    } finally {
      await registry.close();
    }
  });

  it('the trade-off: a new kid inside the cooldown after the last fetch is refused (401) until the cooldown ends', async () => {
    const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_COOLDOWN_MS: '3000' } });
    try {
      expect((await call(registry, 'GET', '/v1/webhooks', { token: await registry.oauth.getToken('acme-integration') })).status).toBe(200);
      const fetchedAt = Date.now();
      await registry.oauth.rotateKeys();
      const newToken = await registry.oauth.getToken('acme-integration');
      const before = registry.oauth.jwksRequests;
      const refused = await call(registry, 'GET', '/v1/webhooks', { token: newToken });
      expect(Date.now() - fetchedAt).toBeLessThan(3_000); // the premise: still inside the cooldown
      expectInvalidToken(refused, newToken);
      expect(refused.body.detail).toMatch(/unknown key/);
      expect(registry.oauth.jwksRequests).toBe(before); // keys were fresh: no refetch inside the cooldown
      await sleep(fetchedAt + 3_100 - Date.now());
      expect((await call(registry, 'GET', '/v1/webhooks', { token: newToken })).status).toBe(200);
      expect(registry.oauth.jwksRequests).toBe(before + 1);
    } finally {
      await registry.close();
    }
  });

  it('a key the provider stops publishing is refused once the cache age has passed', async () => {
    const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_COOLDOWN_MS: '100', JWKS_CACHE_MAX_AGE_MS: '300' } });
    try {
      const oldKid = registry.oauth.currentKid;
      expect((await call(registry, 'GET', '/v1/webhooks', { token: await registry.oauth.getToken('acme-integration') })).status).toBe(200);
      const unseenOld = await registry.oauth.mintToken('acme-integration', {}, { keyId: oldKid });
      await registry.oauth.rotateKeys();
      await registry.oauth.dropOldKeys();
      await sleep(400);
      expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token: unseenOld }), unseenOld);
      expect((await call(registry, 'GET', '/v1/webhooks', { token: await registry.oauth.getToken('acme-integration') })).status).toBe(200);
    } finally {
      await registry.close();
    }
  });
});

describe('provider outages: 503 with Retry-After, never 401', () => {
  it('nothing cached and the provider stopped', async () => {
    const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_TIMEOUT_MS: '500', JWKS_COOLDOWN_MS: '100' } });
    try {
      const token = await registry.oauth.getToken('acme-integration');
      await registry.oauth.stop();
      expectUnavailable(await call(registry, 'GET', '/v1/webhooks', { token }));
      expectUnavailable(await register(registry, token));
      // Even a forged token gets 503 here: without keys nothing can be told apart.
      expectUnavailable(await call(registry, 'GET', '/v1/webhooks', { token: await signForeignToken(registry.oauth.claimsFor('acme-integration')) }));
      await registry.oauth.restart();
      await sleep(150); // the fail-fast back-off (min(cooldown, 5 s))
      expect((await call(registry, 'GET', '/v1/webhooks', { token })).status).toBe(200);
    } finally {
      await registry.close();
    }
  });

  it.each(['garbage', 'not-jwks', 'empty', 'error', 'hang'] as const)(
    'nothing cached and the JWKS endpoint answers %s',
    async (mode) => {
      const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_TIMEOUT_MS: '300', JWKS_COOLDOWN_MS: '100' } });
      try {
        const token = await registry.oauth.getToken('acme-integration');
        registry.oauth.setJwksMode(mode);
        const started = Date.now();
        expectUnavailable(await call(registry, 'GET', '/v1/webhooks', { token }));
        expect(Date.now() - started).toBeLessThan(3_000);
        registry.oauth.setJwksMode('normal');
        await sleep(150); // back-off and cooldown
        expect((await call(registry, 'GET', '/v1/webhooks', { token })).status).toBe(200);
      } finally {
        await registry.close();
      }
    },
  );

  it('keys already cached keep working while the provider is stopped, within the cache age', async () => {
    const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_CACHE_MAX_AGE_MS: '60000', JWKS_COOLDOWN_MS: '100' } });
    try {
      expect((await call(registry, 'GET', '/v1/webhooks', { token: await registry.oauth.getToken('acme-integration') })).status).toBe(200);
      // Minted now, never seen by the registry: verified against the cached keys, not the token cache.
      const fresh = await Promise.all([1, 2, 3].map(() => registry.oauth.mintToken('acme-integration')));
      await registry.oauth.stop();
      expect((await register(registry, fresh[0]!)).status).toBe(201);
      expect((await call(registry, 'GET', '/v1/webhooks', { token: fresh[1]! })).status).toBe(200);
      // Bad tokens are still told apart from an outage while the keys are cached.
      const now = Math.floor(Date.now() / 1000);
      const expired = await registry.oauth.mintToken('acme-integration', { iat: now - 900, exp: now - 600 });
      expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token: expired }));
      await registry.oauth.restart();
      expect((await call(registry, 'GET', '/v1/webhooks', { token: fresh[2]! })).status).toBe(200);
    } finally {
      await registry.close();
    }
  });

  it('the provider stopped mid-test: after the cache age, 503 until it is back, then 200 without a restart', async () => {
    const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_CACHE_MAX_AGE_MS: '300', JWKS_COOLDOWN_MS: '100', JWKS_TIMEOUT_MS: '300' } });
    try {
      expect((await call(registry, 'GET', '/v1/webhooks', { token: await registry.oauth.getToken('acme-integration') })).status).toBe(200);
      const tokens = await Promise.all([1, 2, 3].map(() => registry.oauth.mintToken('acme-integration')));
      await registry.oauth.stop();
      await sleep(400);
      const during = await call(registry, 'GET', '/v1/webhooks', { token: tokens[0]! });
      expectUnavailable(during);
      expect(during.body.detail).toMatch(/identity provider/);
      // A second request inside the back-off is answered at once, without waiting on the provider.
      expectUnavailable(await call(registry, 'GET', '/v1/webhooks', { token: tokens[1]! }));
      await registry.oauth.restart();
      await sleep(150);
      expect((await call(registry, 'GET', '/v1/webhooks', { token: tokens[1]! })).status).toBe(200);
      expect((await call(registry, 'GET', '/v1/webhooks', { token: tokens[2]! })).status).toBe(200);
    } finally {
      await registry.close();
    }
  });

  it('an unknown kid while the provider is down is 503 (it may be a new key), and 401 once it is back and does not know it', async () => {
    const registry = await startRegistry({ clients: CLIENTS, env: { JWKS_CACHE_MAX_AGE_MS: '60000', JWKS_COOLDOWN_MS: '100' } });
    try {
      expect((await call(registry, 'GET', '/v1/webhooks', { token: await registry.oauth.getToken('acme-integration') })).status).toBe(200);
      await sleep(150);
      const unknown = await signForeignToken(registry.oauth.claimsFor('acme-integration'));
      await registry.oauth.stop();
      expectUnavailable(await call(registry, 'GET', '/v1/webhooks', { token: unknown }));
      await registry.oauth.restart();
      await sleep(150);
      expectInvalidToken(await call(registry, 'GET', '/v1/webhooks', { token: unknown }), unknown);
    } finally {
      await registry.close();
    }
  });
});
