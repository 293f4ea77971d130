// The EventStoreDB engine under faults, simulated where the engine meets the
// client (no EventStoreDB server can run on the build machines):
//
// 1. The real client against listeners that are not a working server (silent
//    TCP, garbage, reset, an HTTP/2 server whose gRPC calls hang): every call
//    fails with StoreUnavailableError within its time limit, cancelled calls
//    really end on the server side, and close() lets go of the connection.
// 2. The client's calls wrapped with faults (an append that lands but loses
//    its answer, one that never answers, a subscription that drops
//    mid-stream, a refused user). The wrapped client is the real
//    EventStoreDBClient against EVENTSTORE_URL when it is set — the same cases
//    then run against the real server — else the in-memory simulation
//    (test/support/esdbSimulation.ts), which proves the engine's logic only.
import { randomUUID } from 'node:crypto';
import { EventStoreDBClient } from '@eventstore/db-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { EsdbEventStore, isValidNamespace, openEsdbEventStore } from '../../src/stores/esdb/esdbEventStore.ts';
import { esdbEventId } from '../../src/stores/esdb/eventIds.ts';
import {
  AppendOutcomeUnknownError,
  comparePositions,
  StoreAccessDeniedError,
  StoreUnavailableError,
  WEBHOOK_STREAM_PREFIX,
  type EventStore,
  type Position,
  type RecordedEvent,
} from '../../src/stores/eventStore.ts';
import {
  faultyClient,
  newFaultLog,
  startBrokenListener,
  startHungGrpcServer,
  type Faults,
  type FaultLog,
  type Listener,
} from '../support/esdbFaults.ts';
import { SimulatedServer } from '../support/esdbSimulation.ts';
import { makeEvent } from './eventStore.contract.ts';

const url = process.env.EVENTSTORE_URL || undefined;
const RUN_NAMESPACE = `f${randomUUID().replaceAll('-', '').slice(0, 12)}-`;
/** The engine's time limit on one call in these tests. */
const TIMEOUT_MS = 400;
/** Generous: a call bounded by TIMEOUT_MS must have failed long before this. */
const BOUND_MS = TIMEOUT_MS + 4_000;

const newStream = (): string => `${WEBHOOK_STREAM_PREFIX}${randomUUID()}`;

async function rejection(work: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  const error = await work().then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, ms: Date.now() - started };
}

async function eventually(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
}

/** The first batch of a subscription, or its error. */
async function firstOf(store: EventStore): Promise<unknown> {
  const controller = new AbortController();
  try {
    for await (const batch of store.subscribe({ signal: controller.signal })) return batch;
    return undefined;
  } finally {
    controller.abort();
  }
}

// ---- 1. the real client against broken servers -----------------------------------------

describe.each([
  ['accepts TCP and never answers', () => startBrokenListener('silent')],
  ['answers garbage', () => startBrokenListener('garbage')],
  ['resets the connection', () => startBrokenListener('reset')],
  ['speaks HTTP/2 but never answers a gRPC call', () => startHungGrpcServer('hang')],
  ['answers server features, then hangs every call', () => startHungGrpcServer('batch-append')],
])('EventStoreDB engine against a server that %s', (_name, start) => {
  let listener: Listener;
  let store: EsdbEventStore;
  const unreachable: Error[] = [];

  beforeAll(async () => {
    listener = await start();
    store = await openEsdbEventStore({
      connectionString: listener.url,
      timeoutMs: TIMEOUT_MS,
      onUnreachable: (e) => unreachable.push(e),
    });
  });
  afterAll(async () => {
    await store.close();
    await listener.close();
  });

  it('opens (reporting the server unreachable) instead of hanging', () => {
    expect(unreachable).toHaveLength(1);
    expect(unreachable[0]).toBeInstanceOf(StoreUnavailableError);
    expect(unreachable[0]!.message).toContain('cannot be reached');
  });

  it.each([
    ['readStream', (s: EventStore) => s.readStream(newStream())],
    ['readAll', (s: EventStore) => s.readAll({ limit: 10 })],
    ['headPosition', (s: EventStore) => s.headPosition()],
    ['ping', (s: EventStore) => s.ping()],
    ['append', (s: EventStore) => { const id = newStream(); return s.append(id, [makeEvent(id)], 'no_stream'); }],
    ['subscribe', (s: EventStore) => firstOf(s)],
  ])('%s rejects with StoreUnavailableError within its time limit', async (_op, call) => {
    const { error, ms } = await rejection(() => call(store));
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(ms).toBeLessThan(BOUND_MS);
  });
});

