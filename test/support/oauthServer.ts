// In-process OAuth 2.0 authorization server standing in for the Keycloak realm
// `nt24-idp` in tests.
//
// Built on the certified `oidc-provider` implementation (no mocking): tokens
// come out of a real `client_credentials` grant over HTTP, signed RS256 with a
// key that is published on a real JWKS endpoint. The Keycloak-isms are layered
// on top through configuration only:
//   - issuer `http://127.0.0.1:<port>/realms/nt24-idp`
//   - endpoints at Keycloak's paths: `<issuer>/protocol/openid-connect/token`
//     and `<issuer>/protocol/openid-connect/certs` (JWKS), discovery at
//     `<issuer>/.well-known/openid-configuration`
//   - access tokens shaped like a Keycloak service-account token (`azp`,
//     `typ: Bearer`, `preferred_username: service-account-<clientId>`, a stable
//     UUID `sub`, `aud` from an Audience mapper, org/partner mapper claims).
//   - people, for the web console: a public client (authorization code with
//     PKCE S256, exact redirect URIs), a login page at the realm's own path
//     that checks a username and password, and user tokens shaped like
//     Keycloak's (the user's UUID as `sub`, `azp` the console, org and partner
//     claims from user-attribute mappers, `name` and `preferred_username`).
//     The webhook scopes a user gets are those their roles allow, as Keycloak
//     applies a role-gated client scope only to users holding the role:
//     requested ∩ allowed. No consent screen (Keycloak's "Consent required"
//     off); a rotating refresh token, as Keycloak gives a browser client;
//     RP-initiated logout with `id_token_hint` needs no confirmation.
//
// A plain `http.createServer` wraps the provider so tests can stop/restart the
// listener on the same port, rotate keys, and make the JWKS endpoint misbehave.

