// The distributed event store: EventStoreDB / KurrentDB through
// @eventstore/db-client 6.2 (gRPC). One stream per webhook (`webhook-<id>`);
// our data goes into the event's JSON data, our metadata into its JSON
// metadata. Streams never get $maxAge/$maxCount: the log is never truncated.
//
// Positions are EventStoreDB's own {commit, prepare} log positions. Reads of
// `$all` and subscriptions keep only our streams (prefix `webhook-`) and skip
// system events. Passes test/contract/eventStore.contract.ts.
//
// Every call is bounded in time (EVENTSTORE_TIMEOUT_MS; see connection.ts for
// how, and why the client cannot do it alone) and fails with
// StoreUnavailableError; an append that was sent but not answered fails with
// AppendOutcomeUnknownError. Event ids are derived from the events' hashes
// (eventIds.ts), so sending the same append again is recognised by the
// server's idempotent append instead of writing twice.
//
// An optional namespace (EVENTSTORE_NAMESPACE, e.g. `t1f2e3d4-`) lets several
// registries share one server: it is prepended to every stream name written
// and read (`t1f2e3d4-webhook-<id>`), stripped from every name returned, and
// is part of the `$all` prefix filter. Callers only ever see `webhook-<id>`.
// A namespace may not contain `webhook-`: that is what keeps every
// registry's streams out of every other's prefix (see NAMESPACE_RULE).
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
  type AppendResult as EsdbAppendResult,
  type CurrentRevision,
  type JSONType,
  type ReadPosition,
  type ResolvedEvent,
} from '@eventstore/db-client';
import {
  AppendOutcomeUnknownError,
  comparePositions,
  StoreAccessDeniedError,
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
import {
  consume,
  EsdbConnections,
  noAnswer,
  withDeadline,
  type CancellableRead,
  type ClientFactory,
  type EsdbConnection,
} from './connection.ts';
import { esdbEventId } from './eventIds.ts';

/** Settings of a connected store. */
export interface EsdbEngineOptions {
  /**
   * Prefix of every stream name on the server (EVENTSTORE_NAMESPACE). Default
   * none. It must not contain `webhook-` (NAMESPACE_RULE).
   */
  readonly namespace?: string;
  /**
   * Longest wait for one call to the server: an append, one page of a read,
   * the confirmation of a subscription (EVENTSTORE_TIMEOUT_MS). Default 5 s.
   */
  readonly timeoutMs?: number;
  /** Longest wait for a ping. Default the smaller of timeoutMs and 2 s (the readiness probe's own limit). */
  readonly pingDeadlineMs?: number;
  /** Called when a subscription dropped and is about to resubscribe (for logs and metrics). */
  readonly onSubscriptionDropped?: (error: unknown, attempt: number, retryInMs: number) => void;
}

export interface EsdbEventStoreOptions extends EsdbEngineOptions {
  /** e.g. `esdb://eventstore:2113?tls=false` (EVENTSTORE_URL); `kurrentdb://` is accepted as an alias. */
  readonly connectionString: string;
  /** How long `open` waits for the server's first answer. Default timeoutMs. */
  readonly connectTimeoutMs?: number;
  /**
   * Makes a client (default: from connectionString); called again whenever an
   * unanswering connection is replaced. Tests wrap the real client here to
   * inject faults.
   */
  readonly createClient?: ClientFactory;
  /**
   * When given, a server that cannot be reached at open is reported here and
   * the store opens anyway (every call then fails with StoreUnavailableError
   * until the server answers; the server's readiness probe reports it).
   * Without it open fails. A server that refuses access always fails open.
   */
  readonly onUnreachable?: (error: StoreUnavailableError) => void;
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
export const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_PING_DEADLINE_MS = 2_000;
/**
 * EVENTSTORE_NAMESPACE's syntax (also checked by src/config.ts). Without
 * `webhook-` inside a namespace, no registry's prefix (namespace + `webhook-`)
 * can be a prefix of another registry's stream names: `webhook-` has no
 * proper suffix that is also its prefix, so one prefix can only extend
 * another by containing `webhook-` itself. An un-namespaced registry's
 * `webhook-` therefore never matches a namespace's `x-webhook-…` streams.
 */
export const NAMESPACE_RULE = 'must be 0 to 64 characters of A-Z, a-z, 0-9, _ and -, and must not contain "webhook-"';
const NAMESPACE = /^[A-Za-z0-9_-]{0,64}$/;
export function isValidNamespace(namespace: string): boolean {
  return NAMESPACE.test(namespace) && !namespace.includes(WEBHOOK_STREAM_PREFIX);
}
/** Buffered subscription events before the gRPC stream is paused (backpressure). */
const SUBSCRIPTION_HIGH_WATER = 4096;
const RESUBSCRIBE_BASE_MS = 100;
const RESUBSCRIBE_MAX_MS = 10_000;
/** EventStoreDB reports "no position" on stream reads of old servers as the maximum u64. */
const NO_POSITION = 2n ** 64n - 1n;
/**
 * Returned for an append that landed but whose position could not be learned
 * (neither reported nor readable back): the write is not reported as failed;
 * only read-your-writes for it is lost (a list may not show it yet).
 */
const UNKNOWN_POSITION: Position = Object.freeze({ commit: 0n, prepare: 0n });
/** What a user needs on a secured server (docs/scaling-out.md, "Access control"). */
const ACL_HINT =
  "the registry's EventStoreDB user needs read on $all and read and write on its webhook streams (docs/scaling-out.md, Access control)";

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
  private readonly timeoutMs: number;
  private readonly pingDeadlineMs: number;
  private readonly connections: EsdbConnections;

  /**
   * @param client a client, or a factory of clients (then a connection that
   *   stops answering is replaced by a fresh client).
   */
  constructor(
    client: EventStoreDBClient | ClientFactory,
    private readonly options: EsdbEngineOptions = {},
  ) {
    this.namespace = options.namespace ?? '';
    if (!isValidNamespace(this.namespace)) throw new TypeError(`the EventStoreDB namespace ${NAMESPACE_RULE}`);
    this.prefix = `${this.namespace}${WEBHOOK_STREAM_PREFIX}`;
    this.timeoutMs = positive(options.timeoutMs, DEFAULT_TIMEOUT_MS, 'timeoutMs');
    this.pingDeadlineMs = positive(options.pingDeadlineMs, Math.min(this.timeoutMs, DEFAULT_PING_DEADLINE_MS), 'pingDeadlineMs');
    const factory = typeof client === 'function' ? client : undefined;
    this.connections = new EsdbConnections(factory, factory ? factory() : (client as EventStoreDBClient), this.timeoutMs);
  }

  /** The server's name of one of our streams. */
  private serverName(streamId: string): string {
    return `${this.namespace}${streamId}`;
  }

  async append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    this.assertOpen();
    if (events.length === 0) throw new Error('append needs at least one event');
    const data = events.map((e) =>
      jsonEvent({ id: esdbEventId(e), type: e.type, data: asJson(e.data, 'data'), metadata: asJson(e.metadata, 'metadata') }),
    );
    const connection = this.connections.get();
    const started = Date.now();
    // Not sent yet: a failure here leaves nothing behind, so it is a plain StoreUnavailableError.
    try {
      await connection.serverFeatures(this.timeoutMs);
    } catch (error) {
      this.connections.unanswered(connection);
      throw mapError(error, `append to ${streamId} (not sent)`, true);
    }
    const remaining = this.timeoutMs - (Date.now() - started);
    if (remaining <= 0) throw noAnswer(`append to ${streamId} (not sent)`, this.timeoutMs);
    let result: EsdbAppendResult;
    try {
      result = await withDeadline(
        connection.client.appendToStream(this.serverName(streamId), data, {
          expectedRevision: toExpectedRevision(expected),
          deadline: remaining,
        }),
        remaining,
        () => noAnswer(`append to ${streamId}`, this.timeoutMs),
      );
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) {
        this.connections.answered(connection);
        throw new StreamConflictError(streamId, expected, toActualRevision(error.actualVersion));
      }
      if (isPermanent(error)) throw mapError(error, `append to ${streamId}`);
      this.connections.unanswered(connection);
      const reason = error instanceof Error ? error.message : String(error);
      throw new AppendOutcomeUnknownError(
        `EventStoreDB append to ${streamId} got no answer, so it may or may not have been written (retrying the same request is safe): ${reason}`,
        { cause: error },
      );
    }
    this.connections.answered(connection);
    return { nextRevision: Number(result.nextExpectedRevision), position: await this.appendPosition(streamId, result, events.length) };
  }

  /**
   * The position of the last event an append wrote. A single-event append
   * reports it; for several events the reported position is not guaranteed
   * to be the last one's, so it is read back. The write has landed: if the
   * read-back fails, the reported position (or none) is returned instead of
   * failing it.
   */
  private async appendPosition(streamId: string, result: EsdbAppendResult, count: number): Promise<Position> {
    const reported = usablePosition(result.position);
    if (count === 1 && reported) return copyPosition(reported);
    let readBack: Position | undefined;
    try {
      readBack = await this.readEventPosition(streamId, result.nextExpectedRevision);
    } catch {
      readBack = undefined;
    }
    return copyPosition(readBack ?? reported ?? UNKNOWN_POSITION);
  }

  private async readEventPosition(streamId: string, revision: bigint): Promise<Position | undefined> {
    let found: Position | undefined;
    await this.read(
      `read ${streamId}`,
      (client) => client.readStream(this.serverName(streamId), { fromRevision: revision, maxCount: 1 }),
      (resolved: ResolvedEvent) => {
        found = usablePosition(resolved.event?.position);
        return false;
      },
    );
    return found;
  }

  async readStream(streamId: string): Promise<RecordedEvent[]> {
    this.assertOpen();
    const out: RecordedEvent[] = [];
    try {
      await this.read(
        `read ${streamId}`,
        (client) => client.readStream(this.serverName(streamId), { direction: FORWARDS, fromRevision: START, resolveLinkTos: false }),
        (resolved: ResolvedEvent) => {
          const recorded = this.toRecorded(resolved, true);
          if (recorded) out.push(recorded);
          return true;
        },
      );
    } catch (error) {
      if (error instanceof StreamNotFoundError) return [];
      throw error;
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
      let seen = 0;
      let lastSeen: Position | undefined;
      let full = false;
      await this.read(
        'read $all',
        (client) => client.readAll({ direction: FORWARDS, fromPosition: from, maxCount: chunk, resolveLinkTos: false }),
        (resolved: AllStreamResolvedEvent) => {
          seen += 1;
          const position = resolved.event?.position ?? resolved.link?.position;
          if (position === undefined) return true;
          lastSeen = position;
          if (exclusiveAfter !== undefined && comparePositions(position, exclusiveAfter) <= 0) return true;
          const recorded = this.toRecorded(resolved, false);
          if (!recorded) return true;
          out.push(recorded);
          full = out.length >= limit;
          return !full;
        },
      );
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
      let seen = 0;
      let lastSeen: Position | undefined;
      let found: Position | undefined;
      await this.read(
        'read $all',
        (client) => client.readAll({ direction: BACKWARDS, fromPosition: from, maxCount: chunk }),
        (resolved: AllStreamResolvedEvent) => {
          seen += 1;
          const position = resolved.event?.position ?? resolved.link?.position;
          if (position === undefined) return true;
          lastSeen = position;
          if (exclusiveBefore !== undefined && comparePositions(position, exclusiveBefore) >= 0) return true;
          if (!this.isOurs(resolved.event?.streamId, resolved.event?.type)) return true;
          found = position;
          return false;
        },
      );
      if (found) return copyPosition(found);
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
      let subscription: AllStreamSubscription;
      try {
        subscription = this.connections.get().client.subscribeToAll({
          fromPosition: last ?? START,
          resolveLinkTos: false,
          filter: streamNameFilter({ prefixes: [this.prefix] }),
        });
      } catch (error) {
        throw mapError(error, 'subscribe to $all');
      }
      const inbox = new Inbox(subscription, signal);
      let confirmed = false;
      try {
        // A subscription the server does not confirm in time failed: the
        // caller hears of it (and resumes from its checkpoint) instead of
        // waiting forever. Only a confirmed subscription that drops is
        // resubscribed here.
        if (!(await inbox.confirmation(this.timeoutMs))) return;
        confirmed = true;
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
        if (!confirmed || !isTransient(error)) throw mapError(error, 'subscribe to $all', !confirmed);
        failures += 1;
        const delay = backoff(failures);
        this.options.onSubscriptionDropped?.(error, failures, delay);
        await sleep(delay, signal);
      } finally {
        inbox.dispose();
        subscription.unsubscribe().catch(() => undefined);
      }
    }
  }

  async ping(): Promise<void> {
    this.assertOpen();
    await this.pingWithin(this.pingDeadlineMs);
  }

  /** Reads the newest event of `$all` (or learns it is empty): proof that the server answers. */
  async pingWithin(ms: number): Promise<void> {
    try {
      await this.read(
        'ping',
        (client) => client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 }),
        () => true,
        ms,
      );
    } catch (error) {
      throw mapError(error, 'ping', true);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    await this.connections.close();
  }

  /** One bounded read on the current connection; errors mapped (StreamNotFoundError passes through). */
  private async read<T>(
    what: string,
    open: (client: EventStoreDBClient) => CancellableRead<T>,
    take: (item: T) => boolean,
    ms = this.timeoutMs,
  ): Promise<void> {
    const connection: EsdbConnection = this.connections.get();
    try {
      await consume(connection, open(connection.client), take, ms, what);
    } catch (error) {
      if (error instanceof StreamNotFoundError) throw error;
      throw mapError(error, what);
    }
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
      position: copyPosition(position),
      type: event.type,
      data: event.data,
      metadata: metadata as unknown as EventMetadata,
    };
  }
}