describe('EventStoreDB engine against a hung gRPC server: nothing is left running', () => {
  it('timed-out reads, pings and subscriptions cancel their gRPC calls (no pile-up)', async () => {
    const server = await startHungGrpcServer('batch-append');
    const store = await openEsdbEventStore({ connectionString: server.url, timeoutMs: TIMEOUT_MS, onUnreachable: () => undefined });
    try {
      const results = await Promise.all([
        ...Array.from({ length: 10 }, () => rejection(() => store.ping())),
        ...Array.from({ length: 5 }, () => rejection(() => store.readStream(newStream()))),
        ...Array.from({ length: 5 }, () => rejection(() => store.readAll({ limit: 5 }))),
        rejection(() => firstOf(store)),
      ]);
      for (const { error } of results) expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(server.calls('Read')).toBeGreaterThanOrEqual(21);
      await eventually(() => server.openCalls('Read') === 0);
      expect(server.openCalls('Read')).toBe(0);
    } finally {
      await store.close();
      await server.close();
    }
  });

  it('an append that gets no answer has an unknown outcome, and its connection is replaced', async () => {
    const server = await startHungGrpcServer('batch-append');
    const store = await openEsdbEventStore({ connectionString: server.url, timeoutMs: TIMEOUT_MS, onUnreachable: () => undefined });
    try {
      const s = newStream();
      const { error, ms } = await rejection(() => store.append(s, [makeEvent(s)], 'no_stream'));
      expect(error).toBeInstanceOf(AppendOutcomeUnknownError);
      expect(error).toBeInstanceOf(StoreUnavailableError); // so HTTP answers 503
      expect((error as Error).message).toContain('may or may not have been written');
      expect(ms).toBeLessThan(BOUND_MS);
      expect(server.calls('BatchAppend')).toBe(1);
      // The replaced client was disposed: its batch-append stream is cancelled on the server.
      await eventually(() => server.openCalls('BatchAppend') === 0);
      expect(server.openCalls('BatchAppend')).toBe(0);
    } finally {
      await store.close();
      await server.close();
    }
  });

  it('an append to an older server (plain append, no server features) also times out as unknown', async () => {
    const server = await startHungGrpcServer('unimplemented');
    const store = await openEsdbEventStore({ connectionString: server.url, timeoutMs: TIMEOUT_MS, onUnreachable: () => undefined });
    try {
      const s = newStream();
      const { error } = await rejection(() => store.append(s, [makeEvent(s)], 'no_stream'));
      expect(error).toBeInstanceOf(AppendOutcomeUnknownError);
      expect(server.calls('Append')).toBe(1);
      await eventually(() => server.openCalls('Append') === 0);
      expect(server.openCalls('Append')).toBe(0);
    } finally {
      await store.close();
      await server.close();
    }
  });

  it('appends while the server-features call hangs are not sent and do not pile up', async () => {
    const server = await startHungGrpcServer('hang');
    const store = await openEsdbEventStore({ connectionString: server.url, timeoutMs: TIMEOUT_MS, onUnreachable: () => undefined });
    try {
      const results = await Promise.all(
        Array.from({ length: 5 }, () => {
          const s = newStream();
          return rejection(() => store.append(s, [makeEvent(s)], 'no_stream'));
        }),
      );
      for (const { error } of results) {
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(error).not.toBeInstanceOf(AppendOutcomeUnknownError); // nothing was sent
      }
      expect(server.calls('BatchAppend') + server.calls('Append')).toBe(0);
    } finally {
      await store.close();
      await server.close();
    }
  });

  it('close() closes the connection to the server, not only its calls', async () => {
    const server = await startHungGrpcServer('batch-append');
    const store = await openEsdbEventStore({ connectionString: server.url, timeoutMs: TIMEOUT_MS, onUnreachable: () => undefined });
    await rejection(() => store.readAll({ limit: 1 }));
    expect(server.openSessions()).toBe(1);
    await store.close();
    await eventually(() => server.openSessions() === 0);
    expect(server.openSessions()).toBe(0);
    await server.close();
  });
});

