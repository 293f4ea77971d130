// The black-box check for an EventStoreDB that does not answer: the registry
// started with EVENTSTORE_URL pointing at a listener that accepts and never
// answers (raw TCP, or HTTP/2 whose gRPC calls hang) starts, answers
// /health/ready with 503 within the probe's limit every time, without piling
// calls up on the server, and answers writes with 503 instead of hanging.
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startBrokenListener, startHungGrpcServer, type HungGrpcServer, type Listener } from '../support/esdbFaults.ts';
import { SQLITE_ENGINES, startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import type { ProblemBody } from '../support/webhookApi.ts';

const TIMEOUT_MS = 300;
/** The readiness probe's own limit (src/http/health.ts); an answer must come well within twice that. */
const PROBE_LIMIT_MS = 2_000;

interface NotReadyBody extends ProblemBody {
  checks: { eventStore: { status: string; detail?: string } };
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await work();
  return { value, ms: Date.now() - started };
}

describe.each([
  ['accepts TCP and never answers', () => startBrokenListener('silent')],
  ['speaks HTTP/2 and never answers a gRPC call', () => startHungGrpcServer('hang')],
  ['answers everything but appends and $all', () => startHungGrpcServer({ streamsNotFound: true })],
])('the registry on an EventStoreDB that %s', (_name, start) => {
  let listener: Listener | undefined;
  let registry: TestRegistry | undefined;
  afterEach(async () => {
    await registry?.close();
    await listener?.close();
    registry = undefined;
    listener = undefined;
  });

  async function startOnIt(): Promise<TestRegistry> {
    listener = await start();
    registry = await startRegistry({
      env: { ...SQLITE_ENGINES, EVENTSTORE_URL: listener.url, EVENTSTORE_TIMEOUT_MS: String(TIMEOUT_MS) },
    });
    return registry;
  }

  it('starts, says why it is not ready, and answers /health/ready with 503 every time, without piling calls up', async () => {
    const r = await startOnIt();
    expect(r.logs.some((l) => l.includes('cannot be reached at start'))).toBe(true);
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await timed(() => r.request<NotReadyBody>('GET', '/health/ready')));
    answers.push(...(await Promise.all(Array.from({ length: 8 }, () => timed(() => r.request<NotReadyBody>('GET', '/health/ready'))))));
    for (const { value, ms } of answers) {
      expect(value.status).toBe(503);
      expect(value.headers.get('content-type')).toContain('application/problem+json');
      expect(value.body.checks.eventStore.status).toBe('down');
      expect(ms).toBeLessThan(2 * PROBE_LIMIT_MS);
    }
    if ('openCalls' in listener!) {
      const server = listener as HungGrpcServer;
      // Every probe's calls were cancelled at their deadline: none is left open on the server.
      await expect.poll(() => server.openCalls('Read'), { timeout: 5_000 }).toBe(0);
    }
  });

  it('answers POST /v1/webhooks with 503 problem+json instead of hanging', async () => {
    const r = await startOnIt();
    const { value, ms } = await timed(async () =>
      r.request<ProblemBody>('POST', '/v1/webhooks', {
        token: await r.token(),
        body: VALID_REGISTRATION,
        headers: { 'idempotency-key': randomUUID() },
      }),
    );
    expect(value.status).toBe(503);
    expect(value.headers.get('content-type')).toContain('application/problem+json');
    expect(value.headers.get('retry-after')).toBe('2');
    expect(ms).toBeLessThan(10_000);
    if (_name.startsWith('answers everything')) {
      // The append was sent and got no answer: the client is told to retry with the same key.
      expect(value.body.detail).toContain('retry with the same Idempotency-Key');
    }
  });
});

describe('the registry on a hung EventStoreDB, probed by many at once', () => {
  it('concurrent probes share the store checks in flight instead of each starting its own', async () => {
    const server = await startHungGrpcServer('hang');
    const registry = await startRegistry({
      env: { ...SQLITE_ENGINES, EVENTSTORE_URL: server.url, EVENTSTORE_TIMEOUT_MS: String(TIMEOUT_MS) },
    });
    try {
      const before = server.calls('Read');
      const answers = await Promise.all(Array.from({ length: 16 }, () => registry.request('GET', '/health/ready')));
      for (const a of answers) expect(a.status).toBe(503);
      // One ping and one head-position read serve all 16 probes (plus, at most, a projector resubscription or two);
      // one call per probe and check would be 32.
      expect(server.calls('Read') - before).toBeLessThan(8);
    } finally {
      await registry.close();
      await server.close();
    }
  });
});