import { createHash, createPublicKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { SignJWT, calculateJwkThumbprint, type JWK, type JWTPayload } from 'jose';
import { escapeHtml } from '../../src/http/devSignIn.ts';

export * from './tokens.ts';

export const DEFAULT_REALM = 'nt24-idp';
export const DEFAULT_AUDIENCE = 'webhook-registry';
export const DEFAULT_ORG_CLAIM = 'org_id';
export const DEFAULT_PARTNERS_CLAIM = 'partner_ids';
export const WEBHOOK_SCOPES = ['webhooks:read', 'webhooks:write', 'webhooks:dispatch', 'webhooks:audit'] as const;

/** Keycloak's endpoint paths, relative to the issuer (realm) URL. */
const KEYCLOAK_ROUTES = {
  authorization: '/protocol/openid-connect/auth',
  token: '/protocol/openid-connect/token',
  jwks: '/protocol/openid-connect/certs',
  userinfo: '/protocol/openid-connect/userinfo',
  introspection: '/protocol/openid-connect/token/introspect',
  revocation: '/protocol/openid-connect/revoke',
  end_session: '/protocol/openid-connect/logout',
} as const;

export interface OAuthClientConfig {
  clientId: string;
  clientSecret: string;
  /** Value of the org claim (hardcoded-claim mapper). Omitted from tokens when absent. */
  orgId?: string;
  /**
   * Value of the partners claim, copied verbatim into tokens. Omitted when
   * `undefined`; anything else (`[]`, a string, numbers, non-UUIDs...) is
   * emitted as-is for negative tests.
   */
  partnerIds?: unknown;
  /** Scopes this client may request (also the default when `getToken` gets no scope). */
  scopes: string[];
  /** Override the token `sub` (default: a stable UUID derived from the client id). */
  subject?: string;
  /** More claims merged into every token of this client (may override the defaults). */
  extraClaims?: Record<string, unknown>;
  /** Token endpoint client authentication (default `client_secret_basic`). */
  authMethod?: 'client_secret_basic' | 'client_secret_post';
}

/** A person who signs in at the login page (a Keycloak user with attributes and roles). */
export interface OAuthUserConfig {
  username: string;
  password: string;
  /** Display name (`name` claim); default: the username. */
  name?: string;
  /** The user's org attribute (user-attribute mapper); omitted from tokens when absent. */
  orgId?: string;
  /** The user's partner attribute, copied verbatim (multivalued mapper). */
  partnerIds?: unknown;
  /** The webhook scopes the user's roles allow; a token carries those requested among them. */
  scopes: string[];
}

/** A public client (no secret) using the authorization code flow with PKCE, like the web console. */
export interface OAuthPublicClientConfig {
  clientId: string;
  /** Exact redirect URIs. */
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
}

export interface StartOAuthServerOptions {
  clients?: OAuthClientConfig[];
  /** People who can sign in through the login page. */
  users?: OAuthUserConfig[];
  /** Public clients for the authorization code flow (their web origins are allowed by CORS). */
  publicClients?: OAuthPublicClientConfig[];
  /** Fixed port (e.g. to bring a server back on a known port); default: random free port. */
  port?: number;
  realm?: string;
  /** `aud` of issued access tokens (default `webhook-registry`). */
  audience?: string;
  orgClaim?: string;
  partnersClaim?: string;
  /** Access token lifetime (default 300 s, Keycloak's default). */
  tokenTtlSeconds?: number;
  /** JWS `typ` header of access tokens: Keycloak emits `JWT` (default); RFC 9068 says `at+jwt`. */
  accessTokenTyp?: string;
  /** Hide oidc-provider's "Unsupported runtime" and similar console notices (default true). */
  quiet?: boolean;
}

/**
 * Behaviour of the JWKS endpoint:
 * - `normal`: served by oidc-provider
 * - `garbage`: 200 `application/json` with a body that is not JSON at all
 * - `not-jwks`: 200 with valid JSON that is not a JWK Set
 * - `empty`: 200 `{"keys":[]}`
 * - `error`: 503
 * - `hang`: accepts the request and never answers (until `stop()` or the mode changes)
 */
export type JwksMode = 'normal' | 'garbage' | 'not-jwks' | 'empty' | 'error' | 'hang';

export interface TokenRequestOptions {
  /** Space-separated scopes; default: all scopes configured for the client. `''` requests none. */
  scope?: string;
  /** Audience to request via RFC 8707 `resource` (default: the server's audience). `null` omits `resource`. */
  audience?: string | null;
  /** Override the client secret (e.g. a wrong one). */
  clientSecret?: string;
  authMethod?: 'client_secret_basic' | 'client_secret_post';
}

export interface TokenResponse {
  status: number;
  body: Record<string, unknown>;
}

export interface SignOptions {
  /** Default: the current signing key's kid. `null` omits the header. */
  kid?: string | null;
  /** Sign with a previously published (older) key instead of the current one. */
  keyId?: string;
  /** Extra/overriding protected header parameters. */
  header?: Record<string, unknown>;
}

export interface PublicKeyMaterial {
  kid: string;
  keyObject: KeyObject;
  pem: string;
  jwk: JWK;
}

export interface OAuthServer {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** `http://127.0.0.1:<port>/realms/nt24-idp` */
  readonly issuer: string;
  /** `<issuer>/protocol/openid-connect/certs` */
  readonly jwksUrl: string;
  /** `<issuer>/protocol/openid-connect/token` */
  readonly tokenEndpoint: string;
  /** `<issuer>/.well-known/openid-configuration` */
  readonly discoveryUrl: string;
  readonly audience: string;
  readonly orgClaim: string;
  readonly partnersClaim: string;
  /** kid new tokens are signed with. */
  readonly currentKid: string;
  /** kids currently published in the JWKS (current first). */
  readonly publishedKids: string[];
  /** Number of requests that reached the JWKS path (any mode) since start. */
  readonly jwksRequests: number;
  readonly running: boolean;

  /** Client-credentials grant over real HTTP; resolves to the access token, throws on non-200. */
  getToken(clientId: string, options?: TokenRequestOptions): Promise<string>;
  /** Raw token endpoint call (never throws on HTTP errors) for negative tests. */
  requestToken(clientId: string, options?: TokenRequestOptions): Promise<TokenResponse>;

  /** Publish a new RSA key, sign new tokens with it, keep the old public keys published. Returns the new kid. */
  rotateKeys(): Promise<string>;
  /** Unpublish every key but the current one. */
  dropOldKeys(): Promise<void>;

  /** Sign arbitrary claims RS256 with the IdP's current private key (e.g. already-expired tokens). */
  signToken(claims: JWTPayload, options?: SignOptions): Promise<string>;
  /** Keycloak-shaped claims for a configured client (what the token endpoint would issue). */
  claimsFor(clientId: string, options?: { scope?: string; nowSeconds?: number }): JWTPayload;
  /** `signToken(claimsFor(clientId) merged with overrides)`; `undefined` overrides delete a claim. */
  mintToken(clientId: string, overrides?: Record<string, unknown>, options?: SignOptions): Promise<string>;
  /** Public key material of the current (or given) signing key, e.g. for key-confusion tokens. */
  publicKey(kid?: string): PublicKeyMaterial;
  /** Stable `sub` of a client's service account. */
  subjectFor(clientId: string): string;
  /** Stable `sub` (user id) of a configured user. */
  userIdFor(username: string): string;

  setJwksMode(mode: JwksMode): void;
  /** Close the listener and all connections: further requests get ECONNREFUSED. Idempotent. */
  stop(): Promise<void>;
  /** Listen again on the same port with the same keys and clients. */
  restart(): Promise<void>;
}

// ---------------------------------------------------------------------------
// oidc-provider ships no TypeScript types; describe the sliver we use.

interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionLike>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;

interface TokenLike {
  clientId?: string;
  accountId?: string;
  scope?: string;
}
interface GrantLike {
  addOIDCScope(scope: string): void;
  addResourceScope(resource: string, scope: string): void;
  rejectOIDCScope(scope: string): void;
  rejectResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}
interface ProviderContext {
  oidc: {
    client?: { clientId: string };
    session?: { accountId?: string; grantIdFor(clientId: string): string | undefined };
    result?: { consent?: { grantId?: string } };
    params?: Record<string, unknown>;
    provider: {
      Grant: { new (init: { clientId: string; accountId: string }): GrantLike; find(id: string): Promise<GrantLike | undefined> };
    };
  };
  body?: unknown;
}
interface InteractionLike {
  uid: string;
  prompt: { name: string; reasons?: string[]; details?: unknown };
  params: Record<string, unknown>;
}
interface StructuredJwt {
  header?: Record<string, unknown>;
  payload: Record<string, unknown>;
}

function isOidcProviderNotice(args: unknown[]): boolean {
  const [first] = args;
  return typeof first === 'string' && /oidc-provider (WARNING|NOTICE):/.test(first);
}

/** Run `fn` with oidc-provider's console notices filtered out. */
async function quietly<T>(quiet: boolean, fn: () => Promise<T> | T): Promise<T> {
  if (!quiet) return fn();
  const { warn, info } = console;
  console.warn = (...args: unknown[]) => {
    if (!isOidcProviderNotice(args)) warn.apply(console, args);
  };
  console.info = (...args: unknown[]) => {
    if (!isOidcProviderNotice(args)) info.apply(console, args);
  };
  try {
    return await fn();
  } finally {
    console.warn = warn;
    console.info = info;
  }
}

let providerModule: Promise<ProviderConstructor> | undefined;

function loadProvider(quiet: boolean): Promise<ProviderConstructor> {
  providerModule ??= quietly(quiet, async () => {
    // Non-literal specifier so TypeScript does not look for the (absent) typings;
    // the module is cast to the interface above.
    const specifier: string = 'oidc-provider';
    const mod = (await import(specifier)) as { default: ProviderConstructor };
    return mod.default;
  });
  return providerModule;
}

/** Minimal in-memory adapter (avoids oidc-provider's dev-adapter warning). */
function createAdapterFactory(): (name: string) => unknown {
  const store = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
  const live = (key: string) => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };
  return (name: string) => ({
    upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
      const ttlMs = typeof expiresIn === 'number' ? expiresIn * 1000 : Number.POSITIVE_INFINITY;
      store.set(`${name}:${id}`, { payload, expiresAt: Date.now() + ttlMs });
      return Promise.resolve();
    },
    find(id: string) {
      return Promise.resolve(live(`${name}:${id}`));
    },
    findByUid(uid: string) {
      for (const key of store.keys()) {
        const payload = key.startsWith(`${name}:`) ? live(key) : undefined;
        if (payload?.uid === uid) return Promise.resolve(payload);
      }
      return Promise.resolve(undefined);
    },
    findByUserCode(userCode: string) {
      for (const key of store.keys()) {
        const payload = key.startsWith(`${name}:`) ? live(key) : undefined;
        if (payload?.userCode === userCode) return Promise.resolve(payload);
      }
      return Promise.resolve(undefined);
    },
    consume(id: string) {
      const payload = live(`${name}:${id}`);
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
      return Promise.resolve();
    },
    destroy(id: string) {
      store.delete(`${name}:${id}`);
      return Promise.resolve();
    },
    revokeByGrantId(grantId: string) {
      for (const [key, entry] of store) if (entry.payload.grantId === grantId) store.delete(key);
      return Promise.resolve();
    },
  });
}

