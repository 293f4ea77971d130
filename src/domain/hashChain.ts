// The per-stream hash chain that makes the log tamper-evident: every event's
// metadata carries the previous event's hash and its own hash over the
// canonical encoding of its type, data and the rest of its metadata. Altering,
// deleting or reordering an event breaks the chain at that revision.
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonicalJson.ts';

export interface HashableEvent {
  readonly type: string;
  readonly data: unknown;
  readonly metadata: { readonly previousHash: string | null; readonly hash?: string };
}

export function eventHash(event: HashableEvent): string {
  const { hash: _ignored, ...metadata } = event.metadata;
  return createHash('sha256').update(canonicalJson({ type: event.type, data: event.data, metadata })).digest('hex');
}

/** A new event's hash, with its data and metadata (hash included) as the JSON text the hash is over. */
export interface SealedEvent {
  readonly hash: string;
  readonly data: string;
  readonly metadata: string;
}

/**
 * Hashes a new event as eventHash does, from the canonical JSON of its data
 * and of its metadata (without `hash`), and keeps that text: an engine that
 * stores JSON stores what was hashed instead of encoding the event again.
 * `{"data":…,"metadata":…,"type":…}` is canonicalJson of the whole event,
 * keys being in order. The stored metadata is the hashed text with `hash`
 * appended (key order does not matter to readers; verify re-canonicalizes).
 */
export function sealEvent(type: string, data: unknown, metadata: Omit<HashableEvent['metadata'], 'hash'>): SealedEvent {
  if (data === undefined) throw new TypeError('an event needs data'); // canonicalJson of the event would drop the key
  const dataJson = canonicalJson(data);
  const metadataJson = canonicalJson(metadata);
  const hash = createHash('sha256')
    .update(`{"data":${dataJson},"metadata":${metadataJson},"type":${JSON.stringify(type)}}`)
    .digest('hex');
  const hashMember = `"hash":"${hash}"`;
  return {
    hash,
    data: dataJson,
    metadata: metadataJson === '{}' ? `{${hashMember}}` : `${metadataJson.slice(0, -1)},${hashMember}}`,
  };
}

export type ChainBreak =
  | { readonly revision: number; readonly problem: 'hash-mismatch' }
  | { readonly revision: number; readonly problem: 'previous-hash-mismatch' }
  | { readonly revision: number; readonly problem: 'revision-gap' };

/** Verifies one stream's events (in stored order); returns the first break, if any. */
export function verifyChain(
  events: readonly (HashableEvent & { readonly revision: number; readonly metadata: { readonly hash: string } })[],
): ChainBreak | undefined {
  let previous: string | null = null;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.revision !== i) return { revision: i, problem: 'revision-gap' };
    if (e.metadata.previousHash !== previous) return { revision: e.revision, problem: 'previous-hash-mismatch' };
    if (eventHash(e) !== e.metadata.hash) return { revision: e.revision, problem: 'hash-mismatch' };
    previous = e.metadata.hash;
  }
  return undefined;
}
