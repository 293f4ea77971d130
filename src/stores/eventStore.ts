// The event store port: the log that is the only source of truth.
// Engines: sqlite/ (embedded default) and esdb/ (EventStoreDB). Both pass
// test/contract/eventStore.contract.ts.

/** 0-based revision of the last event a writer expects in the stream. */
export type ExpectedRevision = 'no_stream' | 'any' | number;

/**
 * A global, totally ordered position in the log. SQLite uses its sequence for
 * both parts; EventStoreDB has distinct commit and prepare positions.
 */
export interface Position {
  readonly commit: bigint;
  readonly prepare: bigint;
}

export interface ActorRef {
  readonly clientId: string;
  readonly subject: string;
}

/** Metadata recorded with every event (DESIGN.md §3). */
export interface EventMetadata {
  readonly actor: ActorRef;
  readonly organizationId: string;
  readonly requestId: string;
  /** SHA-256 of (organization, Idempotency-Key); null for writes without a key. */
  readonly idempotencyKeyHash: string | null;
  /** SHA-256 of method, path and canonical body; null for writes without a key. */
  readonly requestFingerprint: string | null;
  readonly occurredAt: string;
  /** Hash of the previous event of the stream, or null for the first. */
  readonly previousHash: string | null;
  /** Hash over the canonical encoding of type, data and the rest of this metadata. */
  readonly hash: string;
}

export interface NewEvent {
  readonly type: string;
  readonly data: unknown;
  readonly metadata: EventMetadata;
  /**
   * Optional: `data` and `metadata` already as JSON text (the hash chain's
   * canonical encoding, see sealEvent), which must parse to exactly `data`
   * and `metadata`. An engine that stores JSON text may store it as is
   * rather than encode the event again; others ignore it.
   */
  readonly json?: { readonly data: string; readonly metadata: string };
}

export interface RecordedEvent extends NewEvent {
  readonly streamId: string;
  readonly revision: number;
  readonly position: Position;
}

export interface AppendResult {
  /** Revision of the last event written. */
  readonly nextRevision: number;
  /** Position of the last event written. */
  readonly position: Position;
}

/** The stream's revision was not what the writer expected. */
export class StreamConflictError extends Error {
  override readonly name = 'StreamConflictError';
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    /** The stream's actual revision, or 'no_stream'. */
    readonly actual: number | 'no_stream',
  ) {
    super(`stream ${streamId}: expected revision ${String(expected)}, actual ${String(actual)}`);
  }
}

/** A store could not be reached or failed; the request may be retried. */
export class StoreUnavailableError extends Error {
  override readonly name: string = 'StoreUnavailableError';
}

/**
 * An append that was sent but got no answer (it timed out, or the connection
 * failed under it): it may or may not be in the log. Still a 503; retrying the
 * same request (same Idempotency-Key) is safe, it finds the write or makes it.
 */
export class AppendOutcomeUnknownError extends StoreUnavailableError {
  override readonly name: string = 'AppendOutcomeUnknownError';
}

/**
 * The store answered but refused the registry's credentials or permissions: a
 * configuration problem (ACL, user), not an outage. A 503 to clients all the
 * same; the message tells the operator what to grant.
 */
export class StoreAccessDeniedError extends StoreUnavailableError {
  override readonly name: string = 'StoreAccessDeniedError';
}

export interface ReadAllOptions {
  /** Exclusive lower bound; from the beginning when absent. */
  readonly after?: Position | undefined;
  readonly limit?: number;
}

export interface SubscribeOptions {
  readonly after?: Position | undefined;
  readonly signal: AbortSignal;
}

export interface EventStore {
  /** Appends atomically; resolves only once the events are durable. */
  append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult>;
  /** All events of one stream in revision order; [] when the stream does not exist. */
  readStream(streamId: string): Promise<RecordedEvent[]>;
  /** One page of the whole log (our streams only), in position order. */
  readAll(options: ReadAllOptions): Promise<RecordedEvent[]>;
  /**
   * Catch-up then live: yields batches of events after `after`, in order, with
   * no gaps or duplicates, until the signal aborts.
   */
  subscribe(options: SubscribeOptions): AsyncIterable<RecordedEvent[]>;
  /** The position of the newest event, or undefined for an empty log. */
  headPosition(): Promise<Position | undefined>;
  /** Throws StoreUnavailableError when the store cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const WEBHOOK_STREAM_PREFIX = 'webhook-';

export function webhookStreamName(webhookId: string): string {
  return `${WEBHOOK_STREAM_PREFIX}${webhookId}`;
}

const POSITION_DIGITS = 20;

/** A fixed-width text form that sorts like the position itself (for checkpoints and cursors). */
export function encodePosition(p: Position): string {
  return `${p.commit.toString().padStart(POSITION_DIGITS, '0')}/${p.prepare.toString().padStart(POSITION_DIGITS, '0')}`;
}

export function decodePosition(text: string): Position {
  const match = /^(\d{1,20})\/(\d{1,20})$/.exec(text);
  if (!match?.[1] || !match[2]) throw new Error(`malformed position "${text}"`);
  return { commit: BigInt(match[1]), prepare: BigInt(match[2]) };
}

export function comparePositions(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}