// ---------------------------------------------------------------------------

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  privateJwk: JWK;
  publicJwk: JWK;
}

const generateRsaKeyPair = promisify(generateKeyPair);

async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey } = await generateRsaKeyPair('rsa', { modulusLength: 2048 });
  const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk);
  const meta = { kid, alg: 'RS256', use: 'sig' };
  return {
    kid,
    privateKey,
    privateJwk: { ...(privateKey.export({ format: 'jwk' }) as JWK), ...meta },
    publicJwk: { ...publicJwk, ...meta },
  };
}

/** Deterministic UUID (v5-shaped) for a client's service-account user, or (kind `user`) a person. */
function stableUuid(seed: string, kind: 'service-account' | 'user' = 'service-account'): string {
  const hex = createHash('sha1').update(`nt24-idp/${kind}/${seed}`).digest('hex');
  const variant = ((parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(18, 20)}-${hex.slice(20, 32)}`;
}

/** Where the login page lives under the realm (Keycloak: `/login-actions/authenticate`). */
const LOGIN_PATH = '/login-actions/authenticate';

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function loginHtml(realm: string, error?: string, username = ''): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to ${escapeHtml(realm)}</title></head>
<body><main><h1>Sign in to your account</h1>
${error === undefined ? '' : `<p role="alert">${escapeHtml(error)}</p>`}
<form method="post"><p><label for="username">Username or email</label> <input id="username" name="username" autocomplete="username" value="${escapeHtml(username)}" autofocus></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password"></p>
<p><button type="submit">Sign In</button></p></form></main></body></html>`;
}

/** RFC 8707 resource indicators must be absolute URIs; plain audiences travel as `urn:<aud>`. */
function resourceFor(audience: string): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(audience) ? audience : `urn:${audience}`;
}
function audienceFor(resource: string): string {
  return resource.startsWith('urn:') ? resource.slice('urn:'.length) : resource;
}

