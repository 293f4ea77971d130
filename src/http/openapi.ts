// The OpenAPI 3.1 document, generated from the very zod schemas the routes
// validate and serialize with (fastify-type-provider-zod turns them into JSON
// Schema 2020-12), served at /openapi.json, and an interactive reference at
// /docs (Swagger UI, its assets served from this process — no CDN).
//
// What the schemas cannot say is added here from facts about the app:
// - the security requirement of each operation (from `config.scopes`);
// - request headers spelled as the reference page spells them (fastify sees
//   them lower-cased: `idempotency-key` is validated, `Idempotency-Key` is
//   documented, so clients generated from the document read like the page);
// - the answers every operation can give whatever its route says, because
//   they come from hooks that run for every request: 400/408/414/417/431 from the
//   transport, 401/403/429 from authentication and rate limiting, 413/415
//   from the body parser, 500 and 503 (shutdown, outages) — each one
//   documented once under components/responses and referenced;
// - problem+json as the media type of every error, and the response headers
//   (Location, ETag, Idempotent-Replayed, Cache-Control, RateLimit-*,
//   Retry-After, WWW-Authenticate, X-Request-Id).
// test/int/openapiLint.int.test.ts lints the result; openapiContract.int.test.ts
// drives the API from it and checks every answer against it.
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { createJsonSchemaTransformObject, jsonSchemaTransform } from 'fastify-type-provider-zod';
import { PROBLEM_BASE } from '../errors.ts';
import { SCOPES } from '../identity/principal.ts';

