// The MongoDB engine's decisions that need no server: the rebuild lease,
// transaction batching, and the client settings it pins (given / when / then).
import { describe, expect, it } from 'vitest';
import { DEFAULT_TRANSACTION_LIMITS, eventBytes, transactionBatches } from '../../src/stores/mongo/batching.ts';
import { createMongoClient, helloSupportsTransactions } from '../../src/stores/mongo/connection.ts';
import {
  abandonPlan,
  decideLease,
  explainFailedSwitch,
  versionsToDrop,
  type ActiveDoc,
  type Lease,
} from '../../src/stores/mongo/lease.ts';
import type { RecordedEvent } from '../../src/stores/eventStore.ts';

const NOW = new Date('2025-06-01T12:00:00.000Z');
const later = (ms: number): Date => new Date(NOW.getTime() + ms);
const lease = (owner: string, version: number, expiresInMs: number): Lease => ({
  owner,
  version,
  purpose: 'rebuild',
  expiresAt: later(expiresInMs),
});

describe('rebuild lease', () => {
  it('given no lease, a rebuild acquires a never-used version and records the live one for its switch', () => {
    const active: ActiveDoc = { version: 3, lastAllocated: 5 };
    expect(decideLease(active, NOW)).toEqual({ kind: 'acquire', version: 6, live: 3, takesOver: null });
  });

  it("given another process's live lease, a rebuild or reset is refused", () => {
    const holder = lease('a', 6, 1_000);
    expect(decideLease({ version: 3, lastAllocated: 6, lease: holder }, NOW)).toEqual({ kind: 'busy', holder });
  });

  it('given an expired lease, it is taken over (the stalled holder can no longer switch)', () => {
    const stale = lease('a', 6, -1);
    expect(decideLease({ version: 3, lastAllocated: 6, lease: stale }, NOW)).toEqual({
      kind: 'acquire',
      version: 7,
      live: 3,
      takesOver: stale,
    });
    // A lease expiring exactly now is expired.
    expect(decideLease({ version: 3, lastAllocated: 6, lease: lease('a', 6, 0) }, NOW).kind).toBe('acquire');
  });

  it('cleanup never drops the live set, its own, a set under a live foreign lease, or anything newer than its own', () => {
    const active: ActiveDoc = { version: 4, lastAllocated: 9, lease: lease('me', 8, 60_000) };
    expect(versionsToDrop([1, 2, 3, 4, 5, 7, 8, 9, 10], { active, owner: 'me', own: 8, now: NOW })).toEqual([
      1, 2, 3, 5, 7,
    ]);
    const foreign: ActiveDoc = { version: 4, lastAllocated: 9, lease: lease('other', 5, 60_000) };
    expect(versionsToDrop([2, 4, 5, 8], { active: foreign, owner: 'me', own: 8, now: NOW })).toEqual([2]);
    const expiredForeign: ActiveDoc = { version: 4, lastAllocated: 9, lease: lease('other', 5, -1) };
    expect(versionsToDrop([2, 4, 5, 8], { active: expiredForeign, owner: 'me', own: 8, now: NOW })).toEqual([2, 5]);
  });

  it('the pre-lease race: a set switched in by another rebuild after this one started is never dropped', () => {
    // This rebuild (v3) started while v1 was live; another process then switched v2 in.
    const active: ActiveDoc = { version: 2, lastAllocated: 3, lease: lease('me', 3, 60_000) };
    expect(versionsToDrop([1, 2, 3], { active, owner: 'me', own: 3, now: NOW })).toEqual([1]);
  });

  it('abandoning never drops a set that became live (a switch whose answer was lost) and releases only its own lease', () => {
    expect(abandonPlan({ version: 6, lastAllocated: 6 }, { owner: 'me', version: 6 })).toEqual({
      dropOwn: false,
      release: false,
    });
    expect(
      abandonPlan({ version: 3, lastAllocated: 6, lease: lease('me', 6, 1) }, { owner: 'me', version: 6 }),
    ).toEqual({ dropOwn: true, release: true });
    expect(
      abandonPlan({ version: 3, lastAllocated: 7, lease: lease('other', 7, 1) }, { owner: 'me', version: 6 }),
    ).toEqual({ dropOwn: true, release: false });
  });

  it('a failed switch says why', () => {
    const own = { owner: 'me', version: 6, live: 3 };
    expect(explainFailedSwitch({ version: 3, lastAllocated: 7, lease: lease('other', 7, 1) }, own)).toContain(
      'taken over',
    );
    expect(explainFailedSwitch({ version: 3, lastAllocated: 6 }, own)).toContain('expired');
    expect(explainFailedSwitch({ version: 5, lastAllocated: 6, lease: lease('me', 6, 1) }, own)).toContain(
      'from v3 to v5',
    );
  });
});

