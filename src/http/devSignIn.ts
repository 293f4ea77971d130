// Development sign-in: an OAuth 2.0 authorization server for people, served
// by `npm start` when no OIDC_ISSUER is configured, so the web console's
// OpenID Connect sign-in (authorization code with PKCE) works without
// Keycloak. It exists only with the development issuer, which
// NODE_ENV=production refuses (config.ts), and every page it shows says so.
//
// - GET  /dev/sign-in/authorize: checks the client, its redirect URI (this
//   server's own /console/, nothing else) and the S256 code challenge, then
//   shows a form: organization, partners, role.
// - POST /dev/sign-in/authorize: the form; a one-time code (60 s), bound to
//   the challenge and the redirect URI, goes back to the console (303).
// - POST /dev/sign-in/token: the code and its verifier for an access token
//   (the same JWT `npm run token` mints, subject the user) and an ID token.
// - GET  /dev/sign-in/metadata: the provider metadata the console's OIDC
//   client uses (RFC 8414 names), with this server's own URLs.
//
// What it does not do, being for development: accounts and passwords (any
// name signs in), consent, refresh tokens, sessions (each sign-in shows the
// form again), client authentication (the console is a public client).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SCOPES } from '../identity/principal.ts';
import type { DevIssuer } from '../identity/devIssuer.ts';

export const DEV_SIGN_IN_PREFIX = '/dev/sign-in';
/** The web console's client id, here and in the Keycloak realm (docs/keycloak.md). */
export const CONSOLE_CLIENT_ID = 'webhook-console';
/** Where the console may be sent back to: this server's own console pages. */
const CONSOLE_PATH = '/console/';
const CODE_TTL_MS = 60_000;
const MAX_PENDING_CODES = 1_000;
const TOKEN_TTL_SECONDS = 3600;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** RFC 7636: 43–128 characters of [A-Za-z0-9-._~]; S256 challenges are 43 base64url characters. */
const CODE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const ORGANIZATION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** What a person may sign in as: an integration developer, or a compliance officer (auditor). */
export const DEV_ROLES = {
  developer: [SCOPES.read, SCOPES.write],
  auditor: [SCOPES.read, SCOPES.audit],
} as const;
type Role = keyof typeof DEV_ROLES;

export interface DevSignInOptions {
  readonly issuer: DevIssuer;
  readonly audience: string;
  readonly orgClaim: string;
  readonly partnersClaim: string;
  readonly now?: () => number;
}

interface AuthorizationRequest {
  readonly redirectUri: string;
  readonly state: string;
  readonly codeChallenge: string;
  readonly nonce: string | undefined;
}

interface PendingCode extends AuthorizationRequest {
  readonly expiresAt: number;
  readonly name: string;
  readonly organizationId: string | undefined;
  readonly partnerIds: readonly string[];
  readonly role: Role;
}

class SignInError extends Error {
  constructor(
    readonly code: 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unsupported_grant_type' | 'unsupported_response_type',
    description: string,
  ) {
    super(description);
  }
}

