// Builds the token verifier from configuration: a remote JWKS (Keycloak) when
// an issuer is configured, else the local development issuer.
import type { Config } from '../config.ts';
import { loadDevIssuer, type DevIssuer } from './devIssuer.ts';
import { createRemoteKeys } from './remoteKeys.ts';
import { TokenVerifier } from './tokenVerifier.ts';

export interface Identity {
  readonly verifier: TokenVerifier;
  readonly issuer: string;
  readonly development: boolean;
  /** The development issuer itself (its keys sign what the development sign-in hands out); absent with a real issuer. */
  readonly devIssuer?: DevIssuer;
}

/** Keycloak publishes its keys here; OIDC_JWKS_URL overrides it. */
export function defaultJwksUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/protocol/openid-connect/certs`;
}

export async function createIdentity(config: Config, hooks: { onCacheHit?: () => void } = {}): Promise<Identity> {
  const common = {
    audience: config.OIDC_AUDIENCE,
    algorithms: config.OIDC_ALGORITHMS,
    orgClaim: config.ORG_CLAIM,
    partnersClaim: config.PARTNERS_CLAIM,
    cacheSize: config.TOKEN_CACHE_SIZE,
    ...(hooks.onCacheHit ? { onCacheHit: hooks.onCacheHit } : {}),
  };
  if (config.OIDC_ISSUER !== undefined) {
    // Created once per process (startServer calls this once), so every request
    // shares one key cache and one in-flight fetch. The timing is deliberate:
    // - JWKS_TIMEOUT_MS (2 s): a JWKS answer normally takes milliseconds; a
    //   request waiting on a hung provider is answered 503 after this long.
    // - JWKS_COOLDOWN_MS (30 s): at most one refetch per this period for tokens
    //   whose kid is not cached, so forged kids cannot hammer Keycloak. The price:
    //   a key first used less than this after the last fetch is refused (401)
    //   until the period ends; publishing new keys passive first avoids it
    //   (docs/keycloak.md, Key rotation). Also caps the fail-fast back-off
    //   after a failed fetch (at most 5 s).
    // - JWKS_CACHE_MAX_AGE_MS (10 min): keys are refetched when older; a key
    //   Keycloak removed is trusted at most this long, and an outage is
    //   survived for what is left of it since the last successful fetch.
    const keys = createRemoteKeys({
      url: new URL(config.OIDC_JWKS_URL ?? defaultJwksUrl(config.OIDC_ISSUER)),
      timeoutMs: config.JWKS_TIMEOUT_MS,
      cooldownMs: config.JWKS_COOLDOWN_MS,
      cacheMaxAgeMs: config.JWKS_CACHE_MAX_AGE_MS,
      algorithms: config.OIDC_ALGORITHMS,
    });
    return {
      verifier: new TokenVerifier({ ...common, issuer: config.OIDC_ISSUER, keys }),
      issuer: config.OIDC_ISSUER,
      development: false,
    };
  }
  const dev = await loadDevIssuer(config.dataDir);
  return {
    verifier: new TokenVerifier({ ...common, issuer: dev.issuer, keys: dev.keys }),
    issuer: dev.issuer,
    development: true,
    devIssuer: dev,
  };
}