// ---- 2. faults in the client's calls, against the real server or the simulation ----------

const engine = url ? `EventStoreDB at ${url.replace(/\/\/[^@/?#]*@/, '//***@')}` : 'the simulated client (engine logic only)';

describe(`EventStoreDB engine with faults injected into the client's calls, over ${engine}`, () => {
  const sim = new SimulatedServer({ reportFirstPosition: true });
  const base = (): EventStoreDBClient => (url ? EventStoreDBClient.connectionString(url) : sim.client());
  const timeoutMs = url ? 3_000 : TIMEOUT_MS;
  const stores: EsdbEventStore[] = [];
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });

  async function open(faults: Faults, log: FaultLog = newFaultLog()): Promise<EsdbEventStore> {
    const store = await openEsdbEventStore({
      connectionString: url ?? 'esdb://simulated:2113?tls=false',
      namespace: RUN_NAMESPACE,
      timeoutMs,
      createClient: () => faultyClient(base(), faults, log),
    });
    stores.push(store);
    return store;
  }

  it('an append whose answer is lost: unknown outcome, and the retry is recognised by its deterministic ids', async () => {
    const log = newFaultLog();
    const store = await open({ append: (n) => (n === 0 ? 'lose-answer' : undefined) }, log);
    const s = newStream();
    const events = [makeEvent(s), makeEvent(s)];

    const first = await rejection(() => store.append(s, events, 'no_stream'));
    expect(first.error).toBeInstanceOf(AppendOutcomeUnknownError);
    // The same request again: the server already has it and must not write it twice.
    const retry = await store.append(s, events, 'no_stream');
    expect(retry.nextRevision).toBe(1);

    expect(log.appends).toHaveLength(2);
    expect(log.appends[1]!.eventIds).toEqual(log.appends[0]!.eventIds);
    expect(log.appends[0]!.eventIds).toEqual(events.map((e) => esdbEventId(e)));
    const stored = await store.readStream(s);
    expect(stored.map((e) => e.revision)).toEqual([0, 1]);
    expect(stored.map((e) => e.metadata.hash)).toEqual(events.map((e) => e.metadata.hash));
  });

  it('an append that lands but never answers fails within its time limit; the retry finds it', async () => {
    const log = newFaultLog();
    const store = await open({ append: (n) => (n === 0 ? 'hang-after-write' : undefined) }, log);
    const s = newStream();
    const events = [makeEvent(s)];
    const first = await rejection(() => store.append(s, events, 'no_stream'));
    expect(first.error).toBeInstanceOf(AppendOutcomeUnknownError);
    expect(first.ms).toBeLessThan(timeoutMs + 4_000);
    const retry = await store.append(s, events, 'no_stream');
    expect(retry.nextRevision).toBe(0);
    expect(log.appends[1]!.eventIds).toEqual(log.appends[0]!.eventIds);
    expect(await store.readStream(s)).toHaveLength(1);
  });

  it('a retry after a lost answer with different events is a conflict, not a silent duplicate', async () => {
    const store = await open({ append: (n) => (n === 0 ? 'lose-answer' : undefined) });
    const s = newStream();
    await rejection(() => store.append(s, [makeEvent(s)], 'no_stream'));
    const other = await rejection(() => store.append(s, [makeEvent(s)], 'no_stream'));
    expect((other.error as Error).name).toBe('StreamConflictError');
    expect(await store.readStream(s)).toHaveLength(1);
  });

  it('an append that landed is not reported failed when reading back its position fails', async () => {
    const store = await open({ failReadStream: () => true });
    const s = newStream();
    const result = await store.append(s, [makeEvent(s), makeEvent(s), makeEvent(s)], 'no_stream');
    expect(result.nextRevision).toBe(2);
    expect(result.position.commit).toBeGreaterThanOrEqual(0n);
  });

  it('a subscription that drops mid-stream resumes after the last event delivered: no gap, no duplicate', async () => {
    const log = newFaultLog();
    const store = await open({ dropSubscriptionAfter: (n) => (n < 3 ? 2 : undefined) }, log);
    const before = await appendOne(store);
    const streams = Array.from({ length: 4 }, () => newStream());
    const appended: Position[] = [];
    for (const s of streams) appended.push((await store.append(s, [makeEvent(s), makeEvent(s)], 'no_stream')).position);

    const received = await collect(store, before, 8);
    expect(received.map((e) => `${e.streamId}@${e.revision}`)).toEqual(streams.flatMap((s) => [`${s}@0`, `${s}@1`]));
    expectIncreasing(received.map((e) => e.position));
    expect(log.droppedSubscriptions).toBe(3);
  });

  it('a resubscription that fails surfaces as StoreUnavailableError; resuming from the checkpoint misses nothing', async () => {
    const log = newFaultLog();
    // The first subscription drops after 3 events; the second fails before the server confirms it.
    const store = await open({ dropSubscriptionAfter: (n) => (n === 0 ? 3 : undefined), failSubscription: (n) => n === 1 }, log);
    const before = await appendOne(store);
    const streams = Array.from({ length: 3 }, () => newStream());
    for (const s of streams) await store.append(s, [makeEvent(s), makeEvent(s)], 'no_stream');

    // A consumer that keeps its own checkpoint, as the projector does.
    let checkpoint = before;
    const received: RecordedEvent[] = [];
    const failures: unknown[] = [];
    while (received.length < 6) {
      const controller = new AbortController();
      try {
        for await (const batch of store.subscribe({ after: checkpoint, signal: controller.signal })) {
          received.push(...batch);
          checkpoint = batch[batch.length - 1]!.position;
          if (received.length >= 6) controller.abort();
        }
      } catch (error) {
        failures.push(error);
        if (failures.length > 3) break;
      }
    }
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(StoreUnavailableError);
    expect(received.map((e) => `${e.streamId}@${e.revision}`)).toEqual(streams.flatMap((s) => [`${s}@0`, `${s}@1`]));
  });

  it('a refused user is a StoreAccessDeniedError naming what to grant, at open and on every call', async () => {
    const unreachable: unknown[] = [];
    const atOpen = await rejection(() =>
      openEsdbEventStore({
        connectionString: 'esdb://registry:sup3r-s3cret@127.0.0.1:2113?tls=false',
        timeoutMs,
        createClient: () => faultyClient(base(), { accessDenied: true }),
        onUnreachable: (e) => unreachable.push(e), // not an outage: open fails all the same
      }),
    );
    expect(atOpen.error).toBeInstanceOf(StoreAccessDeniedError);
    expect((atOpen.error as Error).message).toContain('refused access');
    expect((atOpen.error as Error).message).toContain('read on $all');
    expect((atOpen.error as Error).message).not.toContain('cannot be reached');
    expect((atOpen.error as Error).message).not.toContain('sup3r-s3cret');
    expect(unreachable).toEqual([]);

    const store = new EsdbEventStore(() => faultyClient(base(), { accessDenied: true }), { timeoutMs, namespace: RUN_NAMESPACE });
    stores.push(store);
    const s = newStream();
    for (const call of [
      () => store.append(s, [makeEvent(s)], 'no_stream'),
      () => store.readStream(s),
      () => store.readAll({ limit: 1 }),
      () => store.ping(),
      () => firstOf(store),
    ]) {
      const { error } = await rejection(call);
      expect(error).toBeInstanceOf(StoreAccessDeniedError);
      expect(error).not.toBeInstanceOf(AppendOutcomeUnknownError);
    }
  });

  async function appendOne(store: EventStore): Promise<Position> {
    const s = newStream();
    return (await store.append(s, [makeEvent(s)], 'no_stream')).position;
  }

  async function collect(store: EventStore, after: Position, count: number): Promise<RecordedEvent[]> {
    const controller = new AbortController();
    const received: RecordedEvent[] = [];
    const timer = setTimeout(() => controller.abort(), 20_000);
    try {
      for await (const batch of store.subscribe({ after, signal: controller.signal })) {
        received.push(...batch);
        if (received.length >= count) break;
      }
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    return received;
  }
});