export interface OpenApiOptions {
  /** The OAuth 2.0 token endpoint (Keycloak: `<issuer>/protocol/openid-connect/token`). */
  readonly tokenUrl?: string | undefined;
  /** Whether requests are rate-limited (documents 429 and the RateLimit-* headers). */
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

/** Request header names as the API reference page spells them (HTTP header names are case-insensitive). */
const HEADER_SPELLING: Readonly<Record<string, string>> = {
  'idempotency-key': 'Idempotency-Key',
  'if-match': 'If-Match',
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
Every response carries \`X-Request-Id\`; quote it when reporting a problem. Besides the answers
listed per operation, a path that is no operation of this document is answered with 404
(the \`NotFound\` response below).

## Rate limits
Requests are limited per organization (a token bucket). Responses carry \`RateLimit-Limit\`,
\`RateLimit-Remaining\` and \`RateLimit-Reset\`; a refused request gets 429 with \`Retry-After\`.
`.trim();

type Json = Record<string, unknown>;

interface HeaderObject {
  description: string;
  required?: boolean;
  schema: Json;
}

const header = (description: string, schema: Json = { type: 'string' }, required = false): HeaderObject => ({
  description,
  ...(required ? { required: true } : {}),
  schema,
});

/**
 * Response headers, documented once under components/headers. The map key
 * in a response is the header's name; a component whose name differs from it
 * (`WWW-Authenticate-Scope`) is a variant with another description or `required`.
 */
const HEADERS = {
  'X-Request-Id': header('Identifies this request in the server’s logs and in error bodies (`requestId`).', { type: 'string' }, true),
  'Retry-After': header('Seconds to wait before retrying.', { type: 'integer', minimum: 0 }),
  'Retry-After-Required': header('Seconds to wait before retrying.', { type: 'integer', minimum: 0 }, true),
  'RateLimit-Limit': header('Requests the organization may send in a burst (the token bucket’s capacity).', { type: 'integer' }),
  'RateLimit-Remaining': header('Requests left in the current burst.', { type: 'integer', minimum: 0 }),
  'RateLimit-Reset': header('Seconds until the full burst is available again.', { type: 'integer', minimum: 0 }),
  Location: header('Path of the new webhook (`/v1/webhooks/{id}`).', { type: 'string' }, true),
  ETag: header('The webhook’s revision, for If-Match on later writes.', { type: 'string', pattern: '^"\\d+"$' }, true),
  'Idempotent-Replayed': header('`true` when this is the recorded answer to an earlier request with the same Idempotency-Key.', {
    type: 'string',
    enum: ['true'],
  }),
  'Cache-Control': header('`no-store`: the answer holds secrets or changes with every request.', { type: 'string', enum: ['no-store'] }, true),
  'Cache-Control-Not-Ready': header('`no-store` when the checks ran (not when refused during shutdown).', {
    type: 'string',
    enum: ['no-store'],
  }),
  'WWW-Authenticate': header(
    'The Bearer challenge (RFC 6750), with `error="invalid_token"`.',
    { type: 'string', pattern: '^Bearer ' },
    true,
  ),
  'WWW-Authenticate-Scope': header(
    'The Bearer challenge with `error="insufficient_scope"` and the scope needed, when the token lacks it.',
    { type: 'string', pattern: '^Bearer ' },
  ),
} as const satisfies Record<string, HeaderObject>;

type HeaderComponent = keyof typeof HEADERS;
/** [name in the response, component]; a bare component name is both. */
type HeaderUse = HeaderComponent | readonly [string, HeaderComponent];

/** Error answers, documented once under components/responses. */
interface ErrorResponse {
  readonly name: string;
  readonly description: string;
  readonly headers: readonly HeaderUse[];
  /** Given before authentication ran, so no RateLimit-* fields. */
  readonly beforeAuth?: boolean;
}

const ERROR_RESPONSES: Readonly<Record<number, ErrorResponse>> = {
  400: {
    name: 'BadRequest',
    description:
      'The request is not valid: a malformed URL, an unknown or invalid query parameter, malformed JSON, a field rule ' +
      '(see `errors[].pointer`) or a missing/malformed Idempotency-Key.',
    headers: [],
  },
  401: {
    name: 'Unauthorized',
    description: 'The access token is missing, invalid or expired.',
    headers: [['WWW-Authenticate', 'WWW-Authenticate']],
    beforeAuth: true,
  },
  403: {
    name: 'Forbidden',
    description: 'The token lacks the scope, belongs to no organization, or names partners the organization is not authorized for.',
    headers: [['WWW-Authenticate', 'WWW-Authenticate-Scope']],
  },
  404: {
    name: 'NotFound',
    description: 'No such webhook in this organization (deleted ones included), or no such route.',
    headers: [],
  },
  408: {
    name: 'RequestTimeout',
    description: 'The request (its headers or its body) did not arrive in time; the connection is closed.',
    headers: [],
    beforeAuth: true,
  },
  409: {
    name: 'Conflict',
    description: 'Too many concurrent changes to this webhook; retry (with the same Idempotency-Key) after `Retry-After` seconds.',
    headers: [['Retry-After', 'Retry-After-Required']],
  },
  410: {
    name: 'Gone',
    description:
      'The change feed no longer holds the changes after this position (or it is not one of this registry): take the ' +
      'dispatch snapshot again and follow the changes after its position.',
    headers: [],
  },
  412: { name: 'PreconditionFailed', description: 'If-Match does not match the webhook’s current ETag.', headers: [] },
  413: { name: 'PayloadTooLarge', description: 'The request body exceeds the size limit.', headers: [] },
  414: { name: 'UriTooLong', description: 'The request URI (or a path segment of it) is too long.', headers: [], beforeAuth: true },
  415: { name: 'UnsupportedMediaType', description: 'The request body is not application/json.', headers: [] },
  417: {
    name: 'ExpectationFailed',
    description: 'The Expect header asks for something other than 100-continue.',
    headers: [],
    beforeAuth: true,
  },
  422: {
    name: 'IdempotencyKeyReused',
    description: 'The Idempotency-Key was used for a different request, or first used more than 24 hours ago.',
    headers: [],
  },
  429: {
    name: 'RateLimited',
    description: 'Rate limit exceeded; retry after `Retry-After` seconds.',
    headers: [['Retry-After', 'Retry-After-Required']],
  },
  431: { name: 'HeadersTooLarge', description: 'The request headers are too large.', headers: [], beforeAuth: true },
  500: { name: 'InternalError', description: 'Internal error (the details are in the server’s log, under X-Request-Id).', headers: [] },
  503: {
    name: 'ServiceUnavailable',
    description:
      'The identity provider or a store cannot be reached, the read model has not caught up, or the service is shutting ' +
      'down; retry after `Retry-After` seconds.',
    headers: ['Retry-After'],
  },
};

/** What every operation can answer, from the hooks that run for every request. */
const EVERY_OPERATION = [400, 408, 414, 417, 431, 500, 503];
/** What every authenticated operation can answer (429 only when rate limiting is on). */
const AUTHENTICATED = [401, 403];
/** Methods whose bodies fastify parses (a DELETE with a body too). */
const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete']);

/** Descriptions of success answers, as the reference page words them where it has one. */
const SUCCESS_DESCRIPTIONS: Readonly<Record<string, string>> = {
  registerWebhook: 'Registered. Secret is shown once in the response.',
  getWebhook: 'The webhook. Its secret is not included (it is shown once, on registration).',
  listWebhooks:
    'One page of the organization’s webhooks in a stable order; `nextCursor` fetches the next page (null on the last). ' +
    'Secrets are not included.',
  updateWebhook: 'The webhook as it is now (unchanged when the request changes nothing).',
  deleteWebhook: 'Deleted.',
  rotateWebhookSecret:
    'Rotated. The new secret is shown once in the response; the previous one keeps signing until `previousSecretExpiresAt`.',
  getWebhookHistory: 'The audit trail, oldest change first; never secrets.',
  getWebhooksAsOf: 'The state of every webhook at `asOf`, one page at a time; never secrets.',
  listEventTypes: 'The catalog of event types.',
  getDispatchTargets: 'The webhooks that must receive this event, each with the secrets to sign it with.',
  disableWebhook: 'The webhook, now DISABLED (unchanged if it already was).',
  getDispatchSnapshot: 'Every ACTIVE webhook with its signing secrets, as of `position` (streamed).',
  getDispatchChanges:
    'The changes after the position: as Server-Sent Events (`text/event-stream`, one event per change, `id:` its ' +
    'position) when asked for, else one page of them as JSON.',
  getLiveness: 'The process answers.',
  getReadiness: 'Ready: the stores answer and the read model is caught up.',
};

/** Operations whose success answer carries `Cache-Control: no-store` (secrets, or state that changes with every request). */
const NO_STORE = new Set([
  'registerWebhook',
  'rotateWebhookSecret',
  'getWebhookHistory',
  'getWebhooksAsOf',
  'verifyAuditTrail',
  'getDispatchTargets',
  'getDispatchSnapshot',
  'getDispatchChanges',
  'getLiveness',
  'getReadiness',
]);

/** Operations whose success answer is a webhook at a revision (`ETag`). */
const CARRIES_WEBHOOK = new Set(['registerWebhook', 'getWebhook', 'updateWebhook', 'disableWebhook']);

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Per route: security from `config.scopes`; request headers renamed, Idempotency-Key required where declared. */
const transform: typeof jsonSchemaTransform = (input) => {
  const result = jsonSchemaTransform(input);
  const scopes = input.route.config?.scopes;
  const schema = result.schema as (FastifySchema & { security?: Json[]; headers?: unknown }) | undefined;
  if (schema === undefined || schema.hide === true) return result;
  schema.security = scopes === undefined ? [] : [{ oauth2: [...scopes] }, { bearerAuth: [] }];
  const headers = schema.headers;
  if (isObject(headers) && isObject(headers.properties)) {
    const required = new Set(Array.isArray(headers.required) ? (headers.required as string[]) : []);
    // The handler requires the key (a missing one is a 400 with its own problem type), so zod declares it optional.
    if (headers.properties['idempotency-key'] !== undefined) required.add('idempotency-key');
    headers.properties = Object.fromEntries(
      Object.entries(headers.properties).map(([name, value]) => [HEADER_SPELLING[name] ?? name, value]),
    );
    headers.required = [...required].map((name) => HEADER_SPELLING[name] ?? name);
  }
  return result;
};

type RefObject = { $ref: string };

const headerRefs = (uses: readonly HeaderUse[]): Record<string, RefObject> =>
  Object.fromEntries(
    uses.map((use) => {
      const [name, component] = typeof use === 'string' ? [use, use] : use;
      return [name, { $ref: `#/components/headers/${component}` }];
    }),
  );

const RATE_LIMIT_HEADERS: readonly HeaderUse[] = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'];

interface ProblemResponseObject {
  description: string;
  headers: Record<string, RefObject>;
  content: Record<string, { schema: RefObject }>;
}

function errorResponses(options: OpenApiOptions): Record<string, ProblemResponseObject> {
  return Object.fromEntries(
    Object.entries(ERROR_RESPONSES).map(([, e]) => [
      e.name,
      {
        description: e.description,
        headers: headerRefs(['X-Request-Id', ...e.headers, ...(options.rateLimited && e.beforeAuth !== true ? RATE_LIMIT_HEADERS : [])]),
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      },
    ]),
  );
}

/** Document-wide: cross-cutting answers, problem+json errors, response headers and descriptions. */
function finishDocument(document: Json, options: OpenApiOptions): Json {
  const paths = isObject(document.paths) ? document.paths : {};
  for (const [path, item] of Object.entries(paths)) {
    if (!isObject(item)) continue;
    for (const [method, operation] of Object.entries(item)) {
      if (!isObject(operation) || !isObject(operation.responses)) continue;
      const authenticated = Array.isArray(operation.security) && operation.security.length > 0;
      const operationId = typeof operation.operationId === 'string' ? operation.operationId : `${method} ${path}`;
      const responses = operation.responses;
      const statuses = new Set([
        ...Object.keys(responses).map(Number),
        ...EVERY_OPERATION,
        ...(authenticated ? AUTHENTICATED : []),
        ...(authenticated && options.rateLimited ? [429] : []),
        ...(BODY_METHODS.has(method) ? [413, 415] : []),
      ]);
      const finished: Json = {};
      for (const status of [...statuses].sort((a, b) => a - b)) {
        const declared = responses[String(status)];
        finished[String(status)] =
          status >= 400 && !(operationId === 'getReadiness' && status === 503)
            ? errorRef(status)
            : finishSuccess(isObject(declared) ? declared : {}, status, { path, method, operationId, authenticated, options });
      }
      operation.responses = finished;
      // The change feed also streams, as Server-Sent Events, when the client accepts them.
      if (operationId === 'getDispatchChanges') addEventStream(finished['200']);
      // The rotate body is optional (`{}` and no body mean the defaults).
      if (operationId === 'rotateWebhookSecret' && isObject(operation.requestBody)) operation.requestBody.required = false;
      // A PATCH body may also be sent as a JSON merge patch (RFC 7396): the same document.
      if (method === 'patch' && isObject(operation.requestBody) && isObject(operation.requestBody.content)) {
        const json = operation.requestBody.content['application/json'];
        if (json !== undefined) operation.requestBody.content['application/merge-patch+json'] = json;
      }
    }
  }
  pruneComponents(document);
  return document;
}

/** The Server-Sent Events form of the change feed's answer, beside its JSON form. */
function addEventStream(response: unknown): void {
  if (!isObject(response) || !isObject(response.content)) return;
  response.content['text/event-stream'] = {
    schema: {
      type: 'string',
      description:
        'Events `id: <position>`, `event: webhook.upserted` (`data:` a DispatchFeedTarget as JSON) or `event: ' +
        'webhook.removed` (`data:` a DispatchFeedRemoval), and `: keep-alive` comments at least every 15 s.',
    },
  };
}

function errorRef(status: number): Json {
  const known = ERROR_RESPONSES[status];
  if (known === undefined) throw new Error(`no documented error response for status ${status}`);
  return { $ref: `#/components/responses/${known.name}` };
}

function finishSuccess(
  response: Json,
  status: number,
  where: { path: string; method: string; operationId: string; authenticated: boolean; options: OpenApiOptions },
): Json {
  const { operationId } = where;
  const description =
    status === 503
      ? 'Not ready: a store does not answer, the read model lags too far behind the log, or the service is shutting down.'
      : SUCCESS_DESCRIPTIONS[operationId];
  if (description !== undefined) response.description = description;
  const content = isObject(response.content) ? response.content : undefined;
  const json = content?.['application/json'];
  if (status >= 400 && isObject(json)) {
    // Readiness names its failed checks; refused during shutdown it is the plain problem every route gives.
    response.content = { 'application/problem+json': { schema: { anyOf: [json.schema, { $ref: '#/components/schemas/Problem' }] } } };
  }
  const names: HeaderUse[] = ['X-Request-Id'];
  if (where.authenticated && where.options.rateLimited) names.push(...RATE_LIMIT_HEADERS);
  if (status === 503) names.push(['Retry-After', 'Retry-After-Required']);
  if (where.path.startsWith('/v1/webhooks') && status < 300 && where.method !== 'get') names.push('Idempotent-Replayed');
  if (status === 201) names.push('Location');
  if (status < 300 && CARRIES_WEBHOOK.has(operationId)) names.push('ETag');
  if (NO_STORE.has(operationId)) names.push(status < 300 ? 'Cache-Control' : ['Cache-Control', 'Cache-Control-Not-Ready']);
  response.headers = { ...(isObject(response.headers) ? response.headers : {}), ...headerRefs(names) };
  return response;
}

function securitySchemes(options: OpenApiOptions) {
  return {
    oauth2: {
      type: 'oauth2' as const,
      description:
        'OAuth 2.0 client_credentials grant via Keycloak service account. Clients are provisioned per ' +
        'IntegrationOrganization in the nt24-idp realm. The access token must carry the audience of this API and the ' +
        'scopes listed per operation.' +
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

/**
 * Drops components nothing refers to: schemas (the zod registry holds every
 * schema with an id, input and output form), and error responses no
 * operation gives here (429 without rate limiting), and headers neither
 * refers to (RateLimit-*). NotFound stays: it is also the answer to every
 * path that is no operation.
 */
function pruneComponents(document: Json): void {
  const components = isObject(document.components) ? document.components : {};
  const responses = isObject(components.responses) ? components.responses : {};
  const text = JSON.stringify(document.paths);
  components.responses = Object.fromEntries(
    Object.entries(responses).filter(([name]) => name === 'NotFound' || text.includes(`"#/components/responses/${name}"`)),
  );
  const headers = isObject(components.headers) ? components.headers : {};
  const referring = text + JSON.stringify(components.responses);
  components.headers = Object.fromEntries(
    Object.entries(headers).filter(([name]) => referring.includes(`"#/components/headers/${name}"`)),
  );
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
  visit(components.responses);
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
        // The package is private (UNLICENSED): the API is NovaTrade24's own. SPDX allows LicenseRef- for such licenses.
        license: { name: 'Proprietary', identifier: 'LicenseRef-NovaTrade24-Proprietary' },
      },
      // Relative: the paths are served by whichever host serves this document (behind any gateway).
      servers: [{ url: '/', description: 'The server that serves this document.' }],
      tags: [
        { name: 'webhooks', description: 'Register and manage the organization’s webhook endpoints.' },
        { name: 'event types', description: 'The catalog of event types to subscribe to.' },
        { name: 'dispatch', description: 'Internal: for the dispatchers that deliver events.' },
        { name: 'audit', description: 'Compliance: the state of every webhook at a past instant, and the tamper check, from the event log alone.' },
        { name: 'operations', description: 'Probes for the orchestrator (no authentication).' },
      ],
      components: {
        securitySchemes: securitySchemes(options),
        headers: HEADERS,
        responses: errorResponses(options),
      },
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
