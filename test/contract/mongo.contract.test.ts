// The read-model contract and the MongoDB engine's own cases (rebuild lease,
// transactions really used, bounded transactions, primary reads, lost
// answers), against:
// - a real server when MONGODB_URL points at one (e.g. the docker-compose one:
//   MONGODB_URL='mongodb://localhost:27017/?replicaSet=rs0&directConnection=true'),
//   skipped loudly otherwise;
// - always, a loopback *simulation* of the wire protocol (test/support/
//   mongoSimulator.ts), once as a replica-set member and once as a standalone
//   server. The simulation checks this engine's logic through the unmodified
//   driver; it proves nothing about MongoDB itself.
// Each test gets its own database (dropped afterwards on the real server).
// Faults are injected by wrapping the driver's calls (test/support/
// mongoFaults.ts), so the same fault cases run on the real server too.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MongoClient, type CommandStartedEvent, type Document } from 'mongodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookEvent } from '../../src/domain/webhook.ts';
import { encodePosition, StoreUnavailableError, webhookStreamName, type RecordedEvent } from '../../src/stores/eventStore.ts';
import { createMongoClient } from '../../src/stores/mongo/connection.ts';
import {
  openMongoReadModel,
  ReadModelBusyError,
  RebuildLeaseLostError,
  type MongoReadModel,
  type MongoReadModelOptions,
} from '../../src/stores/mongo/mongoReadModel.ts';
import { CheckpointConflictError } from '../../src/stores/readModel.ts';
import { faultyClient, type FaultyClient } from '../support/mongoFaults.ts';
import { MongoSimulator, startSilentListener } from '../support/mongoSimulator.ts';
import { readModelContract, type ReadModelFactory } from './readModel.contract.ts';

const url = process.env.MONGODB_URL;

if (!url) {
  console.warn(
    [
      '',
      '⚠⚠⚠ SKIPPED: MongoDB contract suite NOT run against a real server (MONGODB_URL unset) — only against the simulation in this run.',
      "    Run it with: MONGODB_URL='mongodb://localhost:27017/?replicaSet=rs0&directConnection=true' npx vitest run test/contract (see docs/scaling-out.md)",
      '',
    ].join('\n'),
  );
}

interface Backend {
  readonly name: string;
  /** Whether the deployment can run transactions (the simulator knows; a real server must). */
  readonly transactions: boolean;
  url(): string;
  dropDatabase(name: string): Promise<void>;
}

const simulatedReplicaSet = new MongoSimulator({ replicaSet: 'rs0' });
const simulatedStandalone = new MongoSimulator();

beforeAll(async () => {
  await simulatedReplicaSet.start();
  await simulatedStandalone.start();
});

afterAll(async () => {
  await simulatedReplicaSet.stop();
  await simulatedStandalone.stop();
});

const simulated = (name: string, simulator: MongoSimulator, transactions: boolean): Backend => ({
  name,
  transactions,
  url: () => simulator.url(),
  dropDatabase: () => Promise.resolve(), // the simulator's memory goes with the process
});

const realServer: Backend = {
  name: 'MongoDB',
  // The "transactions on" suite requires them: a standalone server fails it loudly at open.
  transactions: true,
  url: () => url!,
  async dropDatabase(name) {
    const admin = new MongoClient(url!, { serverSelectionTimeoutMS: 5_000 });
    try {
      await admin.db(name).dropDatabase();
    } finally {
      await admin.close();
    }
  },
};

const databaseName = (): string => `webhook_registry_contract_${randomUUID().replaceAll('-', '').slice(0, 16)}`;

function factory(backend: Backend, transactions: boolean | undefined): ReadModelFactory {
  return async () => {
    const database = databaseName();
    const readModel = await openMongoReadModel({
      url: backend.url(),
      database,
      dropGraceMs: 0,
      ...(transactions === undefined ? {} : { transactions }),
    });
    // The suite tests the path it names, never silently the other one.
    expect(readModel.transactions, 'transactions used').toBe(transactions ?? backend.transactions);
    return {
      readModel,
      async cleanup() {
        await readModel.close();
        await backend.dropDatabase(database);
      },
    };
  };
}

function contracts(backend: Backend): void {
  if (backend.transactions) {
    readModelContract(`${backend.name}, transactions on`, factory(backend, true));
    readModelContract(`${backend.name}, transactions off`, factory(backend, false));
  } else {
    readModelContract(`${backend.name} (no transactions: detected from hello)`, factory(backend, undefined));
  }
}

