// The client API of one organization: register, read, list, change, pause,
// rotate and delete webhooks (DESIGN.md §2). Writes go through the command
// handlers; single reads fold the webhook's stream (always current); lists
// come from the read model after read-your-writes has settled.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { foldWebhook, type Webhook } from '../../domain/webhook.ts';
import {
  IdempotencyKeyInvalidError,
  NotFoundError,
  PartnersNotAuthorizedError,
  PreconditionFailedError,
} from '../../errors.ts';
import { SCOPES } from '../../identity/principal.ts';
import { canonicalRequest, parseIdempotencyKey } from '../../commands/idempotency.ts';
import { representationRevision, toDomainEvent, type WebhookCommands, type WriteContext } from '../../commands/webhookCommands.ts';
import { webhookStreamName, type EventStore } from '../../stores/eventStore.ts';
import type { ReadModel } from '../../stores/readModel.ts';
import { organizationOf, principalOf } from '../auth.ts';
import type { CursorCodec } from '../cursor.ts';
import type { ReadYourWrites } from '../readYourWrites.ts';
import {
  DEFAULT_GRACE_PERIOD_SECONDS,
  listQuery,
  problem,
  registeredResponse,
  rotateResponse,
  webhookIdParams,
  webhookList,
  webhookResponse,
  type createSchemas,
} from '../schemas.ts';

export interface WebhookRouteDeps {
  readonly commands: WebhookCommands;
  readonly store: EventStore;
  readonly readModel: ReadModel;
  readonly schemas: ReturnType<typeof createSchemas>;
  readonly cursors: CursorCodec;
  readonly readYourWrites: ReadYourWrites;
  readonly now: () => Date;
  readonly onReplay?: () => void;
}

// Header names are lower case here because fastify validates the lower-cased
// headers; the API document spells them as the reference page does
// (Idempotency-Key, If-Match: see openapi.ts). The handler checks the key (requireKey).
const idempotencyHeader = z.object({
  'idempotency-key': z
    .string()
    .optional()
    .meta({
      description:
        'Client-generated unique key (UUID recommended) for this write operation. Identical key + identical body within 24h ' +
        'returns the cached response. Identical key + different body returns 422. 1–255 visible ASCII characters; the ' +
        'quoted structured-field form `"…"` is accepted.',
      minLength: 1,
      maxLength: 255,
      pattern: '^(?:[\\x21\\x23-\\x7E][\\x21-\\x7E]{0,254}|"[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,253}")$',
      example: '5f0c1c9e-4e0b-4a55-9a57-0d8e9d1c7a11',
    }),
});
const ifMatchHeader = z.object({
  'if-match': z
    .string()
    .optional()
    .meta({
      description: 'The ETag of the webhook as last read (or `*`); a different one is answered with 412 and changes nothing.',
      example: '"0"',
    }),
});
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, problem]));

export function toWebhookResponse(w: Webhook): z.input<typeof webhookResponse> {
  return {
    id: w.id,
    url: w.url,
    events: [...w.events],
    status: w.status,
    createdAt: w.createdAt,
    ...(w.partnerIds !== null ? { partnerIds: [...w.partnerIds] } : {}),
    updatedAt: w.updatedAt,
  };
}

export function etagOf(revision: number): string {
  return `"${revision}"`;
}

/**
 * Parses `If-Match: "<revision>"`; `*` matches any current webhook (RFC 9110
 * §13.1.1; a missing one is a 404 anyway); anything else cannot match.
 */
function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const match = /^"(\d{1,15})"$/.exec(header.trim());
  if (!match?.[1]) throw new PreconditionFailedError('If-Match does not match the current ETag of the webhook');
  return Number(match[1]);
}

/**
 * The path as the route understood it: the route's pattern with its validated
 * parameters (UUIDs lower-cased), so `/v1/%77ebhooks` or an upper-case id is
 * the same request as its plain spelling.
 */
function canonicalPath(request: FastifyRequest): string {
  const params = request.params as Record<string, string>;
  return request.routeOptions.url!.replace(/:(\w+)/g, (_, name: string) => params[name] ?? '');
}

