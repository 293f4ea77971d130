// Hostile-token builders for negative authentication tests.
//
// Everything here produces compact JWS strings that a correct verifier MUST
// reject: tokens signed by keys the IdP never published, unsigned `alg: none`
// tokens, and the classic RS256 -> HS256 key-confusion token (HMAC keyed with
// the IdP's *public* key bytes). Server-bound helpers that sign with the IdP's
// real private key (e.g. for expired tokens) live on the handle returned by
// `startOAuthServer()` (`signToken`, `mintToken`).

import { createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT, base64url, exportJWK, type JWK, type JWTPayload } from 'jose';

/** Asymmetric algorithms `signForeignToken` can produce. */
export type ForeignAlg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA';

export interface ForeignTokenOptions {
  /** JWS algorithm (default RS256, i.e. the same alg the real IdP uses). */
  alg?: ForeignAlg;
  /**
   * `kid` header. Default: a random value the IdP never published. Pass the
   * IdP's current kid to forge the "right kid, wrong key" case.
   */
  kid?: string | null;
  /** `typ` header (default `JWT`, as Keycloak emits). */
  typ?: string;
}

export interface ForeignToken {
  token: string;
  /** Public half of the foreign key, e.g. to stand up a rogue JWKS. */
  publicJwk: JWK;
}

function generateForeignKey(alg: ForeignAlg): KeyObject {
  switch (alg) {
    case 'RS256':
    case 'RS384':
    case 'RS512':
    case 'PS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ES384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'EdDSA':
      return generateKeyPairSync('ed25519').privateKey;
  }
}

/** Like `signForeignToken` but also returns the foreign public JWK. */
export async function signForeignTokenWithKey(
  claims: JWTPayload,
  options: ForeignTokenOptions = {},
): Promise<ForeignToken> {
  const alg = options.alg ?? 'RS256';
  const privateKey = generateForeignKey(alg);
  const kid = options.kid === undefined ? `foreign-${randomUUID()}` : options.kid;
  const header: { alg: string; typ: string; kid?: string } = { alg, typ: options.typ ?? 'JWT' };
  if (kid !== null) header.kid = kid;
  const token = await new SignJWT(claims).setProtectedHeader(header).sign(privateKey);
  const publicJwk = await exportJWK(createPublicKey(privateKey));
  if (kid !== null) publicJwk.kid = kid;
  return { token, publicJwk };
}

/** A token signed by a freshly generated key the IdP never published. */
export async function signForeignToken(claims: JWTPayload, options: ForeignTokenOptions = {}): Promise<string> {
  return (await signForeignTokenWithKey(claims, options)).token;
}

function encodeSegment(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}

/**
 * An unsigned JWS (`alg: none`): `header.payload.` with an empty signature.
 * `header` is merged over `{ alg: 'none', typ: 'JWT' }` (e.g. add a `kid` that
 * the IdP really publishes).
 */
export function unsignedToken(claims: JWTPayload, header: Record<string, unknown> = {}): string {
  return `${encodeSegment({ alg: 'none', typ: 'JWT', ...header })}.${encodeSegment(claims)}.`;
}

/** How the public key is serialised into the HMAC secret. */
export type PublicKeyEncoding = 'pem' | 'der' | 'jwk-json' | 'modulus';

/** Bytes an attacker would use as the HMAC secret for a given public key. */
export function publicKeyBytes(publicKey: KeyObject, encoding: PublicKeyEncoding = 'pem'): Uint8Array {
  const key = publicKey.type === 'private' ? createPublicKey(publicKey) : publicKey;
  switch (encoding) {
    case 'pem':
      return new TextEncoder().encode(key.export({ type: 'spki', format: 'pem' }).toString());
    case 'der':
      return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
    case 'jwk-json':
      return new TextEncoder().encode(JSON.stringify(key.export({ format: 'jwk' })));
    case 'modulus': {
      const n = key.export({ format: 'jwk' }).n;
      if (n === undefined) throw new Error('modulus encoding needs an RSA key');
      return base64url.decode(n);
    }
  }
}

export interface KeyConfusionOptions {
  /** Serialisation of the public key used as HMAC secret (default `pem`). */
  encoding?: PublicKeyEncoding;
  /** `kid` header, typically the IdP's real kid so a naive verifier picks that key. */
  kid?: string;
  alg?: 'HS256' | 'HS384' | 'HS512';
}

/**
 * Classic RS256 -> HS256 key-confusion token: HMAC-signed with the IdP's
 * public key bytes. A verifier that lets the token choose the algorithm and
 * feeds the RSA public key in as an HMAC secret would accept it.
 */
export async function signWithPublicKeyAsHmacSecret(
  claims: JWTPayload,
  publicKey: KeyObject,
  options: KeyConfusionOptions = {},
): Promise<string> {
  const alg = options.alg ?? 'HS256';
  const header: { alg: string; typ: string; kid?: string } = { alg, typ: 'JWT' };
  if (options.kid !== undefined) header.kid = options.kid;
  const secret = publicKeyBytes(publicKey, options.encoding ?? 'pem');
  return new SignJWT(claims).setProtectedHeader(header).sign(secret);
}

/** Decode a compact JWS without verifying anything (test assertions only). */
export function decodeUnverified(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = token.split('.');
  if (h === undefined || p === undefined) throw new Error('not a compact JWS');
  const decode = (segment: string): Record<string, unknown> =>
    JSON.parse(new TextDecoder().decode(base64url.decode(segment))) as Record<string, unknown>;
  return { header: decode(h), payload: decode(p) };
}