export function registerDevSignIn(app: FastifyInstance, options: DevSignInOptions): void {
  const now = options.now ?? Date.now;
  const codes = new Map<string, PendingCode>();

  void app.register(
    // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
    async (scope) => {
      // Forms and the token request are application/x-www-form-urlencoded (RFC 6749 §3.2), here only.
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16_384 }, (_request, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      });

      scope.get('/metadata', { schema: { hide: true } }, (request, reply) => {
        const base = `${originOf(request)}${DEV_SIGN_IN_PREFIX}`;
        return reply.header('cache-control', 'no-store').send({
          issuer: options.issuer.issuer,
          authorization_endpoint: `${base}/authorize`,
          token_endpoint: `${base}/token`,
          response_types_supported: ['code'],
          grant_types_supported: ['authorization_code'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['none'],
          scopes_supported: ['openid', ...new Set(Object.values(DEV_ROLES).flat())],
          development_only: true,
        });
      });

      scope.get('/authorize', { schema: { hide: true } }, (request, reply) => {
        let authorization: AuthorizationRequest;
        try {
          authorization = authorizationRequest(request, request.query as Record<string, unknown>);
        } catch (error) {
          return page(reply, 400, errorPage(error));
        }
        return page(reply, 200, signInForm(authorization));
      });

      scope.post('/authorize', { schema: { hide: true } }, (request, reply) => {
        let form: Record<string, unknown>;
        let authorization: AuthorizationRequest;
        try {
          form = formOf(request);
          authorization = authorizationRequest(request, form);
        } catch (error) {
          return page(reply, 400, errorPage(error));
        }
        const entered = signInEntries(form);
        if (typeof entered === 'string') return page(reply, 400, signInForm(authorization, entered));
        for (const [code, pending] of codes) if (pending.expiresAt <= now() || codes.size >= MAX_PENDING_CODES) codes.delete(code);
        const code = randomBytes(32).toString('base64url');
        codes.set(code, { ...authorization, ...entered, expiresAt: now() + CODE_TTL_MS });
        const target = new URL(authorization.redirectUri);
        target.searchParams.set('code', code);
        target.searchParams.set('state', authorization.state);
        return reply.header('cache-control', 'no-store').redirect(target.href, 303);
      });

      scope.post('/token', { schema: { hide: true } }, async (request, reply) => {
        void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
        try {
          const form = formOf(request);
          if (form.grant_type !== 'authorization_code') throw new SignInError('unsupported_grant_type', 'only authorization_code');
          if (form.client_id !== CONSOLE_CLIENT_ID) throw new SignInError('invalid_client', 'unknown client');
          const code = typeof form.code === 'string' ? form.code : '';
          const pending = codes.get(code);
          // One use, whatever happens next (RFC 6749 §4.1.2).
          codes.delete(code);
          if (pending === undefined || pending.expiresAt <= now()) throw new SignInError('invalid_grant', 'unknown or expired code');
          if (form.redirect_uri !== pending.redirectUri) throw new SignInError('invalid_grant', 'redirect_uri differs from the authorization request');
          const verifier = typeof form.code_verifier === 'string' ? form.code_verifier : '';
          if (!CODE_VERIFIER.test(verifier) || !sameText(s256(verifier), pending.codeChallenge)) {
            throw new SignInError('invalid_grant', 'code_verifier does not match the code challenge');
          }
          const subject = `dev-user:${pending.name}`;
          const scopes = DEV_ROLES[pending.role];
          const accessToken = await options.issuer.mint({
            audience: options.audience,
            orgClaim: options.orgClaim,
            partnersClaim: options.partnersClaim,
            organizationId: pending.organizationId,
            partnerIds: pending.partnerIds,
            scopes,
            clientId: CONSOLE_CLIENT_ID,
            subject,
            ttlSeconds: TOKEN_TTL_SECONDS,
          });
          const idToken = await options.issuer.mintIdToken({
            clientId: CONSOLE_CLIENT_ID,
            subject,
            name: pending.name,
            nonce: pending.nonce,
            ttlSeconds: TOKEN_TTL_SECONDS,
          });
          return await reply.send({
            access_token: accessToken,
            token_type: 'Bearer',
            expires_in: TOKEN_TTL_SECONDS,
            id_token: idToken,
            scope: ['openid', ...scopes].join(' '),
          });
        } catch (error) {
          if (!(error instanceof SignInError)) throw error;
          return await reply.code(error.code === 'invalid_client' ? 401 : 400).send({ error: error.code, error_description: error.message });
        }
      });
    },
    { prefix: DEV_SIGN_IN_PREFIX },
  );
}