// ---- events ------------------------------------------------------------------------------

const ORG = '0a000000-0000-4000-8000-000000000001';
const P1 = 'a1000000-0000-4000-8000-000000000001';
const EXACT = 'kyc.verification.completed';
const wid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

/** Events with per-stream revisions and increasing positions, like a real log. */
class Log {
  private seq = 0n;
  private readonly revisions = new Map<string, number>();
  constructor(private readonly base = 1000n) {}

  registered(id: string, url = `https://hooks.example.com/${id}`): RecordedEvent {
    return this.record({
      type: 'WebhookRegistered',
      data: {
        webhookId: id,
        organizationId: ORG,
        url,
        events: [EXACT],
        partnerIds: null,
        authorizedPartnerIds: [P1],
        secret: { keyId: 'k1', iv: `iv-${id}`, ciphertext: `ct-${id}` },
        at: '2025-06-01T12:00:00.000Z',
      },
    });
  }

  paused(id: string): RecordedEvent {
    return this.record({ type: 'WebhookPaused', data: { webhookId: id, at: '2025-06-01T12:01:00.000Z' } });
  }

  /** Rotation n (secret n-1 → n) at minute n, the old secret kept for a day. */
  rotated(id: string, n: number): RecordedEvent {
    const sealed = (k: number) => ({ keyId: 'k1', iv: `iv-${id}-${k}`, ciphertext: `ct-${id}-${k}` });
    const at = new Date(Date.UTC(2025, 5, 1, 12, n)).toISOString();
    return this.record({
      type: 'WebhookSecretRotated',
      data: {
        webhookId: id,
        secret: sealed(n),
        previousSecret: sealed(n - 1),
        previousSecretExpiresAt: new Date(Date.parse(at) + 86_400_000).toISOString(),
        at,
      },
    });
  }

  private record(event: WebhookEvent): RecordedEvent {
    const id = event.data.webhookId;
    const revision = (this.revisions.get(id) ?? -1) + 1;
    this.revisions.set(id, revision);
    this.seq += 1n;
    const key = `key-${randomUUID()}`;
    return {
      streamId: webhookStreamName(id),
      revision,
      position: { commit: this.base + this.seq * 100n, prepare: this.base + this.seq * 100n - 7n },
      type: event.type,
      data: event.data,
      metadata: {
        actor: { clientId: 'contract-client', subject: 'service-account-contract' },
        organizationId: ORG,
        requestId: `req-${randomUUID()}`,
        idempotencyKeyHash: key,
        requestFingerprint: `fp-${key}`,
        occurredAt: '2025-06-01T12:00:00.000Z',
        previousHash: null,
        hash: `hash-${this.seq}`,
      },
    };
  }
}

const last = (events: readonly RecordedEvent[]): string => encodePosition(events[events.length - 1]!.position);

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

async function allIds(model: MongoReadModel): Promise<string[]> {
  const ids: string[] = [];
  for await (const view of model.allWebhooks()) ids.push(view.id);
  return ids;
}

/** The whole observable state, to compare "applied once" with "applied, then retried". */
async function snapshot(model: MongoReadModel): Promise<unknown> {
  const views = [];
  for await (const view of model.allWebhooks()) views.push(view);
  return { views, checkpoint: await model.checkpoint(), dispatch: await model.dispatchTargets(EXACT, P1) };
}

// ---- the engine's own cases -------------------------------------------------------------------