/**
 * Connects and pings, so a wrong or unreachable server fails at start with a
 * clear error instead of at the first request: StoreAccessDeniedError when the
 * server refuses the user, StoreUnavailableError when it cannot be reached
 * (unless `onUnreachable` is given: then the store opens anyway).
 */
export async function openEsdbEventStore(options: EsdbEventStoreOptions): Promise<EsdbEventStore> {
  if (options.namespace !== undefined && !isValidNamespace(options.namespace)) {
    throw new TypeError(`EVENTSTORE_NAMESPACE ${NAMESPACE_RULE}`);
  }
  const connectionString = normalizeScheme(options.connectionString);
  let factory: ClientFactory;
  try {
    if (options.createClient) factory = options.createClient;
    else {
      // Parsed here, so a bad string fails with our own message; the first client is the one made now.
      let first: EventStoreDBClient | undefined = EventStoreDBClient.connectionString(connectionString);
      factory = () => {
        const client = first ?? EventStoreDBClient.connectionString(connectionString);
        first = undefined;
        return client;
      };
    }
  } catch (error) {
    // The parser's message may quote the string, which can hold credentials.
    throw new Error(`EVENTSTORE_URL is not a valid EventStoreDB connection string (${redact(options.connectionString)})`, {
      cause: error,
    });
  }
  const store = new EsdbEventStore(factory, options);
  const timeoutMs = options.connectTimeoutMs ?? options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  try {
    await store.pingWithin(timeoutMs);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof StoreAccessDeniedError) {
      await store.close().catch(() => undefined);
      throw new StoreAccessDeniedError(`EventStoreDB at ${redact(options.connectionString)} refused access: ${ACL_HINT} (${reason})`, {
        cause: error,
      });
    }
    const unreachable = new StoreUnavailableError(
      `EventStoreDB at ${redact(options.connectionString)} cannot be reached (waited up to ${timeoutMs} ms): ${reason}`,
      { cause: error },
    );
    if (options.onUnreachable) {
      options.onUnreachable(unreachable);
      return store;
    }
    await store.close().catch(() => undefined);
    throw unreachable;
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

function copyPosition(position: Position): Position {
  return { commit: position.commit, prepare: position.prepare };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number of milliseconds`);
  return value;
}

// ---- errors --------------------------------------------------------------------------

/** Errors that say something about the request or the data, not about reachability. */
function isPermanent(error: unknown): boolean {
  return (
    error instanceof AccessDeniedError ||
    error instanceof StoreAccessDeniedError ||
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

/**
 * Access denied (or unauthenticated) becomes StoreAccessDeniedError, naming
 * what to grant; unavailable, timed-out, cancelled, not-leader, unknown and
 * transport errors become StoreUnavailableError; with `always`, so does
 * everything else that is not access.
 */
function mapError(error: unknown, operation: string, always = false): unknown {
  if (error instanceof StoreUnavailableError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  if (error instanceof AccessDeniedError) {
    return new StoreAccessDeniedError(`EventStoreDB refused ${operation}: access denied; ${ACL_HINT} (${reason})`, {
      cause: error,
    });
  }
  if (!always && isPermanent(error)) return error;
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
  private confirmed = false;
  private wake: (() => void) | undefined;

  private readonly onData = (event: AllStreamResolvedEvent): void => {
    this.items.push(event);
    if (this.items.length >= SUBSCRIPTION_HIGH_WATER) this.subscription.pause();
    this.notify();
  };
  private readonly onConfirmation = (): void => {
    this.confirmed = true;
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
    subscription.on('confirmation', this.onConfirmation);
    subscription.on('data', this.onData);
    subscription.on('error', this.onError);
    subscription.on('end', this.onEnd);
    subscription.on('close', this.onEnd);
    signal.addEventListener('abort', this.notify);
  }

  /**
   * Waits until the server confirmed the subscription (or sent an event):
   * true; false once aborted. Throws when it failed or ended first, or with
   * StoreUnavailableError after `ms`.
   */
  async confirmation(ms: number): Promise<boolean> {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.notify();
    }, ms);
    try {
      for (;;) {
        if (this.signal.aborted) return false;
        if (this.confirmed || this.items.length > 0) return true;
        if (this.failure) throw this.failure.error;
        if (this.ended) throw new SubscriptionEndedError('the server ended the subscription before confirming it');
        if (timedOut) throw noAnswer('subscribe to $all', ms);
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    } finally {
      clearTimeout(timer);
    }
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
    this.subscription.off('confirmation', this.onConfirmation);
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

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
