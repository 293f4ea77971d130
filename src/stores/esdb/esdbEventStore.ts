// The distributed event store: EventStoreDB / KurrentDB through
// @eventstore/db-client 6.2 (gRPC). One stream per webhook (`webhook-<id>`);
// our data goes into the event's JSON data, our metadata into its JSON
// metadata. Streams never get $maxAge/$maxCount: the log is never truncated.
//
// Positions are EventStoreDB's own {commit, prepare} log positions. Reads of
// `$all` and subscriptions keep only our streams (prefix `webhook-`) and skip
// system events. Passes test/contract/eventStore.contract.ts.
//
// An optional namespace (EVENTSTORE_NAMESPACE, e.g. `t1f2e3d4-`) lets several
// registries share one server: it is prepended to every stream name written
// and read (`t1f2e3d4-webhook-<id>`), stripped from every name returned, and
// is part of the `$all` prefix filter. Callers only ever see `webhook-<id>`.
import {
  AccessDeniedError,
  ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  InvalidArgumentError,
  jsonEvent,
  MaxAppendSizeExceededError,
  NO_STREAM,
  RequiredMetadataPropertyMissingError,
  START,
  StreamDeletedError,
  StreamNotFoundError,
  streamNameFilter,
  WrongExpectedVersionError,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type AppendExpectedRevision,
  type CurrentRevision,
  type JSONType,
  type ReadPosition,
  type ResolvedEvent,
} from '@eventstore/db-client';
import {
  comparePositions,
  StoreUnavailableError,
  StreamConflictError,
  WEBHOOK_STREAM_PREFIX,
  type AppendResult,
  type EventMetadata,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type Position,
  type ReadAllOptions,
  type RecordedEvent,
  type SubscribeOptions,
} from '../eventStore.ts';

/** Settings of a connected store. */
export interface EsdbEngineOptions {
  /**
   * Prefix of every stream name on the server (EVENTSTORE_NAMESPACE). Default
   * none. Namespaces sharing a server must not be prefixes of one another.
   */
  readonly namespace?: string;
  /** gRPC deadline for a ping. Default 5 s. */
  readonly pingDeadlineMs?: number;
  /** Called when a subscription dropped and is about to resubscribe (for logs and metrics). */
  readonly onSubscriptionDropped?: (error: unknown, attempt: number, retryInMs: number) => void;
}

export interface EsdbEventStoreOptions extends EsdbEngineOptions {
  /** e.g. `esdb://eventstore:2113?tls=false` (EVENTSTORE_URL); `kurrentdb://` is accepted as an alias. */
  readonly connectionString: string;
  /** How long `open` waits for the server before giving up. Default 10 s. */
  readonly connectTimeoutMs?: number;
}

/** Default page size for readAll when the caller gives no limit. */
const DEFAULT_READ_ALL_LIMIT = 1000;
/**
 * Events read from the server per request while scanning `$all` (foreign
 * events are filtered out client-side). A scan that finds nothing of ours
 * doubles its chunk up to the maximum, so a long run of foreign events (other
 * namespaces on a shared server) costs a few requests, not thousands.
 */
const SCAN_CHUNK_MIN = 64;
const SCAN_CHUNK_MAX = 4096;
/** EVENTSTORE_NAMESPACE's syntax (also checked by src/config.ts). */
const NAMESPACE = /^[A-Za-z0-9_-]{0,64}$/;
/** Buffered subscription events before the gRPC stream is paused (backpressure). */
const SUBSCRIPTION_HIGH_WATER = 4096;
const RESUBSCRIBE_BASE_MS = 100;
const RESUBSCRIBE_MAX_MS = 10_000;
/** EventStoreDB reports "no position" on stream reads of old servers as the maximum u64. */
const NO_POSITION = 2n ** 64n - 1n;

/** A recorded event in one of our streams that we cannot read back. Never retried. */
export class CorruptEventError extends Error {
  override readonly name = 'CorruptEventError';
}

