// The fastify application as a function of its dependencies: no I/O of its
// own, no process concerns (those live in src/main.ts). Tests build it over
// real stores in a temp folder.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { ZodType } from 'zod';
import type { EventTypeCatalog } from '../domain/eventTypes.ts';
import type { TokenVerifier } from '../identity/tokenVerifier.ts';
import type { WebhookCommands } from '../commands/webhookCommands.ts';
import type { DispatchLookup } from '../dispatch/dispatchTargets.ts';
import type { EventStore } from '../stores/eventStore.ts';
import type { ReadModel } from '../stores/readModel.ts';
import { registerAuth } from './auth.ts';
import { CursorCodec } from './cursor.ts';
import { registerHealthRoutes } from './health.ts';
import { Metrics, registerMetrics } from './metrics.ts';
import { registerOpenApi } from './openapi.ts';
import { RequestValidationError, registerProblemHandlers, sendProblem } from './problems.ts';
import { setUpRateLimit } from './rateLimit.ts';
import { serializerCompiler } from './serializer.ts';
import type { ReadYourWrites } from './readYourWrites.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerDispatchRoutes } from './routes/dispatch.ts';
import { registerEventTypeRoutes } from './routes/eventTypes.ts';
import { registerWebhookRoutes } from './routes/webhooks.ts';
import { createSchemas } from './schemas.ts';
import { registerJsonBodyParser } from './jsonBody.ts';
import { ServiceUnavailableError } from '../errors.ts';

export interface AppDeps {
  readonly verifier: TokenVerifier;
  readonly store: EventStore;
  readonly readModel: ReadModel;
  readonly commands: WebhookCommands;
  readonly lookup: DispatchLookup;
  readonly catalog: EventTypeCatalog;
  readonly readYourWrites: ReadYourWrites;
  readonly allowInsecureUrls: boolean;
  readonly bodyLimit: number;
  /** Key for signing list cursors. */
  readonly cursorKey: Buffer;
  readonly logger: FastifyBaseLogger;
  readonly now?: () => Date;
  readonly onReplay?: () => void;
  /** Prometheus metrics of this app (default: a fresh registry); the server shares it with the stores and projector. */
  readonly metrics?: Metrics;
  /** Per-organization token bucket; absent or perSecond 0: no limit. */
  readonly rateLimit?: { readonly perSecond: number; readonly burst: number };
  /** Readiness fails when the read model is this many seconds behind the log (default 30). */
  readonly maxProjectorLagSeconds?: number;
  /** The OAuth 2.0 token endpoint, for the API document. */
  readonly tokenUrl?: string;
}

/** Headers and fields that must never reach a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["idempotency-key"]',
  'headers.authorization',
  '*.secret',
  '*.secrets',
  'body',
];

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const now = deps.now ?? (() => new Date());
  const metrics = deps.metrics ?? new Metrics();
  const options: FastifyServerOptions = {
    loggerInstance: deps.logger,
    bodyLimit: deps.bodyLimit,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
    },
    // Requests arriving while the server drains get our own 503 problem+json (below).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  };
  const app: FastifyInstance = Fastify(options);

  // zod validates requests; a failure becomes our own error with the issues intact.
  app.setValidatorCompiler(({ schema }) => (data: unknown) => {
    // reportInput lets the error mapper tell a missing field from a wrong type; inputs are never rendered.
    const result = (schema as ZodType).safeParse(data, { reportInput: true });
    return result.success ? { value: result.data } : { error: new RequestValidationError(result.error.issues) };
  });
  app.setSerializerCompiler(serializerCompiler);
  // Bodies are JSON only: without fastify's default text/plain parser any other
  // media type is a 415 on every route.
  app.removeContentTypeParser('text/plain');
  registerJsonBodyParser(app);

  // Graceful shutdown: once close() starts, new requests on open connections
  // get 503 and every response closes its connection, so in-flight requests
  // finish and keep-alive clients cannot hold the drain open.
  let draining = false;
  app.addHook('preClose', () => {
    draining = true;
    const reap = setInterval(() => app.server.closeIdleConnections(), 50);
    reap.unref();
    app.server.once('close', () => clearInterval(reap));
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!draining) return;
    request.log.info('refused: the server is shutting down');
    await sendProblem(
      request,
      reply,
      new ServiceUnavailableError('The service is shutting down; retry shortly.', {
        headers: { 'retry-after': '1', connection: 'close' },
      }),
    );
    return reply;
  });
  app.addHook('onSend', async (request, reply, payload) => {
    void reply.header('x-request-id', request.id);
    if (draining) void reply.header('connection', 'close');
    return payload;
  });

  registerProblemHandlers(app);
  registerMetrics(app, metrics);
  const rateLimit = setUpRateLimit(app, deps.rateLimit, metrics.onRateLimited);
  registerAuth(app, deps.verifier, rateLimit);
  await registerOpenApi(app, { tokenUrl: deps.tokenUrl, rateLimited: rateLimit !== undefined });

  const schemas = createSchemas({ catalog: deps.catalog, allowInsecureUrls: deps.allowInsecureUrls });
  registerWebhookRoutes(app, {
    commands: deps.commands,
    store: deps.store,
    readModel: deps.readModel,
    schemas,
    cursors: new CursorCodec(deps.cursorKey),
    readYourWrites: deps.readYourWrites,
    now,
    onReplay: () => {
      metrics.onReplay();
      deps.onReplay?.();
    },
  });
  registerEventTypeRoutes(app, deps.catalog);
  registerDispatchRoutes(app, { lookup: deps.lookup, commands: deps.commands, now });
  registerAuditRoutes(app, { store: deps.store, cursorKey: deps.cursorKey, now });
  registerHealthRoutes(app, {
    store: deps.store,
    readModel: deps.readModel,
    maxProjectorLagSeconds: deps.maxProjectorLagSeconds ?? 30,
    now,
  });
  await app.ready();
  return app;
}