export async function startOAuthServer(options: StartOAuthServerOptions = {}): Promise<OAuthServer> {
  const quiet = options.quiet ?? true;
  const Provider = await loadProvider(quiet);
  const realm = options.realm ?? DEFAULT_REALM;
  const audience = options.audience ?? DEFAULT_AUDIENCE;
  const orgClaim = options.orgClaim ?? DEFAULT_ORG_CLAIM;
  const partnersClaim = options.partnersClaim ?? DEFAULT_PARTNERS_CLAIM;
  const ttl = options.tokenTtlSeconds ?? 300;
  const accessTokenTyp = options.accessTokenTyp ?? 'JWT';
  const clients = new Map((options.clients ?? []).map((c) => [c.clientId, c]));
  const publicClients = options.publicClients ?? [];
  const users = new Map((options.users ?? []).map((u) => [stableUuid(u.username, 'user'), u]));
  const userIdFor = (username: string): string => stableUuid(username, 'user');
  const realmPath = `/realms/${realm}`;
  const knownScopes = [
    ...new Set([...WEBHOOK_SCOPES, ...[...clients.values()].flatMap((c) => c.scopes), ...[...users.values()].flatMap((u) => u.scopes)]),
  ];

  let keys: SigningKey[] = [await generateSigningKey()]; // current first
  const current = (): SigningKey => keys[0]!;

  const subjectFor = (clientId: string): string => clients.get(clientId)?.subject ?? stableUuid(clientId);
  const mapperClaims = (clientId: string): Record<string, unknown> => {
    const client = clients.get(clientId);
    const claims: Record<string, unknown> = {
      typ: 'Bearer',
      azp: clientId,
      preferred_username: `service-account-${clientId}`,
    };
    return { ...claims, ...organizationClaims(client), ...client?.extraClaims };
  };
  /** The org and partner mappers' claims, each left out when it has no value. */
  const organizationClaims = (holder: { orgId?: string; partnerIds?: unknown } | undefined): Record<string, unknown> => {
    const claims: Record<string, unknown> = {};
    if (holder?.orgId !== undefined) claims[orgClaim] = holder.orgId;
    if (holder?.partnerIds !== undefined) claims[partnersClaim] = holder.partnerIds;
    return claims;
  };
  /** A person's token: Keycloak's user-attribute mappers and the profile claims. */
  const userClaims = (accountId: string, clientId: string): Record<string, unknown> => {
    const user = users.get(accountId);
    const claims: Record<string, unknown> = { typ: 'Bearer', azp: clientId };
    if (user === undefined) return claims;
    return { ...claims, preferred_username: user.username, name: user.name ?? user.username, ...organizationClaims(user) };
  };

  let port = options.port ?? 0;
  let server: Server | undefined;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
  let provider: ProviderInstance | undefined;
  let jwksMode: JwksMode = 'normal';
  let jwksRequests = 0;
  const hung = new Set<ServerResponse>();

  const origin = () => `http://127.0.0.1:${port}`;
  const issuer = () => `${origin()}${realmPath}`;

  const buildProvider = () =>
    quietly(quiet, () => {
      const built = new Provider(issuer(), {
        adapter: createAdapterFactory(),
        clients: [
          ...[...clients.values()].map((c) => ({
            client_id: c.clientId,
            client_secret: c.clientSecret,
            grant_types: ['client_credentials'],
            response_types: [],
            redirect_uris: [],
            token_endpoint_auth_method: c.authMethod ?? 'client_secret_basic',
            scope: c.scopes.join(' '),
          })),
          ...publicClients.map((c) => ({
            client_id: c.clientId,
            token_endpoint_auth_method: 'none', // a public client: PKCE is then required
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            redirect_uris: c.redirectUris,
            post_logout_redirect_uris: c.postLogoutRedirectUris ?? c.redirectUris,
          })),
        ],
        jwks: { keys: keys.map((k) => k.privateJwk) },
        scopes: ['openid', 'profile', ...knownScopes],
        claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
        // Keycloak puts the profile claims into the ID token too.
        conformIdTokenClaims: false,
        findAccount: (_ctx: unknown, id: string) => {
          const user = users.get(id);
          if (user === undefined) return undefined;
          return { accountId: id, claims: () => ({ sub: id, name: user.name ?? user.username, preferred_username: user.username }) };
        },
        interactions: { url: (_ctx: unknown, interaction: InteractionLike) => `${realmPath}${LOGIN_PATH}/${interaction.uid}` },
        // No consent screen: the grant holds the user's allowed webhook scopes for the registry.
        loadExistingGrant: async (ctx: ProviderContext) => {
          const { client, session, result, provider: op } = ctx.oidc;
          if (client === undefined || session?.accountId === undefined) return undefined;
          const grantId = result?.consent?.grantId ?? session.grantIdFor(client.clientId);
          if (grantId !== undefined) return op.Grant.find(grantId);
          const grant = new op.Grant({ clientId: client.clientId, accountId: session.accountId });
          const allowed = users.get(session.accountId)?.scopes ?? [];
          // The webhook scopes are also OpenID scopes here (the client_credentials clients ask for them by name).
          grant.addOIDCScope(['openid', 'profile', ...allowed].join(' '));
          grant.addResourceScope(resourceFor(audience), allowed.join(' '));
          // The scopes the user's roles do not allow are left out of the token, not asked about.
          const refused = knownScopes.filter((scope) => !allowed.includes(scope)).join(' ');
          if (refused !== '') {
            grant.rejectOIDCScope(refused);
            grant.rejectResourceScope(resourceFor(audience), refused);
          }
          await grant.save();
          return grant;
        },
        // Keycloak gives a browser client a refresh token without offline_access; one use each (rotated).
        issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
        routes: KEYCLOAK_ROUTES,
        cookies: { keys: [randomBytes(32).toString('base64url')] },
        clientBasedCORS: () => true,
        ttl: {
          ClientCredentials: ttl,
          AccessToken: ttl,
          AuthorizationCode: 60,
          IdToken: ttl,
          Interaction: 600,
          Session: 3600,
          RefreshToken: 1800,
          Grant: 3600,
        },
        features: {
          devInteractions: { enabled: false },
          rpInitiatedLogout: {
            enabled: true,
            // Keycloak signs out without asking when the logout names the session's ID token, and asks otherwise.
            logoutSource: (ctx: ProviderContext, form: string) => {
              const hinted = typeof ctx.oidc.params?.id_token_hint === 'string';
              ctx.body = hinted
                ? `<!DOCTYPE html><html><head><title>Signing out</title></head><body>${form}<script>
const f = document.getElementById('op.logoutForm');
const i = document.createElement('input'); i.type = 'hidden'; i.name = 'logout'; i.value = 'yes';
f.appendChild(i); f.submit();
</script></body></html>`
                : `<!DOCTYPE html><html><head><title>Logging out</title></head><body>${form}<h1>Do you want to log out?</h1>
<button type="submit" form="op.logoutForm" name="logout" value="yes">Logout</button></body></html>`;
            },
          },
          clientCredentials: { enabled: true },
          introspection: { enabled: true },
          revocation: { enabled: true },
          resourceIndicators: {
            enabled: true,
            defaultResource: () => resourceFor(audience),
            useGrantedResource: () => true,
            getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => ({
              scope: knownScopes.join(' '),
              audience: audienceFor(resourceIndicator),
              accessTokenTTL: ttl,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'RS256', kid: current().kid } },
            }),
          },
        },
        extraTokenClaims: (_ctx: unknown, token: TokenLike) => {
          if (token.clientId === undefined) return undefined;
          return token.accountId === undefined ? mapperClaims(token.clientId) : userClaims(token.accountId, token.clientId);
        },
        formats: {
          customizers: {
            jwt: (_ctx: unknown, token: TokenLike, jwt: StructuredJwt) => {
              // oidc-provider sets sub = client_id for client_credentials; Keycloak uses
              // the service-account user's id.
              // A person's token keeps the user's id.
              if (token.clientId !== undefined && token.accountId === undefined) jwt.payload.sub = subjectFor(token.clientId);
              jwt.header = { ...jwt.header, typ: accessTokenTyp };
            },
          },
        },
      });
      provider = built;
      handler = built.callback();
    });

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    if (path === '/favicon.ico') {
      res.writeHead(204).end(); // browsers ask for it on the login page
      return;
    }
    if (path !== realmPath && !path.startsWith(`${realmPath}/`)) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"RESTEASY003210: Could not find resource"}');
      return;
    }
    if (path === `${realmPath}${KEYCLOAK_ROUTES.jwks}`) {
      jwksRequests += 1;
      switch (jwksMode) {
        case 'normal':
          break;
        case 'garbage':
          res.writeHead(200, { 'content-type': 'application/json' }).end('<html>\u0000\u00ff{"keys":[{{ not json');
          return;
        case 'not-jwks':
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":"nope","hello":["world"]}');
          return;
        case 'empty':
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}');
          return;
        case 'error':
          res.writeHead(503, { 'content-type': 'text/plain' }).end('Service Unavailable');
          return;
        case 'hang':
          hung.add(res);
          res.on('close', () => hung.delete(res));
          return;
      }
    }
    if (path.startsWith(`${realmPath}${LOGIN_PATH}/`) && provider !== undefined) {
      void loginPage(provider, req, res);
      return;
    }
    // oidc-provider routes from its mount point; derive the mount from originalUrl.
    (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
    req.url = url.slice(realmPath.length) || '/';
    handler(req, res);
  };

  /** Keycloak's login form: a username and password checked against the configured users. */
  const loginPage = async (op: ProviderInstance, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const interaction = await op.interactionDetails(req, res);
      if (interaction.prompt.name !== 'login') {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`unexpected prompt ${interaction.prompt.name} ${JSON.stringify(interaction.prompt)}`);
        return;
      }
      if (req.method === 'POST') {
        const form = new URLSearchParams(await readBody(req));
        const accountId = userIdFor(form.get('username') ?? '');
        const user = users.get(accountId);
        if (user !== undefined && user.password === form.get('password')) {
          await op.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
          return;
        }
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(loginHtml(realm, 'Invalid username or password.', form.get('username') ?? ''));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(loginHtml(realm));
    } catch (error) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`login: ${(error as Error).message}`);
    }
  };

  const listen = async (): Promise<void> => {
    const s = createServer(onRequest);
    s.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        resolve();
      });
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  };

  const closeHung = () => {
    for (const res of hung) res.destroy();
    hung.clear();
  };

  const stop = async (): Promise<void> => {
    const s = server;
    if (!s) return;
    server = undefined;
    closeHung();
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
    await closed;
  };

  await listen();
  await buildProvider();

  const requestToken = async (clientId: string, opts: TokenRequestOptions = {}): Promise<TokenResponse> => {
    const client = clients.get(clientId);
    const secret = opts.clientSecret ?? client?.clientSecret ?? '';
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    const scope = opts.scope ?? client?.scopes.join(' ') ?? '';
    if (scope !== '') form.set('scope', scope);
    const aud = opts.audience === undefined ? audience : opts.audience;
    if (aud !== null) form.set('resource', resourceFor(aud));
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if ((opts.authMethod ?? client?.authMethod ?? 'client_secret_basic') === 'client_secret_basic') {
      const enc = (v: string) => encodeURIComponent(v); // RFC 6749 2.3.1: form-encode before base64
      headers.authorization = `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}`;
    } else {
      form.set('client_id', clientId);
      form.set('client_secret', secret);
    }
    const response = await fetch(`${issuer()}${KEYCLOAK_ROUTES.token}`, { method: 'POST', headers, body: form });
    const text = await response.text();
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = { raw: text };
    }
    return { status: response.status, body };
  };

  const findKey = (kid?: string): SigningKey => {
    if (kid === undefined) return current();
    const key = keys.find((k) => k.kid === kid);
    if (!key) throw new Error(`unknown or dropped kid ${kid}`);
    return key;
  };

  const signToken = async (claims: JWTPayload, opts: SignOptions = {}): Promise<string> => {
    const key = findKey(opts.keyId);
    const kid = opts.kid === undefined ? key.kid : opts.kid;
    const header: { alg: string; typ: string; kid?: string } = { alg: 'RS256', typ: accessTokenTyp };
    if (kid !== null) header.kid = kid;
    return new SignJWT(claims).setProtectedHeader({ ...header, ...opts.header }).sign(key.privateKey);
  };

  const claimsFor = (clientId: string, opts: { scope?: string; nowSeconds?: number } = {}): JWTPayload => {
    const now = opts.nowSeconds ?? Math.floor(Date.now() / 1000);
    return {
      iss: issuer(),
      aud: audience,
      sub: subjectFor(clientId),
      client_id: clientId,
      scope: opts.scope ?? clients.get(clientId)?.scopes.join(' ') ?? '',
      iat: now,
      exp: now + ttl,
      jti: randomBytes(16).toString('base64url'),
      ...mapperClaims(clientId),
    };
  };

  const handle: OAuthServer = {
    get port() {
      return port;
    },
    get origin() {
      return origin();
    },
    get issuer() {
      return issuer();
    },
    get jwksUrl() {
      return `${issuer()}${KEYCLOAK_ROUTES.jwks}`;
    },
    get tokenEndpoint() {
      return `${issuer()}${KEYCLOAK_ROUTES.token}`;
    },
    get discoveryUrl() {
      return `${issuer()}/.well-known/openid-configuration`;
    },
    audience,
    orgClaim,
    partnersClaim,
    get currentKid() {
      return current().kid;
    },
    get publishedKids() {
      return keys.map((k) => k.kid);
    },
    get jwksRequests() {
      return jwksRequests;
    },
    get running() {
      return server !== undefined;
    },
    requestToken,
    async getToken(clientId, opts) {
      const { status, body } = await requestToken(clientId, opts);
      if (status !== 200 || typeof body.access_token !== 'string') {
        throw new Error(`token request for ${clientId} failed: HTTP ${status} ${JSON.stringify(body)}`);
      }
      return body.access_token;
    },
    async rotateKeys() {
      keys = [await generateSigningKey(), ...keys];
      await buildProvider();
      return current().kid;
    },
    async dropOldKeys() {
      keys = [current()];
      await buildProvider();
    },
    signToken,
    claimsFor,
    async mintToken(clientId, overrides = {}, opts) {
      const claims: Record<string, unknown> = { ...claimsFor(clientId), ...overrides };
      for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
      return signToken(claims, opts);
    },
    publicKey(kid) {
      const key = findKey(kid);
      const keyObject = createPublicKey(key.privateKey);
      return {
        kid: key.kid,
        keyObject,
        pem: keyObject.export({ type: 'spki', format: 'pem' }).toString(),
        jwk: key.publicJwk,
      };
    },
    subjectFor,
    userIdFor,
    setJwksMode(mode) {
      jwksMode = mode;
      if (mode !== 'hang') closeHung();
    },
    stop,
    async restart() {
      if (server) return;
      await listen();
    },
  };
  return handle;
}
