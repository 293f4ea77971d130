// Dispatch answers kept as the JSON body the route sends, per (partner,
// event type), for as long as the read model says nothing changed.
//
// Profiled at 100 000 registrations (bench, figure 3), an HTTP lookup spent
// ~110 µs reading its ~12 candidate rows from SQLite and ~55 µs producing
// their secrets, then serialized them, against ~25 µs for a bare fastify GET
// of the same size. A dispatcher asks the same few questions for every
// platform event, and registrations change rarely next to that, so the
// answer is kept: valid while ReadModel.dispatchVersion() stays the number it
// was computed under (any batch applied, any other writer's commit, any table
// switch moves it, and then every kept answer is dropped at once) and until
// the first previous secret in it reaches the end of its grace period (which
// changes the answer without an event).
//
// The texts hold decrypted signing secrets, like the secret cache does: it
// lives only in this process's memory, bounded by `maxBytes` (oldest answers
// out first). Engines without dispatchVersion (PostgreSQL and MongoDB, which
// other processes write with no signal here) answer every lookup afresh.
import type { DispatchAnswerLookup, DispatchTarget } from './dispatchTargets.ts';

/** The 200 body of a dispatch lookup, as the JSON text to send. */
export type DispatchAnswerText = (eventType: string, partnerId: string) => Promise<string>;

export interface DispatchAnswerCacheOptions {
  readonly answer: DispatchAnswerLookup;
  /** ReadModel.dispatchVersion. */
  readonly version: () => Promise<number>;
  /** The response body's text for these targets (the route's compiled serializer). */
  readonly serialize: (targets: DispatchTarget[]) => string;
  readonly now: () => Date;
  /** Bound on the kept bodies, in bytes (the text is ASCII: a character is a byte). */
  readonly maxBytes: number;
  /** Told of every lookup: answered from the cache or not. */
  readonly onLookup?: (hit: boolean) => void;
}

/**
 * The text the serializer made for the response is what is kept: keeping
 * a copy as bytes outside the heap (tried: a Buffer per answer) allocated
 * once more per read, and under writes, which drop every kept answer within
 * milliseconds, that was pure churn.
 */
interface Kept {
  readonly body: string;
  readonly changesAt: number;
}

/** Map overhead and the entry object, per kept answer, counted against maxBytes with the body. */
const ENTRY_OVERHEAD = 96;

export function createDispatchAnswerCache(options: DispatchAnswerCacheOptions): DispatchAnswerText {
  const { answer, version, serialize, now, maxBytes, onLookup } = options;
  let keptUnder = -1;
  // Insertion order is age: the oldest answers go first when over the bound.
  const kept = new Map<string, Kept>();
  let bytes = 0;

  const forget = (key: string, entry: Kept): void => {
    kept.delete(key);
    bytes -= entry.body.length + key.length + ENTRY_OVERHEAD;
  };

  return async (eventType, partnerId) => {
    const current = await version();
    if (current !== keptUnder) {
      kept.clear();
      bytes = 0;
      keptUnder = current;
    }
    const key = `${partnerId.toLowerCase()} ${eventType}`;
    const entry = kept.get(key);
    if (entry !== undefined) {
      if (now().getTime() < entry.changesAt) {
        onLookup?.(true);
        return entry.body;
      }
      forget(key, entry);
    }
    onLookup?.(false);
    const { targets, changesAt } = await answer(eventType, partnerId);
    const body = serialize(targets);
    // Kept only if nothing changed since `current` was read (another lookup may have seen a newer version meanwhile);
    // a change after that moves the version, and the next lookup drops it.
    const size = body.length + key.length + ENTRY_OVERHEAD;
    if (keptUnder === current && size <= maxBytes) {
      const previous = kept.get(key);
      if (previous !== undefined) forget(key, previous);
      kept.set(key, { body, changesAt });
      bytes += size;
      for (const [oldKey, old] of kept) {
        if (bytes <= maxBytes) break;
        forget(oldKey, old);
      }
    }
    return body;
  };
}
