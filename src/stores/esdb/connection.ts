// The EventStoreDB engine's clients and the time limits on their calls.
//
// @eventstore/db-client 6.2 waits without limit in three places: reads and
// subscriptions run with `deadline: Infinity` (a `deadline` option is
// ignored), and a client's first append waits on a server-features call that
// has no deadline and whose promise the client caches, so if that call is
// never answered no append on that client ever completes. Hence:
// - every call gets a timer here; on timeout reads and subscriptions cancel
//   their gRPC call, and the late result, if any, is dropped;
// - appends first wait (bounded, without holding the events) for the
//   server's features, so a hung features call cannot pile appends up;
// - a client whose append or features call went unanswered is replaced by a
//   fresh one, at most once per back-off window: the old one is disposed,
//   which cancels its streams (the batch-append stream with it), and its
//   gRPC channel is closed, which `dispose()` alone does not do.
import type { EventStoreDBClient } from '@eventstore/db-client';
import { StoreUnavailableError } from '../eventStore.ts';

/** Makes a client; called again whenever a connection is replaced. */
export type ClientFactory = () => EventStoreDBClient;

/** A read the engine consumes: the client's StreamingRead (a Readable with `cancel`). */
export interface CancellableRead<T> extends AsyncIterable<T> {
  cancel(): Promise<void>;
  destroy(error?: Error): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** Replacing an unanswering connection backs off from one timeout up to this. */
const MAX_REPLACE_INTERVAL_MS = 5 * 60_000;
/** How long closing a connection may wait for the client to let go of it. */
const RETIRE_WAIT_MS = 2_000;

const ignore = (): void => undefined;

/**
 * The parts of the 6.2 client that are `protected` in its typings but that a
 * bounded engine needs: the cached server-features lookup and the channel.
 * Absent on stand-ins (the test simulation); then there is nothing to wait for or close.
 */
interface ClientInternals {
  readonly capabilities?: Promise<unknown>;
  readonly getChannel?: () => Promise<{ close(): void }>;
}

function internals(client: EventStoreDBClient): ClientInternals {
  return client as unknown as ClientInternals;
}

/** Rejects with `timeout()` when `work` has not settled within `ms`; a late result is dropped. */
export function withDeadline<T>(work: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeout()), Math.max(0, ms));
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: Error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

export function noAnswer(what: string, ms: number): StoreUnavailableError {
  return new StoreUnavailableError(`EventStoreDB ${what}: no answer within ${ms} ms`);
}

/** One client and what the engine knows about it. */
export class EsdbConnection {
  /** Disposed (replaced or closed): calls still running on it were cancelled. */
  retired = false;
  private used = false;
  private features: 'unknown' | 'pending' | 'ready' = 'unknown';
  private featuresFailure: { error: unknown } | undefined;
  private readonly featureWaiters = new Set<() => void>();

  constructor(
    private readonly rawClient: EventStoreDBClient,
    readonly createdAt: number,
  ) {}

  /** The client, for one call. */
  get client(): EventStoreDBClient {
    this.used = true;
    return this.rawClient;
  }

