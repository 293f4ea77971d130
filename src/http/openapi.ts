// The OpenAPI 3.1 document, generated from the very zod schemas the routes
// validate and serialize with (fastify-type-provider-zod turns them into JSON
// Schema 2020-12), served at /openapi.json, and an interactive reference at
// /docs (Swagger UI, its assets served from this process — no CDN).
//
// What the schemas cannot say is added here from the routes' own config:
// the security requirement of each operation (from `config.scopes`), the
// Idempotency-Key header as required on writes, problem+json as the media
// type of every error, and the response headers (Location, ETag,
// Idempotent-Replayed, RateLimit-*, Retry-After, x-request-id).
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { createJsonSchemaTransformObject, jsonSchemaTransform } from 'fastify-type-provider-zod';
import { PROBLEM_BASE } from '../errors.ts';
import { SCOPES } from '../identity/principal.ts';

export interface OpenApiOptions {
  /** The OAuth 2.0 token endpoint (Keycloak: `<issuer>/protocol/openid-connect/token`). */
  readonly tokenUrl?: string | undefined;
  /** Whether requests are rate-limited (documents the RateLimit-* headers). */
  readonly rateLimited: boolean;
  readonly version?: string;
}

/** The token endpoint documented when no issuer is configured (the development issuer mints tokens on the command line). */
const PLACEHOLDER_TOKEN_URL = 'https://keycloak.example.com/realms/nt24-idp/protocol/openid-connect/token';

const SCOPE_DESCRIPTIONS: Record<string, string> = {
  [SCOPES.read]: 'Read the organization’s webhooks and the event-type catalog.',
  [SCOPES.write]: 'Register, change, rotate and delete the organization’s webhooks.',
  [SCOPES.dispatch]: 'Dispatchers: look up dispatch targets and disable failing endpoints (not bound to an organization).',
  [SCOPES.audit]: 'Compliance: audit trail and point-in-time state of all webhooks.',
};

const DESCRIPTION = `
The webhook subscription registry of the NovaTrade24 API: integration organizations register
HTTPS endpoints for event types, dispatchers look up who must receive an event, compliance
replays the history. Every change is an event in a durable log.

## Authentication
OAuth 2.0 client credentials: get an access token (a JWT) from the token endpoint with your
client id and secret, and send it as \`Authorization: Bearer <token>\`. The token carries your
organization, your authorized partners and the scopes (\`webhooks:read\`, \`webhooks:write\`, …).
A missing, invalid or expired token is answered with 401 and \`WWW-Authenticate\`; a token
without the needed scope with 403.

## Idempotency
Every write takes an \`Idempotency-Key\` header (1–255 visible ASCII characters, a UUID is
recommended), scoped to your organization. Retrying the same request with the same key within
24 hours returns the original answer again with \`Idempotent-Replayed: true\`; the same key with
a different request, or a key first used more than 24 hours ago, is answered with 422. A failed
request records nothing, so its key stays free.

## Errors
Every error is \`application/problem+json\` (RFC 9457): \`type\` (a stable URI per kind of
problem under \`${PROBLEM_BASE}\`), \`title\`, \`status\`, \`detail\`, \`requestId\` and, for
invalid fields, \`errors: [{pointer, detail}]\` with JSON Pointers such as \`/events/0\`.
Every response carries \`x-request-id\`; quote it when reporting a problem.

## Rate limits
Requests are limited per organization (a token bucket). Responses carry \`RateLimit-Limit\`,
\`RateLimit-Remaining\` and \`RateLimit-Reset\`; a refused request gets 429 with \`Retry-After\`.
`.trim();

const STATUS_DESCRIPTIONS: Record<string, string> = {
  200: 'OK.',
  201: 'Created.',
  204: 'No content.',
  400: 'The request is not valid: malformed JSON, a field rule (see `errors[].pointer`) or a missing/malformed Idempotency-Key.',
  401: 'The access token is missing, invalid or expired.',
  403: 'The token lacks the scope, belongs to no organization, or names partners the organization is not authorized for.',
  404: 'No such webhook in this organization.',
  412: 'If-Match does not match the webhook’s current ETag.',
  413: 'The request body exceeds the size limit.',
  415: 'The request body is not application/json.',
  422: 'The Idempotency-Key was used for a different request, or first used more than 24 hours ago.',
  429: 'Rate limit exceeded; retry after `Retry-After` seconds.',
  500: 'Internal error.',
  503: 'The identity provider or a store cannot be reached, or the service is shutting down; retry after `Retry-After` seconds.',
};

