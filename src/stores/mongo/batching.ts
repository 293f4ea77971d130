// How many events one MongoDB transaction may carry. A transaction is one
// oplog entry of at most 16 MB and must finish within the server's
// transactionLifetimeLimitSeconds (60 s by default), so a rebuild page of
// 10 000 events is applied as several transactions, each bounded by a count
// and by a byte budget, each atomic with its step of the checkpoint.
import type { RecordedEvent } from '../eventStore.ts';

export interface TransactionLimits {
  /** At most this many events per transaction. */
  readonly maxEvents: number;
  /**
   * At most this many bytes of events (their JSON) per transaction. The
   * documents a transaction writes (one view per touched webhook, one row per
   * key, the checkpoint) are of the same order as the events that produce
   * them, so a budget well below 16 MB keeps the oplog entry below it.
   */
  readonly maxBytes: number;
}

export const DEFAULT_TRANSACTION_LIMITS: TransactionLimits = Object.freeze({
  maxEvents: 1_000,
  maxBytes: 4 * 1024 * 1024,
});

/** The size an event adds to a transaction: its JSON (stream, type, data, metadata). */
export function eventBytes(event: RecordedEvent): number {
  return Buffer.byteLength(
    JSON.stringify({ s: event.streamId, t: event.type, d: event.data, m: event.metadata }),
    'utf8',
  );
}

/**
 * Splits `events` in order into consecutive chunks of at most `maxEvents`
 * events and `maxBytes` bytes. An event larger than the budget alone still
 * gets a chunk of its own (it cannot be split), so no chunk is ever empty.
 */
export function transactionBatches<T>(
  events: readonly T[],
  limits: TransactionLimits,
  sizeOf: (event: T) => number,
): T[][] {
  if (!(limits.maxEvents >= 1) || !(limits.maxBytes >= 1)) {
    throw new RangeError('transaction limits must be at least one event and one byte');
  }
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const event of events) {
    const size = sizeOf(event);
    if (current.length > 0 && (current.length >= limits.maxEvents || bytes + size > limits.maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(event);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
