// The public operational endpoints: liveness, readiness (stores reachable,
// projector lag bounded) and Prometheus metrics.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, usingSqliteEngines, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import type { ListBody, ProblemBody } from '../support/webhookApi.ts';

interface Check {
  status: 'up' | 'down';
  detail?: string;
}
interface Checks {
  eventStore: Check;
  readModel: Check;
  projector: Check & { lagSeconds: number; maxLagSeconds: number; checkpoint: string | null; head: string | null };
}
interface ReadinessBody extends Partial<Omit<ProblemBody, 'status'>> {
  status: 'ready' | number;
  checks: Checks;
}

/** The value of one sample line of the exposition text, e.g. `foo_total{a="b"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('health probes', () => {
  let registry: TestRegistry | undefined;
  afterEach(async () => {
    await registry?.close();
    registry = undefined;
  });

  it('are public and report ready with the state of each check', async () => {
    registry = await startRegistry();
    const live = await registry.request('GET', '/health/live');
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ status: 'ok' });

    const write = await registry.request('POST', '/v1/webhooks', {
      token: await registry.token(),
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(write.status).toBe(201);
    // Positions are opaque and differ per engine (SQLite: 1/1; PostgreSQL: transaction id/sequence).
    const position = expect.stringMatching(/^\d{20}\/\d{20}$/) as unknown;
    await expect
      .poll(async () => (await registry!.request<ReadinessBody>('GET', '/health/ready')).body)
      .toEqual({
        status: 'ready',
        checks: {
          eventStore: { status: 'up' },
          readModel: { status: 'up' },
          projector: { status: 'up', lagSeconds: 0, maxLagSeconds: 30, checkpoint: position, head: position },
        },
      });
    const { projector } = (await registry.request<ReadinessBody>('GET', '/health/ready')).body.checks;
    expect(projector.checkpoint).toBe(projector.head); // the one event is applied
    if (usingSqliteEngines()) expect(projector.head).toBe('00000000000000000001/00000000000000000001');
  });

  it('answer 503 problem+json when the read model lags more than PROJECTOR_MAX_LAG_SECONDS behind the log', async () => {
    let clock = Date.parse('2026-01-05T10:00:00Z');
    // No projector in this process: the registration stays unapplied.
    registry = await startRegistry({ env: { PROJECTOR: 'off', PROJECTOR_MAX_LAG_SECONDS: '30' }, now: () => new Date(clock) });
    const write = await registry.request('POST', '/v1/webhooks', {
      token: await registry.token(),
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(write.status).toBe(201);

    clock += 29_000;
    const early = await registry.request<ReadinessBody>('GET', '/health/ready');
    expect(early.status).toBe(200);
    expect(early.body.checks.projector).toMatchObject({ status: 'up', lagSeconds: 29, checkpoint: null });

    clock += 2_000;
    const late = await registry.request<ReadinessBody>('GET', '/health/ready');
    expect(late.status).toBe(503);
    expect(late.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(late.headers.get('retry-after')).toBe('5');
    expect(late.body).toMatchObject({
      type: 'https://api.novatrade24.com/problems/not-ready',
      status: 503,
      detail: 'projector: the read model is 31.0 s behind the log (limit 30 s)',
      requestId: late.headers.get('x-request-id'),
      checks: {
        eventStore: { status: 'up' },
        readModel: { status: 'up' },
        projector: { status: 'down', lagSeconds: 31, maxLagSeconds: 30, checkpoint: null },
      },
    });
    // Liveness is unaffected.
    expect((await registry.request('GET', '/health/live')).status).toBe(200);
  });

  it('answer 503 naming the store that cannot be reached, without its error message', async () => {
    registry = await startRegistry();
    await registry.server.core.readModel.close();
    const ready = await registry.request<ReadinessBody>('GET', '/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.eventStore).toEqual({ status: 'up' });
    expect(ready.body.checks.readModel).toEqual({ status: 'down', detail: 'cannot be reached' });
    expect(ready.body.detail).toContain('readModel: cannot be reached');
    // The cause is in the log, under the request id.
    const logged = registry.logs.map((l) => JSON.parse(l) as { reqId?: string; msg?: string; check?: string });
    expect(logged).toContainEqual(expect.objectContaining({ reqId: ready.body.requestId, msg: 'readiness check failed', check: 'readModel' }));
  });
});

describe('GET /metrics', () => {
  let registry: TestRegistry;
  let other: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
    other = await startRegistry({ oauth: registry.oauth });
  });
  afterAll(async () => {
    await other.close();
    await registry.close();
  });

  it('exposes request, commit, projection, replay, token-cache and process metrics in Prometheus format', async () => {
    const token = await registry.token();
    const key = randomUUID();
    for (let i = 0; i < 2; i++) {
      const answer = await registry.request('POST', '/v1/webhooks', { token, body: VALID_REGISTRATION, headers: { 'idempotency-key': key } });
      expect(answer.status).toBe(201);
    }
    const id = (await registry.request<ListBody>('GET', '/v1/webhooks', { token })).body.data[0]!.id;
    expect((await registry.request('GET', `/v1/webhooks/${id}`, { token })).status).toBe(200);
    expect((await registry.request('GET', '/no/such/route')).status).toBe(404);

    const metrics = await registry.request('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = metrics.text;

    expect(sample(text, 'http_requests_total{method="POST",route="/v1/webhooks",status_code="201"}')).toBe(2);
    // Labelled by route template, never by the concrete path.
    expect(sample(text, 'http_requests_total{method="GET",route="/v1/webhooks/:id",status_code="200"}')).toBe(1);
    expect(text).not.toContain(id);
    expect(sample(text, 'http_requests_total{method="GET",route="(unmatched)",status_code="404"}')).toBe(1);
    expect(sample(text, 'http_request_duration_seconds_count{method="POST",route="/v1/webhooks",status_code="201"}')).toBe(2);
    expect(text).toMatch(/^http_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/webhooks",status_code="201"\} \d+$/m);

    expect(sample(text, 'webhook_registry_commit_batch_size_count')).toBe(1);
    expect(sample(text, 'webhook_registry_commit_batch_size_sum')).toBe(1);
    expect(sample(text, 'webhook_registry_commit_duration_seconds_count')).toBe(1);
    expect(sample(text, 'webhook_registry_commit_duration_seconds_sum')).toBeGreaterThan(0);
    expect(sample(text, 'webhook_registry_projection_lag_seconds_count')).toBe(1);
    expect(sample(text, 'webhook_registry_idempotent_replays_total')).toBe(1);
    // Four authenticated requests with one token: the first verifies it, the rest hit the cache.
    expect(sample(text, 'webhook_registry_token_cache_hits_total')).toBe(3);
    expect(sample(text, 'webhook_registry_rate_limited_total')).toBe(0);
    // Default process metrics.
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
  });

  it('keeps a registry per app: another app in the same process counts only its own requests', async () => {
    const text = (await other.request('GET', '/metrics')).text;
    expect(sample(text, 'http_requests_total{method="POST",route="/v1/webhooks",status_code="201"}')).toBeUndefined();
    expect(sample(text, 'webhook_registry_idempotent_replays_total')).toBe(0);
    expect(sample(text, 'webhook_registry_commit_batch_size_count')).toBe(0);
  });
});
