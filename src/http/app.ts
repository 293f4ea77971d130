// The fastify application as a function of its dependencies: no I/O of its
// own, no process concerns (those live in src/main.ts). Tests build it over
// real stores in a temp folder.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { createSerializerCompiler } from 'fastify-type-provider-zod';
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
import { RequestValidationError, registerProblemHandlers } from './problems.ts';
import type { ReadYourWrites } from './readYourWrites.ts';
import { registerDispatchRoutes } from './routes/dispatch.ts';
import { registerEventTypeRoutes } from './routes/eventTypes.ts';
import { registerWebhookRoutes } from './routes/webhooks.ts';
import { createSchemas } from './schemas.ts';

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
  const options: FastifyServerOptions = {
    loggerInstance: deps.logger,
    bodyLimit: deps.bodyLimit,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  };
  const app: FastifyInstance = Fastify(options);

  // zod validates requests; a failure becomes our own error with the issues intact.
  app.setValidatorCompiler(({ schema }) => (data: unknown) => {
    const result = (schema as ZodType).safeParse(data);
    return result.success ? { value: result.data } : { error: new RequestValidationError(result.error.issues) };
  });
  app.setSerializerCompiler(createSerializerCompiler());
  app.addContentTypeParser(
    'application/merge-patch+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );
  app.addHook('onSend', async (request, reply, payload) => {
    void reply.header('x-request-id', request.id);
    return payload;
  });

  registerProblemHandlers(app);
  registerAuth(app, deps.verifier);

  const schemas = createSchemas({ catalog: deps.catalog, allowInsecureUrls: deps.allowInsecureUrls });
  registerWebhookRoutes(app, {
    commands: deps.commands,
    store: deps.store,
    readModel: deps.readModel,
    schemas,
    cursors: new CursorCodec(deps.cursorKey),
    readYourWrites: deps.readYourWrites,
    now,
    ...(deps.onReplay ? { onReplay: deps.onReplay } : {}),
  });
  registerEventTypeRoutes(app, deps.catalog);
  registerDispatchRoutes(app, { lookup: deps.lookup, commands: deps.commands, now });
  await app.ready();
  return app;
}
