// Idempotency-Key handling shared by every write: parsing the header, the
// key's hash (scoped to the organization), the keyed request fingerprint, and the
// registration id derived from (organization, key) — so the log itself, not a
// separate cache, remembers which keys were used.
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { EncryptionKey } from '../config.ts';
import { canonicalJson } from '../domain/canonicalJson.ts';

/** Keys are answered from the log for 24 hours after their first use. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

const VISIBLE_ASCII = /^[\x21-\x7e]{1,255}$/;

/**
 * Returns the key, or undefined when missing or malformed. A structured-field
 * string (`"…"`, RFC 8941) is accepted and unquoted.
 */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  let key = header.trim();
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) {
    key = key.slice(1, -1);
    if (/["\\]/.test(key)) return undefined;
  }
  return VISIBLE_ASCII.test(key) ? key : undefined;
}

export function idempotencyKeyHash(organizationId: string, key: string): string {
  return createHash('sha256').update(`${organizationId}\n${key}`).digest('hex');
}

/**
 * What a write's fingerprint is computed over: method, normalized path and
 * the canonical JSON of the validated body (a given secret included, so a
 * replay with another secret is a different request).
 */
export function canonicalRequest(method: string, path: string, body: unknown): string {
  return `${method.toUpperCase()}\n${path}\n${canonicalJson(body ?? null)}`;
}

/** Fingerprints written before they were keyed: a bare SHA-256 hex digest. */
const LEGACY_FINGERPRINT = /^[0-9a-f]{64}$/;
const KEYED_FINGERPRINT = /^hmac-sha256:([^:]+):([0-9a-f]{64})$/;

/**
 * Request fingerprints as stored in event metadata: `hmac-sha256:<kid>:<hex>`,
 * an HMAC under a key derived (HKDF-SHA256) from the secret encryption key
 * `<kid>`. Unkeyed, a fingerprint over a body holding a client-given secret
 * would let anyone who can read the log confirm a guessed secret offline.
 * New fingerprints use the current key; older ones are checked with the key
 * they name, so rotating SECRET_ENCRYPTION_KEYS (old keys kept, as for the
 * secrets) keeps replays working.
 */
export class RequestFingerprints {
  private readonly current: { readonly id: string; readonly key: Buffer };
  private readonly byId: ReadonlyMap<string, Buffer>;

  constructor(keys: readonly EncryptionKey[]) {
    const derived = keys.map((k) => ({
      id: k.id,
      key: Buffer.from(hkdfSync('sha256', k.key, Buffer.alloc(0), 'webhook-registry request fingerprint v1', 32)),
    }));
    const first = derived[0];
    if (!first) throw new Error('at least one secret encryption key is required');
    this.current = first;
    this.byId = new Map(derived.map((k) => [k.id, k.key]));
  }

  /** The fingerprint a new write records, from `canonicalRequest(...)`. */
  of(request: string): string {
    return `hmac-sha256:${this.current.id}:${hmacHex(this.current.key, request)}`;
  }

  /**
   * Whether `stored` (from an earlier write's metadata) fingerprints `request`.
   * A fingerprint under a key no longer configured cannot be checked and does
   * not match (the key is then answered 422, never replayed unverified).
   */
  matches(stored: string | null, request: string): boolean {
    if (stored === null) return false;
    if (LEGACY_FINGERPRINT.test(stored)) return sameHex(stored, createHash('sha256').update(request).digest('hex'));
    const keyed = KEYED_FINGERPRINT.exec(stored);
    const key = keyed ? this.byId.get(keyed[1]!) : undefined;
    return key !== undefined && sameHex(keyed![2]!, hmacHex(key, request));
  }
}

function hmacHex(key: Buffer, request: string): string {
  return createHmac('sha256', key).update(request).digest('hex');
}

function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

// A fixed namespace for UUIDv5 webhook ids (RFC 9562 §5.5); changing it would
// change every derived id, so it is a constant of the product.
const WEBHOOK_ID_NAMESPACE = Buffer.from('5b0e6b1e8d7a4d0c9f3e2a61c4b7d903', 'hex');

/** The id a registration with this key gets: UUIDv5 of (organization, key). */
export function webhookIdFor(organizationId: string, key: string): string {
  const hash = createHash('sha1').update(WEBHOOK_ID_NAMESPACE).update(`${organizationId}\n${key}`).digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
