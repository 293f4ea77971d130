// Verifies Bearer JWTs with jose (issuer, audience, algorithm allow-list) and
// turns their claims into a Principal. Verified tokens are cached by a hash
// of the token until their `exp` (never past it), because an RS256 check costs
// ~80 µs of CPU and would otherwise cap throughput.
//
// Failures: anything wrong with the token is InvalidTokenError (401); a key
// resolver that cannot produce keys because of the provider (fetch failed,
// timed out, answered garbage) is IdentityProviderUnavailableError (503).
// The line is drawn at key resolution: only the resolver can fail for the
// provider's reasons, so every error outside it is the token's.
import { createHash } from 'node:crypto';
import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { IdentityProviderUnavailableError, InvalidTokenError, type Principal } from './principal.ts';
import { isTokenSideKeyError } from './remoteKeys.ts';

export interface TokenVerifierOptions {
  readonly issuer: string;
  readonly audience: string;
  readonly algorithms: readonly string[];
  readonly keys: JWTVerifyGetKey;
  readonly orgClaim: string;
  readonly partnersClaim: string;
  /** Maximum number of cached verified tokens; 0 disables the cache. */
  readonly cacheSize: number;
  readonly clockToleranceSeconds?: number;
  /** The clock, epoch seconds (jose checks exp/nbf/iat against it too). */
  readonly now?: () => number;
  readonly onCacheHit?: () => void;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class TokenVerifier {
  private readonly cache = new Map<string, Principal>();
  private readonly now: () => number;

  /** The configured key resolver, with its failures sorted into token errors and outages. */
  private readonly keys: JWTVerifyGetKey;

  constructor(private readonly options: TokenVerifierOptions) {
    this.now = options.now ?? (() => Date.now() / 1000);
    this.keys = async (header, token) => {
      try {
        return await options.keys(header, token);
      } catch (error) {
        if (error instanceof IdentityProviderUnavailableError || isTokenSideKeyError(error)) throw error;
        // Any other resolver failure (network, timeout, a JWKS that is not one) is the provider's.
        throw new IdentityProviderUnavailableError('the identity provider signing keys could not be fetched', { cause: error });
      }
    };
  }

  async verify(token: string): Promise<Principal> {
    const now = this.now();
    const cacheKey = this.options.cacheSize > 0 ? createHash('sha256').update(token).digest('base64') : '';
    if (cacheKey !== '') {
      const cached = this.cache.get(cacheKey);
      if (cached !== undefined) {
        // Strictly before exp: a cached principal is never returned at or past it.
        if (cached.expiresAt > now) {
          this.options.onCacheHit?.();
          return cached;
        }
        this.cache.delete(cacheKey);
      }
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.options.issuer,
        audience: this.options.audience,
        algorithms: [...this.options.algorithms],
        requiredClaims: ['exp', 'sub'],
        clockTolerance: this.options.clockToleranceSeconds ?? 5,
        currentDate: new Date(now * 1000),
      }));
    } catch (error) {
      if (error instanceof IdentityProviderUnavailableError) throw error;
      if (error instanceof errors.JOSEError) throw new InvalidTokenError(describeJoseError(error));
      throw error;
    }
    const principal = this.toPrincipal(payload);
    // A token accepted within the clock tolerance after its exp is not cached.
    if (cacheKey !== '' && principal.expiresAt > now) this.remember(cacheKey, principal);
    return principal;
  }

  private toPrincipal(payload: JWTPayload): Principal {
    // Keycloak marks its tokens: access tokens `Bearer`; ID, refresh and logout tokens must not pass.
    if (payload.typ !== undefined && (typeof payload.typ !== 'string' || payload.typ.toLowerCase() !== 'bearer')) {
      throw new InvalidTokenError('the token is not an access token');
    }
    const org = payload[this.options.orgClaim];
    if (org !== undefined && (typeof org !== 'string' || org.length === 0 || org.length > 255)) {
      throw new InvalidTokenError(`the ${this.options.orgClaim} claim is malformed`);
    }
    const partnerIds = parsePartners(payload[this.options.partnersClaim], this.options.partnersClaim);
    const scope = payload.scope;
    if (scope !== undefined && typeof scope !== 'string') throw new InvalidTokenError('the scope claim is malformed');
    const clientId = typeof payload.azp === 'string' ? payload.azp : typeof payload.client_id === 'string' ? payload.client_id : '';
    return {
      organizationId: org ?? null,
      partnerIds,
      scopes: new Set((scope ?? '').split(' ').filter((s) => s !== '')),
      clientId,
      subject: payload.sub ?? '',
      expiresAt: payload.exp ?? 0,
    };
  }

  private remember(key: string, principal: Principal): void {
    if (this.cache.size >= this.options.cacheSize) {
      // Map keeps insertion order: drop the oldest entry.
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(key, principal);
  }
}

/** Absent → no partners; a UUID or an array of UUIDs → lowercase ids; anything else is malformed. */
function parsePartners(value: unknown, claim: string): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((v): v is string => typeof v === 'string' && UUID.test(v))) {
    throw new InvalidTokenError(`the ${claim} claim is malformed`);
  }
  return [...new Set(list.map((v) => v.toLowerCase()))];
}

function describeJoseError(error: InstanceType<typeof errors.JOSEError>): string {
  switch (error.code) {
    case errors.JWTExpired.code:
      return 'the access token expired';
    case errors.JWTClaimValidationFailed.code:
      return `the access token's ${(error as InstanceType<typeof errors.JWTClaimValidationFailed>).claim} claim is not accepted`;
    case errors.JWKSNoMatchingKey.code:
      return 'the access token is signed by an unknown key';
    case errors.JOSEAlgNotAllowed.code:
    case errors.JOSENotSupported.code:
      return 'the access token uses a signing algorithm that is not accepted';
    default:
      return 'the access token is not valid';
  }
}
