// The fastify application as a function of its dependencies: no I/O of its
// own, no process concerns (those live in src/main.ts). Tests build it over
// real stores in a temp folder.
import Fastify, { type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance, type FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { ZodType } from 'zod';
import type { EventTypeCatalog } from '../domain/eventTypes.ts';
import type { TokenVerifier } from '../identity/tokenVerifier.ts';
import type { WebhookCommands } from '../commands/webhookCommands.ts';
import type { DispatchAnswerLookup, DispatchLookup } from '../dispatch/dispatchTargets.ts';
import { createDispatchAnswerCache, type DispatchAnswerText } from '../dispatch/answerCache.ts';
import type { ChangeFeed } from '../dispatch/changeFeed.ts';
import type { SecretBox } from '../crypto/secretBox.ts';
import type { EventStore } from '../stores/eventStore.ts';
import type { ReadModel } from '../stores/readModel.ts';
import { registerAuth } from './auth.ts';
import { CursorCodec } from './cursor.ts';
import { registerHealthRoutes } from './health.ts';
import { Metrics, registerMetrics } from './metrics.ts';
import { registerOpenApi } from './openapi.ts';
import {
  answerClientError,
  answerFrameworkError,
  pointerToken,
  RequestValidationError,
  registerProblemHandlers,
  registerTransportProblems,
  sendProblem,
} from './problems.ts';
import { setUpRateLimit } from './rateLimit.ts';
import { serializerCompiler } from './serializer.ts';
import type { ReadYourWrites } from './readYourWrites.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerChangeFeedRoutes } from './routes/changeFeed.ts';
import { DISPATCH_TARGETS_PATH, registerDispatchRoutes } from './routes/dispatch.ts';
import { registerEventTypeRoutes } from './routes/eventTypes.ts';
import { registerWebhookRoutes } from './routes/webhooks.ts';
import { createSchemas, dispatchTargets } from './schemas.ts';
import { registerJsonBodyParser } from './jsonBody.ts';
import { registerDevSignIn, type DevSignInOptions } from './devSignIn.ts';
import { registerConsole, type ConsoleOptions } from './console.ts';
import { ServiceUnavailableError, ValidationError } from '../errors.ts';
import { declareFieldNames, isRepeatableName } from './fieldNames.ts';

export interface AppDeps {
  readonly verifier: TokenVerifier;
  readonly store: EventStore;
  readonly readModel: ReadModel;
  readonly commands: WebhookCommands;
  readonly lookup: DispatchLookup;
  /**
   * Keep dispatch answers (answerCache.ts) on an engine that tells when they
   * change (ReadModel.dispatchVersion), up to maxBytes of their text; absent
   * or 0: every lookup through `lookup`.
   */
  readonly dispatchAnswers?: { readonly answer: DispatchAnswerLookup; readonly maxBytes: number };
  /** The dispatcher change feed of this process, and what its routes need to send it. */
  readonly changeFeed: { readonly feed: ChangeFeed; readonly secrets: SecretBox; readonly keepAliveMs: number };
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
  /** The development sign-in for people (devSignIn.ts): only with the development issuer. */
  readonly devSignIn?: DevSignInOptions;
  /** The web console at /console/ (console.ts): the OpenID provider it signs in with (absent: the development sign-in). */
  readonly console?: ConsoleOptions;
  /** The OAuth 2.0 token endpoint, for the API document. */
  readonly tokenUrl?: string;
  /** How long a client may take to send a request, its headers, or the next request on a kept-alive connection. */
  readonly timeouts?: HttpTimeouts;
}

export interface HttpTimeouts {
  /** The whole request, headers and body (then 408 and the connection closes). */
  readonly requestMs: number;
  /** The headers alone (≤ requestMs). */
  readonly headersMs: number;
  /** An idle kept-alive connection between requests (then it closes). */
  readonly keepAliveMs: number;
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { requestMs: 30_000, headersMs: 10_000, keepAliveMs: 72_000 };

/**
 * Node checks request and header deadlines on a timer (30 s by default), so a
 * deadline can be overshot by that much; a tenth of the shorter deadline,
 * between 50 ms and 1 s, keeps the overshoot small at a negligible cost.
 */
function connectionsCheckingInterval(t: HttpTimeouts): number {
  return Math.min(1000, Math.max(50, Math.floor(Math.min(t.requestMs, t.headersMs) / 10)));
}

/**
 * A request URL as it may be logged: the path, and the query's parameter
 * names with every value replaced (`?access_token=[redacted]`), a name too
 * only when it could be a secret itself (see fieldNames.ts). A query string
 * can carry a token or a secret, and the path never does.
 */
export function loggableUrl(url: string): string {
  const at = url.indexOf('?');
  if (at === -1) return url;
  const names = url
    .slice(at + 1)
    .split('&')
    .filter((part) => part !== '')
    .map((part) => {
      const name = part.split('=', 1)[0]!;
      return isRepeatableName(name) ? `${name}=[redacted]` : '[redacted]';
    });
  return names.length === 0 ? url.slice(0, at) : `${url.slice(0, at)}?${names.join('&')}`;
}

/** fastify's request serializer, with the URL as loggableUrl gives it. */
export const LOG_SERIALIZERS = {
  req(req: FastifyRequest) {
    return {
      method: req.method,
      url: loggableUrl(req.url),
      host: req.host,
      remoteAddress: req.ip,
      remotePort: req.socket?.remotePort,
    };
  },
};

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
  const timeouts = deps.timeouts ?? DEFAULT_HTTP_TIMEOUTS;
  const options: FastifyHttpOptions<Server> = {
    loggerInstance: deps.logger,
    bodyLimit: deps.bodyLimit,
    // Stalled or trickling clients are cut off (408 problem+json) instead of holding a connection forever.
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    http: {
      requestTimeout: timeouts.requestMs,
      headersTimeout: timeouts.headersMs,
      connectionsCheckingInterval: connectionsCheckingInterval(timeouts),
      // Node's own check answers an empty 400; registerTransportProblems answers problem+json.
      requireHostHeader: false,
    },
    // What fastify and Node answer before any route runs, as problem+json without echoes.
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
    },
    // Requests arriving while the server drains get our own 503 problem+json (below).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  };
  const app: FastifyInstance = Fastify(options);
  registerTransportProblems(app);
  // The names request schemas declare may be repeated in errors and logs.
  app.addHook('onRoute', (route) => {
    const schema = route.schema as Record<string, unknown> | undefined;
    for (const part of ['body', 'querystring', 'params', 'headers']) declareFieldNames(schema?.[part]);
  });
  // An API operation without query parameters refuses any, instead of ignoring
  // them: a client that puts a secret or a token in the URL learns so instead
  // of getting a 201. Probes, /metrics, /docs and /openapi.json (no scopes)
  // and unknown paths (404) are left alone.
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.is404 || request.routeOptions.config.scopes === undefined) return done();
    if (request.routeOptions.schema?.querystring !== undefined) return done();
    const names = Object.keys(request.query as Record<string, unknown>);
    if (names.length === 0) return done();
    done(
      new ValidationError('This operation takes no query parameters.', {
        errors: names.map((name) => ({
          pointer: isRepeatableName(name) ? `/query/${pointerToken(name)}` : '/query',
          detail: 'is not a known query parameter',
        })),
      }),
    );
  });

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
  registerDispatchRoutes(app, { lookup: deps.lookup, answers: dispatchAnswerCache(deps, metrics, now), commands: deps.commands, now });
  registerChangeFeedRoutes(app, { ...deps.changeFeed, store: deps.store, readModel: deps.readModel, now });
  registerAuditRoutes(app, { store: deps.store, readModel: deps.readModel, cursorKey: deps.cursorKey, now });
  if (deps.devSignIn !== undefined) registerDevSignIn(app, deps.devSignIn);
  if (deps.console !== undefined) await registerConsole(app, deps.console);
  registerHealthRoutes(app, {
    store: deps.store,
    readModel: deps.readModel,
    maxProjectorLagSeconds: deps.maxProjectorLagSeconds ?? 30,
    now,
  });
  await app.ready();
  return app;
}

function dispatchAnswerCache(deps: AppDeps, metrics: Metrics, now: () => Date): DispatchAnswerText | undefined {
  const { readModel, dispatchAnswers } = deps;
  if (dispatchAnswers === undefined || dispatchAnswers.maxBytes <= 0 || readModel.dispatchVersion === undefined) return undefined;
  // The route's own serializer (compiled from the response schema), so a kept answer is the text the route would send.
  const serialize = serializerCompiler({ schema: dispatchTargets, method: 'GET', url: DISPATCH_TARGETS_PATH, httpStatus: '200' }) as (
    body: unknown,
  ) => string;
  return createDispatchAnswerCache({
    answer: dispatchAnswers.answer,
    version: () => readModel.dispatchVersion!(),
    serialize: (targets) => serialize({ data: targets }),
    now,
    maxBytes: dispatchAnswers.maxBytes,
    onLookup: metrics.onDispatchAnswer,
  });
}