function engineCases(backend: Backend): void {
  describe(`MongoDB engine cases: ${backend.name}`, () => {
    const opened: MongoReadModel[] = [];
    const databases: string[] = [];

    afterEach(async () => {
      for (const model of opened.splice(0)) await model.close().catch(() => undefined);
      for (const name of databases.splice(0)) await backend.dropDatabase(name);
    });

    /** A model on `database` (a new one by default), optionally over a wrapped driver. */
    async function open(
      options: Partial<MongoReadModelOptions> & { database?: string; faults?: FaultyClient } = {},
    ): Promise<MongoReadModel> {
      const database = options.database ?? databaseName();
      if (!databases.includes(database)) databases.push(database);
      const { faults, ...rest } = options;
      const model = await openMongoReadModel({
        url: backend.url(),
        dropGraceMs: 0,
        ...rest,
        database,
        ...(faults ? { client: faults.client } : {}),
      });
      opened.push(model);
      return model;
    }

    /** A model whose driver reports every command it sends. */
    async function monitored(
      options: Partial<MongoReadModelOptions> & { url?: string } = {},
    ): Promise<{ model: MongoReadModel; commands: CommandStartedEvent[] }> {
      const client = createMongoClient(options.url ?? backend.url(), {}, { monitorCommands: true });
      const commands: CommandStartedEvent[] = [];
      client.on('commandStarted', (event) => commands.push(event));
      const model = await open({ ...options, client });
      return { model, commands };
    }

    it(`reports whether it uses transactions (${backend.transactions ? 'yes' : 'no'}) and really does`, async () => {
      const { model, commands } = await monitored();
      expect(model.transactions).toBe(backend.transactions);
      const log = new Log();
      await model.applyBatch([log.registered(wid(1)), log.registered(wid(2))], null);
      const committed = commands.filter((c) => c.commandName === 'commitTransaction').length;
      const started = commands.filter((c) => c.command.startTransaction === true).length;
      if (backend.transactions) {
        expect(committed).toBe(1);
        expect(started).toBe(1);
      } else {
        expect(committed + started).toBe(0);
        // Required but impossible: fails at open, naming the reason, instead of running without.
        const error = await rejection(open({ transactions: true }));
        expect((error as Error).message).toMatch(/standalone server.*cannot run multi-document transactions/);
      }
    });

    if (backend.transactions) {
      it('forced off, it sends no transaction at all', async () => {
        const { model, commands } = await monitored({ transactions: false });
        expect(model.transactions).toBe(false);
        const log = new Log();
        await model.applyBatch([log.registered(wid(1))], null);
        expect(commands.some((c) => c.commandName === 'commitTransaction' || c.command.startTransaction === true)).toBe(
          false,
        );
      });

      it('a rebuild page of 7 events with a limit of 2 per transaction commits 4 transactions', async () => {
        const { model, commands } = await monitored({ transactionLimits: { maxEvents: 2, maxBytes: 1 << 20 } });
        const log = new Log();
        const page = [1, 2, 3, 4, 5, 6, 7].map((n) => log.registered(wid(n)));
        const target = await model.beginRebuild();
        const before = commands.filter((c) => c.commandName === 'commitTransaction').length;
        await target.applyBatch(page, null);
        expect(commands.filter((c) => c.commandName === 'commitTransaction').length - before).toBe(4);
        await target.commit();
        expect(await model.checkpoint()).toBe(last(page));
        expect(await allIds(model)).toEqual(page.map((e) => (e.data as { webhookId: string }).webhookId));
      });
    }

    it('a document written before the list of previous secrets is read, dispatched and extended in today\'s shape', async () => {
      const database = databaseName();
      const model = await open({ database });
      const log = new Log();
      const first = [log.registered(wid(1)), log.rotated(wid(1), 1)];
      await model.applyBatch(first, null);
      const current = (await model.getWebhook(wid(1)))!;
      const kept = current.previousSecrets;
      expect(kept).toHaveLength(1);
      // Rewrite the stored document as the previous version wrote it: one previous secret in two fields.
      const raw = new MongoClient(backend.url(), { serverSelectionTimeoutMS: 5_000 });
      try {
        const names = (await raw.db(database).listCollections().toArray()).map((c) => c.name);
        const live = names.filter((n) => /^webhooks_v\d+$/.test(n));
        expect(live).toHaveLength(1);
        const updated = await raw
          .db(database)
          .collection<{ _id: string; [field: string]: unknown }>(live[0]!)
          .updateOne(
            { _id: wid(1) },
            {
              $set: { previousSecret: kept[0]!.secret, previousSecretExpiresAt: kept[0]!.expiresAt },
              $unset: { previousSecrets: '' },
            },
          );
        expect(updated.modifiedCount).toBe(1);
      } finally {
        await raw.close();
      }
      expect(await model.getWebhook(wid(1))).toEqual(current);
      expect((await model.dispatchTargets(EXACT, P1))[0]?.previousSecrets).toEqual(kept);
      // The next rotation inside the grace period keeps the legacy previous secret too.
      const second = [log.rotated(wid(1), 2)];
      await model.applyBatch(second, last(first));
      const after = (await model.getWebhook(wid(1)))!;
      expect(after.previousSecrets.map((p) => p.secret.ciphertext)).toEqual([`ct-${wid(1)}-1`, `ct-${wid(1)}-0`]);
    });

    it('a live batch over the byte budget is applied in steps that each move the checkpoint forward', async () => {
      const { model, commands } = await monitored({ transactionLimits: { maxEvents: 1_000, maxBytes: 1 } });
      const log = new Log();
      const batch = [log.registered(wid(1)), log.registered(wid(2)), log.paused(wid(1))];
      await model.applyBatch(batch, null);
      const checkpointWrites = commands.filter(
        (c) => c.commandName === 'update' && JSON.stringify(c.command.updates).includes('checkpoint_v'),
      );
      expect(checkpointWrites).toHaveLength(3);
      expect(await model.checkpoint()).toBe(last(batch));
      expect((await model.getWebhook(wid(1)))?.status).toBe('PAUSED');
    });

    it('reads go to the primary with read concern majority even when MONGODB_URL routes them to secondaries', async () => {
      const separator = backend.url().includes('?') ? '&' : '?';
      const { model, commands } = await monitored({
        url: `${backend.url()}${separator}readPreference=secondary&readConcernLevel=local`,
      });
      const log = new Log();
      await model.applyBatch([log.registered(wid(1))], null);
      await model.getWebhook(wid(1));
      await model.listWebhooks({ organizationId: ORG, limit: 10 });
      await model.dispatchTargets(EXACT, P1);
      const finds = commands.filter((c) => c.commandName === 'find' && c.command.autocommit === undefined);
      expect(finds.length).toBeGreaterThanOrEqual(4);
      for (const find of finds) {
        const sent = find.command.$readPreference as { mode?: string } | undefined;
        expect(sent?.mode ?? 'primary', 'read preference sent').not.toMatch(/secondary/i);
        expect((find.command.readConcern as Document | undefined)?.level, 'read concern sent').toBe('majority');
        expect(find.command.maxTimeMS, 'server-side time limit').toBe(5_000);
      }
    });

    it('two concurrent rebuilds: the second is refused, the first commits, the live set survives throughout', async () => {
      const database = databaseName();
      const a = await open({ database });
      const b = await open({ database });
      const old = new Log(900_000n);
      const live = [old.registered(wid(1)), old.registered(wid(2))];
      await a.applyBatch(live, null);

      const first = await a.beginRebuild();
      const results = await Promise.allSettled([b.beginRebuild(), b.beginRebuild(), a.beginRebuild()]);
      for (const result of results) {
        expect(result.status).toBe('rejected');
        if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(ReadModelBusyError);
      }
      // Neither the live set nor the first rebuild's set was dropped by the refused ones.
      expect(await allIds(b)).toEqual([wid(1), wid(2)]);
      const log = new Log();
      const rebuilt = [log.registered(wid(1), 'https://hooks.example.com/rebuilt'), log.registered(wid(3))];
      await first.applyBatch(rebuilt, null);
      await first.commit();
      expect(await allIds(b)).toEqual([wid(1), wid(3)]);
      expect((await b.getWebhook(wid(1)))?.url).toBe('https://hooks.example.com/rebuilt');
      expect(await b.checkpoint()).toBe(last(rebuilt));

      // The lease is released: the next rebuild may start (and finds the live set intact).
      const next = await b.beginRebuild();
      await next.abort();
      expect(await allIds(a)).toEqual([wid(1), wid(3)]);
    });

    it('a reset during a rebuild is refused; the rebuild commits; a reset afterwards works', async () => {
      const database = databaseName();
      const a = await open({ database });
      const b = await open({ database });
      const old = new Log(900_000n);
      await a.applyBatch([old.registered(wid(1))], null);
      const target = await a.beginRebuild();
      expect(await rejection(b.reset())).toBeInstanceOf(ReadModelBusyError);
      expect(await allIds(b)).toEqual([wid(1)]);
      const log = new Log();
      const rebuilt = [log.registered(wid(2))];
      await target.applyBatch(rebuilt, null);
      await target.commit();
      expect(await allIds(b)).toEqual([wid(2)]);
      await b.reset();
      expect(await allIds(a)).toEqual([]);
      expect(await a.checkpoint()).toBeNull();
    });

    it('a rebuild that stalls past its lease is taken over; its switch is refused and its abort drops nothing live', async () => {
      const database = databaseName();
      // A stalled process: its lease renewals never reach the server.
      const stalled = faultyClient(backend.url());
      stalled.add({
        collection: 'meta',
        method: 'updateOne',
        when: (args) => JSON.stringify(args[1]).includes('lease.expiresAt'),
        effect: 'skip',
        result: { acknowledged: true, matchedCount: 1, modifiedCount: 1, upsertedCount: 0, upsertedId: null },
        times: Number.POSITIVE_INFINITY,
      });
      const a = await open({ database, faults: stalled, leaseTtlMs: 300 });
      const b = await open({ database });
      const old = new Log(900_000n);
      await b.applyBatch([old.registered(wid(1))], null);

      const slow = await a.beginRebuild();
      const mine = new Log();
      await slow.applyBatch([mine.registered(wid(7))], null);
      expect(await rejection(b.beginRebuild())).toBeInstanceOf(ReadModelBusyError);
      await sleep(400); // past the 300 ms lease

      const takeover = await b.beginRebuild();
      const theirs = new Log();
      const rebuilt = [theirs.registered(wid(2))];
      await takeover.applyBatch(rebuilt, null);
      const lost = await rejection(slow.commit());
      expect(lost).toBeInstanceOf(RebuildLeaseLostError);
      expect((lost as Error).message).toContain('taken over');
      await slow.abort();
      expect(await allIds(b)).toEqual([wid(1)]); // still the live set
      await takeover.commit();
      expect(await allIds(a)).toEqual([wid(2)]);
      expect(await a.checkpoint()).toBe(last(rebuilt));
    });

    it('the answer to a batch is lost: the caller sees StoreUnavailableError; the retry of the same batch applies nothing twice', async () => {
      const database = databaseName();
      const reference = await open({ database: databaseName() });
      const faults = faultyClient(backend.url());
      const model = await open({ database, faults });
      const log = new Log();
      const first = [log.registered(wid(1)), log.registered(wid(2))];
      const batch = [log.paused(wid(1)), log.registered(wid(3))];
      for (const m of [model, reference]) await m.applyBatch(first, null);
      await reference.applyBatch(batch, last(first));

      // The commit (with transactions) or the checkpoint write (without) lands, its answer does not.
      faults.add(
        model.transactions
          ? { method: 'commitTransaction', effect: 'lose-answer' }
          : {
              collection: 'meta',
              method: 'updateOne',
              when: (args) => JSON.stringify(args[0]).includes('checkpoint_v'),
              effect: 'lose-answer',
            },
      );
      const error = await rejection(model.applyBatch(batch, last(first)));
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(faults.hits).toHaveLength(1);

      // The projector retries the same batch: the checkpoint compare-and-set says it landed.
      const retry = await rejection(model.applyBatch(batch, last(first)));
      expect(retry).toBeInstanceOf(CheckpointConflictError);
      expect((retry as CheckpointConflictError).actual).toBe(last(batch));
      expect(await snapshot(model)).toEqual(await snapshot(reference));
    });

    it('the answer to the document writes is lost before the checkpoint moved: the retry completes the batch once', async () => {
      const reference = await open();
      const faults = faultyClient(backend.url());
      // Without transactions the documents are written before the checkpoint.
      const model = await open({ faults, transactions: false });
      const log = new Log();
      const first = [log.registered(wid(1))];
      const batch = [log.paused(wid(1)), log.registered(wid(2))];
      for (const m of [model, reference]) await m.applyBatch(first, null);
      await reference.applyBatch(batch, last(first));

      faults.add({ collection: /^webhooks_v/, method: 'bulkWrite', effect: 'lose-answer' });
      expect(await rejection(model.applyBatch(batch, last(first)))).toBeInstanceOf(StoreUnavailableError);
      expect(await model.checkpoint()).toBe(last(first));
      await model.applyBatch(batch, last(first)); // the revision guard skips what landed
      expect(await snapshot(model)).toEqual(await snapshot(reference));
    });

    it("a lost answer to a rebuild's switch: abort sees the switch landed and keeps the new live set", async () => {
      const database = databaseName();
      const faults = faultyClient(backend.url());
      const model = await open({ database, faults });
      const old = new Log(900_000n);
      await model.applyBatch([old.registered(wid(1))], null);
      const target = await model.beginRebuild();
      const log = new Log();
      const rebuilt = [log.registered(wid(2))];
      await target.applyBatch(rebuilt, null);
      faults.add({
        collection: 'meta',
        method: 'updateOne',
        when: (args) => JSON.stringify(args[1]).includes('"$unset"') && JSON.stringify(args[0]).includes('lease.owner'),
        effect: 'lose-answer',
      });
      expect(await rejection(target.commit())).toBeInstanceOf(StoreUnavailableError);
      await target.abort(); // what rebuildReadModel does after a failed commit
      expect(await allIds(model)).toEqual([wid(2)]);
      expect(await model.checkpoint()).toBe(last(rebuilt));
      const next = await model.beginRebuild(); // and the lease is free
      await next.abort();
    });
  });
}