function expectIncreasing(positions: readonly Position[]): void {
  for (let i = 1; i < positions.length; i++) expect(comparePositions(positions[i - 1]!, positions[i]!)).toBe(-1);
}

// ---- namespaces ---------------------------------------------------------------------------

describe('EventStoreDB namespaces cannot collide', () => {
  it('a namespace containing "webhook-" is refused by the engine and by the configuration', () => {
    const sim = new SimulatedServer();
    for (const namespace of ['webhook-', 'webhook-a-', 'a-webhook-b', 'tenant-webhook-']) {
      expect(isValidNamespace(namespace)).toBe(false);
      expect(() => new EsdbEventStore(sim.client(), { namespace })).toThrow(TypeError);
      expect(() => loadConfig({ EVENTSTORE_URL: 'esdb://localhost:2113?tls=false', EVENTSTORE_NAMESPACE: namespace })).toThrow(
        /EVENTSTORE_NAMESPACE/,
      );
    }
    for (const namespace of ['', 'tenant1-', 'webhook', 'webhooks_', 'a-b-']) expect(isValidNamespace(namespace)).toBe(true);
  });

  it('no allowed namespace puts its streams under another registry’s prefix (exhaustive over tricky pieces)', () => {
    const pieces = ['', 'a', '-', 'w', 'web', 'hook', 'webhook', 'webhook-', 'hook-', 'k-', 'webhoo'];
    const names = new Set<string>();
    for (const a of pieces) for (const b of pieces) for (const c of pieces) names.add(a + b + c);
    const allowed = [...names].filter(isValidNamespace);
    expect(allowed.length).toBeGreaterThan(100);
    const collisions: string[] = [];
    for (const mine of allowed) {
      const myPrefix = `${mine}${WEBHOOK_STREAM_PREFIX}`;
      for (const theirs of allowed) {
        // Any stream of theirs: their prefix then a webhook id.
        if (theirs !== mine && `${theirs}${WEBHOOK_STREAM_PREFIX}0b1c`.startsWith(myPrefix)) collisions.push(`${mine} / ${theirs}`);
      }
    }
    expect(collisions).toEqual([]);
    // And the rule is what makes it hold: `webhook-x-` would read as the un-namespaced registry's.
    expect(`webhook-x-${WEBHOOK_STREAM_PREFIX}0b1c`.startsWith(WEBHOOK_STREAM_PREFIX)).toBe(true);
  });

  it('with EVENTSTORE_NAMESPACE allowed, the two registries over one log see only their own streams', async () => {
    const server = new SimulatedServer();
    const plain = new EsdbEventStore(server.client());
    const tenant = new EsdbEventStore(server.client(), { namespace: 'webhook' }); // allowed: no "webhook-"
    const a = newStream();
    const b = newStream();
    await plain.append(a, [makeEvent(a)], 'no_stream');
    await tenant.append(b, [makeEvent(b)], 'no_stream');
    expect((await plain.readAll({ limit: 10 })).map((e) => e.streamId)).toEqual([a]);
    expect((await tenant.readAll({ limit: 10 })).map((e) => e.streamId)).toEqual([b]);
  });
});
