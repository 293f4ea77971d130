// The event store contract: every engine (sqlite/, esdb/) must pass it.
// Written once and parameterized by a factory, so the embedded engine and
// EventStoreDB are held to exactly the same rules (DESIGN.md §4).
//
// Every test uses fresh `webhook-<uuid>` streams and never assumes the log is
// empty, so the suite also runs against a shared, long-lived server. Global
// checks (positions, readAll, subscribe) filter to the streams the test wrote.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  comparePositions,
  StreamConflictError,
  WEBHOOK_STREAM_PREFIX,
  type EventMetadata,
  type EventStore,
  type NewEvent,
  type Position,
  type RecordedEvent,
} from '../../src/stores/eventStore.ts';

export interface EventStoreHandle {
  readonly store: EventStore;
  cleanup(): Promise<void>;
}

export type EventStoreFactory = () => Promise<EventStoreHandle>;

/** How long a test waits for a subscription to deliver before failing. */
const DELIVERY_TIMEOUT_MS = 10_000;

// ---- builders -----------------------------------------------------------------

function newStreamId(): string {
  return `${WEBHOOK_STREAM_PREFIX}${randomUUID()}`;
}

let counter = 0;

/** An event with valid-looking metadata; the hashes are not real (the store does not check them). */
export function makeEvent(streamId: string, type = 'WebhookPaused', extra: Record<string, unknown> = {}): NewEvent {
  counter += 1;
  const webhookId = streamId.slice(WEBHOOK_STREAM_PREFIX.length);
  const metadata: EventMetadata = {
    actor: { clientId: 'contract-client', subject: 'service-account-contract' },
    organizationId: '6f1c2a9e-3b7d-4c1e-9a55-0d2f8e7b1c01',
    requestId: `req-${randomUUID()}`,
    idempotencyKeyHash: counter % 3 === 0 ? null : hex(counter, 64),
    requestFingerprint: counter % 3 === 0 ? null : hex(counter + 7, 64),
    occurredAt: new Date(Date.UTC(2025, 0, 1, 0, 0, counter % 60)).toISOString(),
    previousHash: counter % 2 === 0 ? null : hex(counter + 11, 64),
    hash: hex(counter + 13, 64),
  };
  return {
    type,
    data: { webhookId, at: metadata.occurredAt, n: counter, nested: { list: [1, 'two', null], flag: true }, ...extra },
    metadata,
  };
}

function hex(seed: number, length: number): string {
  return seed.toString(16).padStart(8, '0').repeat(Math.ceil(length / 8)).slice(0, length);
}

function events(streamId: string, n: number): NewEvent[] {
  return Array.from({ length: n }, () => makeEvent(streamId));
}

// ---- helpers --------------------------------------------------------------------

function expectIncreasing(positions: readonly Position[]): void {
  for (let i = 1; i < positions.length; i++) {
    expect(comparePositions(positions[i - 1]!, positions[i]!), `position ${i} must follow position ${i - 1}`).toBe(-1);
  }
}

async function expectConflict(
  promise: Promise<unknown>,
  streamId: string,
  actual: number | 'no_stream',
): Promise<StreamConflictError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StreamConflictError);
  const conflict = error as StreamConflictError;
  expect(conflict.streamId).toBe(streamId);
  expect(conflict.actual).toBe(actual);
  return conflict;
}

/** Reads every page after `after` with the given page size, keeping only `streams`. */
async function readAllPages(
  store: EventStore,
  after: Position | undefined,
  limit: number,
  streams: ReadonlySet<string>,
  expectedCount: number,
): Promise<{ ours: RecordedEvent[]; pages: RecordedEvent[][] }> {
  const ours: RecordedEvent[] = [];
  const pages: RecordedEvent[][] = [];
  let cursor = after;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await store.readAll({ after: cursor, limit });
    if (page.length === 0) break;
    pages.push(page);
    ours.push(...page.filter((e) => streams.has(e.streamId)));
    cursor = page[page.length - 1]!.position;
    if (ours.length >= expectedCount && page.length < limit) break;
  }
  return { ours, pages };
}

interface Collector {
  readonly received: RecordedEvent[];
  readonly batches: RecordedEvent[][];
  /** Resolves once the subscription loop has ended (normally, after abort). */
  readonly done: Promise<void>;
  waitFor(count: number): Promise<void>;
}