// ---- the suites ------------------------------------------------------------------------------

// Skipped only when no MongoDB server is configured: the server cannot be
// installed on the build machines (not in Debian, no Docker engine). The banner
// above makes the skip loud; a skipped suite is reported as skipped, never passed.
describe.skipIf(!url)('MongoDB engine (real server)', () => {
  contracts(realServer);
  engineCases(realServer);
});

describe('MongoDB engine (simulated replica set)', () => {
  const backend = simulated('simulated replica set', simulatedReplicaSet, true);
  contracts(backend);
  engineCases(backend);
});

describe('MongoDB engine (simulated standalone server)', () => {
  const backend = simulated('simulated standalone', simulatedStandalone, false);
  contracts(backend);
  engineCases(backend);
});

// ---- no server, or a server that stops answering ------------------------------------------

/** The time a call may take before it counts as hanging, for timeouts of `ms` (retries included). */
const hangBound = (ms: number): number => ms * 10;

describe('MongoDB read model without a usable server', () => {
  const timeouts = { serverSelectionTimeoutMS: 500, connectTimeoutMS: 500, socketTimeoutMS: 500 };

  it('open fails fast with a StoreUnavailableError that does not leak credentials', async () => {
    const started = Date.now();
    const error = await rejection(
      openMongoReadModel({
        url: 'mongodb://app:sup3r-s3cret@127.0.0.1:1/registry?replicaSet=rs0',
        serverSelectionTimeoutMS: 1_000,
      }),
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain('cannot be reached');
    expect((error as Error).message).not.toContain('sup3r-s3cret');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rejects a malformed URL without quoting its credentials', async () => {
    const error = await rejection(openMongoReadModel({ url: 'mongodb://app:pw-123@[not-a-host' }));
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain('MONGODB_URL');
    expect((error as Error).message).not.toContain('pw-123');
  });

  it('a server that accepts connections and never answers: open rejects with StoreUnavailableError', async () => {
    const silent = await startSilentListener();
    try {
      const started = Date.now();
      const error = await rejection(openMongoReadModel({ url: silent.url, ...timeouts }));
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(hangBound(500));
    } finally {
      await silent.close();
    }
  });

  it('a server that goes silent after open: ping, queries, batches and rebuilds reject instead of hanging', async () => {
    const simulator = new MongoSimulator({ replicaSet: 'rs0' });
    await simulator.start();
    const model = await openMongoReadModel({ url: simulator.url(), database: databaseName(), ...timeouts });
    try {
      const log = new Log();
      await model.applyBatch([log.registered(wid(1))], null);
      simulator.hang = true;
      const calls: [string, () => Promise<unknown>][] = [
        ['ping', () => model.ping()],
        ['checkpoint', () => model.checkpoint()],
        ['getWebhook', () => model.getWebhook(wid(1))],
        ['listWebhooks', () => model.listWebhooks({ organizationId: ORG, limit: 10 })],
        ['dispatchTargets', () => model.dispatchTargets(EXACT, P1)],
        ['applyBatch', () => model.applyBatch([log.paused(wid(1))], null)],
        ['beginRebuild', () => model.beginRebuild()],
      ];
      for (const [name, call] of calls) {
        const started = Date.now();
        const error = await rejection(call());
        expect(error, name).toBeInstanceOf(StoreUnavailableError);
        expect(Date.now() - started, `${name} gave up`).toBeLessThan(hangBound(500));
      }
    } finally {
      await model.close().catch(() => undefined);
      await simulator.stop();
    }
  }, 60_000);
});
