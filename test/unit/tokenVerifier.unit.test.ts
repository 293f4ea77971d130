// TokenVerifier and the remote key source, with a controllable clock: what is
// a bad token (401), what is an outage (503), and the cache of verified tokens
// that must never outlive a token's `exp`.
import { createPublicKey, randomUUID, type JsonWebKey } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createLocalJWKSet,
  errors,
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { IdentityProviderUnavailableError, InvalidTokenError, type Principal } from '../../src/identity/principal.ts';
import { createRemoteKeys } from '../../src/identity/remoteKeys.ts';
import { TokenVerifier, type TokenVerifierOptions } from '../../src/identity/tokenVerifier.ts';
import {
  signForeignToken,
  signWithPublicKeyAsHmacSecret,
  startOAuthServer,
  unsignedToken,
  type OAuthServer,
} from '../support/oauthServer.ts';

const ISSUER = 'https://keycloak.example/realms/nt24-idp';
const AUDIENCE = 'webhook-registry';
const PARTNER = '3c90c3cc-0d44-4b50-8888-8dd25736052a';
const T0 = 1_767_225_600; // a fixed "now", epoch seconds

let privateKey: CryptoKey;
let publicJwk: JWK;
const KID = 'realm-key-1';

beforeAll(async () => {
  const pair = await generateKeyPair('RS256', { extractable: true });
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
});

/** Keycloak-shaped service-account claims, issued at `iat` for `ttl` seconds. */
function claims(overrides: Record<string, unknown> = {}, iat = T0, ttl = 300): JWTPayload {
  const base: Record<string, unknown> = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: randomUUID(),
    azp: 'acme-integration',
    typ: 'Bearer',
    scope: 'webhooks:read webhooks:write',
    org_id: 'acme',
    partner_ids: [PARTNER],
    iat,
    exp: iat + ttl,
    jti: randomUUID(),
    ...overrides,
  };
  for (const [k, v] of Object.entries(base)) if (v === undefined) delete base[k];
  return base;
}

function sign(payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: KID, ...header }).sign(privateKey);
}

interface Harness {
  verifier: TokenVerifier;
  clock: { now: number };
  /** How many times the key resolver was asked (i.e. full verifications). */
  resolutions: () => number;
  hits: () => number;
}

