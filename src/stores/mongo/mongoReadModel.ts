// The distributed read model: MongoDB through the `mongodb` 7 driver.
//
// Layout (one database):
//   meta                      {_id:'active', version, lastAllocated}  which collection set is live
//                             {_id:'checkpoint_v<N>', value}          the checkpoint of set N
//   webhooks_v<N>             one document per webhook, `_id` = webhook id: the WebhookView
//                             plus `patterns` (= its events, multikey-indexed for dispatch)
//   idempotency_keys_v<N>     unique (organizationId, keyHash)
//
// Every event is applied through the shared pure function nextView (so this
// engine cannot disagree with SQLite about what an event means), with the
// revision guard enforced twice: in memory before writing, and in the filter
// of each guarded upsert (`revision` = the revision read, or absent). The
// batch, its keys and the checkpoint compare-and-set run in one transaction
// when the deployment supports them (replica set / sharded cluster). Without
// transactions the writes come first and the checkpoint last, so a crash
// leaves the model ahead of its checkpoint and the re-delivered events are
// skipped by the revision guard; a gap is detected before anything is written.
//
// Rebuilds fill a fresh collection set (N+1); commit() switches `active` in one
// single-document update, then drops the old set after a grace period so reads
// already in flight in other processes can finish. reset() is the same switch
// to an empty set. Passes test/contract/readModel.contract.ts.
import {
  MongoClient,
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
import { nextView } from '../../projections/webhookView.ts';
import { encodePosition, StoreUnavailableError, WEBHOOK_STREAM_PREFIX, type RecordedEvent } from '../eventStore.ts';
import {
  CheckpointConflictError,
  ProjectionGapError,
  toDispatchView,
  type DispatchView,
  type IdempotencyKeyEntry,
  type ListQuery,
  type ReadModel,
  type RebuildTarget,
  type WebhookView,
} from '../readModel.ts';

export interface MongoReadModelOptions {
  /** e.g. `mongodb://mongodb:27017/?replicaSet=rs0` (MONGODB_URL). */
  readonly url: string;
  /** Database name (MONGODB_DATABASE). Default: the one in the URL's path, else `webhook_registry`. */
  readonly database?: string;
  /** How long an operation (and open) waits to find a usable server. Default 5 s. */
  readonly serverSelectionTimeoutMS?: number;
  /** How long commit()/reset() wait before dropping the replaced collections. Default 2 s. */
  readonly dropGraceMs?: number;
  /** Use transactions. Default: when the deployment supports them. */
  readonly transactions?: boolean;
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
}

const DEFAULT_DATABASE = 'webhook_registry';
const ACTIVE = 'active';
const VERSIONED = /^(webhooks|idempotency_keys)_v(\d+)$/;
const DUPLICATE_KEY = 11000;
const NAMESPACE_NOT_FOUND = 26;

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

  constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
    private readonly transactions: boolean,
    private readonly dropGraceMs: number,
  ) {
    this.meta = db.collection<MetaDoc>('meta');
  }

  /** The database holding this read model. */
  get databaseName(): string {
    return this.db.databaseName;
  }

  /** Whether batches are applied in multi-document transactions. */
  get usesTransactions(): boolean {
    return this.transactions;
  }

  // ---- writes ----------------------------------------------------------------------

  applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void> {
    return this.guard('apply a batch', () =>
      this.inTransaction(async (session) => {
        const version = await this.activeVersion(session);
        await this.applyTo(version, events, expectedCheckpoint, session);
      }),
    );
  }

  private async applyTo(
    version: number,
    events: readonly RecordedEvent[],
    expected: string | null,
    session: ClientSession | undefined,
  ): Promise<void> {
    const actual = await this.readCheckpoint(version, session);
    if (actual !== expected) throw new CheckpointConflictError(expected, actual);
    if (events.length === 0) return;

    // Load every webhook the batch touches, then fold the batch in memory.
    const ids = [...new Set(events.map(webhookIdOf))];
    const stored = await this.webhooks(version)
      .find({ _id: { $in: ids } }, inSession(session))
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
  }

  reset(): Promise<void> {
    return this.guard('reset', async () => {
      const old = await this.activeVersion();
      const fresh = await this.allocateVersion();
      await this.prepareVersion(fresh);
      await this.meta.updateOne({ _id: ACTIVE }, { $set: { version: fresh } });
      await this.retire(old);
    });
  }

  beginRebuild(): Promise<RebuildTarget> {
    return this.guard('begin a rebuild', async () => {
      const live = await this.activeVersion();
      const version = await this.allocateVersion();
      // Leftovers of aborted or crashed rebuilds (one rebuild runs at a time).
      await this.dropVersionsExcept(new Set([live, version]));
      await this.prepareVersion(version);
      let finished = false;
      const ensureOpen = (): void => {
        if (finished) throw new Error('this rebuild was already committed or aborted');
      };
      return {
        applyBatch: (events, expected) =>
          this.guard('apply a rebuild batch', async () => {
            ensureOpen();
            await this.inTransaction((session) => this.applyTo(version, events, expected, session));
          }),
        checkpoint: () => this.guard('read the rebuild checkpoint', () => this.readCheckpoint(version)),
        commit: () =>
          this.guard('commit the rebuild', async () => {
            ensureOpen();
            finished = true;
            const old = await this.activeVersion();
            // The switch: one single-document update. Readers resolve the active
            // version per request, so they see the old set or the new one.
            await this.meta.updateOne({ _id: ACTIVE }, { $set: { version } });
            if (old !== version) await this.retire(old);
          }),
        abort: () =>
          this.guard('abort the rebuild', async () => {
            if (finished) return;
            finished = true;
            await this.dropVersion(version);
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
      const doc = await this.webhooks(await this.activeVersion()).findOne({ _id: id });
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
        .find(filter)
        .sort({ createdAt: 1, _id: 1 })
        .limit(query.limit)
        .toArray();
      return docs.map(toView);
    });
  }

  dispatchTargets(eventType: string, partnerId: string): Promise<DispatchView[]> {
    return this.guard('look up dispatch targets', async () => {
      const docs = await this.webhooks(await this.activeVersion())
        .find({
          patterns: { $in: patternsMatching(eventType) },
          status: 'ACTIVE',
          deleted: false,
          effectivePartnerIds: partnerId,
        })
        .sort({ _id: 1 })
        .toArray();
      return docs.map((doc) => toDispatchView(toView(doc)));
    });
  }

  findIdempotencyKey(organizationId: string, keyHash: string): Promise<IdempotencyKeyEntry | null> {
    return this.guard('read an idempotency key', async () => {
      const doc = await this.keys(await this.activeVersion()).findOne({ organizationId, keyHash });
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

  // ---- versions and collections ---------------------------------------------------------

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

  private async activeVersion(session?: ClientSession): Promise<number> {
    const doc = await this.meta.findOne({ _id: ACTIVE }, inSession(session));
    if (typeof doc?.version !== 'number') {
      throw new Error(`MongoDB read model in database "${this.db.databaseName}" has no active version (meta.active is missing)`);
    }
    return doc.version;
  }

  private async allocateVersion(): Promise<number> {
    const doc = await this.meta.findOneAndUpdate(
      { _id: ACTIVE },
      { $inc: { lastAllocated: 1 } },
      { returnDocument: 'after' },
    );
    if (typeof doc?.lastAllocated !== 'number') throw new Error('MongoDB read model: meta.active is missing');
    return doc.lastAllocated;
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

  /** Drops a replaced set after the grace period. */
  private async retire(version: number): Promise<void> {
    if (this.dropGraceMs > 0) await new Promise((resolve) => setTimeout(resolve, this.dropGraceMs));
    await this.dropVersion(version);
  }

  private async dropVersion(version: number): Promise<void> {
    await dropCollection(this.db, webhooksName(version));
    await dropCollection(this.db, keysName(version));
    await this.meta.deleteOne({ _id: checkpointId(version) });
  }

  private async dropVersionsExcept(keep: ReadonlySet<number>): Promise<void> {
    const collections = await this.db.listCollections({}, { nameOnly: true }).toArray();
    const stale = new Set<number>();
    for (const { name } of collections) {
      const match = VERSIONED.exec(name);
      if (match?.[2] !== undefined && !keep.has(Number(match[2]))) stale.add(Number(match[2]));
    }
    for (const version of stale) await this.dropVersion(version);
  }

  private async readCheckpoint(version: number, session?: ClientSession): Promise<string | null> {
    const doc = await this.meta.findOne({ _id: checkpointId(version) }, inSession(session));
    return doc?.value ?? null;
  }

  private webhooks(version: number): Collection<WebhookDoc> {
    return this.db.collection<WebhookDoc>(webhooksName(version));
  }

  private keys(version: number): Collection<KeyDoc> {
    return this.db.collection<KeyDoc>(keysName(version));
  }

  private async inTransaction(work: (session: ClientSession | undefined) => Promise<void>): Promise<void> {
    if (!this.transactions) {
      await work(undefined);
      return;
    }
    const session = this.client.startSession();
    try {
      // Retries the whole callback on transient errors (e.g. a write conflict
      // with a concurrent applier, which then sees the moved checkpoint).
      await session.withTransaction(() => work(session), {
        readConcern: { level: 'snapshot' },
        writeConcern: { w: 'majority' },
        readPreference: 'primary',
      });
    } finally {
      await session.endSession();
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
 * Connects with a short server-selection timeout and pings, so an unreachable
 * server fails at start with a clear StoreUnavailableError.
 */
export async function openMongoReadModel(options: MongoReadModelOptions): Promise<MongoReadModel> {
  let client: MongoClient;
  try {
    client = new MongoClient(options.url, {
      appName: 'webhook-registry',
      serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 5_000,
      writeConcern: { w: 'majority' },
    });
  } catch (error) {
    // The parser's message may quote the URL, which can hold credentials.
    throw new Error(`MONGODB_URL is not a valid MongoDB connection string (${redact(options.url)})`, { cause: error });
  }
  try {
    await client.connect();
    const databaseName = options.database ?? (urlNamesDatabase(options.url) ? client.options.dbName : DEFAULT_DATABASE);
    const db = client.db(databaseName);
    await db.command({ ping: 1 });
    const transactions = options.transactions ?? (await supportsTransactions(db));
    const model = new MongoReadModel(client, db, transactions, options.dropGraceMs ?? 2_000);
    await model.initialize();
    return model;
  } catch (error) {
    await client.close().catch(() => undefined);
    if (!isUnavailable(error)) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new StoreUnavailableError(`MongoDB at ${redact(options.url)} cannot be reached: ${reason}`, { cause: error });
  }
}

// ---- helpers ---------------------------------------------------------------------------

/** Driver options for an optional session (exactOptionalPropertyTypes forbids `session: undefined`). */
function inSession(session: ClientSession | undefined): { session?: ClientSession } {
  return session === undefined ? {} : { session };
}

/** Replica sets and sharded clusters run multi-document transactions; a standalone server does not. */
async function supportsTransactions(db: Db): Promise<boolean> {
  const hello = await db.admin().command({ hello: 1 });
  return typeof hello.setName === 'string' || hello.msg === 'isdbgrid';
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
  return view;
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
    error instanceof ProjectionGapError
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

function redact(url: string): string {
  return url.replace(/\/\/[^@/?#]*@/, '//***@');
}
