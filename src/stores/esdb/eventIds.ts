// EventStoreDB event ids, derived from the event itself so that sending the
// same events twice is recognised by the server as one write (its idempotent
// append compares event ids at the expected revision). Every event already
// carries a hash over its type, data and metadata, chained to the previous
// event of its stream (src/domain/hashChain.ts): the id is UUIDv5 of it.
import { createHash } from 'node:crypto';
import type { NewEvent } from '../eventStore.ts';

// A fixed namespace (RFC 9562 §5.5) for event ids; changing it would change
// the id a retry sends, so it is a constant of the product.
const EVENT_ID_NAMESPACE = Buffer.from('9d3c5e1a6f2b4c8d8e7a0b1c2d3e4f50', 'hex');

/** UUIDv5 of the event's hash (its metadata's `hash`). */
export function esdbEventId(event: NewEvent): string {
  const hash: unknown = (event.metadata as { hash?: unknown } | undefined)?.hash;
  if (typeof hash !== 'string' || hash === '') {
    throw new TypeError('an event needs its metadata hash to be appended to EventStoreDB');
  }
  return uuidV5(hash);
}

/** RFC 9562 UUIDv5 of `name` in `namespace` (16 bytes). */
export function uuidV5(name: string, namespace: Uint8Array = EVENT_ID_NAMESPACE): string {
  const bytes = createHash('sha1').update(namespace).update(name, 'utf8').digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