type Json = Record<string, unknown>;

interface HeaderObject {
  description: string;
  schema: Json;
}

const header = (description: string, schema: Json = { type: 'string' }): HeaderObject => ({ description, schema });

/** Response headers, documented once under components/headers. */
const HEADERS = {
  'X-Request-Id': header('Identifies this request in the server’s logs and in error bodies (`requestId`).'),
  'Retry-After': header('Seconds to wait before retrying.', { type: 'integer', minimum: 0 }),
  'RateLimit-Limit': header('Requests the organization may send in a burst (the token bucket’s capacity).', { type: 'integer' }),
  'RateLimit-Remaining': header('Requests left in the current burst.', { type: 'integer', minimum: 0 }),
  'RateLimit-Reset': header('Seconds until the full burst is available again.', { type: 'integer', minimum: 0 }),
  Location: header('Path of the new webhook.'),
  ETag: header('The webhook’s revision, for If-Match on later writes.'),
  'Idempotent-Replayed': header('`true` when this is the recorded answer to an earlier request with the same Idempotency-Key.', {
    type: 'string',
    enum: ['true'],
  }),
  'WWW-Authenticate': header('The Bearer challenge (RFC 6750), with `error="invalid_token"` or `error="insufficient_scope"`.'),
} as const satisfies Record<string, HeaderObject>;

type HeaderName = keyof typeof HEADERS;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Per route: security from `config.scopes`; Idempotency-Key required where declared. */
const transform: typeof jsonSchemaTransform = (input) => {
  const result = jsonSchemaTransform(input);
  const scopes = input.route.config?.scopes;
  const schema = result.schema as (FastifySchema & { security?: Json[]; headers?: unknown }) | undefined;
  if (schema === undefined || schema.hide === true) return result;
  schema.security = scopes === undefined ? [] : [{ oauth2: [...scopes] }, { bearerAuth: [] }];
  const headers = schema.headers;
  if (isObject(headers) && isObject(headers.properties) && isObject(headers.properties['idempotency-key'])) {
    const key = headers.properties['idempotency-key'];
    Object.assign(key, { minLength: 1, maxLength: 255, example: '3f1c2b6e-8d4a-4e9b-9a57-2c1d0e7f6a88' });
    const required = Array.isArray(headers.required) ? (headers.required as unknown[]) : [];
    headers.required = [...required.filter((r) => r !== 'idempotency-key'), 'idempotency-key'];
  }
  return result;
};

/** Document-wide: problem+json errors, response headers and descriptions. */
function finishDocument(document: Json, options: OpenApiOptions): Json {
  const paths = isObject(document.paths) ? document.paths : {};
  for (const [path, item] of Object.entries(paths)) {
    if (!isObject(item)) continue;
    for (const [method, operation] of Object.entries(item)) {
      if (!isObject(operation) || !isObject(operation.responses)) continue;
      const authenticated = Array.isArray(operation.security) && operation.security.length > 0;
      for (const [status, response] of Object.entries(operation.responses)) {
        if (!isObject(response)) continue;
        finishResponse(response, Number(status), { path, method, authenticated, rateLimited: options.rateLimited });
      }
      // The rotate body is optional (`{}` and no body mean the defaults).
      if (path.endsWith('/secret/rotate') && isObject(operation.requestBody)) operation.requestBody.required = false;
    }
  }
  pruneSchemas(document);
  return document;
}

function securitySchemes(options: OpenApiOptions) {
  return {
    oauth2: {
      type: 'oauth2' as const,
      description:
        'OAuth 2.0 client credentials (Keycloak realm `nt24-idp`). The access token must carry the audience of this API and the scopes listed per operation.' +
        (options.tokenUrl === undefined ? ' This server runs with its development issuer: mint a token with `npm run token`.' : ''),
      flows: {
        clientCredentials: {
          tokenUrl: options.tokenUrl ?? PLACEHOLDER_TOKEN_URL,
          scopes: SCOPE_DESCRIPTIONS,
        },
      },
    },
    bearerAuth: {
      type: 'http' as const,
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description: 'An access token obtained with the client-credentials flow, sent as `Authorization: Bearer <JWT>`.',
    },
  };
}

