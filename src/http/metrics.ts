// Prometheus metrics on a registry of their own (never prom-client's global
// one), so every app instance — several per test process — counts for itself.
// The hooks below are handed to the parts that observe what is measured: the
// event store (group commits), the projector (append → visible lag), the
// token verifier (cache hits) and the routes (idempotent replays).
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { RecordedEvent } from '../stores/eventStore.ts';

/** Route label for requests that matched no route (keeps label cardinality bounded). */
export const UNMATCHED_ROUTE = '(unmatched)';

export class Metrics {
  readonly registry = new Registry();

  private readonly requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry],
  });

  private readonly requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from receiving a request to sending its response, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  private readonly commitBatchSize = new Histogram({
    name: 'webhook_registry_commit_batch_size',
    help: 'Appends group-committed in one event-store transaction (one fsync).',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [this.registry],
  });

  private readonly commitDuration = new Histogram({
    name: 'webhook_registry_commit_duration_seconds',
    help: 'Duration of one event-store group commit, including its fsync.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });

  private readonly projectionLag = new Histogram({
    name: 'webhook_registry_projection_lag_seconds',
    help: 'Append → visible: time from an event occurring to its application to the read model.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  private readonly replays = new Counter({
    name: 'webhook_registry_idempotent_replays_total',
    help: 'Writes answered by replaying the recorded outcome of an earlier request with the same Idempotency-Key.',
    registers: [this.registry],
  });

  private readonly tokenCacheHits = new Counter({
    name: 'webhook_registry_token_cache_hits_total',
    help: 'Access tokens answered from the verified-token cache (no signature check).',
    registers: [this.registry],
  });

  private readonly rateLimited = new Counter({
    name: 'webhook_registry_rate_limited_total',
    help: 'Requests refused with 429 by the per-organization rate limit.',
    registers: [this.registry],
  });

  private readonly dispatchAnswers = new Counter({
    name: 'webhook_registry_dispatch_answers_total',
    help: 'HTTP dispatch lookups by where the answer came from: kept (the answer cache) or read (the read model).',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The event store's onCommit hook. */
  readonly onCommit = (batchSize: number, seconds: number): void => {
    this.commitBatchSize.observe(batchSize);
    this.commitDuration.observe(seconds);
  };

  /** The projector's onBatch hook: append → visible lag of every event in the batch. */
  readonly onBatch = (events: readonly RecordedEvent[]): void => {
    const now = Date.now();
    for (const event of events) {
      const occurred = Date.parse(event.metadata.occurredAt);
      if (Number.isFinite(occurred)) this.projectionLag.observe(Math.max(0, now - occurred) / 1000);
    }
  };

  readonly onReplay = (): void => {
    this.replays.inc();
  };

  readonly onCacheHit = (): void => {
    this.tokenCacheHits.inc();
  };

  /** The dispatch answer cache's onLookup hook. */
  readonly onDispatchAnswer = (kept: boolean): void => {
    this.dispatchAnswers.inc({ source: kept ? 'kept' : 'read' });
  };

  readonly onRateLimited = (): void => {
    this.rateLimited.inc();
  };

  observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
    const labels = { method, route, status_code: String(statusCode) };
    this.requests.inc(labels);
    this.requestDuration.observe(labels, seconds);
  }
}

/** Counts every answered request and serves GET /metrics (public, like the health probes). */
export function registerMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeRequest(request.method, request.routeOptions.url ?? UNMATCHED_ROUTE, reply.statusCode, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.header('cache-control', 'no-store').type(metrics.registry.contentType).send(body);
  });
}