class SubscriptionEndedError extends Error {
  override readonly name = 'SubscriptionEndedError';
}

export class EsdbEventStore implements EventStore {
  private closed = false;
  /** Aborted on close, so running subscriptions end. */
  private readonly closing = new AbortController();
  private readonly namespace: string;
  /** Server-side prefix of our streams: namespace + `webhook-`. */
  private readonly prefix: string;

  constructor(
    private readonly client: EventStoreDBClient,
    private readonly options: EsdbEngineOptions = {},
  ) {
    this.namespace = options.namespace ?? '';
    if (!NAMESPACE.test(this.namespace)) {
      throw new TypeError('the EventStoreDB namespace must be 0 to 64 characters of A-Z, a-z, 0-9, _ and -');
    }
    this.prefix = `${this.namespace}${WEBHOOK_STREAM_PREFIX}`;
  }

  /** The server's name of one of our streams. */
  private serverName(streamId: string): string {
    return `${this.namespace}${streamId}`;
  }

  async append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    this.assertOpen();
    if (events.length === 0) throw new Error('append needs at least one event');
    const data = events.map((e) =>
      jsonEvent({ type: e.type, data: asJson(e.data, 'data'), metadata: asJson(e.metadata, 'metadata') }),
    );
    let result;
    try {
      result = await this.client.appendToStream(this.serverName(streamId), data, {
        expectedRevision: toExpectedRevision(expected),
      });
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) {
        throw new StreamConflictError(streamId, expected, toActualRevision(error.actualVersion));
      }
      throw mapError(error, `append to ${streamId}`);
    }
    const nextRevision = Number(result.nextExpectedRevision);
    // A single-event append reports that event's position. For several events
    // the reported position is not guaranteed to be the last one's, so read it back.
    let position: Position | undefined = result.position;
    if (events.length > 1 || position === undefined) {
      position = (await this.readEventPosition(streamId, result.nextExpectedRevision)) ?? position;
    }
    if (position === undefined) {
      throw new CorruptEventError(`EventStoreDB returned no position for the append to ${streamId}`);
    }
    return { nextRevision, position: { commit: position.commit, prepare: position.prepare } };
  }

  private async readEventPosition(streamId: string, revision: bigint): Promise<Position | undefined> {
    try {
      for await (const resolved of this.client.readStream(this.serverName(streamId), { fromRevision: revision, maxCount: 1 })) {
        return usablePosition(resolved.event?.position);
      }
      return undefined;
    } catch (error) {
      throw mapError(error, `read ${streamId}`);
    }
  }

  async readStream(streamId: string): Promise<RecordedEvent[]> {
    this.assertOpen();
    const out: RecordedEvent[] = [];
    try {
      for await (const resolved of this.client.readStream(this.serverName(streamId), {
        direction: FORWARDS,
        fromRevision: START,
        resolveLinkTos: false,
      })) {
        const recorded = this.toRecorded(resolved, true);
        if (recorded) out.push(recorded);
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return [];
      throw mapError(error, `read ${streamId}`);
    }
    return out;
  }

  async readAll(options: ReadAllOptions): Promise<RecordedEvent[]> {
    this.assertOpen();
    const limit = options.limit ?? DEFAULT_READ_ALL_LIMIT;
    const out: RecordedEvent[] = [];
    if (limit <= 0) return out;
    // The server reads `$all` from a position inclusively and cannot filter a
    // plain read (6.x client), so scan in chunks and filter here.
    let from: ReadPosition = options.after ?? START;
    let exclusiveAfter = options.after;
    let minChunk = SCAN_CHUNK_MIN;
    for (;;) {
      const chunk = clamp(limit - out.length + 1, minChunk, SCAN_CHUNK_MAX);
      const read = this.client.readAll({ direction: FORWARDS, fromPosition: from, maxCount: chunk, resolveLinkTos: false });
      let seen = 0;
      let lastSeen: Position | undefined;
      let full = false;
      let exhausted = false;
      try {
        for await (const resolved of read) {
          seen += 1;
          const position = resolved.event?.position ?? resolved.link?.position;
          if (position === undefined) continue;
          lastSeen = position;
          if (exclusiveAfter !== undefined && comparePositions(position, exclusiveAfter) <= 0) continue;
          const recorded = this.toRecorded(resolved, false);
          if (!recorded) continue;
          out.push(recorded);
          if (out.length >= limit) {
            full = true;
            break;
          }
        }
        exhausted = !full;
      } catch (error) {
        throw mapError(error, 'read $all');
      } finally {
        if (!exhausted) await read.cancel().catch(() => undefined);
      }
      if (full || seen < chunk || lastSeen === undefined) return out;
      from = lastSeen;
      exclusiveAfter = lastSeen;
      minChunk = Math.min(SCAN_CHUNK_MAX, minChunk * 2);
    }
  }

  async headPosition(): Promise<Position | undefined> {
    this.assertOpen();
    let from: ReadPosition = END;
    let exclusiveBefore: Position | undefined;
    let chunk = SCAN_CHUNK_MIN;
    for (;;) {
      const read = this.client.readAll({ direction: BACKWARDS, fromPosition: from, maxCount: chunk });
      let seen = 0;
      let lastSeen: Position | undefined;
      let found: Position | undefined;
      let exhausted = false;
      try {
        for await (const resolved of read) {
          seen += 1;
          const position = resolved.event?.position ?? resolved.link?.position;
          if (position === undefined) continue;
          lastSeen = position;
          if (exclusiveBefore !== undefined && comparePositions(position, exclusiveBefore) >= 0) continue;
          if (this.isOurs(resolved.event?.streamId, resolved.event?.type)) {
            found = position;
            break;
          }
        }
        exhausted = found === undefined;
      } catch (error) {
        throw mapError(error, 'read $all');
      } finally {
        if (!exhausted) await read.cancel().catch(() => undefined);
      }
      if (found) return { commit: found.commit, prepare: found.prepare };
      if (seen < chunk || lastSeen === undefined) return undefined;
      from = lastSeen;
      exclusiveBefore = lastSeen;
      chunk = Math.min(SCAN_CHUNK_MAX, chunk * 2);
    }
  }

  async *subscribe(options: SubscribeOptions): AsyncIterable<RecordedEvent[]> {
    const signal = AbortSignal.any([options.signal, this.closing.signal]);
    let last = options.after;
    let failures = 0;
    while (!signal.aborted) {
      // Subscriptions start after (exclusive) the given position. Each event
      // is also checked against the last one delivered, so a resubscription
      // can neither skip nor repeat anything.
      const subscription = this.client.subscribeToAll({
        fromPosition: last ?? START,
        resolveLinkTos: false,
        filter: streamNameFilter({ prefixes: [this.prefix] }),
      });
      const inbox = new Inbox(subscription, signal);
      try {
        for (;;) {
          const received = await inbox.take();
          if (received === null) return;
          const batch: RecordedEvent[] = [];
          for (const resolved of received) {
            const recorded = this.toRecorded(resolved, false);
            if (!recorded) continue;
            if (last !== undefined && comparePositions(recorded.position, last) <= 0) continue;
            batch.push(recorded);
            last = recorded.position;
          }
          if (batch.length > 0) {
            failures = 0;
            yield batch;
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        if (!isTransient(error)) throw mapError(error, 'subscribe to $all');
        failures += 1;
        const delay = backoff(failures);
        this.options.onSubscriptionDropped?.(error, failures, delay);
        await sleep(delay, signal);
      } finally {
        inbox.dispose();
        await subscription.unsubscribe().catch(() => undefined);
      }
    }
  }

  async ping(): Promise<void> {
    this.assertOpen();
    try {
      const read = this.client.readAll({
        direction: BACKWARDS,
        fromPosition: END,
        maxCount: 1,
        deadline: this.options.pingDeadlineMs ?? 5_000,
      });
      for await (const _ of read) {
        // One event (or none, for an empty database) proves the server answers.
      }
    } catch (error) {
      throw mapError(error, 'ping', true);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    await this.client.dispose();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('the EventStoreDB event store is closed');
  }

  /** One of our streams (in this namespace), and not a system event. */
  private isOurs(streamName: string | undefined, type: string | undefined): boolean {
    return streamName !== undefined && type !== undefined && streamName.startsWith(this.prefix) && !type.startsWith('$');
  }

  /**
   * Our view of a resolved event, with the namespace stripped from its stream
   * name, or undefined for anything that is not ours (system events, other
   * streams and namespaces, unresolved links).
   */
  private toRecorded(resolved: ResolvedEvent | AllStreamResolvedEvent, fromStreamRead: boolean): RecordedEvent | undefined {
    const event = resolved.event;
    if (!event || !this.isOurs(event.streamId, event.type)) return undefined;
    const streamId = event.streamId.slice(this.namespace.length);
    const position = usablePosition(event.position);
    if (position === undefined) {
      throw new CorruptEventError(
        fromStreamRead
          ? `EventStoreDB returned no log position for ${event.streamId}@${event.revision}; EventStoreDB/KurrentDB 22.6 or later is required`
          : `event ${event.streamId}@${event.revision} has no log position`,
      );
    }
    if (!event.isJson) throw new CorruptEventError(`event ${event.streamId}@${event.revision} is not JSON`);
    const metadata = event.metadata;
    if (typeof metadata !== 'object' || metadata === null || metadata instanceof Uint8Array || Array.isArray(metadata)) {
      throw new CorruptEventError(`event ${event.streamId}@${event.revision} has no JSON metadata`);
    }
    return {
      streamId,
      revision: Number(event.revision),
      position: { commit: position.commit, prepare: position.prepare },
      type: event.type,
      data: event.data,
      metadata: metadata as unknown as EventMetadata,
    };
  }
}

/**
 * Connects and pings, so a wrong or unreachable server fails at start with a
 * clear StoreUnavailableError instead of at the first request.
 */
export async function openEsdbEventStore(options: EsdbEventStoreOptions): Promise<EsdbEventStore> {
  if (options.namespace !== undefined && !NAMESPACE.test(options.namespace)) {
    throw new TypeError('EVENTSTORE_NAMESPACE must be 0 to 64 characters of A-Z, a-z, 0-9, _ and -');
  }
  let client: EventStoreDBClient;
  try {
    client = EventStoreDBClient.connectionString(normalizeScheme(options.connectionString));
  } catch (error) {
    // The parser's message may quote the string, which can hold credentials.
    throw new Error(`EVENTSTORE_URL is not a valid EventStoreDB connection string (${redact(options.connectionString)})`, {
      cause: error,
    });
  }
  const store = new EsdbEventStore(client, options);
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  try {
    await withTimeout(store.ping(), timeoutMs);
  } catch (error) {
    await store.close().catch(() => undefined);
    const reason = error instanceof Error ? error.message : String(error);
    throw new StoreUnavailableError(
      `EventStoreDB at ${redact(options.connectionString)} cannot be reached (waited up to ${timeoutMs} ms): ${reason}`,
      { cause: error },
    );
  }
  return store;
}

// ---- conversion ---------------------------------------------------------------------

function toExpectedRevision(expected: ExpectedRevision): AppendExpectedRevision {
  if (expected === 'no_stream') return NO_STREAM;
  if (expected === 'any') return ANY;
  return BigInt(expected);
}

function toActualRevision(actual: CurrentRevision): number | 'no_stream' {
  if (actual === 'no_stream' || actual < 0n) return 'no_stream';
  return Number(actual);
}

function asJson(value: unknown, what: string): JSONType {
  if (typeof value === 'string' || (typeof value === 'object' && value !== null)) return value as JSONType;
  throw new TypeError(`event ${what} must be a JSON object, array or string`);
}

function usablePosition(position: Position | undefined): Position | undefined {
  if (position === undefined || position.commit === NO_POSITION || position.commit < 0n) return undefined;
  return position;
}

// ---- errors --------------------------------------------------------------------------

/** Errors that say something about the request or the data, not about reachability. */
function isPermanent(error: unknown): boolean {
  return (
    error instanceof AccessDeniedError ||
    error instanceof InvalidArgumentError ||
    error instanceof MaxAppendSizeExceededError ||
    error instanceof StreamDeletedError ||
    error instanceof RequiredMetadataPropertyMissingError ||
    error instanceof CorruptEventError ||
    error instanceof StreamConflictError ||
    error instanceof TypeError ||
    error instanceof RangeError
  );
}

function isTransient(error: unknown): boolean {
  return error instanceof SubscriptionEndedError || !isPermanent(error);
}

/** Unavailable, timed-out, cancelled, not-leader, unknown and transport errors become StoreUnavailableError. */
function mapError(error: unknown, operation: string, always = false): unknown {
  if (error instanceof StoreUnavailableError) return error;
  if (!always && isPermanent(error)) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(`EventStoreDB ${operation} failed: ${reason}`, { cause: error });
}

/** The 6.x client only knows `esdb://` and `esdb+discover://`; KurrentDB's `kurrentdb://` forms are the same syntax. */
function normalizeScheme(connectionString: string): string {
  return connectionString.replace(/^kurrentdb(\+discover)?:\/\//i, (_, discover: string | undefined) =>
    discover ? 'esdb+discover://' : 'esdb://',
  );
}

function redact(connectionString: string): string {
  return connectionString.replace(/\/\/[^@/?#]*@/, '//***@');
}

// ---- subscription plumbing ---------------------------------------------------------

/** Buffers a subscription's events so they can be handed out in batches, with backpressure. */
class Inbox {
  private items: AllStreamResolvedEvent[] = [];
  private failure: { error: unknown } | undefined;
  private ended = false;
  private wake: (() => void) | undefined;

  private readonly onData = (event: AllStreamResolvedEvent): void => {
    this.items.push(event);
    if (this.items.length >= SUBSCRIPTION_HIGH_WATER) this.subscription.pause();
    this.notify();
  };
  private readonly onError = (error: Error): void => {
    this.failure ??= { error };
    this.notify();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };
  private readonly notify = (): void => {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  };

  constructor(
    private readonly subscription: AllStreamSubscription,
    private readonly signal: AbortSignal,
  ) {
    subscription.on('data', this.onData);
    subscription.on('error', this.onError);
    subscription.on('end', this.onEnd);
    subscription.on('close', this.onEnd);
    signal.addEventListener('abort', this.notify);
  }

  /** Everything buffered; waits when empty. Null once aborted; throws when the subscription dropped. */
  async take(): Promise<AllStreamResolvedEvent[] | null> {
    for (;;) {
      if (this.signal.aborted) return null;
      if (this.items.length > 0) {
        const out = this.items;
        this.items = [];
        if (this.subscription.isPaused()) this.subscription.resume();
        return out;
      }
      if (this.failure) throw this.failure.error;
      if (this.ended) throw new SubscriptionEndedError('the server ended the subscription');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  dispose(): void {
    this.subscription.off('data', this.onData);
    this.subscription.off('end', this.onEnd);
    this.subscription.off('close', this.onEnd);
    // Keep an error listener: a late error must not become an uncaught exception.
    this.subscription.off('error', this.onError);
    this.subscription.on('error', () => undefined);
    this.signal.removeEventListener('abort', this.notify);
    this.notify();
  }
}

function backoff(attempt: number): number {
  const ceiling = Math.min(RESUBSCRIBE_MAX_MS, RESUBSCRIBE_BASE_MS * 2 ** Math.min(attempt - 1, 20));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
