// The development sign-in (src/http/devSignIn.ts) on a server started as
// `npm start` starts it: no OIDC_ISSUER, so the development issuer. The whole
// authorization-code flow with PKCE over HTTP, as the console's OIDC client
// walks it, and the access token it ends with is accepted by the API.
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { CONSOLE_CLIENT_ID } from '../../src/http/devSignIn.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { PARTNER_A, SQLITE_ENGINES, tempDataDir } from '../support/registry.ts';

let server: RunningServer;
let dataDir: string;
let base: string;

beforeAll(async () => {
  dataDir = tempDataDir();
  const config = loadConfig({ ...SQLITE_ENGINES, NODE_ENV: 'development', DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'silent' });
  server = await startServer(config);
  base = server.url.replace('[::1]', '127.0.0.1');
});

afterAll(async () => {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const verifier = (): string => randomBytes(32).toString('base64url');
const challengeOf = (v: string): string => createHash('sha256').update(v).digest('base64url');

function authorizeQuery(overrides: Record<string, string> = {}, codeVerifier = verifier()): URLSearchParams {
  return new URLSearchParams({
    client_id: CONSOLE_CLIENT_ID,
    redirect_uri: `${base}/console/`,
    response_type: 'code',
    code_challenge: challengeOf(codeVerifier),
    code_challenge_method: 'S256',
    state: 'state-1',
    nonce: 'nonce-1',
    scope: 'openid',
    ...overrides,
  });
}

/** Posts the sign-in form the way the page would; answers the redirect (not followed). */
function submitForm(query: URLSearchParams, entries: Record<string, string>): Promise<Response> {
  return fetch(`${base}/dev/sign-in/authorize`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...Object.fromEntries(query), ...entries }).toString(),
    redirect: 'manual',
  });
}

function redeem(fields: Record<string, string>): Promise<Response> {
  return fetch(`${base}/dev/sign-in/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: CONSOLE_CLIENT_ID, redirect_uri: `${base}/console/`, ...fields }).toString(),
  });
}

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

describe('development sign-in (authorization code with PKCE)', () => {
  it('publishes its metadata with this server URLs', async () => {
    const response = await fetch(`${base}/dev/sign-in/metadata`);
    expect(response.status).toBe(200);
    const metadata = (await response.json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      issuer: 'urn:webhook-registry:dev-issuer',
      authorization_endpoint: `${base}/dev/sign-in/authorize`,
      token_endpoint: `${base}/dev/sign-in/token`,
      code_challenge_methods_supported: ['S256'],
      development_only: true,
    });
  });

  it('shows a form marked as development only, with what it was asked carried along, escaped', async () => {
    const response = await fetch(`${base}/dev/sign-in/authorize?${String(authorizeQuery({ state: '"><script>alert(1)</script>' }))}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await response.text();
    expect(html).toContain('Development sign-in.');
    expect(html).not.toContain('<script>');
    expect(html).toContain('&#34;&#62;&#60;script&#62;');
    for (const name of ['name', 'role', 'organization', 'partners']) expect(html).toMatch(new RegExp(`<label for="${name}"`));
  });

  it('refuses other clients, redirect URIs off this console, and requests without an S256 challenge', async () => {
    for (const overrides of [
      { client_id: 'someone-else' },
      { redirect_uri: 'https://evil.example/console/' },
      { redirect_uri: `${base}/docs/` },
      { code_challenge_method: 'plain' },
      { code_challenge: 'short' },
      { response_type: 'token' },
    ]) {
      const response = await fetch(`${base}/dev/sign-in/authorize?${String(authorizeQuery(overrides))}`, { redirect: 'manual' });
      expect(response.status, JSON.stringify(overrides)).toBe(400);
      expect(response.headers.get('location')).toBeNull();
    }
  });

  it('ends in an access token the API accepts, for the organization and partners entered', async () => {
    const codeVerifier = verifier();
    const query = authorizeQuery({}, codeVerifier);
    const submitted = await submitForm(query, { name: 'Ada', role: 'developer', organization: 'acme', partners: PARTNER_A.toUpperCase() });
    expect(submitted.status).toBe(303);
    const back = new URL(submitted.headers.get('location')!);
    expect(`${back.origin}${back.pathname}`).toBe(`${base}/console/`);
    expect(back.searchParams.get('state')).toBe('state-1');
    const code = back.searchParams.get('code')!;

    const wrong = await redeem({ code, code_verifier: verifier() });
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ error: 'invalid_grant' });
    // The failed attempt used the code up.
    expect((await redeem({ code, code_verifier: codeVerifier })).status).toBe(400);

    const again = await submitForm(query, { name: 'Ada', role: 'developer', organization: 'acme', partners: PARTNER_A });
    const secondCode = new URL(again.headers.get('location')!).searchParams.get('code')!;
    const tokens = await redeem({ code: secondCode, code_verifier: codeVerifier });
    expect(tokens.status).toBe(200);
    expect(tokens.headers.get('cache-control')).toBe('no-store');
    const body = (await tokens.json()) as { access_token: string; id_token: string; token_type: string };
    expect(body.token_type).toBe('Bearer');
    expect(claimsOf(body.id_token)).toMatchObject({ aud: CONSOLE_CLIENT_ID, nonce: 'nonce-1', name: 'Ada', iss: 'urn:webhook-registry:dev-issuer' });
    expect(claimsOf(body.access_token)).toMatchObject({ org_id: 'acme', partner_ids: [PARTNER_A], scope: 'webhooks:read webhooks:write', sub: 'dev-user:Ada' });
    expect((await redeem({ code: secondCode, code_verifier: codeVerifier })).status).toBe(400);

    const authorization = { authorization: `Bearer ${body.access_token}` };
    expect((await fetch(`${base}/v1/webhooks`, { headers: authorization })).status).toBe(200);
    // A developer is not an auditor.
    expect((await fetch(`${base}/internal/v1/audit/webhooks?asOf=${new Date().toISOString()}`, { headers: authorization })).status).toBe(403);
  });

  it('says on the form what is wrong with the entries, and issues no code', async () => {
    const response = await submitForm(authorizeQuery(), { name: 'Ada', role: 'developer', partners: 'not-a-uuid' });
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toContain('role="alert"');
  });
});
