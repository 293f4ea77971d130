// Authentication and authorization for every route: the Bearer token is
// verified in onRequest (before the body is read), then the route's required
// scope and organization binding are checked. Routes declare what they need in
// their `config`.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';
import type { Principal, Scope } from '../identity/principal.ts';
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

const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/;

export function registerAuth(app: FastifyInstance, verifier: TokenVerifier, afterAuth?: (request: FastifyRequest) => void): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    const scopes = config.scopes;
    if (scopes === undefined) return;
    const match = BEARER.exec(request.headers.authorization ?? '');
    if (!match?.[1]) {
      throw new UnauthorizedError('A Bearer access token is required.', {
        headers: { 'www-authenticate': 'Bearer realm="webhooks", error="invalid_token", error_description="missing bearer token"' },
      });
    }
    const principal = await verifier.verify(match[1]);
    request.principal = principal;
    if (!scopes.some((s) => principal.scopes.has(s))) {
      const needed = scopes.join(' ');
      throw new ForbiddenError(`This operation needs the scope ${scopes.map((s) => `"${s}"`).join(' or ')}.`, {
        headers: { 'www-authenticate': `Bearer realm="webhooks", error="insufficient_scope", scope="${needed}"` },
      });
    }
    if (config.organization === true && principal.organizationId === null) {
      throw new ForbiddenError('This operation needs a token issued to an integration organization.');
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