  /**
   * Waits up to `ms` until the client knows the server's features, so that
   * `appendToStream` will not wait on them. Throws StoreUnavailableError on
   * timeout, or the lookup's error (then the next call looks again).
   */
  async serverFeatures(ms: number): Promise<void> {
    if (this.features === 'unknown') this.lookUpFeatures();
    if (this.features === 'pending') {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.featureWaiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, ms));
        this.featureWaiters.add(done);
      });
    }
    if (this.features === 'ready') return;
    if (this.retired) throw new StoreUnavailableError('EventStoreDB connection was closed');
    const failure = this.featuresFailure;
    if (failure) {
      this.featuresFailure = undefined;
      this.features = 'unknown';
      throw failure.error;
    }
    throw noAnswer('server features', ms);
  }

  private lookUpFeatures(): void {
    let lookup: Promise<unknown> | undefined;
    try {
      lookup = internals(this.client).capabilities;
    } catch (error) {
      this.featuresFailure = { error };
      return;
    }
    if (!(lookup instanceof Promise)) {
      this.features = 'ready';
      return;
    }
    this.features = 'pending';
    // One handler for the lifetime of the lookup, whatever the number of waiters.
    lookup.then(
      () => {
        this.features = 'ready';
        this.wakeFeatureWaiters();
      },
      (error: unknown) => {
        this.features = 'unknown';
        this.featuresFailure = { error };
        this.wakeFeatureWaiters();
      },
    );
  }

  private wakeFeatureWaiters(): void {
    for (const wake of [...this.featureWaiters]) wake();
  }

  /** Disposes the client (cancelling its streams) and closes its channel. */
  async retire(): Promise<void> {
    if (this.retired) return;
    this.retired = true;
    this.wakeFeatureWaiters();
    await withDeadline(this.rawClient.dispose(), RETIRE_WAIT_MS, () => new Error('dispose')).catch(ignore);
    if (!this.used) return;
    const getChannel = internals(this.rawClient).getChannel;
    if (typeof getChannel !== 'function') return;
    try {
      const channel = getChannel.call(this.rawClient);
      // Closed when it resolves, however late (discovery may still be running).
      channel.then((c) => c.close(), ignore);
      await withDeadline(channel, RETIRE_WAIT_MS, () => new Error('channel')).catch(ignore);
    } catch {
      // nothing to close
    }
  }
}

/** The current connection, and its replacement when it stops answering. */
export class EsdbConnections {
  private current: EsdbConnection;
  private replaceAfterMs: number;
  private readonly retiring = new Set<Promise<void>>();

  constructor(
    private readonly create: ClientFactory | undefined,
    first: EventStoreDBClient,
    private readonly timeoutMs: number,
  ) {
    this.current = new EsdbConnection(first, Date.now());
    this.replaceAfterMs = timeoutMs;
  }

  get(): EsdbConnection {
    return this.current;
  }

  /**
   * A call on `connection` went unanswered (an append or the server-features
   * lookup): replace it, unless it is younger than the back-off window (which
   * doubles with each replacement that gets no answer either).
   */
  unanswered(connection: EsdbConnection): void {
    if (!this.create || connection !== this.current || connection.retired) return;
    if (Date.now() - connection.createdAt < this.replaceAfterMs) return;
    this.replaceAfterMs = Math.min(this.replaceAfterMs * 2, MAX_REPLACE_INTERVAL_MS);
    this.current = new EsdbConnection(this.create(), Date.now());
    this.track(connection.retire());
  }

  /** An append on `connection` was answered: the back-off starts over. */
  answered(connection: EsdbConnection): void {
    if (connection === this.current) this.replaceAfterMs = this.timeoutMs;
  }

  async close(): Promise<void> {
    this.track(this.current.retire());
    await Promise.allSettled([...this.retiring]);
  }

  private track(retiring: Promise<void>): void {
    this.retiring.add(retiring);
    void retiring.finally(() => this.retiring.delete(retiring));
  }
}

/**
 * Consumes a read to its end, or until `take` returns false, within `ms`. On
 * timeout the gRPC call is cancelled and the read rejects with
 * StoreUnavailableError. A read cut short because its connection was retired
 * rejects too: the client ends a cancelled read as if it were complete.
 */
export async function consume<T>(
  connection: EsdbConnection,
  read: CancellableRead<T>,
  take: (item: T) => boolean,
  ms: number,
  what: string,
): Promise<void> {
  // A late error (after we stopped listening) must not become an uncaught exception.
  read.on('error', ignore);
  let stopped = false;
  const work = (async () => {
    for await (const item of read) {
      if (!take(item)) {
        stopped = true;
        break;
      }
    }
  })();
  try {
    await withDeadline(work, ms, () => noAnswer(what, ms));
  } catch (error) {
    cancel(read);
    throw error;
  }
  if (stopped) cancel(read);
  else if (connection.retired) throw new StoreUnavailableError(`EventStoreDB ${what} was cut short: the connection was closed`);
}

function cancel(read: CancellableRead<unknown>): void {
  read.cancel().catch(ignore);
  read.destroy();
}
