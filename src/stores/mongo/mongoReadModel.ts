// The distributed read model: MongoDB through the `mongodb` 7 driver.
//
// Layout (one database):
//   meta                      {_id:'active', version, lastAllocated, lease?}  which collection set is live,
//                                                                             who may replace it (lease.ts)
//                             {_id:'checkpoint_v<N>', value}                  the checkpoint of set N
//   webhooks_v<N>             one document per webhook, `_id` = webhook id: the WebhookView
//                             plus `patterns` (= its events, multikey-indexed for dispatch)
//   idempotency_keys_v<N>     unique (organizationId, keyHash)
//
// Every event is applied through the shared pure function nextView (so this
// engine cannot disagree with SQLite about what an event means), with the
// revision guard enforced twice: in memory before writing, and in the filter
// of each guarded upsert (`revision` = the revision read, or absent). A batch
// is applied in transactions of at most DEFAULT_TRANSACTION_LIMITS (1 000
// events, 4 MiB; batching.ts), each with its keys and its step of the
// checkpoint compare-and-set, when the deployment supports transactions
// (replica set / sharded cluster). Without transactions the writes come first
// and the checkpoint last, so a crash leaves the model ahead of its checkpoint
// and the re-delivered events are skipped by the revision guard; a gap is
// detected before anything of its chunk is written.
//
// Reads go to the primary with read concern "majority", writes with write
// concern "majority", whatever MONGODB_URL says (connection.ts). Every call
// is bounded: server selection, connect and socket timeouts on the client,
// maxTimeMS on queries, and transactions are retried only on the server's
// transient errors (write conflicts), a bounded number of times.
//
// Rebuilds fill a fresh collection set (N+1) under a lease (lease.ts);
// commit() switches `active` with a compare-and-set that checks the lease and
// the live version, then drops the old set after a grace period so reads
// already in flight in other processes can finish. reset() is the same switch
// to an empty set. Passes test/contract/readModel.contract.ts.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type MongoClient,
  MongoClientClosedError,
  MongoError,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoOperationTimeoutError,
  MongoServerClosedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  type AnyBulkWriteOperation,
  type ClientSession,
  type Collection,
  type Db,
  type Filter,
} from 'mongodb';
import { patternsMatching } from '../../domain/eventTypes.ts';
import { nextView, upgradeStoredView } from '../../projections/webhookView.ts';
import { encodePosition, StoreUnavailableError, WEBHOOK_STREAM_PREFIX, type RecordedEvent } from '../eventStore.ts';
import {
  CheckpointConflictError,
  ProjectionGapError,
  keptTargets,
  toDispatchView,
  type DispatchSlices,
  type DispatchView,
  type IdempotencyKeyEntry,
  type ListQuery,
  type ReadModel,
  type RebuildTarget,
  type WebhookView,
} from '../readModel.ts';
import { DEFAULT_TRANSACTION_LIMITS, eventBytes, transactionBatches, type TransactionLimits } from './batching.ts';
import {
  createMongoClient,
  describeDeployment,
  helloSupportsTransactions,
  redactUrl,
  type MongoTimeouts,
} from './connection.ts';
import {
  abandonPlan,
  decideLease,
  explainFailedSwitch,
  ReadModelBusyError,
  RebuildLeaseLostError,
  versionsToDrop,
  type ActiveDoc,
  type Lease,
  type LeasePurpose,
} from './lease.ts';

export { ReadModelBusyError, RebuildLeaseLostError } from './lease.ts';