/** Runs a subscription in the background, collecting the events of `streams`. */
function collect(
  store: EventStore,
  after: Position | undefined,
  signal: AbortSignal,
  streams: ReadonlySet<string>,
): Collector {
  const received: RecordedEvent[] = [];
  const batches: RecordedEvent[][] = [];
  const done = (async () => {
    for await (const batch of store.subscribe({ after, signal })) {
      batches.push(batch);
      received.push(...batch.filter((e) => streams.has(e.streamId)));
    }
  })();
  // Surface a failing loop through waitFor/done, never as an unhandled rejection.
  done.catch(() => undefined);
  return {
    received,
    batches,
    done,
    async waitFor(count: number): Promise<void> {
      const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
      let finished = false;
      void done.then(
        () => (finished = true),
        () => (finished = true),
      );
      while (received.length < count) {
        if (finished) {
          await done; // rethrows the loop's error, if any
          throw new Error(`subscription ended after ${received.length} of ${count} events`);
        }
        if (Date.now() > deadline) throw new Error(`timed out with ${received.length} of ${count} events delivered`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const ids = (list: readonly RecordedEvent[]): string[] => list.map((e) => `${e.streamId}@${e.revision}`);

// ---- the contract -------------------------------------------------------------------

export function eventStoreContract(name: string, factory: EventStoreFactory): void {
  describe(`EventStore contract: ${name}`, () => {
    let handle: EventStoreHandle;
    let store: EventStore;

    beforeEach(async () => {
      handle = await factory();
      store = handle.store;
    });

    afterEach(async () => {
      await handle.cleanup();
    });

    describe('append and readStream', () => {
      it("appends to a new stream with 'no_stream', 0-based revisions", async () => {
        const s = newStreamId();
        const written = events(s, 3);
        const result = await store.append(s, written, 'no_stream');
        expect(result.nextRevision).toBe(2);

        const read = await store.readStream(s);
        expect(read.map((e) => e.revision)).toEqual([0, 1, 2]);
        expect(read.map((e) => e.streamId)).toEqual([s, s, s]);
        expectIncreasing(read.map((e) => e.position));
      });

      it('round-trips type, data and metadata exactly', async () => {
        const s = newStreamId();
        const written = [makeEvent(s, 'WebhookRegistered', { url: 'https://example.com/hook?q=1&r=ü' }), makeEvent(s)];
        await store.append(s, written, 'no_stream');
        const read = await store.readStream(s);
        expect(read).toHaveLength(2);
        read.forEach((e, i) => {
          expect(e.type).toBe(written[i]!.type);
          expect(e.data).toEqual(written[i]!.data);
          expect(e.metadata).toEqual(written[i]!.metadata);
        });
      });

      it("the append result's position is the position of the last event written", async () => {
        const s = newStreamId();
        const first = await store.append(s, events(s, 1), 'no_stream');
        const second = await store.append(s, events(s, 3), 0);
        const read = await store.readStream(s);
        expect(comparePositions(first.position, read[0]!.position)).toBe(0);
        expect(comparePositions(second.position, read[3]!.position)).toBe(0);
      });

      it('readStream of a missing stream is []', async () => {
        expect(await store.readStream(newStreamId())).toEqual([]);
      });

      it("'no_stream' on an existing stream conflicts with the actual revision and writes nothing", async () => {
        const s = newStreamId();
        await store.append(s, events(s, 2), 'no_stream');
        const conflict = await expectConflict(store.append(s, events(s, 1), 'no_stream'), s, 1);
        expect(conflict.expected).toBe('no_stream');
        expect(await store.readStream(s)).toHaveLength(2);
      });

      it('an exact expected revision appends; a stale or future one conflicts', async () => {
        const s = newStreamId();
        await store.append(s, events(s, 2), 'no_stream'); // revisions 0, 1
        const ok = await store.append(s, events(s, 1), 1);
        expect(ok.nextRevision).toBe(2);

        const stale = await expectConflict(store.append(s, events(s, 1), 1), s, 2);
        expect(stale.expected).toBe(1);
        await expectConflict(store.append(s, events(s, 1), 0), s, 2);
        await expectConflict(store.append(s, events(s, 1), 7), s, 2);
        expect((await store.readStream(s)).map((e) => e.revision)).toEqual([0, 1, 2]);
      });

      it("an exact expected revision on a missing stream conflicts with actual 'no_stream'", async () => {
        const s = newStreamId();
        await expectConflict(store.append(s, events(s, 1), 0), s, 'no_stream');
        expect(await store.readStream(s)).toEqual([]);
      });

      it("'any' appends to a new and to an existing stream", async () => {
        const s = newStreamId();
        expect((await store.append(s, events(s, 1), 'any')).nextRevision).toBe(0);
        expect((await store.append(s, events(s, 2), 'any')).nextRevision).toBe(2);
        expect((await store.readStream(s)).map((e) => e.revision)).toEqual([0, 1, 2]);
      });
    });

    describe('positions', () => {
      it('are strictly increasing across streams, in append order', async () => {
        const a = newStreamId();
        const b = newStreamId();
        const c = newStreamId();
        const results = [];
        results.push(await store.append(a, events(a, 1), 'no_stream'));
        results.push(await store.append(b, events(b, 2), 'no_stream'));
        results.push(await store.append(a, events(a, 1), 0));
        results.push(await store.append(c, events(c, 1), 'no_stream'));
        results.push(await store.append(b, events(b, 1), 1));
        expectIncreasing(results.map((r) => r.position));

        const all = [...(await store.readStream(a)), ...(await store.readStream(b)), ...(await store.readStream(c))];
        const sorted = [...all].sort((x, y) => comparePositions(x.position, y.position));
        expect(ids(sorted)).toEqual([`${a}@0`, `${b}@0`, `${b}@1`, `${a}@1`, `${c}@0`, `${b}@2`]);
        expectIncreasing(sorted.map((e) => e.position));
      });

      it('headPosition is undefined for an empty log and else the newest position', async () => {
        const firstPage = await store.readAll({ limit: 1 });
        if (firstPage.length === 0) expect(await store.headPosition()).toBeUndefined();

        const s = newStreamId();
        const result = await store.append(s, events(s, 2), 'no_stream');
        const head = await store.headPosition();
        expect(head).toBeDefined();
        expect(comparePositions(head!, result.position)).toBeGreaterThanOrEqual(0);
        // Nothing lies beyond the head.
        expect(await store.readAll({ after: head, limit: 10 })).toEqual([]);
      });
    });

    describe('readAll', () => {
      it('pages after a position with an exclusive lower bound, in position order', async () => {
        const before = await store.headPosition();
        const a = newStreamId();
        const b = newStreamId();
        const streams = new Set([a, b]);
        await store.append(a, events(a, 2), 'no_stream');
        await store.append(b, events(b, 1), 'no_stream');
        await store.append(a, events(a, 2), 1);
        await store.append(b, events(b, 2), 0);
        const expected = [`${a}@0`, `${a}@1`, `${b}@0`, `${a}@2`, `${a}@3`, `${b}@1`, `${b}@2`];

        for (const limit of [1, 2, 3, 100]) {
          const { ours, pages } = await readAllPages(store, before, limit, streams, expected.length);
          expect(ids(ours), `page size ${limit}`).toEqual(expected);
          for (const page of pages) expect(page.length).toBeLessThanOrEqual(limit);
          const flat = pages.flat();
          expectIncreasing(flat.map((e) => e.position));
          if (before) for (const e of flat) expect(comparePositions(e.position, before)).toBe(1);
        }
      });

      it('after the position of an event starts with the next event', async () => {
        const s = newStreamId();
        await store.append(s, events(s, 3), 'no_stream');
        const read = await store.readStream(s);
        const page = await store.readAll({ after: read[0]!.position, limit: 2 });
        expect(ids(page)).toEqual([`${s}@1`, `${s}@2`]);
        expect(page[0]!.data).toEqual(read[1]!.data);
        expect(page[0]!.metadata).toEqual(read[1]!.metadata);
      });

      it('returns only our streams, in position order, from the start', async () => {
        const s = newStreamId();
        await store.append(s, events(s, 1), 'no_stream');
        const page = await store.readAll({ limit: 50 });
        expect(page.length).toBeGreaterThan(0);
        expect(page.length).toBeLessThanOrEqual(50);
        for (const e of page) {
          expect(e.streamId.startsWith(WEBHOOK_STREAM_PREFIX)).toBe(true);
          expect(e.type.startsWith('$')).toBe(false);
        }
        expectIncreasing(page.map((e) => e.position));
      });
    });

    describe('subscribe', () => {
      it('catches up from a position, then delivers live appends, without gaps or duplicates, until aborted', async () => {
        const before = await store.headPosition();
        const a = newStreamId();
        const b = newStreamId();
        const c = newStreamId();
        const streams = new Set([a, b, c]);
        await store.append(a, events(a, 2), 'no_stream');
        await store.append(b, events(b, 1), 'no_stream');

        const controller = new AbortController();
        const sub = collect(store, before, controller.signal, streams);
        await sub.waitFor(3);

        await store.append(c, events(c, 1), 'no_stream');
        await store.append(a, events(a, 1), 1);
        await Promise.all([store.append(b, events(b, 2), 0), store.append(c, events(c, 1), 0)]);
        await sub.waitFor(8);

        controller.abort();
        await withTimeout(sub.done, 5_000, 'the subscription after abort');

        expect(ids(sub.received.slice(0, 5))).toEqual([`${a}@0`, `${a}@1`, `${b}@0`, `${c}@0`, `${a}@2`]);
        expect(new Set(ids(sub.received.slice(5)))).toEqual(new Set([`${b}@1`, `${b}@2`, `${c}@1`]));
        expect(sub.received).toHaveLength(8);
        // Every delivered event (ours or not) follows `before`, in strict order.
        const delivered = sub.batches.flat();
        expectIncreasing(delivered.map((e) => e.position));
        if (before) for (const e of delivered) expect(comparePositions(e.position, before)).toBe(1);
        // Delivered events carry their payload.
        const stored = await store.readStream(a);
        expect(sub.received[0]!.data).toEqual(stored[0]!.data);
        expect(sub.received[0]!.metadata).toEqual(stored[0]!.metadata);
        expect(comparePositions(sub.received[0]!.position, stored[0]!.position)).toBe(0);
      });

      it('starting after an event position delivers only what follows it (exclusive)', async () => {
        const s = newStreamId();
        const streams = new Set([s]);
        await store.append(s, events(s, 3), 'no_stream');
        const read = await store.readStream(s);

        const controller = new AbortController();
        const sub = collect(store, read[1]!.position, controller.signal, streams);
        await sub.waitFor(1);
        await store.append(s, events(s, 1), 2);
        await sub.waitFor(2);
        controller.abort();
        await withTimeout(sub.done, 5_000, 'the subscription after abort');
        expect(ids(sub.received)).toEqual([`${s}@2`, `${s}@3`]);
      });

      it('from the start delivers the whole log in order, then live events', async () => {
        const s = newStreamId();
        const streams = new Set([s]);
        await store.append(s, events(s, 2), 'no_stream');

        const controller = new AbortController();
        const sub = collect(store, undefined, controller.signal, streams);
        await sub.waitFor(2);
        await store.append(s, events(s, 1), 1);
        await sub.waitFor(3);
        controller.abort();
        await withTimeout(sub.done, 5_000, 'the subscription after abort');

        expect(ids(sub.received)).toEqual([`${s}@0`, `${s}@1`, `${s}@2`]);
        const delivered = sub.batches.flat();
        expectIncreasing(delivered.map((e) => e.position));
        for (const e of delivered) expect(e.streamId.startsWith(WEBHOOK_STREAM_PREFIX)).toBe(true);
      });

      it('ends at once for an already aborted signal', async () => {
        const controller = new AbortController();
        controller.abort();
        const sub = collect(store, undefined, controller.signal, new Set());
        await withTimeout(sub.done, 5_000, 'the subscription with an aborted signal');
      });

      it('stops when aborted while waiting for live events', async () => {
        const controller = new AbortController();
        const s = newStreamId();
        await store.append(s, events(s, 1), 'no_stream');
        const head = await store.headPosition();
        const sub = collect(store, head, controller.signal, new Set([s]));
        await new Promise((r) => setTimeout(r, 100));
        controller.abort();
        await withTimeout(sub.done, 5_000, 'the subscription after abort');
        expect(sub.received).toEqual([]);
        // Appends after the abort are not delivered.
        await store.append(s, events(s, 1), 0);
        await new Promise((r) => setTimeout(r, 50));
        expect(sub.received).toEqual([]);
      });
    });

    describe('concurrency', () => {
      it('concurrent appends to one stream with the same expected revision: exactly one wins', async () => {
        const s = newStreamId();
        await store.append(s, events(s, 1), 'no_stream');
        const attempts = await Promise.allSettled(Array.from({ length: 10 }, () => store.append(s, events(s, 2), 0)));
        const won = attempts.filter((r) => r.status === 'fulfilled');
        const lost = attempts.filter((r) => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(9);
        for (const r of lost) {
          expect(r.reason).toBeInstanceOf(StreamConflictError);
          expect((r.reason as StreamConflictError).actual).toBe(2);
        }
        expect((await store.readStream(s)).map((e) => e.revision)).toEqual([0, 1, 2]);
      });

      it("concurrent 'no_stream' appends to one new stream: exactly one wins", async () => {
        const s = newStreamId();
        const attempts = await Promise.allSettled(Array.from({ length: 8 }, () => store.append(s, events(s, 1), 'no_stream')));
        expect(attempts.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of attempts.filter((x) => x.status === 'rejected')) {
          expect(r.reason).toBeInstanceOf(StreamConflictError);
          expect((r.reason as StreamConflictError).actual).toBe(0);
        }
        expect(await store.readStream(s)).toHaveLength(1);
      });

      it('many concurrent appends to distinct streams all succeed with distinct positions', async () => {
        const streams = Array.from({ length: 50 }, () => newStreamId());
        const results = await Promise.all(streams.map((s) => store.append(s, events(s, 2), 'no_stream')));
        for (const r of results) expect(r.nextRevision).toBe(1);
        const sorted = results.map((r) => r.position).sort(comparePositions);
        expectIncreasing(sorted);
        for (const s of streams) expect((await store.readStream(s)).map((e) => e.revision)).toEqual([0, 1]);
      });
    });

    describe('ping', () => {
      it('resolves while the store is reachable', async () => {
        await expect(store.ping()).resolves.toBeUndefined();
      });
    });
  });
}