function harness(options: Partial<TokenVerifierOptions> = {}): Harness {
  const clock = { now: T0 };
  let resolutions = 0;
  let hits = 0;
  const local = createLocalJWKSet({ keys: [publicJwk] });
  const keys: JWTVerifyGetKey = (header, token) => {
    resolutions += 1;
    return local(header, token);
  };
  const verifier = new TokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ['RS256'],
    keys,
    orgClaim: 'org_id',
    partnersClaim: 'partner_ids',
    cacheSize: 100,
    now: () => clock.now,
    onCacheHit: () => {
      hits += 1;
    },
    ...options,
  });
  return { verifier, clock, resolutions: () => resolutions, hits: () => hits };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('the cache of verified tokens', () => {
  it('given a verified token, when it is presented again before exp, then it is served from the cache', async () => {
    const h = harness();
    const token = await sign(claims());
    const first = await h.verifier.verify(token);
    h.clock.now = T0 + 299;
    const second = await h.verifier.verify(token);
    expect(second).toBe(first);
    expect(h.resolutions()).toBe(1);
    expect(h.hits()).toBe(1);
  });

  it('never returns a cached principal at or past exp', async () => {
    const h = harness({ clockToleranceSeconds: 0 });
    const token = await sign(claims());
    await h.verifier.verify(token);
    h.clock.now = T0 + 300; // exactly exp
    expect(await rejection(h.verifier.verify(token))).toBeInstanceOf(InvalidTokenError);
    expect(h.hits()).toBe(0);
    h.clock.now = T0 + 10_000;
    expect(await rejection(h.verifier.verify(token))).toBeInstanceOf(InvalidTokenError);
    expect(h.hits()).toBe(0);
  });

  it('with a clock tolerance, re-verifies at exp instead of answering from the cache, and never caches a token past exp', async () => {
    const h = harness({ clockToleranceSeconds: 5 });
    const token = await sign(claims());
    await h.verifier.verify(token);
    h.clock.now = T0 + 300.001; // past exp, within the 5 s tolerance: jose still accepts it
    await h.verifier.verify(token);
    await h.verifier.verify(token);
    expect(h.hits()).toBe(0);
    expect(h.resolutions()).toBe(3);
    h.clock.now = T0 + 306; // past the tolerance
    expect(await rejection(h.verifier.verify(token))).toBeInstanceOf(InvalidTokenError);
  });

  it('a token accepted past its exp (within the tolerance) does not take a cache slot from a valid one', async () => {
    const h = harness({ cacheSize: 1, clockToleranceSeconds: 5 });
    h.clock.now = T0 + 1;
    const valid = await sign(claims({}, T0, 600));
    const lapsed = await sign(claims({}, T0 - 299, 299)); // exp = T0, one second ago
    await h.verifier.verify(valid);
    await h.verifier.verify(lapsed);
    await h.verifier.verify(valid);
    expect(h.hits()).toBe(1);
  });

  it('is bounded: the oldest entry is dropped when full', async () => {
    const h = harness({ cacheSize: 2 });
    const [a, b, c] = await Promise.all([sign(claims()), sign(claims()), sign(claims())]);
    for (const t of [a, b, c]) await h.verifier.verify(t);
    expect(h.resolutions()).toBe(3);
    await h.verifier.verify(c);
    await h.verifier.verify(b);
    expect(h.hits()).toBe(2);
    await h.verifier.verify(a); // evicted: verified again
    expect(h.resolutions()).toBe(4);
    const cache = (h.verifier as unknown as { cache: Map<string, Principal> }).cache;
    expect(cache.size).toBe(2);
  });

  it('is keyed by a hash of the whole token: a token with the same claims but a forged signature is not a hit', async () => {
    const h = harness();
    const token = await sign(claims());
    await h.verifier.verify(token);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const forged = `${header}.${payload}.${signature.slice(0, -4)}${signature.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    expect(await rejection(h.verifier.verify(forged))).toBeInstanceOf(InvalidTokenError);
    const cache = (h.verifier as unknown as { cache: Map<string, Principal> }).cache;
    for (const key of cache.keys()) {
      expect(key).not.toContain(payload);
      expect(key).toMatch(/^[A-Za-z0-9+/]{43}=$/); // base64 SHA-256
    }
  });

  it('is off with cacheSize 0', async () => {
    const h = harness({ cacheSize: 0 });
    const token = await sign(claims());
    await h.verifier.verify(token);
    await h.verifier.verify(token);
    expect(h.resolutions()).toBe(2);
    expect(h.hits()).toBe(0);
  });
});

describe('the principal', () => {
  it('carries organization, partners (lowercase, deduplicated), scopes, actor and expiry', async () => {
    const h = harness();
    const sub = randomUUID();
    const p = await h.verifier.verify(await sign(claims({ sub, partner_ids: [PARTNER.toUpperCase(), PARTNER] })));
    expect(p).toEqual({
      organizationId: 'acme',
      partnerIds: [PARTNER],
      scopes: new Set(['webhooks:read', 'webhooks:write']),
      clientId: 'acme-integration',
      subject: sub,
      expiresAt: T0 + 300,
    });
  });

  it('accepts aud as an array that contains the audience (Keycloak with several audiences)', async () => {
    const h = harness();
    await expect(h.verifier.verify(await sign(claims({ aud: ['account', AUDIENCE] })))).resolves.toBeDefined();
  });

  it('has no organization and no partners when the claims are absent (dispatchers, auditors)', async () => {
    const h = harness();
    const p = await h.verifier.verify(await sign(claims({ org_id: undefined, partner_ids: undefined, scope: 'webhooks:dispatch' })));
    expect(p.organizationId).toBeNull();
    expect(p.partnerIds).toEqual([]);
  });

  it('reads an empty partner list as no partners, and a single UUID string as one partner', async () => {
    const h = harness();
    expect((await h.verifier.verify(await sign(claims({ partner_ids: [] })))).partnerIds).toEqual([]);
    expect((await h.verifier.verify(await sign(claims({ partner_ids: PARTNER })))).partnerIds).toEqual([PARTNER]);
  });
});

describe('bad tokens are InvalidTokenError (401)', () => {
  let h: Harness;
  beforeEach(() => {
    h = harness();
  });

  const cases: [string, () => Promise<string>][] = [
    ['expired', () => sign(claims({}, T0 - 600))],
    ['not yet valid (nbf in the future)', () => sign(claims({ nbf: T0 + 120 }))],
    ['another issuer', () => sign(claims({ iss: 'https://keycloak.example/realms/other' }))],
    ['the issuer with a trailing slash', () => sign(claims({ iss: `${ISSUER}/` }))],
    ['another audience', () => sign(claims({ aud: 'account' }))],
    ['no audience', () => sign(claims({ aud: undefined }))],
    ['no exp', () => sign(claims({ exp: undefined }))],
    ['no sub', () => sign(claims({ sub: undefined }))],
    ['a Keycloak ID token (typ ID)', () => sign(claims({ typ: 'ID' }))],
    ['a Keycloak refresh token (typ Refresh)', () => sign(claims({ typ: 'Refresh' }))],
    ['alg none', () => Promise.resolve(unsignedToken(claims(), { kid: KID }))],
    ['HS256 keyed with the public key (PEM)', () => hmacWithPublicKey('pem')],
    ['HS256 keyed with the public key (DER)', () => hmacWithPublicKey('der')],
    ['HS256 keyed with the public key (JWK JSON)', () => hmacWithPublicKey('jwk-json')],
    ['an unknown kid', () => signForeignToken(claims())],
    ['the right kid, the wrong key', () => signForeignToken(claims(), { kid: KID })],
    ['an algorithm outside the allow-list (ES256)', () => signForeignToken(claims(), { alg: 'ES256', kid: KID })],
    ['a tampered payload', () => tamper(claims())],
    ['not a JWT', () => Promise.resolve('not-a-jwt')],
    ['an organization claim that is not a string', () => sign(claims({ org_id: 42 }))],
    ['an empty organization claim', () => sign(claims({ org_id: '' }))],
    ['a partner claim that is a JSON string, not an array', () => sign(claims({ partner_ids: JSON.stringify([PARTNER]) }))],
    ['a partner claim with a non-UUID', () => sign(claims({ partner_ids: [PARTNER, 'partner-2'] }))],
    ['a partner claim with a number', () => sign(claims({ partner_ids: [42] }))],
    ['a partner claim that is an object', () => sign(claims({ partner_ids: { id: PARTNER } }))],
    ['a scope claim that is not a string', () => sign(claims({ scope: ['webhooks:read'] }))],
  ];

  it.each(cases)('%s', async (_name, make) => {
    const error = await rejection(h.verifier.verify(await make()));
    expect(error).toBeInstanceOf(InvalidTokenError);
  });

  async function hmacWithPublicKey(encoding: 'pem' | 'der' | 'jwk-json'): Promise<string> {
    const keyObject = createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' });
    return signWithPublicKeyAsHmacSecret(claims(), keyObject, { kid: KID, encoding });
  }

  async function tamper(payload: JWTPayload): Promise<string> {
    const token = await sign(payload);
    const [header, , signature] = token.split('.') as [string, string, string];
    const changed = Buffer.from(JSON.stringify({ ...payload, org_id: 'globex' })).toString('base64url');
    return `${header}.${changed}.${signature}`;
  }
});

describe('a key resolver that fails is an outage (503), unless the token caused it', () => {
  const failing = (error: Error): Partial<TokenVerifierOptions> => ({ keys: () => Promise.reject(error) });

  it.each([
    ['a network error', new TypeError('fetch failed')],
    ['a timeout', new errors.JWKSTimeout()],
    ['a non-200 answer or JSON that does not parse', new errors.JOSEError('Expected 200 OK from the JSON Web Key Set HTTP response')],
    ['a body that is not a JWK Set', new errors.JWKSInvalid('JSON Web Key Set malformed')],
    ['unusable key material in the set', new errors.JWKInvalid('bad key')],
  ])('%s → IdentityProviderUnavailableError', async (_name, cause) => {
    const h = harness(failing(cause));
    const error = await rejection(h.verifier.verify(await sign(claims())));
    expect(error).toBeInstanceOf(IdentityProviderUnavailableError);
    expect((error as IdentityProviderUnavailableError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect((error as Error).cause).toBe(cause);
  });

  it('no matching key in a usable set → InvalidTokenError', async () => {
    const h = harness(failing(new errors.JWKSNoMatchingKey()));
    expect(await rejection(h.verifier.verify(await sign(claims())))).toBeInstanceOf(InvalidTokenError);
  });

  it('never caches a failure: the same token passes once the keys are back', async () => {
    let down = true;
    const local = createLocalJWKSet({ keys: [publicJwk] });
    const h = harness({ keys: (header, token) => (down ? Promise.reject(new TypeError('fetch failed')) : local(header, token)) });
    const token = await sign(claims());
    expect(await rejection(h.verifier.verify(token))).toBeInstanceOf(IdentityProviderUnavailableError);
    down = false;
    await expect(h.verifier.verify(token)).resolves.toMatchObject({ organizationId: 'acme' });
  });
});

describe('createRemoteKeys against a running provider', () => {
  let idp: OAuthServer;
  beforeAll(async () => {
    idp = await startOAuthServer({
      clients: [{ clientId: 'acme-integration', clientSecret: 's', orgId: 'acme', partnerIds: [PARTNER], scopes: ['webhooks:read'] }],
    });
  });
  afterAll(async () => {
    await idp.stop();
  });
  beforeEach(async () => {
    idp.setJwksMode('normal');
    await idp.restart();
  });

  function verifierFor(opts: { cooldownMs?: number; cacheMaxAgeMs?: number; timeoutMs?: number; backoffMs?: number; clock?: { now: number } }) {
    const keys = createRemoteKeys({
      url: new URL(idp.jwksUrl),
      timeoutMs: opts.timeoutMs ?? 1_000,
      cooldownMs: opts.cooldownMs ?? 30_000,
      cacheMaxAgeMs: opts.cacheMaxAgeMs ?? 600_000,
      algorithms: ['RS256'],
      ...(opts.backoffMs !== undefined ? { failureBackoffMs: opts.backoffMs } : {}),
      ...(opts.clock ? { now: () => opts.clock!.now } : {}),
    });
    const verifier = new TokenVerifier({
      issuer: idp.issuer,
      audience: idp.audience,
      algorithms: ['RS256'],
      keys,
      orgClaim: 'org_id',
      partnersClaim: 'partner_ids',
      cacheSize: 0,
    });
    return { verifier, keys };
  }

  it.each(['garbage', 'not-jwks', 'error', 'empty'] as const)('a JWKS answer in mode %s with nothing cached → 503', async (mode) => {
    const { verifier } = verifierFor({});
    idp.setJwksMode(mode);
    const error = await rejection(verifier.verify(await idp.mintToken('acme-integration')));
    expect(error).toBeInstanceOf(IdentityProviderUnavailableError);
  });

  it('a provider that never answers → 503 after the timeout', async () => {
    const { verifier } = verifierFor({ timeoutMs: 200 });
    idp.setJwksMode('hang');
    const started = Date.now();
    const error = await rejection(verifier.verify(await idp.mintToken('acme-integration')));
    expect(error).toBeInstanceOf(IdentityProviderUnavailableError);
    expect(((error as Error).cause as Error).name).toBe('JWKSTimeout');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('after a failed fetch, calls that need the provider fail fast until the back-off ends, then it is asked again', async () => {
    const clock = { now: 1_000_000 };
    const { verifier } = verifierFor({ backoffMs: 3_000, clock });
    const token = await idp.mintToken('acme-integration');
    idp.setJwksMode('error');
    const before = idp.jwksRequests;
    const first = await rejection(verifier.verify(token));
    expect(first).toBeInstanceOf(IdentityProviderUnavailableError);
    expect((first as IdentityProviderUnavailableError).retryAfterSeconds).toBe(3);
    expect(idp.jwksRequests).toBe(before + 1);

    clock.now += 1_200;
    idp.setJwksMode('normal');
    const second = await rejection(verifier.verify(token));
    expect(second).toBeInstanceOf(IdentityProviderUnavailableError);
    expect((second as IdentityProviderUnavailableError).retryAfterSeconds).toBe(2); // ceil(1.8)
    expect(idp.jwksRequests).toBe(before + 1); // the provider was not asked

    clock.now += 1_900;
    await expect(verifier.verify(token)).resolves.toMatchObject({ organizationId: 'acme' });
    expect(idp.jwksRequests).toBe(before + 2);
  });

  it('an unknown kid inside the cooldown is refused (401) from the fresh cache without a fetch', async () => {
    const { verifier } = verifierFor({ cooldownMs: 60_000 });
    await verifier.verify(await idp.mintToken('acme-integration'));
    const before = idp.jwksRequests;
    const error = await rejection(verifier.verify(await signForeignToken(idp.claimsFor('acme-integration'))));
    expect(error).toBeInstanceOf(InvalidTokenError);
    expect(idp.jwksRequests).toBe(before);
  });

  it('an unknown kid after the cooldown triggers one refetch, which picks up a rotated key', async () => {
    const { verifier } = verifierFor({ cooldownMs: 100 });
    await verifier.verify(await idp.mintToken('acme-integration'));
    await idp.rotateKeys();
    await new Promise((r) => setTimeout(r, 150));
    const before = idp.jwksRequests;
    await expect(verifier.verify(await idp.getToken('acme-integration'))).resolves.toMatchObject({ organizationId: 'acme' });
    expect(idp.jwksRequests).toBe(before + 1);
  });

  it('an unknown kid while the provider is down → 503, not 401 (the key may be new)', async () => {
    const { verifier } = verifierFor({ cooldownMs: 100 });
    await verifier.verify(await idp.mintToken('acme-integration'));
    await new Promise((r) => setTimeout(r, 150));
    await idp.stop();
    const error = await rejection(verifier.verify(await signForeignToken(idp.claimsFor('acme-integration'))));
    expect(error).toBeInstanceOf(IdentityProviderUnavailableError);
  });

  it('keys in a fresh cache keep verifying while the provider is stopped', async () => {
    const { verifier } = verifierFor({ cacheMaxAgeMs: 60_000 });
    await verifier.verify(await idp.mintToken('acme-integration'));
    const later = await idp.mintToken('acme-integration');
    await idp.stop();
    await expect(verifier.verify(later)).resolves.toMatchObject({ organizationId: 'acme' });
  });

  it('keys past the cache age are refetched, and a stopped provider then means 503', async () => {
    const { verifier } = verifierFor({ cacheMaxAgeMs: 100, cooldownMs: 50 });
    await verifier.verify(await idp.mintToken('acme-integration'));
    await new Promise((r) => setTimeout(r, 150));
    await idp.stop();
    expect(await rejection(verifier.verify(await idp.mintToken('acme-integration')))).toBeInstanceOf(
      IdentityProviderUnavailableError,
    );
  });
});