export interface MongoReadModelOptions extends MongoTimeouts {
  /** e.g. `mongodb://mongodb:27017/?replicaSet=rs0` (MONGODB_URL). */
  readonly url: string;
  /** Database name (MONGODB_DATABASE). Default: the one in the URL's path, else `webhook_registry`. */
  readonly database?: string;
  /** Server-side limit of each query (maxTimeMS). Default 5 s. */
  readonly maxTimeMS?: number;
  /** How long commit()/reset() wait before dropping the replaced collections. Default 2 s. */
  readonly dropGraceMs?: number;
  /**
   * Use transactions. Default: when the deployment supports them. `true` on a
   * standalone server fails at open instead of quietly running without.
   */
  readonly transactions?: boolean;
  /** Per-transaction bounds of applyBatch. Default DEFAULT_TRANSACTION_LIMITS. */
  readonly transactionLimits?: TransactionLimits;
  /** How long a rebuild/reset lease lasts without renewal (renewed every third of it). Default 60 s. */
  readonly leaseTtlMs?: number;
  /**
   * The driver client to use instead of one built from `url` (tests wrap the
   * driver's calls to simulate faults). Build it with createMongoClient(url)
   * so it carries the pinned settings. Closed by close().
   */
  readonly client?: MongoClient;
}

interface WebhookDoc extends WebhookView {
  _id: string;
  /** The webhook's subscription patterns, indexed for the dispatch lookup. */
  patterns: string[];
}

type KeyDoc = IdempotencyKeyEntry;

interface MetaDoc {
  _id: string;
  value?: string | null;
  version?: number;
  lastAllocated?: number;
  lease?: Lease | null;
}

interface EngineSettings {
  readonly transactions: boolean;
  readonly dropGraceMs: number;
  readonly maxTimeMS: number;
  readonly transactionLimits: TransactionLimits;
  readonly leaseTtlMs: number;
}

const DEFAULT_DATABASE = 'webhook_registry';
const ACTIVE = 'active';
const VERSIONED = /^(webhooks|idempotency_keys)_v(\d+)$/;
const CHECKPOINT = /^checkpoint_v(\d+)$/;
const DUPLICATE_KEY = 11000;
const NAMESPACE_NOT_FOUND = 26;
/** Attempts of one transaction on server-reported transient errors (write conflicts). */
const TRANSACTION_ATTEMPTS = 5;
/** Compare-and-set rounds to take the lease when other processes race for it. */
const LEASE_ATTEMPTS = 5;

