// Starts the whole service in this process: identity, stores, projector and
// the HTTP app; and stops it gracefully (stop accepting, finish in-flight
// requests, flush the pending commit batch, stop the projector at a
// checkpoint, close the stores).
import type { FastifyInstance } from 'fastify';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.ts';
import { loadCatalog } from './catalog.ts';
import { createDispatchAnswerLookup, targetsOf } from './dispatch/dispatchTargets.ts';
import { createTurns } from './dispatch/lookupTurns.ts';
import { ChangeFeed } from './dispatch/changeFeed.ts';
import { SqliteReadModel } from './stores/sqlite/sqliteReadModel.ts';
import { buildApp, LOG_SERIALIZERS, REDACTED_PATHS } from './http/app.ts';
import { Metrics } from './http/metrics.ts';
import { ReadYourWrites } from './http/readYourWrites.ts';
import { createIdentity, type Identity } from './identity/identity.ts';
import { pollCheckpoint, Projector } from './projections/projector.ts';
import { closeCore, openCore, type Core } from './runtime.ts';

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly core: Core;
  readonly identity: Identity;
  readonly projector: Projector | undefined;
  /** The dispatcher change feed this process serves. */
  readonly changeFeed: ChangeFeed;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

export interface ServerOptions {
  /** Where log lines go (default stdout); tests pass a stream to capture them. */
  readonly logStream?: DestinationStream;
  /** The clock for request handling (tests move it to check the 24-hour idempotency window). */
  readonly now?: () => Date;
}

export function createLogger(config: Config, stream?: DestinationStream): Logger {
  const options = {
    level: config.LOG_LEVEL,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: LOG_SERIALIZERS,
  };
  return stream ? pino(options, stream) : pino(options);
}

/** Keycloak's token endpoint for a realm issuer URL (documented in the API reference). */
export function keycloakTokenUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/protocol/openid-connect/token`;
}

export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunningServer> {
  const catalog = loadCatalog(config.EVENT_TYPES_FILE);
  // One metrics registry per server, fed by the stores, the projector, the token verifier and the routes.
  const metrics = new Metrics();
  const identity = await createIdentity(config, { onCacheHit: metrics.onCacheHit });
  const logger = createLogger(config, options.logStream);
  // An unreachable log does not stop start-up: the server answers, /health/ready says 503 until it answers.
  const core = await openCore(config, {
    onCommit: metrics.onCommit,
    onLogUnreachable: (error) => logger.warn({ err: error }, 'the event log cannot be reached at start; not ready until it answers'),
  });
  const now = options.now ?? (() => new Date());
  let projector: Projector | undefined;
  let app: FastifyInstance | undefined;
  // It starts at the read model's checkpoint as it reads it now: at or before any checkpoint a later snapshot reports.
  const changeFeed = new ChangeFeed(core.store, core.readModel, {
    capacity: config.CHANGE_FEED_CAPACITY,
    logger: logger.child({ component: 'change-feed' }),
  });
  changeFeed.start();
  try {
    const waitFor =
      config.PROJECTOR === 'inline'
        ? (projector = new Projector(core.store, core.readModel, {
              logger: logger.child({ component: 'projector' }),
              onBatch: metrics.onBatch,
            })).waitFor.bind(projector)
        : pollCheckpoint.bind(null, core.readModel);
    projector?.start();
    // One queue of turns for every lookup this process answers.
    const turns = createTurns();
    const dispatchAnswer = createDispatchAnswerLookup(core.readModel, core.secrets, now, { turns });
    app = await buildApp({
      verifier: identity.verifier,
      store: core.store,
      readModel: core.readModel,
      commands: core.commands,
      lookup: targetsOf(dispatchAnswer),
      dispatchAnswers: { answer: dispatchAnswer, maxBytes: config.DISPATCH_CACHE_BYTES },
      changeFeed: { feed: changeFeed, secrets: core.secrets, keepAliveMs: config.CHANGE_FEED_KEEPALIVE_MS },
      catalog,
      readYourWrites: new ReadYourWrites(waitFor, config.READ_YOUR_WRITES_TIMEOUT_MS, () => core.store.headPosition()),
      allowInsecureUrls: config.ALLOW_INSECURE_URLS,
      bodyLimit: config.BODY_LIMIT_BYTES,
      cursorKey: core.cursorKey,
      logger,
      now,
      metrics,
      rateLimit: { perSecond: config.RATE_LIMIT_PER_SECOND, burst: config.RATE_LIMIT_BURST },
      maxProjectorLagSeconds: config.PROJECTOR_MAX_LAG_SECONDS,
      timeouts: {
        requestMs: config.REQUEST_TIMEOUT_MS,
        headersMs: config.HEADERS_TIMEOUT_MS,
        keepAliveMs: config.KEEP_ALIVE_TIMEOUT_MS,
      },
      ...(identity.development ? {} : { tokenUrl: keycloakTokenUrl(identity.issuer) }),
      console: { ...(identity.development ? {} : { issuer: identity.issuer }), orgClaim: config.ORG_CLAIM },
      ...(identity.devIssuer === undefined
        ? {}
        : {
            devSignIn: {
              issuer: identity.devIssuer,
              audience: config.OIDC_AUDIENCE,
              orgClaim: config.ORG_CLAIM,
              partnersClaim: config.PARTNERS_CLAIM,
            },
          }),
    });
    if (core.readModel instanceof SqliteReadModel) {
      const started = performance.now();
      const routes = await core.readModel.prepareDispatch();
      logger.info({ routes, ms: Math.round(performance.now() - started) }, 'dispatch index built');
    }
    const address = await app.listen({ port: config.PORT, host: config.HOST });
    const started = app;
    let closing: Promise<void> | undefined;
    return {
      app: started,
      url: address,
      core,
      identity,
      projector,
      changeFeed,
      metrics,
      close: () =>
        (closing ??= (async () => {
          await started.close();
          await projector?.stop();
          await changeFeed.stop();
          await closeCore(core);
        })()),
    };
  } catch (error) {
    await app?.close();
    await projector?.stop();
    await changeFeed.stop();
    await closeCore(core);
    throw error;
  }
}
