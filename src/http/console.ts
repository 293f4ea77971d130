// The web console at /console/: the single-page app built into console/dist/
// (`npm run build:console`, which `npm start` runs first), served from this
// process's files only, and /console/config.json, which tells it where to
// sign in: the development sign-in (devSignIn.ts) or the configured OpenID
// provider (Keycloak's realm), as the public client CONSOLE_CLIENT_ID.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CONSOLE_CLIENT_ID, DEV_SIGN_IN_PREFIX } from './devSignIn.ts';

export const CONSOLE_PREFIX = '/console/';
/** console/dist at the repository's root, from src/http/ or dist/http/ alike. */
export const CONSOLE_DIST = fileURLToPath(new URL('../../console/dist/', import.meta.url));

/**
 * What the console asks the provider for. Keycloak puts a requested client
 * scope into the token only when the client has it and the user holds a role
 * it is gated on, so asking for all four is safe: an auditor's token gets
 * webhooks:audit, a developer's does not.
 */
export const CONSOLE_SCOPE = 'openid profile webhooks:read webhooks:write webhooks:audit';

export interface ConsoleOptions {
  /** The configured OpenID provider (OIDC_ISSUER); absent: the development sign-in. */
  readonly issuer?: string | undefined;
  /** The organization claim's name (ORG_CLAIM), which the console shows. */
  readonly orgClaim: string;
  /** Where the built console is (default CONSOLE_DIST). */
  readonly dir?: string;
}

export async function registerConsole(app: FastifyInstance, options: ConsoleOptions): Promise<void> {
  const dir = options.dir ?? CONSOLE_DIST;
  const issuerOrigin = options.issuer === undefined ? undefined : new URL(options.issuer).origin;
  // Scripts and styles from this origin only; the API and (with Keycloak) the provider's token endpoint for fetch.
  const policy = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self'${issuerOrigin === undefined ? '' : ` ${issuerOrigin}`}`,
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
  const secure = (reply: FastifyReply): FastifyReply =>
    reply
      .header('content-security-policy', policy)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY');

  app.get('/console', { schema: { hide: true } }, (_request, reply) => reply.redirect(CONSOLE_PREFIX, 301));

  app.get(`${CONSOLE_PREFIX}config.json`, { schema: { hide: true } }, (request: FastifyRequest, reply) => {
    const origin = `${request.protocol}://${request.host}`;
    const provider =
      options.issuer === undefined
        ? { authority: `${origin}${DEV_SIGN_IN_PREFIX}`, metadataUrl: `${origin}${DEV_SIGN_IN_PREFIX}/metadata`, scope: 'openid', development: true }
        : { authority: options.issuer, scope: CONSOLE_SCOPE, development: false };
    return secure(reply).header('cache-control', 'no-store').send({ clientId: CONSOLE_CLIENT_ID, ...provider, orgClaim: options.orgClaim });
  });

  if (!existsSync(path.join(dir, 'index.html'))) {
    app.get(`${CONSOLE_PREFIX}*`, { schema: { hide: true } }, (_request, reply) =>
      reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send('The web console is not built here: run `npm run build:console` (npm start does) and reload.\n'),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    prefix: CONSOLE_PREFIX,
    decorateReply: false,
    index: ['index.html'],
    // The app is small and changes with each build: revalidate, never serve a stale bundle.
    cacheControl: false,
    setHeaders: (res) => {
      res.setHeader('content-security-policy', policy);
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('referrer-policy', 'no-referrer');
      res.setHeader('x-frame-options', 'DENY');
      res.setHeader('cache-control', 'no-cache');
    },
    schemaHide: true,
  });
}