function finishResponse(
  response: Json,
  status: number,
  where: { path: string; method: string; authenticated: boolean; rateLimited: boolean },
): void {
  const description =
    where.path === '/health/ready' && status === 503
      ? 'Not ready: a store does not answer, the read model lags too far behind the log, or the service is shutting down.'
      : STATUS_DESCRIPTIONS[status];
  if (description !== undefined && (response.description === undefined || response.description === 'Default Response')) {
    response.description = description;
  }
  const content = isObject(response.content) ? response.content : undefined;
  if (status >= 400 && content !== undefined && content['application/json'] !== undefined) {
    response.content = { 'application/problem+json': content['application/json'] };
  }
  const names: HeaderName[] = ['X-Request-Id'];
  if (where.authenticated && where.rateLimited && status !== 401) names.push('RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset');
  if (status === 429 || status === 503) names.push('Retry-After');
  if (status === 401 || status === 403) names.push('WWW-Authenticate');
  if (where.path.startsWith('/v1/webhooks') && status >= 200 && status < 300 && where.method !== 'get') {
    names.push('Idempotent-Replayed');
  }
  if (status === 201) names.push('Location');
  const carriesWebhook =
    status === 201 ||
    (status === 200 &&
      ((where.path === '/v1/webhooks/{id}' && (where.method === 'get' || where.method === 'patch')) ||
        where.path === '/internal/v1/webhooks/{id}/disable'));
  if (carriesWebhook) names.push('ETag');
  response.headers = {
    ...(isObject(response.headers) ? response.headers : {}),
    ...Object.fromEntries(names.map((name) => [name, { $ref: `#/components/headers/${name}` }])),
  };
}

/** Drops component schemas nothing refers to (the zod registry holds every schema with an id, input and output form). */
function pruneSchemas(document: Json): void {
  const components = isObject(document.components) ? document.components : {};
  const schemas = isObject(components.schemas) ? components.schemas : {};
  const used = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (!isObject(value)) return;
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string' && child.startsWith('#/components/schemas/')) {
        const name = child.slice('#/components/schemas/'.length);
        if (!used.has(name)) {
          used.add(name);
          visit(schemas[name]);
        }
      } else {
        visit(child);
      }
    }
  };
  visit(document.paths);
  components.schemas = Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name)));
}

export const DOCS_PREFIX = '/docs';

/**
 * Registers the document generator; must run before the routes are added so
 * it sees them. `/openapi.json` and `/docs` are public.
 */
export async function registerOpenApi(app: FastifyInstance, options: OpenApiOptions): Promise<void> {
  const zodTransformObject = createJsonSchemaTransformObject({});
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Webhook subscription registry',
        version: options.version ?? '1.0.0',
        description: DESCRIPTION,
      },
      tags: [
        { name: 'webhooks', description: 'Register and manage the organization’s webhook endpoints.' },
        { name: 'event types', description: 'The catalog of event types to subscribe to.' },
        { name: 'dispatch', description: 'Internal: for the dispatchers that deliver events.' },
        { name: 'operations', description: 'Probes for the orchestrator (no authentication).' },
      ],
      components: { securitySchemes: securitySchemes(options), headers: HEADERS },
    },
    transform,
    transformObject: (document) => finishDocument(zodTransformObject(document) as Json, options),
  });
  await app.register(fastifySwaggerUi, {
    routePrefix: DOCS_PREFIX,
    uiConfig: { deepLinking: true, docExpansion: 'list', defaultModelsExpandDepth: 0 },
    staticCSP: [
      "default-src 'self'",
      "img-src 'self' data:",
      "style-src 'self' 'unsafe-inline'",
      "script-src 'self'",
      `connect-src 'self'${options.tokenUrl ? ` ${new URL(options.tokenUrl).origin}` : ''}`,
      "object-src 'none'",
      "frame-ancestors 'none'",
      "base-uri 'self'",
    ].join('; '),
  });
  app.get('/openapi.json', { schema: { hide: true } }, (_request, reply) => reply.send(app.swagger()));
}
