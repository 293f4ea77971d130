// The identity provider's signing keys, fetched from its JWKS endpoint with
// jose's createRemoteJWKSet (created once per process), plus the two things
// jose leaves to its caller:
//   - telling an outage from a bad token: a failed, timed-out or garbled fetch,
//     or a key set without one usable signing key, is the provider's problem
//     (IdentityProviderUnavailableError → 503 + Retry-After), never the
//     token's (401);
//   - a short back-off after a failed fetch: jose refetches on every call while
//     its cache is stale, so during an outage every request would hit (and
//     wait for) the provider; instead, calls that would need the provider fail
//     fast for `failureBackoffMs` and say when to retry.
// How jose behaves (v6): keys are cached for `cacheMaxAge` after the last
// successful fetch; a stale cache is refetched on the next call (and a failed
// refetch fails the call — keys are not served stale); a token whose `kid` is
// not in a fresh cache triggers one refetch, unless the last successful fetch
// is younger than `cooldownDuration` (then JWKSNoMatchingKey right away);
// concurrent calls share one in-flight fetch.
import { createRemoteJWKSet, errors, type CryptoKey, type FlattenedJWSInput, type JSONWebKeySet, type JWK, type JWSHeaderParameters } from 'jose';
import { IdentityProviderUnavailableError } from './principal.ts';

export interface RemoteKeysOptions {
  readonly url: URL;
  /** Abort a JWKS request after this long (jose `timeoutDuration`). */
  readonly timeoutMs: number;
  /** At most one refetch for unknown `kid`s per this period (jose `cooldownDuration`). */
  readonly cooldownMs: number;
  /** Keys older than this are refetched before use (jose `cacheMaxAge`). */
  readonly cacheMaxAgeMs: number;
  /** The signature algorithms the verifier accepts (a key for none of them is not usable). */
  readonly algorithms: readonly string[];
  /** After a failed fetch, calls that need the provider fail fast this long. Default min(cooldown, 5 s). */
  readonly failureBackoffMs?: number;
  /** Clock in epoch milliseconds (for the back-off only; jose keeps its own). */
  readonly now?: () => number;
}

/** A jose key resolver with a view of the cached key set. */
export interface RemoteKeys {
  (protectedHeader: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey>;
  /** The cached key set, undefined before the first successful fetch. */
  jwks(): JSONWebKeySet | undefined;
}

/** jose errors of the key lookup itself that the token causes (unknown kid, unsupported alg, ambiguous key). */
export function isTokenSideKeyError(error: unknown): boolean {
  return (
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys ||
    error instanceof errors.JOSENotSupported ||
    error instanceof errors.JOSEAlgNotAllowed
  );
}

/** A key the verifier can use: a public signature key for one of the accepted algorithms. */
export function isUsableSigningKey(jwk: JWK, algorithms: readonly string[]): boolean {
  return (
    typeof jwk.kty === 'string' &&
    jwk.kty !== 'oct' &&
    (jwk.use === undefined || jwk.use === 'sig') &&
    (jwk.key_ops === undefined || jwk.key_ops.includes('verify')) &&
    (jwk.alg === undefined || algorithms.includes(jwk.alg))
  );
}

export function createRemoteKeys(options: RemoteKeysOptions): RemoteKeys {
  const remote = createRemoteJWKSet(options.url, {
    timeoutDuration: options.timeoutMs,
    cooldownDuration: options.cooldownMs,
    cacheMaxAge: options.cacheMaxAgeMs,
  });
  const now = options.now ?? Date.now;
  const backoffMs = options.failureBackoffMs ?? Math.min(options.cooldownMs, 5_000);
  let failedAt: number | undefined;

  /** Would jose go to the provider for this call? (stale cache, or a kid it has not cached) */
  const mayFetch = (header: JWSHeaderParameters): boolean =>
    !remote.fresh || (typeof header.kid === 'string' && !(remote.jwks()?.keys ?? []).some((k) => k.kid === header.kid));

  const resolve = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    // Only consulted after a failure, so the healthy path costs nothing extra.
    const retrying = failedAt !== undefined && mayFetch(header);
    if (retrying && failedAt !== undefined) {
      const waitMs = failedAt + backoffMs - now();
      if (waitMs > 0) {
        throw new IdentityProviderUnavailableError('the identity provider keys could not be fetched a moment ago', {
          retryAfterSeconds: waitMs / 1000,
        });
      }
    }
    try {
      const key = await remote(header, token);
      if (retrying) failedAt = undefined;
      return key;
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey) {
        // jose looked in a fresh key set (it refetches a stale one first). If that set
        // holds no usable signing key at all, no token can pass: an outage, not a bad token.
        const set = remote.jwks();
        if (set === undefined || !set.keys.some((k) => isUsableSigningKey(k, options.algorithms))) {
          throw new IdentityProviderUnavailableError('the identity provider publishes no usable signing key', {
            cause: error,
            retryAfterSeconds: options.cooldownMs / 1000,
          });
        }
        throw error;
      }
      if (isTokenSideKeyError(error)) throw error;
      // Network error, timeout, non-200 answer, not JSON, not a JWK Set, unusable key material.
      failedAt = now();
      throw new IdentityProviderUnavailableError('the identity provider keys could not be fetched', {
        cause: error,
        retryAfterSeconds: backoffMs / 1000,
      });
    }
  };
  return Object.assign(resolve, { jwks: () => remote.jwks() });
}
