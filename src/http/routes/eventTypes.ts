// The event-type catalog clients subscribe from.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { EventTypeCatalog } from '../../domain/eventTypes.ts';
import { SCOPES } from '../../identity/principal.ts';
import { eventTypeList, problem } from '../schemas.ts';

export function registerEventTypeRoutes(app: FastifyInstance, catalog: EventTypeCatalog): void {
  const body = { data: catalog.types.map((t) => ({ name: t.name, description: t.description })) };
  app.withTypeProvider<ZodTypeProvider>().get('/v1/event-types', {
    config: { scopes: [SCOPES.read] },
    schema: {
      summary: 'The event types a webhook can subscribe to.',
      operationId: 'listEventTypes',
      tags: ['event types'],
      response: { 200: eventTypeList, 401: problem, 403: problem },
    },
    handler: () => body,
  });
}
