// Internal routes for dispatchers (scope webhooks:dispatch, not bound to an
// organization): the dispatch lookup and disabling a failing endpoint.
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { SCOPES } from '../../identity/principal.ts';
import type { DispatchLookup } from '../../dispatch/dispatchTargets.ts';
import type { DispatchAnswerText } from '../../dispatch/answerCache.ts';
import type { WebhookCommands } from '../../commands/webhookCommands.ts';
import { principalOf } from '../auth.ts';
import { disableBody, dispatchQuery, dispatchTargets, problem, webhookIdParams, webhookResponse } from '../schemas.ts';
import { etagOf, toWebhookResponse } from './webhooks.ts';

export const DISPATCH_TARGETS_PATH = '/internal/v1/dispatch-targets';

export function registerDispatchRoutes(
  app: FastifyInstance,
  deps: {
    lookup: DispatchLookup;
    /** Kept answers as the response's JSON text (answerCache.ts); without it every lookup goes through `lookup`. */
    answers: DispatchAnswerText | undefined;
    commands: WebhookCommands;
    now: () => Date;
  },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { answers } = deps;

  r.get(DISPATCH_TARGETS_PATH, {
    config: { scopes: [SCOPES.dispatch] },
    schema: {
      summary: 'Every ACTIVE webhook that must receive this event type for this partner, with its signing secrets.',
      operationId: 'getDispatchTargets',
      tags: ['dispatch'],
      querystring: dispatchQuery,
      response: { 200: dispatchTargets, 400: problem, 401: problem, 403: problem, 503: problem },
    },
    handler: async (request, reply) => {
      if (answers !== undefined) {
        // Already the serialized 200 body (a string with a JSON type is sent as it is).
        const text = await answers(request.query.eventType, request.query.partnerId);
        const body = text as unknown as z.output<typeof dispatchTargets>; // the type provider knows only the object form
        return reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(body);
      }
      const data = await deps.lookup(request.query.eventType, request.query.partnerId);
      // The serializer only reads the targets (readonly arrays), so they are sent as they are, not copied.
      return reply.header('cache-control', 'no-store').send({ data: data as z.output<typeof dispatchTargets>['data'] });
    },
  });

  r.post('/internal/v1/webhooks/:id/disable', {
    config: { scopes: [SCOPES.dispatch] },
    schema: {
      summary: 'Disable a webhook (e.g. after repeated delivery failures). Idempotent.',
      operationId: 'disableWebhook',
      tags: ['dispatch'],
      params: webhookIdParams,
      body: disableBody,
      response: { 200: webhookResponse, 400: problem, 401: problem, 403: problem, 404: problem, 409: problem, 503: problem },
    },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      const outcome = await deps.commands.disable(
        { clientId: principal.clientId, subject: principal.subject },
        request.id,
        request.params.id,
        request.body.reason,
        deps.now(),
      );
      return reply.header('etag', etagOf(outcome.result.revision)).send(toWebhookResponse(outcome.result.webhook));
    },
  });
}
