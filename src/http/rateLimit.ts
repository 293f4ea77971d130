// Per-organization rate limiting: a token bucket per organization (per client
// id for tokens without one), refilled at RATE_LIMIT_PER_SECOND up to
// RATE_LIMIT_BURST. Checked right after authentication; every limited
// response carries the rate-limit fields of the IETF draft
// (RateLimit-Limit / -Remaining / -Reset), and a 429 also Retry-After.
//
// Memory stays bounded: buckets are kept in least-recently-used order, a
// bucket that has refilled completely is indistinguishable from a new one and
// is dropped, and beyond `maxBuckets` the least recently used bucket goes.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RateLimitedError } from '../errors.ts';
import type { Principal } from '../identity/principal.ts';

export interface RateLimitOptions {
  /** Tokens added per second; 0 disables limiting. */
  readonly perSecond: number;
  /** Bucket capacity: the largest burst admitted at once. */
  readonly burst: number;
  /** Upper bound on tracked buckets (default 100 000). */
  readonly maxBuckets?: number;
  /** Monotonic clock in seconds (tests pass their own). */
  readonly clock?: () => number;
}

export interface RateLimitDecision {
  readonly allowed: boolean;
  /** RateLimit-Limit: the bucket's capacity. */
  readonly limit: number;
  /** RateLimit-Remaining: whole tokens left after this request. */
  readonly remaining: number;
  /** RateLimit-Reset: seconds until the bucket is full again. */
  readonly resetSeconds: number;
  /** Retry-After for a refused request: seconds until one token is available. */
  readonly retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  /** Clock reading when `tokens` was computed. */
  at: number;
}

const DEFAULT_MAX_BUCKETS = 100_000;

export class TokenBucketLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly clock: () => number;
  private readonly maxBuckets: number;

  constructor(private readonly options: RateLimitOptions) {
    if (!(options.perSecond > 0)) throw new Error('a rate limiter needs perSecond > 0');
    if (!(options.burst >= 1)) throw new Error('a rate limiter needs burst >= 1');
    this.clock = options.clock ?? (() => performance.now() / 1000);
    this.maxBuckets = options.maxBuckets ?? DEFAULT_MAX_BUCKETS;
  }

  /** Number of buckets held (for tests of the memory bound). */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token from `key`'s bucket if there is one. */
  take(key: string): RateLimitDecision {
    const now = this.clock();
    this.evictIdle(now);
    const { perSecond, burst } = this.options;
    const bucket = this.buckets.get(key);
    let tokens = bucket ? Math.min(burst, bucket.tokens + (now - bucket.at) * perSecond) : burst;
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    // Re-insert so the map stays in least-recently-used order.
    if (bucket) this.buckets.delete(key);
    else if (this.buckets.size >= this.maxBuckets) this.evictOldest();
    this.buckets.set(key, { tokens, at: now });
    return {
      allowed,
      limit: burst,
      remaining: Math.floor(tokens),
      resetSeconds: Math.ceil((burst - tokens) / perSecond),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / perSecond)),
    };
  }

  /** Drops buckets from the least recently used end while they have refilled completely. */
  private evictIdle(now: number): void {
    const { perSecond, burst } = this.options;
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.at) * perSecond < burst) break;
      this.buckets.delete(key);
    }
  }

  private evictOldest(): void {
    const oldest = this.buckets.keys().next();
    if (oldest.done !== true) this.buckets.delete(oldest.value);
  }
}

/** The bucket a principal draws from: its organization, or its client id when it has none. */
export function rateLimitKey(principal: Principal): string {
  return principal.organizationId !== null ? `org:${principal.organizationId}` : `client:${principal.clientId}`;
}

declare module 'fastify' {
  interface FastifyRequest {
    rateLimit: RateLimitDecision | null;
  }
}

/**
 * Prepares the app for rate limiting and returns the check to run after
 * authentication (registerAuth's `afterAuth`), or undefined when disabled.
 */
export function setUpRateLimit(
  app: FastifyInstance,
  options: RateLimitOptions | undefined,
  onLimited?: () => void,
): ((request: FastifyRequest) => void) | undefined {
  app.decorateRequest('rateLimit', null);
  if (options === undefined || options.perSecond === 0) return undefined;
  const limiter = new TokenBucketLimiter(options);
  app.addHook('onSend', async (request, reply, payload) => {
    const decision = request.rateLimit;
    if (decision !== null) {
      void reply.header('ratelimit-limit', String(decision.limit));
      void reply.header('ratelimit-remaining', String(decision.remaining));
      void reply.header('ratelimit-reset', String(decision.resetSeconds));
    }
    return payload;
  });
  return (request) => {
    if (request.principal === null) return;
    const decision = limiter.take(rateLimitKey(request.principal));
    request.rateLimit = decision;
    if (!decision.allowed) {
      onLimited?.();
      throw new RateLimitedError(`Too many requests for this organization; retry in ${decision.retryAfterSeconds} s.`, {
        headers: { 'retry-after': String(decision.retryAfterSeconds) },
      });
    }
  };
}
