// Authentication and authorization for every route: the Bearer token is
// verified in onRequest (before the body is read), then the route's required
// scope and organization binding are checked. Routes declare what they need in
// their `config`.
//
// Tenancy rule: a token without an organization claim is admitted only through
// the cross-organization scopes (webhooks:dispatch, webhooks:audit). A route
// that lets it in with any other scope (e.g. webhooks:read) still refuses it,
// so a route that forgets `organization: true` does not open tenant data to
// organization-less tokens.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';
import { SCOPES, type Principal, type Scope } from '../identity/principal.ts';
import type { TokenVerifier } from '../identity/tokenVerifier.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Any one of these scopes admits the caller; absent: the route is public. */
    scopes?: readonly Scope[];
    /** The token must carry an organization (client API routes). */
    organization?: boolean;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** RFC 6750 b64token; the scheme name is case-insensitive (RFC 9110 §11.1). */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** Scopes that act across organizations: the only way in for a token without an organization. */
const CROSS_ORGANIZATION_SCOPES: ReadonlySet<Scope> = new Set([SCOPES.dispatch, SCOPES.audit]);

export const BEARER_REALM = 'Bearer realm="webhooks"';

export function registerAuth(app: FastifyInstance, verifier: TokenVerifier, afterAuth?: (request: FastifyRequest) => void): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    const scopes = config.scopes;
    if (scopes === undefined) return;
    const match = BEARER.exec(request.headers.authorization ?? '');
    if (!match?.[1]) {
      throw new UnauthorizedError('A Bearer access token is required.', {
        headers: { 'www-authenticate': `${BEARER_REALM}, error="invalid_token", error_description="missing bearer token"` },
      });
    }
    // An identity-provider outage propagates as IdentityProviderUnavailableError: 503, never 401 (problems.ts).
    const principal = await verifier.verify(match[1]);
    request.principal = principal;
    const granted = scopes.filter((s) => principal.scopes.has(s));
    if (granted.length === 0) {
      const needed = scopes.join(' ');
      throw new ForbiddenError(`This operation needs the scope ${scopes.map((s) => `"${s}"`).join(' or ')}.`, {
        headers: { 'www-authenticate': `${BEARER_REALM}, error="insufficient_scope", scope="${needed}"` },
      });
    }
    if (principal.organizationId === null && (config.organization === true || !granted.some((s) => CROSS_ORGANIZATION_SCOPES.has(s)))) {
      throw new ForbiddenError('This operation needs a token issued to an integration organization (the token has no organization claim).');
    }
    afterAuth?.(request);
  });
}

/** The verified principal of an authenticated route. */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === null) throw new Error('route is not authenticated');
  return request.principal;
}

/** The organization of a client API route (guaranteed by `config.organization`). */
export function organizationOf(request: FastifyRequest): string {
  const org = principalOf(request).organizationId;
  if (org === null) throw new ForbiddenError('This operation needs a token issued to an integration organization.');
  return org;
}
