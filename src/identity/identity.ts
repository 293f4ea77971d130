// Builds the token verifier from configuration: a remote JWKS (Keycloak) when
// an issuer is configured, else the local development issuer.
import { createRemoteJWKSet } from 'jose';
import type { Config } from '../config.ts';
import { loadDevIssuer } from './devIssuer.ts';
import { TokenVerifier } from './tokenVerifier.ts';

export interface Identity {
  readonly verifier: TokenVerifier;
  readonly issuer: string;
  readonly development: boolean;
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
    // Created once per process: jose caches keys, refetches on an unknown kid
    // (at most once per cooldown) and treats keys older than cacheMaxAge as stale.
    const keys = createRemoteJWKSet(new URL(config.OIDC_JWKS_URL ?? defaultJwksUrl(config.OIDC_ISSUER)), {
      timeoutDuration: config.JWKS_TIMEOUT_MS,
      cooldownDuration: config.JWKS_COOLDOWN_MS,
      cacheMaxAge: config.JWKS_CACHE_MAX_AGE_MS,
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
  };
}
