// Per-organization rate limiting over HTTP with a small bucket: a burst of 3,
// refilled at 1 request per second.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARTNER_A, startRegistry, type TestRegistry } from '../support/registry.ts';

describe('rate limiting per organization', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ env: { RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '3' } });
  });
  afterAll(async () => {
    await registry.close();
  });

  it('admits the burst with RateLimit headers, then answers 429 problem+json with Retry-After', async () => {
    // Tokens first, so the requests below follow each other within milliseconds.
    const token = await registry.token('acme-integration');
    const readerToken = await registry.token('acme-reader');
    const globexToken = await registry.token('globex-integration');
    const dispatcher = await registry.token('dispatcher');
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await registry.request('GET', '/v1/event-types', { token }));

    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
    expect(answers.map((a) => a.headers.get('ratelimit-limit'))).toEqual(['3', '3', '3', '3']);
    expect(answers.map((a) => a.headers.get('ratelimit-remaining'))).toEqual(['2', '1', '0', '0']);
    for (const a of answers) {
      const reset = Number(a.headers.get('ratelimit-reset'));
      expect(reset).toBeGreaterThanOrEqual(1);
      expect(reset).toBeLessThanOrEqual(3);
    }

    const refused = answers[3]!;
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.body).toMatchObject({
      type: 'https://api.novatrade24.com/problems/rate-limited',
      status: 429,
      requestId: refused.headers.get('x-request-id'),
    });

    // Another client of the same organization shares the bucket.
    const reader = await registry.request('GET', '/v1/event-types', { token: readerToken });
    expect(reader.status).toBe(429);

    // Another organization has a bucket of its own.
    const globex = await registry.request('GET', '/v1/event-types', { token: globexToken });
    expect(globex.status).toBe(200);
    expect(globex.headers.get('ratelimit-remaining')).toBe('2');

    // Tokens without an organization are limited per client id.
    const lookup = await registry.request('GET', `/internal/v1/dispatch-targets?eventType=kyc.verification.approved&partnerId=${PARTNER_A}`, {
      token: dispatcher,
    });
    expect(lookup.status).toBe(200);
    expect(lookup.headers.get('ratelimit-remaining')).toBe('2');

    const metrics = await registry.request('GET', '/metrics');
    expect(metrics.text).toMatch(/^webhook_registry_rate_limited_total 2$/m);
  });

  it('does not limit the public probes and the API reference', async () => {
    for (let i = 0; i < 5; i++) {
      const live = await registry.request('GET', '/health/live');
      expect(live.status).toBe(200);
      expect(live.headers.get('ratelimit-limit')).toBeNull();
    }
    expect((await registry.request('GET', '/openapi.json')).status).toBe(200);
  });

  it('admits the organization again once a token has been refilled', async () => {
    const token = await registry.token('globex-integration');
    // Drain globex's bucket (it may have refilled a little since the first test).
    let last;
    do last = await registry.request('GET', '/v1/event-types', { token });
    while (last.status === 200);
    expect(last.status).toBe(429);
    const wait = Number(last.headers.get('retry-after'));
    expect(wait).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, wait * 1000 + 50));
    const again = await registry.request('GET', '/v1/event-types', { token });
    expect(again.status).toBe(200);
    expect(again.headers.get('ratelimit-remaining')).toBe('0');
  });
});

describe('rate limiting switched off', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ env: { RATE_LIMIT_PER_SECOND: '0', RATE_LIMIT_BURST: '1' } });
  });
  afterAll(async () => {
    await registry.close();
  });

  it('admits everything and sends no RateLimit headers when RATE_LIMIT_PER_SECOND=0', async () => {
    const token = await registry.token();
    for (let i = 0; i < 5; i++) {
      const answer = await registry.request('GET', '/v1/event-types', { token });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('ratelimit-limit')).toBeNull();
    }
  });
});
