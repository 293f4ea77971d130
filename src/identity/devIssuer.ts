// The local development issuer: an RS256 key pair kept in the data folder so
// `npm start` works without Keycloak and `npm run token` mints tokens the
// running server accepts. Refused when NODE_ENV=production (see config.ts).
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, importJWK, createLocalJWKSet, type JWK, type JWTVerifyGetKey } from 'jose';

export const DEV_ISSUER = 'urn:webhook-registry:dev-issuer';
const FILE = 'dev-issuer.json';

interface StoredKeys {
  readonly kid: string;
  readonly privateJwk: JWK;
  readonly publicJwk: JWK;
}

export interface DevIssuer {
  readonly issuer: string;
  readonly keys: JWTVerifyGetKey;
  mint(claims: DevTokenClaims): Promise<string>;
  /** An OpenID Connect ID token for a user signed in through the development sign-in (src/http/devSignIn.ts). */
  mintIdToken(claims: DevIdTokenClaims): Promise<string>;
}

export interface DevIdTokenClaims {
  /** The client the user signed in to (the token's audience). */
  readonly clientId: string;
  readonly subject: string;
  readonly name: string;
  readonly nonce?: string | undefined;
  readonly ttlSeconds: number;
}

export interface DevTokenClaims {
  readonly audience: string;
  readonly orgClaim: string;
  readonly partnersClaim: string;
  readonly organizationId?: string | undefined;
  readonly partnerIds?: readonly string[] | undefined;
  readonly scopes: readonly string[];
  readonly clientId?: string | undefined;
  /** The token's subject (default: the client's service account). */
  readonly subject?: string | undefined;
  readonly ttlSeconds?: number | undefined;
}

/** Loads the dev issuer's key pair from the data folder, creating it on first use. */
export async function loadDevIssuer(dataDir: string): Promise<DevIssuer> {
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, FILE);
  let stored: StoredKeys;
  if (existsSync(file)) {
    stored = JSON.parse(readFileSync(file, 'utf8')) as StoredKeys;
  } else {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const kid = randomUUID();
    stored = {
      kid,
      privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' },
      publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
    };
    writeFileSync(file, JSON.stringify(stored), { mode: 0o600, flag: 'wx' });
  }
  const privateKey = await importJWK(stored.privateJwk, 'RS256');
  return {
    issuer: DEV_ISSUER,
    keys: createLocalJWKSet({ keys: [stored.publicJwk] }),
    async mint(c) {
      const clientId = c.clientId ?? (c.organizationId ? `${c.organizationId}-integration` : 'dev-client');
      const payload: Record<string, unknown> = { scope: c.scopes.join(' '), azp: clientId };
      if (c.organizationId !== undefined) payload[c.orgClaim] = c.organizationId;
      if (c.partnerIds !== undefined) payload[c.partnersClaim] = c.partnerIds;
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', kid: stored.kid, typ: 'JWT' })
        .setIssuer(DEV_ISSUER)
        .setAudience(c.audience)
        .setSubject(c.subject ?? `service-account-${clientId}`)
        .setIssuedAt()
        .setExpirationTime(`${c.ttlSeconds ?? 3600}s`)
        .setJti(randomUUID())
        .sign(privateKey);
    },
    async mintIdToken(c) {
      const payload: Record<string, unknown> = { name: c.name, azp: c.clientId };
      if (c.nonce !== undefined) payload.nonce = c.nonce;
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', kid: stored.kid, typ: 'JWT' })
        .setIssuer(DEV_ISSUER)
        .setAudience(c.clientId)
        .setSubject(c.subject)
        .setIssuedAt()
        .setExpirationTime(`${c.ttlSeconds}s`)
        .sign(privateKey);
    },
  };
}
