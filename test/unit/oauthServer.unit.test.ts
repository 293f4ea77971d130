// Proves the in-process Keycloak stand-in (test/support/oauthServer.ts) issues
// real, verifiable tokens and that its failure knobs actually fail.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import {
  decodeUnverified,
  signForeignToken,
  signWithPublicKeyAsHmacSecret,
  startOAuthServer,
  unsignedToken,
  type OAuthServer,
} from '../support/oauthServer.ts';

const PARTNER = '3c90c3cc-0d44-4b50-8888-8dd25736052a';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let idp: OAuthServer;

beforeAll(async () => {
  idp = await startOAuthServer({
    clients: [
      {
        clientId: 'acme-integration',
        clientSecret: 'acme-secret',
        orgId: 'acme',
        partnerIds: [PARTNER],
        scopes: ['webhooks:read', 'webhooks:write'],
      },
      { clientId: 'dispatcher', clientSecret: 'dispatcher-secret', scopes: ['webhooks:dispatch'], authMethod: 'client_secret_post' },
      { clientId: 'malformed', clientSecret: 'm', orgId: 'acme', partnerIds: 'not-an-array', scopes: ['webhooks:read'] },
    ],
  });
});

afterAll(async () => {
  await idp.stop();
});

async function verify(token: string, jwksUrl = idp.jwksUrl): Promise<JWTPayload> {
  const jwks = createRemoteJWKSet(new URL(jwksUrl), { timeoutDuration: 500, cooldownDuration: 0 });
  const { payload } = await jwtVerify(token, jwks, {
    issuer: idp.issuer,
    audience: 'webhook-registry',
    algorithms: ['RS256'],
  });
  return payload;
}

