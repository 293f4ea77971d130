// The token bucket behind per-organization rate limiting, on a fake clock.
import { describe, expect, it } from 'vitest';
import { TokenBucketLimiter } from '../../src/http/rateLimit.ts';

function limiter(perSecond: number, burst: number, maxBuckets?: number) {
  let now = 1000;
  const l = new TokenBucketLimiter({ perSecond, burst, clock: () => now, ...(maxBuckets ? { maxBuckets } : {}) });
  return { l, advance: (s: number) => (now += s) };
}

describe('TokenBucketLimiter', () => {
  it('admits a burst, then one request per refill interval', () => {
    const { l, advance } = limiter(2, 3);
    expect([1, 2, 3, 4].map(() => l.take('a').allowed)).toEqual([true, true, true, false]);
    const refused = l.take('a');
    expect(refused).toMatchObject({ allowed: false, limit: 3, remaining: 0, retryAfterSeconds: 1, resetSeconds: 2 });
    advance(0.5); // one token at 2 per second
    expect(l.take('a')).toMatchObject({ allowed: true, remaining: 0 });
    expect(l.take('a').allowed).toBe(false);
  });

  it('reports remaining tokens and the time until the bucket is full', () => {
    const { l, advance } = limiter(1, 10);
    expect(l.take('a')).toMatchObject({ allowed: true, limit: 10, remaining: 9, resetSeconds: 1 });
    for (let i = 0; i < 9; i++) l.take('a');
    expect(l.take('a')).toMatchObject({ allowed: false, remaining: 0, resetSeconds: 10, retryAfterSeconds: 1 });
    advance(4);
    expect(l.take('a')).toMatchObject({ allowed: true, remaining: 3, resetSeconds: 7 });
  });

  it('never fills a bucket beyond its burst', () => {
    const { l, advance } = limiter(100, 2);
    l.take('a');
    advance(3600);
    expect(l.take('a').remaining).toBe(1);
  });

  it('rounds Retry-After up for slow rates', () => {
    const { l } = limiter(0.1, 1);
    expect(l.take('a').allowed).toBe(true);
    expect(l.take('a')).toMatchObject({ allowed: false, retryAfterSeconds: 10 });
  });

  it('keeps separate buckets per key', () => {
    const { l } = limiter(1, 1);
    expect(l.take('org:a').allowed).toBe(true);
    expect(l.take('org:a').allowed).toBe(false);
    expect(l.take('org:b').allowed).toBe(true);
  });

  it('forgets buckets that have refilled completely', () => {
    const { l, advance } = limiter(10, 5);
    for (let i = 0; i < 1000; i++) l.take(`org:${i}`);
    expect(l.size).toBe(1000);
    advance(0.05); // half a token: none of them full again yet
    l.take('org:x');
    expect(l.size).toBe(1001);
    advance(1); // all full again: indistinguishable from new buckets
    l.take('org:y');
    expect(l.size).toBe(1);
  });

  it('stays within maxBuckets under many active keys, dropping the least recently used', () => {
    const { l } = limiter(1, 5, 100);
    for (let i = 0; i < 10_000; i++) l.take(`org:${i}`);
    expect(l.size).toBe(100);
    // A recently used key keeps its state; a dropped one starts afresh.
    for (let i = 0; i < 5; i++) l.take('org:9999');
    expect(l.take('org:9999').allowed).toBe(false);
    expect(l.take('org:0')).toMatchObject({ allowed: true, remaining: 4 });
  });

  it('refuses a configuration without a rate', () => {
    expect(() => new TokenBucketLimiter({ perSecond: 0, burst: 1 })).toThrow();
  });
});