/** This server's origin as the browser addressed it (the redirect URI must be on it). */
function originOf(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

function formOf(request: FastifyRequest): Record<string, unknown> {
  const body = request.body;
  if (body === null || typeof body !== 'object') throw new SignInError('invalid_request', 'expected an application/x-www-form-urlencoded body');
  return body as Record<string, unknown>;
}

function text(params: Record<string, unknown>, name: string): string | undefined {
  const value = params[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function authorizationRequest(request: FastifyRequest, params: Record<string, unknown>): AuthorizationRequest {
  if (text(params, 'client_id') !== CONSOLE_CLIENT_ID) throw new SignInError('invalid_client', 'unknown client_id');
  const redirectUri = text(params, 'redirect_uri') ?? '';
  let redirect: URL;
  try {
    redirect = new URL(redirectUri);
  } catch {
    throw new SignInError('invalid_request', 'redirect_uri is not a URL');
  }
  // Exactly this server's console: a code sent anywhere else could be redeemed by someone else.
  if (redirect.origin !== originOf(request) || !redirect.pathname.startsWith(CONSOLE_PATH) || redirect.hash !== '') {
    throw new SignInError('invalid_request', `redirect_uri must be this server's ${CONSOLE_PATH}`);
  }
  if (text(params, 'response_type') !== 'code') throw new SignInError('unsupported_response_type', 'response_type must be code');
  if (text(params, 'code_challenge_method') !== 'S256') throw new SignInError('invalid_request', 'code_challenge_method must be S256 (PKCE)');
  const codeChallenge = text(params, 'code_challenge') ?? '';
  if (!S256_CHALLENGE.test(codeChallenge)) throw new SignInError('invalid_request', 'code_challenge must be an S256 challenge');
  const state = text(params, 'state');
  if (state === undefined || state.length > 512) throw new SignInError('invalid_request', 'state is required (at most 512 characters)');
  const nonce = text(params, 'nonce');
  if (nonce !== undefined && nonce.length > 512) throw new SignInError('invalid_request', 'nonce is at most 512 characters');
  return { redirectUri: redirect.href, state, codeChallenge, nonce };
}

/** The form's entries, or what is wrong with them (shown on the form again). */
function signInEntries(form: Record<string, unknown>): Pick<PendingCode, 'name' | 'organizationId' | 'partnerIds' | 'role'> | string {
  const name = text(form, 'name')?.trim() ?? '';
  if (name === '' || name.length > 64) return 'Enter a name of at most 64 characters.';
  const role = text(form, 'role');
  if (role !== 'developer' && role !== 'auditor') return 'Choose a role.';
  const organizationId = text(form, 'organization')?.trim();
  if (organizationId !== undefined && !ORGANIZATION.test(organizationId)) {
    return 'An organization id is 1–64 letters, digits, dots, dashes or underscores.';
  }
  if (role === 'developer' && organizationId === undefined) return 'An integration developer belongs to an organization: enter its id.';
  const partnerIds = (text(form, 'partners') ?? '')
    .split(/[\s,]+/)
    .filter((p) => p !== '')
    .map((p) => p.toLowerCase());
  const wrong = partnerIds.find((p) => !UUID.test(p));
  if (wrong !== undefined) return 'Partners are UUIDs, separated by commas or spaces.';
  return { name, role, organizationId, partnerIds: [...new Set(partnerIds)] };
}

function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('cache-control', 'no-store')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .type('text/html; charset=utf-8')
    .send(body);
}

function layout(title: string, content: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; padding: 1.5rem; background: #f6f7f9; color: #1c2330; }
  main { max-width: 28rem; margin: 0 auto; background: #fff; padding: 1.5rem; border-radius: 8px; box-shadow: 0 1px 3px #0002; }
  .warning { background: #fff4d6; border: 1px solid #d9a400; padding: .75rem; border-radius: 6px; }
  .error { color: #a4001d; font-weight: 600; }
  label { display: block; margin-top: 1rem; font-weight: 600; }
  input, select { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; margin-top: .25rem; }
  .hint { font-weight: 400; font-size: .9rem; color: #4a5568; }
  button { margin-top: 1.5rem; font: inherit; padding: .6rem 1.2rem; }
</style>
</head>
<body><main>${content}</main></body>
</html>`;
}

const WARNING = `<p class="warning" role="note"><strong>Development sign-in.</strong> Anyone can sign in here as anyone: it exists only
because no identity provider (OIDC_ISSUER) is configured, and a production server never offers it.</p>`;

function signInForm(request: AuthorizationRequest, problem?: string): string {
  const hidden = (name: string, value: string | undefined): string =>
    value === undefined ? '' : `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
  return layout(
    'Development sign-in — webhook registry',
    `<h1>Sign in to the webhook console</h1>
${WARNING}
${problem === undefined ? '' : `<p class="error" role="alert" id="problem">${escapeHtml(problem)}</p>`}
<form method="post" action="${DEV_SIGN_IN_PREFIX}/authorize"${problem === undefined ? '' : ' aria-describedby="problem"'}>
${hidden('client_id', CONSOLE_CLIENT_ID)}${hidden('redirect_uri', request.redirectUri)}${hidden('response_type', 'code')}
${hidden('state', request.state)}${hidden('code_challenge', request.codeChallenge)}${hidden('code_challenge_method', 'S256')}${hidden('nonce', request.nonce)}
<label for="name">Your name</label>
<input id="name" name="name" required maxlength="64" autocomplete="name" autofocus>
<label for="role">Role</label>
<select id="role" name="role">
  <option value="developer">Integration developer (webhooks:read, webhooks:write)</option>
  <option value="auditor">Compliance officer (webhooks:read, webhooks:audit)</option>
</select>
<label for="organization">Organization id <span class="hint">(required for a developer)</span></label>
<input id="organization" name="organization" maxlength="64" autocomplete="organization">
<label for="partners">Authorized partners <span class="hint">(UUIDs, comma-separated)</span></label>
<input id="partners" name="partners" autocomplete="off">
<button type="submit">Sign in</button>
</form>`,
  );
}

function errorPage(error: unknown): string {
  const detail = error instanceof SignInError ? `${error.code}: ${error.message}` : 'invalid_request';
  return layout(
    'Sign-in request refused — webhook registry',
    `<h1>This sign-in request cannot be served</h1>${WARNING}<p class="error" role="alert">${escapeHtml(detail)}</p>`,
  );
}
