// /console/config.json with an identity provider configured (OIDC_ISSUER):
// the console signs in at that issuer as the public client webhook-console,
// asks for every webhook scope (the realm grants only what the user's roles
// allow), reads the organization from the configured claim, and its pages
// may connect to the issuer's origin and to nothing else but their own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_SCOPE } from '../../src/http/console.ts';
import { CONSOLE_CLIENT_ID } from '../../src/http/devSignIn.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';

let registry: TestRegistry;

beforeAll(async () => {
  registry = await startRegistry({ env: { ORG_CLAIM: 'tenant_id' } });
});

afterAll(async () => {
  await registry.close();
});

describe('the console configuration with Keycloak', () => {
  it('names the issuer, the public client, the scopes and the organization claim', async () => {
    const response = await fetch(`${registry.url}/console/config.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual({
      clientId: CONSOLE_CLIENT_ID,
      authority: registry.oauth.issuer,
      scope: CONSOLE_SCOPE,
      orgClaim: 'tenant_id',
      development: false,
    });
    expect(CONSOLE_SCOPE.split(' ')).toEqual(['openid', 'profile', 'webhooks:read', 'webhooks:write', 'webhooks:audit']);
    const policy = response.headers.get('content-security-policy') ?? '';
    expect(policy.split('; ')).toContain(`connect-src 'self' ${registry.oauth.origin}`);
  });

  it('offers no development sign-in', async () => {
    const response = await fetch(`${registry.url}/dev/sign-in/metadata`);
    expect(response.status).toBe(404);
  });
});