describe('transaction batching', () => {
  const sizes = (chunks: number[][]): number[] => chunks.map((c) => c.length);
  const identity = (n: number): number => n;

  it('given 10 000 events (a rebuild page), the default limits make transactions of at most 1 000', () => {
    const events = Array.from({ length: 10_000 }, () => 1_000);
    const chunks = transactionBatches(events, DEFAULT_TRANSACTION_LIMITS, identity);
    expect(sizes(chunks)).toEqual(Array.from({ length: 10 }, () => 1_000));
  });

  it('bounds the bytes per transaction, keeping order and every event', () => {
    const events = [3, 3, 3, 5, 1, 1, 9, 2];
    const chunks = transactionBatches(events, { maxEvents: 100, maxBytes: 9 }, identity);
    expect(chunks).toEqual([[3, 3, 3], [5, 1, 1], [9], [2]]);
    expect(chunks.flat()).toEqual(events);
    for (const chunk of chunks) expect(chunk.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(9);
  });

  it('an event larger than the budget gets a transaction of its own; no chunk is empty', () => {
    expect(transactionBatches([20, 1, 30], { maxEvents: 10, maxBytes: 10 }, identity)).toEqual([[20], [1], [30]]);
    expect(transactionBatches([], DEFAULT_TRANSACTION_LIMITS, identity)).toEqual([]);
  });

  it('refuses limits that could never make progress', () => {
    expect(() => transactionBatches([1], { maxEvents: 0, maxBytes: 10 }, identity)).toThrow(RangeError);
  });

  it("an event's size is the JSON of its stream, type, data and metadata", () => {
    const event = {
      streamId: 'webhook-1',
      revision: 0,
      position: { commit: 1n, prepare: 1n },
      type: 'WebhookPaused',
      data: { webhookId: '1', at: 'é' },
      metadata: {},
    } as unknown as RecordedEvent;
    expect(eventBytes(event)).toBe(
      Buffer.byteLength(JSON.stringify({ s: 'webhook-1', t: 'WebhookPaused', d: event.data, m: {} })),
    );
  });
});

describe('client settings', () => {
  it('pins reads to the primary with majority read and write concern, even when the URL asks otherwise', async () => {
    const client = createMongoClient(
      'mongodb://127.0.0.1:1/registry?readPreference=secondary&readConcernLevel=local&w=1',
    );
    try {
      const db = client.db('registry');
      for (const holder of [client, db, db.collection('webhooks_v1'), db.collection('meta')]) {
        expect(holder.readPreference?.mode).toBe('primary');
        expect(holder.readConcern?.level).toBe('majority');
        expect(holder.writeConcern?.w).toBe('majority');
      }
    } finally {
      await client.close();
    }
  });

  it('bounds every call with the timeouts, defaults or given', async () => {
    const defaults = createMongoClient('mongodb://127.0.0.1:1/?socketTimeoutMS=0&serverSelectionTimeoutMS=600000');
    const given = createMongoClient('mongodb://127.0.0.1:1/', {
      serverSelectionTimeoutMS: 700,
      connectTimeoutMS: 800,
      socketTimeoutMS: 900,
    });
    try {
      expect(defaults.options).toMatchObject({ serverSelectionTimeoutMS: 5_000, connectTimeoutMS: 5_000, socketTimeoutMS: 10_000 });
      expect(given.options).toMatchObject({ serverSelectionTimeoutMS: 700, connectTimeoutMS: 800, socketTimeoutMS: 900 });
    } finally {
      await defaults.close();
      await given.close();
    }
  });

  it('a malformed URL is reported without its credentials', () => {
    expect(() => createMongoClient('mongodb://app:pw-123@[not-a-host')).toThrow(/MONGODB_URL/);
    expect(() => createMongoClient('mongodb://app:pw-123@[not-a-host')).not.toThrow(/pw-123/);
  });

  it('transactions: replica-set members and mongos, never a standalone server', () => {
    expect(helloSupportsTransactions({ setName: 'rs0', logicalSessionTimeoutMinutes: 30 })).toBe(true);
    expect(helloSupportsTransactions({ msg: 'isdbgrid', logicalSessionTimeoutMinutes: 30 })).toBe(true);
    expect(helloSupportsTransactions({ isWritablePrimary: true, logicalSessionTimeoutMinutes: 30 })).toBe(false);
    expect(helloSupportsTransactions({ setName: 'rs0' })).toBe(false); // no sessions
  });
});
