// Idempotency-Key handling shared by every write: parsing the header, the
// key's hash (scoped to the organization), the request fingerprint, and the
// registration id derived from (organization, key) — so the log itself, not a
// separate cache, remembers which keys were used.
import { createHash } from 'node:crypto';
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

export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method.toUpperCase()}\n${path}\n${canonicalJson(body ?? null)}`)
    .digest('hex');
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