function requireKey(request: FastifyRequest): string {
  const key = parseIdempotencyKey(request.headers['idempotency-key']);
  if (key === undefined) {
    throw new IdempotencyKeyInvalidError('Send an Idempotency-Key header of 1–255 visible ASCII characters.', {
      errors: [{ pointer: '/headers/idempotency-key', detail: 'is missing or malformed' }],
    });
  }
  return key;
}

/** The body with duplicate partner ids removed (first occurrence kept), as it is fingerprinted and stored. */
function withUniquePartners<B extends { partnerIds?: string[] | null | undefined }>(body: B): B {
  return body.partnerIds ? { ...body, partnerIds: [...new Set(body.partnerIds)] } : body;
}

function checkPartners(request: FastifyRequest, partnerIds: readonly string[] | null | undefined): void {
  if (!partnerIds) return;
  const authorized = new Set(principalOf(request).partnerIds);
  const refused = partnerIds.flatMap((id, i) =>
    authorized.has(id) ? [] : [{ pointer: `/partnerIds/${i}`, detail: 'is not an authorized partner of this organization' }],
  );
  if (refused.length > 0) {
    throw new PartnersNotAuthorizedError('partnerIds lists partners this organization is not authorized for.', {
      errors: refused,
    });
  }
}

export function registerWebhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { commands, schemas } = deps;

  const writeContext = (request: FastifyRequest, body: unknown): WriteContext => {
    const principal = principalOf(request);
    const key = requireKey(request);
    return {
      organizationId: organizationOf(request),
      actor: { clientId: principal.clientId, subject: principal.subject },
      requestId: request.id,
      idempotencyKey: key,
      request: canonicalRequest(request.method, canonicalPath(request), body),
      now: deps.now(),
    };
  };

  const replayed = (reply: FastifyReply, wasReplayed: boolean): void => {
    if (wasReplayed) {
      void reply.header('idempotent-replayed', 'true');
      deps.onReplay?.();
    }
  };

  r.post('/v1/webhooks', {
    config: { scopes: [SCOPES.write], organization: true },
    schema: {
      summary: 'Register a webhook endpoint.',
      operationId: 'registerWebhook',
      tags: ['webhooks'],
      headers: idempotencyHeader,
      body: schemas.registerBody,
      response: { 201: registeredResponse, ...errors(400, 401, 403, 413, 415, 422, 429, 503) },
    },
    handler: async (request, reply) => {
      checkPartners(request, request.body.partnerIds);
      const body = withUniquePartners(request.body);
      const ctx = writeContext(request, body);
      const outcome = await commands.register(ctx, {
        url: body.url,
        events: body.events,
        partnerIds: body.partnerIds,
        secret: body.secret,
        authorizedPartnerIds: principalOf(request).partnerIds,
      });
      if (outcome.position) deps.readYourWrites.noteWrite(ctx.organizationId, outcome.position);
      replayed(reply, outcome.replayed);
      const { partnerIds, events, ...rest } = outcome.result;
      return reply
        .code(201)
        .header('location', `/v1/webhooks/${rest.id}`)
        .header('etag', etagOf(0))
        .header('cache-control', 'no-store')
        .send({ ...rest, events: [...events], ...(partnerIds ? { partnerIds: [...partnerIds] } : {}) });
    },
  });

  r.get('/v1/webhooks/:id', {
    config: { scopes: [SCOPES.read], organization: true },
    schema: {
      summary: 'Get one webhook (without its secret).',
      operationId: 'getWebhook',
      tags: ['webhooks'],
      params: webhookIdParams,
      response: { 200: webhookResponse, ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (request, reply) => {
      const recorded = await deps.store.readStream(webhookStreamName(request.params.id));
      const state = foldWebhook(recorded.map(toDomainEvent));
      if (state.kind !== 'live' || state.webhook.organizationId !== organizationOf(request)) {
        throw new NotFoundError('webhook not found');
      }
      return reply.header('etag', etagOf(representationRevision(recorded))).send(toWebhookResponse(state.webhook));
    },
  });

  r.get('/v1/webhooks', {
    config: { scopes: [SCOPES.read], organization: true },
    schema: {
      summary: 'List the organization’s webhooks.',
      operationId: 'listWebhooks',
      tags: ['webhooks'],
      querystring: listQuery,
      response: { 200: webhookList, ...errors(400, 401, 403, 503) },
    },
    handler: async (request) => {
      const organizationId = organizationOf(request);
      const q = request.query;
      const after = q.cursor === undefined ? undefined : deps.cursors.decode(q.cursor);
      await deps.readYourWrites.settle(organizationId);
      const page = await deps.readModel.listWebhooks({
        organizationId,
        limit: q.limit + 1,
        after,
        status: q.status,
        event: q.event,
      });
      const data = page.slice(0, q.limit);
      const last = data[data.length - 1];
      return {
        data: data.map(toWebhookResponse),
        nextCursor: page.length > q.limit && last ? deps.cursors.encode({ createdAt: last.createdAt, id: last.id }) : null,
      };
    },
  });

  r.patch('/v1/webhooks/:id', {
    config: { scopes: [SCOPES.write], organization: true },
    schema: {
      summary: 'Change a webhook: url, events, partnerIds (null = all authorized partners), status ACTIVE/PAUSED.',
      operationId: 'updateWebhook',
      tags: ['webhooks'],
      params: webhookIdParams,
      headers: idempotencyHeader.extend(ifMatchHeader.shape),
      body: schemas.updateBody,
      response: { 200: webhookResponse, ...errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 429, 503) },
    },
    handler: async (request, reply) => {
      checkPartners(request, request.body.partnerIds);
      const body = withUniquePartners(request.body);
      const ctx = writeContext(request, body);
      const outcome = await commands.update(
        ctx,
        request.params.id,
        { ...body, authorizedPartnerIds: principalOf(request).partnerIds },
        parseIfMatch(request.headers['if-match']),
      );
      if (outcome.position) deps.readYourWrites.noteWrite(ctx.organizationId, outcome.position);
      replayed(reply, outcome.replayed);
      return reply.header('etag', etagOf(outcome.result.revision)).send(toWebhookResponse(outcome.result.webhook));
    },
  });

  r.delete('/v1/webhooks/:id', {
    config: { scopes: [SCOPES.write], organization: true },
    schema: {
      summary: 'Delete a webhook.',
      operationId: 'deleteWebhook',
      tags: ['webhooks'],
      params: webhookIdParams,
      headers: idempotencyHeader.extend(ifMatchHeader.shape),
      response: { 204: z.null().meta({ description: 'Deleted.' }), ...errors(400, 401, 403, 404, 409, 412, 422, 429, 503) },
    },
    handler: async (request, reply) => {
      const ctx = writeContext(request, null);
      const outcome = await commands.delete(ctx, request.params.id, parseIfMatch(request.headers['if-match']));
      if (outcome.position) deps.readYourWrites.noteWrite(ctx.organizationId, outcome.position);
      replayed(reply, outcome.replayed);
      return reply.code(204).send(null);
    },
  });

  r.post('/v1/webhooks/:id/secret/rotate', {
    config: { scopes: [SCOPES.write], organization: true },
    schema: {
      summary: 'Rotate the signing secret; the previous one stays valid for the grace period (default 24 h, at most 7 days).',
      operationId: 'rotateWebhookSecret',
      tags: ['webhooks'],
      params: webhookIdParams,
      headers: idempotencyHeader,
      body: z.preprocess((b) => b ?? {}, schemas.rotateBody),
      response: { 200: rotateResponse, ...errors(400, 401, 403, 404, 409, 413, 415, 422, 429, 503) },
    },
    handler: async (request, reply) => {
      const body = request.body;
      const ctx = writeContext(request, body);
      const outcome = await commands.rotateSecret(ctx, request.params.id, {
        secret: body.secret,
        gracePeriodSeconds: body.gracePeriodSeconds ?? DEFAULT_GRACE_PERIOD_SECONDS,
        authorizedPartnerIds: principalOf(request).partnerIds,
      });
      if (outcome.position) deps.readYourWrites.noteWrite(ctx.organizationId, outcome.position);
      replayed(reply, outcome.replayed);
      return reply.header('cache-control', 'no-store').send(outcome.result);
    },
  });
}