describe('oauthServer harness', () => {
  it('serves Keycloak-shaped URLs and discovery', async () => {
    expect(idp.issuer).toBe(`http://127.0.0.1:${idp.port}/realms/nt24-idp`);
    expect(idp.jwksUrl).toBe(`${idp.issuer}/protocol/openid-connect/certs`);
    expect(idp.tokenEndpoint).toBe(`${idp.issuer}/protocol/openid-connect/token`);

    const discovery = (await (await fetch(idp.discoveryUrl)).json()) as Record<string, unknown>;
    expect(discovery.issuer).toBe(idp.issuer);
    expect(discovery.jwks_uri).toBe(idp.jwksUrl);
    expect(discovery.token_endpoint).toBe(idp.tokenEndpoint);
  });

  it('issues client_credentials tokens that verify against the remote JWKS', async () => {
    const token = await idp.getToken('acme-integration');
    const header = decodeProtectedHeader(token);
    expect(header).toMatchObject({ alg: 'RS256', kid: idp.currentKid });

    const claims = await verify(token);
    expect(claims.iss).toBe(idp.issuer);
    expect(claims.aud).toBe('webhook-registry');
    expect(claims.azp).toBe('acme-integration');
    expect(claims.sub).toMatch(UUID);
    expect(claims.sub).toBe(idp.subjectFor('acme-integration'));
    expect(claims.preferred_username).toBe('service-account-acme-integration');
    expect(claims.scope).toBe('webhooks:read webhooks:write');
    expect(claims.org_id).toBe('acme');
    expect(claims.partner_ids).toEqual([PARTNER]);
    expect(claims.exp! - claims.iat!).toBe(300);
  });

  it('narrows scope on request and rejects scopes the client does not hold', async () => {
    const claims = await verify(await idp.getToken('acme-integration', { scope: 'webhooks:read' }));
    expect(claims.scope).toBe('webhooks:read');

    const denied = await idp.requestToken('acme-integration', { scope: 'webhooks:audit' });
    expect(denied.status).toBe(400);
    expect(denied.body.error).toBe('invalid_scope');

    const badSecret = await idp.requestToken('acme-integration', { clientSecret: 'wrong' });
    expect(badSecret.status).toBe(401);
    expect(badSecret.body.error).toBe('invalid_client');
  });

  it('omits the org claim for service clients and passes malformed partner claims through', async () => {
    const dispatcher = await verify(await idp.getToken('dispatcher'));
    expect(dispatcher.scope).toBe('webhooks:dispatch');
    expect(dispatcher).not.toHaveProperty('org_id');
    expect(dispatcher).not.toHaveProperty('partner_ids');

    const malformed = await verify(await idp.getToken('malformed'));
    expect(malformed.partner_ids).toBe('not-an-array');
  });

  it('can issue a token for another audience, which fails audience checks', async () => {
    const token = await idp.getToken('acme-integration', { audience: 'some-other-api' });
    expect(decodeUnverified(token).payload.aud).toBe('some-other-api');
    await expect(verify(token)).rejects.toBeInstanceOf(errors.JWTClaimValidationFailed);
  });

  it('rotates keys: new kid signs, old kid stays published', async () => {
    const before = await idp.getToken('acme-integration');
    const oldKid = idp.currentKid;
    const newKid = await idp.rotateKeys();
    expect(newKid).not.toBe(oldKid);
    expect(idp.publishedKids).toEqual([newKid, oldKid]);

    const after = await idp.getToken('acme-integration');
    expect(decodeProtectedHeader(after).kid).toBe(newKid);
    await expect(verify(after)).resolves.toMatchObject({ azp: 'acme-integration' });
    await expect(verify(before)).resolves.toMatchObject({ azp: 'acme-integration' });

    await idp.dropOldKeys();
    expect(idp.publishedKids).toEqual([newKid]);
    await expect(verify(before)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    await expect(verify(after)).resolves.toMatchObject({ azp: 'acme-integration' });
  });

  it('signs arbitrary claims with the real key (expired token is rejected only for exp)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await idp.mintToken('acme-integration', { iat: now - 600, exp: now - 300 });
    expect(decodeProtectedHeader(expired).kid).toBe(idp.currentKid);
    await expect(verify(expired)).rejects.toBeInstanceOf(errors.JWTExpired);

    const fresh = await idp.mintToken('acme-integration');
    await expect(verify(fresh)).resolves.toMatchObject({ org_id: 'acme', partner_ids: [PARTNER] });
  });

  it('builds hostile tokens that a correct verifier rejects', async () => {
    const claims = idp.claimsFor('acme-integration');
    const foreign = await signForeignToken(claims);
    await expect(verify(foreign)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    const sameKid = await signForeignToken(claims, { kid: idp.currentKid });
    await expect(verify(sameKid)).rejects.toBeInstanceOf(errors.JWSSignatureVerificationFailed);

    const none = unsignedToken(claims, { kid: idp.currentKid });
    expect(none.endsWith('.')).toBe(true);
    await expect(verify(none)).rejects.toThrow();

    const confused = await signWithPublicKeyAsHmacSecret(claims, idp.publicKey().keyObject, { kid: idp.currentKid });
    expect(decodeProtectedHeader(confused).alg).toBe('HS256');
    await expect(verify(confused)).rejects.toBeInstanceOf(errors.JOSEAlgNotAllowed);
  });

  it('JWKS modes: garbage and not-jwks answer 200 with non-JWKS bodies, hang never answers', async () => {
    try {
      idp.setJwksMode('garbage');
      const garbage = await fetch(idp.jwksUrl);
      expect(garbage.status).toBe(200);
      const text = await garbage.text();
      expect(() => JSON.parse(text) as unknown).toThrow();
      await expect(verify(await idp.getToken('acme-integration'))).rejects.toThrow();

      idp.setJwksMode('not-jwks');
      const body = (await (await fetch(idp.jwksUrl)).json()) as Record<string, unknown>;
      expect(() => createLocalJWKSet(body as never)).toThrow();
      await expect(verify(await idp.getToken('acme-integration'))).rejects.toBeInstanceOf(errors.JWKSInvalid);

      idp.setJwksMode('hang');
      const hung = fetch(idp.jwksUrl, { signal: AbortSignal.timeout(200) });
      await expect(hung).rejects.toThrow();
      await expect(verify(await idp.getToken('acme-integration'))).rejects.toBeInstanceOf(errors.JWKSTimeout);
    } finally {
      idp.setJwksMode('normal');
    }
    await expect(verify(await idp.getToken('acme-integration'))).resolves.toBeTruthy();
  });

  it('stop() refuses connections; restart() comes back on the same port with the same keys', async () => {
    const token = await idp.getToken('acme-integration');
    const { port } = idp;
    const kid = idp.currentKid;

    await idp.stop();
    expect(idp.running).toBe(false);
    const refused = await fetch(idp.jwksUrl).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(TypeError);
    expect(((refused as TypeError).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    await expect(verify(token)).rejects.toThrow();

    await idp.restart();
    expect(idp.port).toBe(port);
    expect(idp.currentKid).toBe(kid);
    await expect(verify(token)).resolves.toMatchObject({ azp: 'acme-integration' });
  });

  it('can start on a fixed port', async () => {
    const probe = await startOAuthServer();
    const { port } = probe;
    await probe.stop();
    const fixed = await startOAuthServer({ port, audience: 'other', orgClaim: 'tenant', partnersClaim: 'partners', tokenTtlSeconds: 60, clients: [{ clientId: 'c', clientSecret: 's', orgId: 'o', partnerIds: [], scopes: ['webhooks:audit'] }] });
    try {
      expect(fixed.issuer).toBe(`http://127.0.0.1:${port}/realms/nt24-idp`);
      const claims = decodeUnverified(await fixed.getToken('c')).payload;
      expect(claims).toMatchObject({ aud: 'other', tenant: 'o', partners: [], scope: 'webhooks:audit', azp: 'c' });
      expect((claims.exp as number) - (claims.iat as number)).toBe(60);
    } finally {
      await fixed.stop();
    }
  });
});