/** Server error codes that mean "not reachable right now / try again". */
const UNAVAILABLE_CODES = new Set<number>([
  6, // HostUnreachable
  7, // HostNotFound
  50, // MaxTimeMSExpired
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

const webhooksName = (version: number): string => `webhooks_v${version}`;
const keysName = (version: number): string => `idempotency_keys_v${version}`;
const checkpointId = (version: number): string => `checkpoint_v${version}`;

export class MongoReadModel implements ReadModel {
  private readonly meta: Collection<MetaDoc>;
  private closed = false;
  /** Whether batches are applied in multi-document transactions (decided at open from the server's hello). */
  readonly transactions: boolean;

  constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
    private readonly settings: EngineSettings,
  ) {
    this.meta = db.collection<MetaDoc>('meta');
    this.transactions = settings.transactions;
  }

  /** The database holding this read model. */
  get databaseName(): string {
    return this.db.databaseName;
  }

  // ---- writes ----------------------------------------------------------------------

  applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void> {
    return this.guard('apply a batch', () => this.applyChunked(undefined, events, expectedCheckpoint));
  }

  /**
   * Applies `events` in bounded transactions, each moving the checkpoint one
   * step. `version` undefined: the live set, resolved inside each transaction.
   */
  private async applyChunked(
    version: number | undefined,
    events: readonly RecordedEvent[],
    expected: string | null,
  ): Promise<void> {
    const chunks = events.length === 0 ? [events] : transactionBatches(events, this.settings.transactionLimits, eventBytes);
    let checkpoint = expected;
    for (const chunk of chunks) {
      checkpoint = await this.inTransaction(async (session) => {
        const target = version ?? (await this.activeVersion(session));
        return this.applyTo(target, chunk, checkpoint, session);
      });
    }
  }

  /** One transaction's worth; returns the checkpoint it wrote. */
  private async applyTo(
    version: number,
    events: readonly RecordedEvent[],
    expected: string | null,
    session: ClientSession | undefined,
  ): Promise<string | null> {
    const actual = await this.readCheckpoint(version, session);
    if (actual !== expected) throw new CheckpointConflictError(expected, actual);
    if (events.length === 0) return expected;

    // Load every webhook the batch touches, then fold the batch in memory.
    const ids = [...new Set(events.map(webhookIdOf))];
    const stored = await this.webhooks(version)
      .find({ _id: { $in: ids } }, this.queryOptions(session))
      .toArray();
    const current = new Map<string, WebhookView | null>(ids.map((id) => [id, null]));
    const readRevision = new Map<string, number | null>(ids.map((id) => [id, null]));
    for (const doc of stored) {
      current.set(doc._id, toView(doc));
      readRevision.set(doc._id, doc.revision);
    }
    const changed = new Set<string>();
    const keys: IdempotencyKeyEntry[] = [];
    for (const event of events) {
      const id = webhookIdOf(event);
      const view = current.get(id) ?? null;
      let change;
      try {
        change = nextView(view, event);
      } catch (error) {
        throw new ProjectionGapError((error as Error).message, { cause: error });
      }
      if (change.kind === 'skip') continue;
      if (change.view.id !== id) {
        throw new ProjectionGapError(`event ${event.streamId}@${event.revision} belongs to webhook ${change.view.id}`);
      }
      current.set(id, change.view);
      changed.add(id);
      if (change.key) keys.push(change.key);
    }

    if (changed.size > 0) {
      const writes: AnyBulkWriteOperation<WebhookDoc>[] = [...changed].map((id) => {
        const view = current.get(id)!;
        const revision = readRevision.get(id) ?? null;
        // Guarded upsert: matches only the revision read above (or no document).
        // If another writer moved it, the filter misses, the upsert collides on
        // _id and the batch fails instead of overwriting newer state.
        const filter: Filter<WebhookDoc> =
          revision === null ? { _id: id, revision: { $exists: false } } : { _id: id, revision };
        return { replaceOne: { filter, replacement: toDoc(view), upsert: true } };
      });
      try {
        await this.webhooks(version).bulkWrite(writes, { ...inSession(session), ordered: true });
      } catch (error) {
        if (isDuplicateKey(error)) throw new CheckpointConflictError(expected, await this.readCheckpoint(version));
        throw error;
      }
    }

    if (keys.length > 0) {
      const writes: AnyBulkWriteOperation<KeyDoc>[] = keys.map((k) => ({
        updateOne: {
          filter: { organizationId: k.organizationId, keyHash: k.keyHash },
          // First use wins: later uses of the same key never overwrite it.
          update: { $setOnInsert: { webhookId: k.webhookId, fingerprint: k.fingerprint, firstUsedAt: k.firstUsedAt } },
          upsert: true,
        },
      }));
      try {
        await this.keys(version).bulkWrite(writes, { ...inSession(session), ordered: true });
      } catch (error) {
        // Without a transaction two upserts of one new key can race; the loser's
        // duplicate-key error means the key is recorded, which is all we want.
        if (session !== undefined || !isDuplicateKey(error)) throw error;
      }
    }

    // Never backwards: re-applying an already-applied batch must not rewind the
    // checkpoint (encoded positions are fixed-width, so text order is log order).
    const last = encodePosition(events[events.length - 1]!.position);
    const next = expected !== null && expected > last ? expected : last;
    if (expected === null) {
      try {
        // `value: null` also matches a missing document, which the upsert then creates;
        // an existing document with another value makes the upsert collide on _id.
        await this.meta.updateOne(
          { _id: checkpointId(version), value: null },
          { $set: { value: next } },
          { ...inSession(session), upsert: true },
        );
      } catch (error) {
        if (isDuplicateKey(error)) throw new CheckpointConflictError(expected, await this.readCheckpoint(version));
        throw error;
      }
    } else {
      const result = await this.meta.updateOne(
        { _id: checkpointId(version), value: expected },
        { $set: { value: next } },
        inSession(session),
      );
      if (result.matchedCount !== 1) {
        throw new CheckpointConflictError(expected, await this.readCheckpoint(version));
      }
    }
    return next;
  }

  reset(): Promise<void> {
    return this.guard('reset', async () => {
      const lease = await this.acquireLease('reset');
      try {
        await this.prepareVersion(lease.version);
        await this.switchTo(lease);
      } catch (error) {
        await this.abandon(lease).catch(() => undefined);
        throw error;
      }
      await this.retire(lease.live);
    });
  }

  beginRebuild(): Promise<RebuildTarget> {
    return this.guard('begin a rebuild', async () => {
      const lease = await this.acquireLease('rebuild');
      let heartbeat: NodeJS.Timeout | undefined;
      let lost: string | undefined;
      try {
        await this.dropLeftovers(lease);
        await this.prepareVersion(lease.version);
      } catch (error) {
        await this.abandon(lease).catch(() => undefined);
        throw error;
      }
      // Renew while the rebuild runs; a renewal that finds the lease gone marks it lost.
      heartbeat = setInterval(() => {
        this.renewLease(lease).then(
          (held) => {
            if (!held) lost ??= 'the lease was taken over by another process after it expired';
          },
          () => undefined, // transient: the next renewal (or the switch) decides
        );
      }, Math.max(1, Math.floor(this.settings.leaseTtlMs / 3)));
      heartbeat.unref();
      const stopHeartbeat = (): void => {
        clearInterval(heartbeat);
        heartbeat = undefined;
      };

      let finished = false;
      const ensureOpen = (): void => {
        if (finished) throw new Error('this rebuild was already committed or aborted');
        if (lost !== undefined) throw new RebuildLeaseLostError(`this rebuild of set v${lease.version} lost its lease: ${lost}`);
      };
      return {
        applyBatch: (events, expected) =>
          this.guard('apply a rebuild batch', async () => {
            ensureOpen();
            await this.applyChunked(lease.version, events, expected);
          }),
        checkpoint: () => this.guard('read the rebuild checkpoint', () => this.readCheckpoint(lease.version)),
        commit: () =>
          this.guard('commit the rebuild', async () => {
            ensureOpen();
            finished = true;
            stopHeartbeat();
            await this.switchTo(lease);
            await this.retire(lease.live);
          }),
        abort: () =>
          this.guard('abort the rebuild', async () => {
            stopHeartbeat();
            finished = true;
            // Also after a failed commit, whose switch may have landed with its answer
            // lost: abandon() never drops the set that is live.
            await this.abandon(lease);
          }),
      };
    });
  }

  // ---- reads ----------------------------------------------------------------------

  checkpoint(): Promise<string | null> {
    return this.guard('read the checkpoint', async () => this.readCheckpoint(await this.activeVersion()));
  }

  getWebhook(id: string): Promise<WebhookView | null> {
    return this.guard('read a webhook', async () => {
      const doc = await this.webhooks(await this.activeVersion()).findOne({ _id: id }, this.queryOptions());
      return doc ? toView(doc) : null;
    });
  }

  listWebhooks(query: ListQuery): Promise<WebhookView[]> {
    return this.guard('list webhooks', async () => {
      if (query.limit <= 0) return []; // limit(0) means "no limit" to MongoDB
      const filter: Filter<WebhookDoc> = {
        organizationId: query.organizationId,
        deleted: false,
        ...(query.status !== undefined ? { status: query.status } : {}),
        ...(query.event !== undefined
          ? { patterns: { $in: [...new Set([query.event, ...patternsMatching(query.event)])] } }
          : {}),
        ...(query.after !== undefined
          ? {
              $or: [
                { createdAt: { $gt: query.after.createdAt } },
                { createdAt: query.after.createdAt, _id: { $gt: query.after.id } },
              ],
            }
          : {}),
      };
      const docs = await this.webhooks(await this.activeVersion())
        .find(filter, this.queryOptions())
        .sort({ createdAt: 1, _id: 1 })
        .limit(query.limit)
        .toArray();
      return docs.map(toView);
    });
  }

  dispatchTargets<T extends { readonly id: string } = DispatchView>(
    eventType: string,
    partnerId: string,
    slices?: DispatchSlices<T>,
  ): Promise<T[]> {
    return this.guard('look up dispatch targets', async () => {
      const docs = await this.webhooks(await this.activeVersion())
        .find(
          {
            patterns: { $in: patternsMatching(eventType) },
            status: 'ACTIVE',
            deleted: false,
            effectivePartnerIds: partnerId,
          },
          this.queryOptions(),
        )
        .sort({ _id: 1 })
        .toArray();
      return keptTargets(
        docs.map((doc) => toDispatchView(toView(doc))),
        slices,
      );
    });
  }

  findIdempotencyKey(organizationId: string, keyHash: string): Promise<IdempotencyKeyEntry | null> {
    return this.guard('read an idempotency key', async () => {
      const doc = await this.keys(await this.activeVersion()).findOne({ organizationId, keyHash }, this.queryOptions());
      return doc
        ? {
            organizationId: doc.organizationId,
            keyHash: doc.keyHash,
            webhookId: doc.webhookId,
            fingerprint: doc.fingerprint,
            firstUsedAt: doc.firstUsedAt,
          }
        : null;
    });
  }

  async *allWebhooks(): AsyncIterable<WebhookView> {
    const version = await this.guard('list all webhooks', () => this.activeVersion());
    // No maxTimeMS: it would bound the whole scan; each round trip is bounded by socketTimeoutMS.
    const cursor = this.webhooks(version).find({}).sort({ _id: 1 });
    try {
      for (;;) {
        const doc = await this.guard('list all webhooks', () => cursor.next());
        if (doc === null) return;
        yield toView(doc);
      }
    } finally {
      await cursor.close().catch(() => undefined);
    }
  }

  ping(): Promise<void> {
    return this.guard('ping', async () => {
      if (this.closed) throw new StoreUnavailableError('the MongoDB read model is closed');
      await this.db.command({ ping: 1 });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }

  // ---- versions, collections and the lease ------------------------------------------------

  /** Creates the `active` document on first start and the live set's indexes. */
  async initialize(): Promise<void> {
    try {
      await this.meta.updateOne(
        { _id: ACTIVE },
        { $setOnInsert: { version: 1, lastAllocated: 1 } },
        { upsert: true },
      );
    } catch (error) {
      if (!isDuplicateKey(error)) throw error; // another process created it at the same moment
    }
    await this.ensureIndexes(await this.activeVersion());
  }

  private async readActive(session?: ClientSession): Promise<ActiveDoc> {
    const doc = await this.meta.findOne({ _id: ACTIVE }, this.queryOptions(session));
    if (typeof doc?.version !== 'number' || typeof doc.lastAllocated !== 'number') {
      throw new Error(`MongoDB read model in database "${this.db.databaseName}" has no active version (meta.active is missing)`);
    }
    return { version: doc.version, lastAllocated: doc.lastAllocated, lease: doc.lease ?? null };
  }

  private async activeVersion(session?: ClientSession): Promise<number> {
    return (await this.readActive(session)).version;
  }

  /**
   * Takes the lease and allocates a fresh version in one compare-and-set on
   * `active`: it matches only the document as read (same lastAllocated, same
   * lease or none), so of two processes racing, one wins and the other reads
   * again and finds the lease held.
   */
  private async acquireLease(purpose: LeasePurpose): Promise<Lease & { readonly live: number }> {
    const owner = randomUUID();
    for (let attempt = 1; ; attempt++) {
      const active = await this.readActive();
      const now = new Date();
      const decision = decideLease(active, now);
      if (decision.kind === 'busy') throw new ReadModelBusyError(decision.holder);
      const lease: Lease = {
        owner,
        version: decision.version,
        purpose,
        expiresAt: new Date(now.getTime() + this.settings.leaseTtlMs),
      };
      const asRead: Filter<MetaDoc> = {
        _id: ACTIVE,
        version: active.version,
        lastAllocated: active.lastAllocated,
        ...(decision.takesOver
          ? { 'lease.owner': decision.takesOver.owner, 'lease.expiresAt': decision.takesOver.expiresAt }
          : { lease: null }),
      };
      const result = await this.meta.updateOne(asRead, { $set: { lastAllocated: decision.version, lease } });
      if (result.matchedCount === 1) return { ...lease, live: decision.live };
      if (attempt >= LEASE_ATTEMPTS) {
        throw new Error('MongoDB read model: could not take the rebuild lease (meta.active keeps changing)');
      }
    }
  }

  /** Extends the lease; false if it is no longer ours. */
  private async renewLease(lease: Lease): Promise<boolean> {
    const result = await this.meta.updateOne(
      { _id: ACTIVE, 'lease.owner': lease.owner },
      { $set: { 'lease.expiresAt': new Date(Date.now() + this.settings.leaseTtlMs) } },
    );
    return result.matchedCount === 1;
  }

  /**
   * The switch: one compare-and-set on `active` that succeeds only while we
   * hold the lease and the live version is the one we started from. Readers
   * resolve the active version per request, so they see the old set or the new.
   */
  private async switchTo(lease: Lease & { readonly live: number }): Promise<void> {
    const result = await this.meta.updateOne(
      { _id: ACTIVE, version: lease.live, 'lease.owner': lease.owner },
      { $set: { version: lease.version }, $unset: { lease: '' } },
    );
    if (result.matchedCount === 1) return;
    const active = await this.readActive();
    if (active.version === lease.version) return; // an earlier attempt landed
    throw new RebuildLeaseLostError(
      `the ${lease.purpose} of set v${lease.version} was not switched in: ${explainFailedSwitch(active, lease)}`,
    );
  }

  /** After a failure: drop our set unless it became live, release the lease if still ours. */
  private async abandon(lease: Lease): Promise<void> {
    const plan = abandonPlan(await this.readActive(), lease);
    if (plan.dropOwn) await this.dropVersion(lease.version);
    if (plan.release) await this.meta.updateOne({ _id: ACTIVE, 'lease.owner': lease.owner }, { $unset: { lease: '' } });
  }

  /** Leftovers of aborted or crashed rebuilds and of earlier switches (see versionsToDrop). */
  private async dropLeftovers(lease: Lease): Promise<void> {
    const existing = new Set<number>();
    for (const { name } of await this.db.listCollections({}, { nameOnly: true }).toArray()) {
      const match = VERSIONED.exec(name);
      if (match?.[2] !== undefined) existing.add(Number(match[2]));
    }
    for (const doc of await this.meta.find({ _id: { $regex: CHECKPOINT } }, this.queryOptions()).toArray()) {
      const match = CHECKPOINT.exec(doc._id);
      if (match?.[1] !== undefined) existing.add(Number(match[1]));
    }
    const drop = versionsToDrop(existing, {
      active: await this.readActive(),
      owner: lease.owner,
      own: lease.version,
      now: new Date(),
    });
    for (const version of drop) await this.dropVersion(version);
  }

  /** An empty collection set with its indexes and no checkpoint. */
  private async prepareVersion(version: number): Promise<void> {
    await this.dropVersion(version);
    await this.ensureIndexes(version);
  }

  private async ensureIndexes(version: number): Promise<void> {
    await this.webhooks(version).createIndexes([
      // Listing: one organization, ordered by (createdAt, id).
      { key: { organizationId: 1, createdAt: 1, _id: 1 }, name: 'by_organization' },
      // Dispatch: patterns IN (…) AND status = 'ACTIVE' (multikey on patterns).
      { key: { patterns: 1, status: 1 }, name: 'by_pattern' },
      // Dispatch: the partner filter (multikey).
      { key: { effectivePartnerIds: 1 }, name: 'by_partner' },
    ]);
    await this.keys(version).createIndexes([
      { key: { organizationId: 1, keyHash: 1 }, name: 'by_key', unique: true },
    ]);
  }

  /** Drops a replaced set after the grace period, unless it is live (never: versions are not reused). */
  private async retire(version: number): Promise<void> {
    if (this.settings.dropGraceMs > 0) await sleep(this.settings.dropGraceMs);
    if ((await this.activeVersion()) === version) return;
    await this.dropVersion(version);
  }

  private async dropVersion(version: number): Promise<void> {
    await dropCollection(this.db, webhooksName(version));
    await dropCollection(this.db, keysName(version));
    await this.meta.deleteOne({ _id: checkpointId(version) });
  }

  private async readCheckpoint(version: number, session?: ClientSession): Promise<string | null> {
    const doc = await this.meta.findOne({ _id: checkpointId(version) }, this.queryOptions(session));
    return doc?.value ?? null;
  }

  private webhooks(version: number): Collection<WebhookDoc> {
    return this.db.collection<WebhookDoc>(webhooksName(version));
  }

  private keys(version: number): Collection<KeyDoc> {
    return this.db.collection<KeyDoc>(keysName(version));
  }

  /** Options of a bounded query, in the session when there is one. */
  private queryOptions(session?: ClientSession): { maxTimeMS: number; session?: ClientSession } {
    return { maxTimeMS: this.settings.maxTimeMS, ...inSession(session) };
  }

  /**
   * Runs `work` in a transaction (or directly, without transactions). Not the
   * driver's withTransaction: that retries every TransientTransactionError for
   * up to 120 s, a label the driver also puts on network errors inside a
   * transaction, so a flapping server could hold a caller that long. Here only
   * errors the *server* labels transient (a write conflict with a concurrent
   * applier, which on retry sees the moved checkpoint) are retried, a bounded
   * number of times; a network error or timeout surfaces at once (as
   * StoreUnavailableError), and the caller's retry of the same batch is safe:
   * the checkpoint compare-and-set tells whether the lost commit landed.
   */
  private async inTransaction<T>(work: (session: ClientSession | undefined) => Promise<T>): Promise<T> {
    if (!this.transactions) return work(undefined);
    const session = this.client.startSession();
    try {
      for (let attempt = 1; ; attempt++) {
        session.startTransaction({
          readConcern: { level: 'snapshot' },
          writeConcern: { w: 'majority' },
          readPreference: 'primary',
          maxCommitTimeMS: this.settings.maxTimeMS,
        });
        let result: T;
        try {
          result = await work(session);
        } catch (error) {
          if (session.inTransaction()) await session.abortTransaction().catch(() => undefined);
          if (attempt < TRANSACTION_ATTEMPTS && isServerTransient(error)) {
            await sleep(backoffMs(attempt));
            continue;
          }
          throw error;
        }
        try {
          await session.commitTransaction();
          return result;
        } catch (error) {
          if (attempt < TRANSACTION_ATTEMPTS && isServerTransient(error)) {
            await sleep(backoffMs(attempt));
            continue;
          }
          throw error;
        }
      }
    } finally {
      await session.endSession().catch(() => undefined);
    }
  }

  private async guard<T>(operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw mapError(error, operation);
    }
  }
}

/**
 * Connects with bounded timeouts and pings, so an unreachable or silent
 * server fails at start with a clear StoreUnavailableError.
 */
export async function openMongoReadModel(options: MongoReadModelOptions): Promise<MongoReadModel> {
  const client = options.client ?? createMongoClient(options.url, options);
  try {
    await client.connect();
    const databaseName = options.database ?? (urlNamesDatabase(options.url) ? client.options.dbName : DEFAULT_DATABASE);
    const db = client.db(databaseName);
    const hello = await db.admin().command({ hello: 1 });
    const capable = helloSupportsTransactions(hello);
    if (options.transactions === true && !capable) {
      throw new Error(
        `MongoDB at ${redactUrl(options.url)} is ${describeDeployment(hello)}, which cannot run multi-document ` +
          'transactions; transactions were required (run a replica set, or leave `transactions` unset)',
      );
    }
    const model = new MongoReadModel(client, db, {
      transactions: options.transactions ?? capable,
      dropGraceMs: options.dropGraceMs ?? 2_000,
      maxTimeMS: options.maxTimeMS ?? 5_000,
      transactionLimits: options.transactionLimits ?? DEFAULT_TRANSACTION_LIMITS,
      leaseTtlMs: options.leaseTtlMs ?? 60_000,
    });
    await model.initialize();
    return model;
  } catch (error) {
    await client.close().catch(() => undefined);
    if (!isUnavailable(error)) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new StoreUnavailableError(`MongoDB at ${redactUrl(options.url)} cannot be reached: ${reason}`, { cause: error });
  }
}

// ---- helpers ---------------------------------------------------------------------------

/** Driver options for an optional session (exactOptionalPropertyTypes forbids `session: undefined`). */
function inSession(session: ClientSession | undefined): { session?: ClientSession } {
  return session === undefined ? {} : { session };
}

function backoffMs(attempt: number): number {
  return Math.random() * Math.min(10 * 2 ** attempt, 200);
}

function webhookIdOf(event: RecordedEvent): string {
  const fromData = (event.data as { webhookId?: unknown } | null)?.webhookId;
  if (typeof fromData === 'string') return fromData;
  if (event.streamId.startsWith(WEBHOOK_STREAM_PREFIX)) return event.streamId.slice(WEBHOOK_STREAM_PREFIX.length);
  throw new ProjectionGapError(`event ${event.streamId}@${event.revision} is not a webhook event`);
}

function toDoc(view: WebhookView): Omit<WebhookDoc, '_id'> {
  return { ...view, patterns: [...view.events] };
}

function toView(doc: WebhookDoc): WebhookView {
  const { _id, patterns: _patterns, ...view } = doc;
  // Documents written before webhooks kept a list of previous secrets hold one
  // in two fields; read them in today's shape (the next write stores that).
  return upgradeStoredView(view);
}

async function dropCollection(db: Db, name: string): Promise<void> {
  try {
    await db.dropCollection(name);
  } catch (error) {
    if (!(error instanceof MongoServerError && error.code === NAMESPACE_NOT_FOUND)) throw error;
  }
}

function isDuplicateKey(error: unknown): boolean {
  if (!(error instanceof MongoError)) return false;
  if (error.code === DUPLICATE_KEY) return true;
  const writeErrors = (error as { writeErrors?: unknown }).writeErrors;
  const list = Array.isArray(writeErrors) ? (writeErrors as { code?: unknown }[]) : [];
  return list.length > 0 && list.every((e) => e.code === DUPLICATE_KEY);
}

/** A transient error the server itself reported (e.g. WriteConflict), not a lost connection or a timeout. */
function isServerTransient(error: unknown): boolean {
  return (
    error instanceof MongoServerError &&
    error.hasErrorLabel('TransientTransactionError') &&
    !(typeof error.code === 'number' && UNAVAILABLE_CODES.has(error.code))
  );
}

function isUnavailable(error: unknown): boolean {
  if (
    error instanceof MongoNetworkError ||
    error instanceof MongoServerSelectionError ||
    error instanceof MongoTopologyClosedError ||
    error instanceof MongoNotConnectedError ||
    error instanceof MongoClientClosedError ||
    error instanceof MongoServerClosedError ||
    error instanceof MongoOperationTimeoutError
  ) {
    return true;
  }
  if (error instanceof MongoError) {
    // Not exported by the driver: every pooled connection is busy on a silent server, or the pool closed.
    if (error.name === 'MongoWaitQueueTimeoutError' || error.name === 'MongoPoolClosedError') return true;
    if (
      error.hasErrorLabel('RetryableWriteError') ||
      error.hasErrorLabel('TransientTransactionError') ||
      error.hasErrorLabel('UnknownTransactionCommitResult')
    ) {
      return true;
    }
    return typeof error.code === 'number' && UNAVAILABLE_CODES.has(error.code);
  }
  return false;
}

function mapError(error: unknown, operation: string): unknown {
  if (
    error instanceof StoreUnavailableError ||
    error instanceof CheckpointConflictError ||
    error instanceof ProjectionGapError ||
    error instanceof ReadModelBusyError ||
    error instanceof RebuildLeaseLostError
  ) {
    return error;
  }
  if (!isUnavailable(error)) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(`MongoDB: could not ${operation}: ${reason}`, { cause: error });
}

/** True when the URL's path names a database (`mongodb://host/db?…`). */
function urlNamesDatabase(url: string): boolean {
  return /^mongodb(\+srv)?:\/\/[^/]+\/[^/?]+/i.test(url);
}
