// Authentication through the real jose path: every bad token is a 401 with
// WWW-Authenticate error="invalid_token", and a control token built the same
// way but correctly is accepted (so each refusal is for the reason tested).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  signForeignToken,
  signWithPublicKeyAsHmacSecret,
  unsignedToken,
  type PublicKeyEncoding,
} from '../support/tokens.ts';
import { startRegistry, VALID_REGISTRATION, type TestRegistry, type TestResponse } from '../support/registry.ts';

/** Typed asymmetric matcher (expect.any returns `any`). */
const anyString: unknown = expect.any(String);

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe('access tokens', () => {
  let registry: TestRegistry;

  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry.close();
  });

  const register = (authorization: string | undefined) =>
    registry.request('POST', '/v1/webhooks', {
      body: { ...VALID_REGISTRATION, url: `https://hooks.example.com/${randomUUID()}` },
      headers: {
        'idempotency-key': randomUUID(),
        ...(authorization === undefined ? {} : { authorization }),
      },
    });

  const claims = () => registry.oauth.claimsFor('acme-integration');

  /** 401, problem+json, WWW-Authenticate Bearer with error="invalid_token", never echoing the token. */
  function expectInvalidToken(res: TestResponse<unknown>, token?: string): Problem {
    expect(res.status, res.text).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const challenge = res.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain('error="invalid_token"');
    const problem = JSON.parse(res.text) as Problem;
    expect(problem).toMatchObject({ type: anyString, title: anyString, status: 401, detail: anyString });
    if (token !== undefined) {
      expect(res.text).not.toContain(token);
      expect(challenge).not.toContain(token);
      for (const line of registry.logs) expect(line).not.toContain(token);
    }
    return problem;
  }

  it('control: a token from the IdP, and one minted with its key, are accepted', async () => {
    const issued = await registry.token();
    expect((await register(`Bearer ${issued}`)).status).toBe(201);
    const minted = await registry.oauth.mintToken('acme-integration');
    expect((await register(`Bearer ${minted}`)).status).toBe(201);
  });

  it('missing Authorization header → 401', async () => {
    expectInvalidToken(await register(undefined));
  });

  it.each([
    ['empty', ''],
    ['scheme only', 'Bearer'],
    ['scheme and space', 'Bearer '],
    ['Basic credentials', `Basic ${Buffer.from('acme-integration:acme-secret').toString('base64')}`],
    ['not a JWT', 'Bearer not-a-jwt'],
    ['two segments', 'Bearer aaa.bbb'],
    ['garbage segments', 'Bearer aaa.bbb.ccc'],
  ])('malformed Authorization (%s) → 401', async (_label, header) => {
    expectInvalidToken(await register(header));
  });

  it('expired → 401', async () => {
    const now = nowSeconds();
    const token = await registry.oauth.mintToken('acme-integration', { iat: now - 900, exp: now - 600 });
    const problem = expectInvalidToken(await register(`Bearer ${token}`), token);
    expect(problem.detail).toMatch(/expired/);
  });

  it('not yet valid (nbf in the future) → 401', async () => {
    const token = await registry.oauth.mintToken('acme-integration', { nbf: nowSeconds() + 600 });
    expectInvalidToken(await register(`Bearer ${token}`), token);
  });

  it('without exp → 401', async () => {
    const token = await registry.oauth.mintToken('acme-integration', { exp: undefined });
    expectInvalidToken(await register(`Bearer ${token}`), token);
  });

  it('wrong issuer: signed by another realm’s key with that realm’s iss → 401', async () => {
    const otherRealm = registry.oauth.issuer.replace(/nt24-idp$/, 'other-realm');
    expect(otherRealm).not.toBe(registry.oauth.issuer);
    const token = await signForeignToken({ ...claims(), iss: otherRealm });
    expectInvalidToken(await register(`Bearer ${token}`), token);
  });

  it('wrong issuer even with the right key → 401', async () => {
    const token = await registry.oauth.mintToken('acme-integration', { iss: registry.oauth.issuer.replace(/nt24-idp$/, 'other-realm') });
    const problem = expectInvalidToken(await register(`Bearer ${token}`), token);
    expect(problem.detail).toMatch(/iss/);
  });

  it('wrong audience (a real token the IdP issued for another API) → 401', async () => {
    const token = await registry.oauth.getToken('acme-integration', { audience: 'some-other-api' });
    const problem = expectInvalidToken(await register(`Bearer ${token}`), token);
    expect(problem.detail).toMatch(/aud/);
  });

  it('no audience → 401', async () => {
    const token = await registry.oauth.mintToken('acme-integration', { aud: undefined });
    expectInvalidToken(await register(`Bearer ${token}`), token);
  });

  it('unsigned alg "none" → 401 (also with the IdP’s real kid)', async () => {
    for (const header of [{}, { kid: registry.oauth.currentKid }]) {
      const token = unsignedToken(claims(), header);
      expectInvalidToken(await register(`Bearer ${token}`), token);
    }
  });

  it('signed by an unknown key → 401', async () => {
    const token = await signForeignToken(claims());
    const problem = expectInvalidToken(await register(`Bearer ${token}`), token);
    expect(problem.detail).toMatch(/unknown key|not valid/);
  });

  it('signed by an unknown key under the IdP’s kid → 401', async () => {
    const token = await signForeignToken(claims(), { kid: registry.oauth.currentKid });
    expectInvalidToken(await register(`Bearer ${token}`), token);
  });

  it.each(['ES256', 'EdDSA'] as const)('signed by an unknown %s key → 401', async (alg) => {
    const token = await signForeignToken(claims(), { alg });
    expectInvalidToken(await register(`Bearer ${token}`), token);
  });

  it.each(['pem', 'der', 'jwk-json', 'modulus'] as PublicKeyEncoding[])(
    'HS256 signed with the IdP’s public key (%s) → 401',
    async (encoding) => {
      const token = await signWithPublicKeyAsHmacSecret(claims(), registry.oauth.publicKey().keyObject, {
        encoding,
        kid: registry.oauth.currentKid,
      });
      expectInvalidToken(await register(`Bearer ${token}`), token);
    },
  );

  it('a valid token with a tampered payload → 401', async () => {
    const token = await registry.oauth.mintToken('acme-integration');
    const [h, , s] = token.split('.');
    const payload = Buffer.from(JSON.stringify({ ...claims(), org_id: 'globex' })).toString('base64url');
    const forged = `${h}.${payload}.${s}`;
    expectInvalidToken(await register(`Bearer ${forged}`), forged);
  });

  it('a 401 records nothing and GET is protected too', async () => {
    const key = randomUUID();
    const res = await registry.request('POST', '/v1/webhooks', {
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': key, authorization: 'Bearer nope' },
    });
    expectInvalidToken(res);
    expectInvalidToken(await registry.request('GET', `/v1/webhooks/${randomUUID()}`));
    expectInvalidToken(await registry.request('GET', '/v1/webhooks', { token: 'nope' }));
    const ok = await registry.request('POST', '/v1/webhooks', { token: await registry.token(), body: VALID_REGISTRATION, headers: { 'idempotency-key': key } });
    expect(ok.status).toBe(201);
    expect(ok.headers.get('idempotent-replayed')).toBeNull();
  });

  it('a valid token lacking the scope → 403 insufficient_scope, not 401', async () => {
    const reader = await registry.token('acme-reader');
    const res = await register(`Bearer ${reader}`);
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('www-authenticate') ?? '').toContain('insufficient_scope');
  });
});
