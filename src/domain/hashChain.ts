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
