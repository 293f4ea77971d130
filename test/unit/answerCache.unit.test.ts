import { describe, expect, it } from 'vitest';
import { createDispatchAnswerCache } from '../../src/dispatch/answerCache.ts';
import type { DispatchAnswer, DispatchTarget } from '../../src/dispatch/dispatchTargets.ts';

const target = (id: string): DispatchTarget => ({ id, organizationId: 'acme', url: `https://${id}.example.com/h`, events: ['kyc.*'], secrets: ['s'] });

/** A cache over a table the test edits: `reads` counts lookups that reached it. */
function setUp(maxBytes = 1 << 20) {
  const state = { version: 1, clock: 1_000, reads: 0, changesAt: Infinity, table: new Map<string, string[]>(), duringRead: () => {} };
  const cache = createDispatchAnswerCache({
    answer: async (eventType, partnerId): Promise<DispatchAnswer> => {
      state.reads += 1;
      state.duringRead();
      await Promise.resolve();
      return { targets: (state.table.get(`${partnerId.toLowerCase()}/${eventType}`) ?? []).map(target), changesAt: state.changesAt };
    },
    version: () => Promise.resolve(state.version),
    serialize: (targets) => JSON.stringify({ data: targets.map((t) => t.id) }),
    now: () => new Date(state.clock),
    maxBytes,
  });
  return { state, cache };
}

describe('dispatch answer cache', () => {
  it('keeps an answer per partner (any case) and event type while the version stays', async () => {
    const { state, cache } = setUp();
    state.table.set('p1/a.b', ['w1']);
    expect(await cache('a.b', 'P1')).toBe('{"data":["w1"]}');
    state.table.set('p1/a.b', ['w1', 'w2']); // not announced: the version did not move
    expect(await cache('a.b', 'p1')).toBe('{"data":["w1"]}');
    expect(await cache('a.c', 'p1')).toBe('{"data":[]}');
    expect(state.reads).toBe(2);
    state.version = 2;
    expect(await cache('a.b', 'p1')).toBe('{"data":["w1","w2"]}');
    expect(state.reads).toBe(3);
  });

  it('reads again once a previous secret in the answer has expired', async () => {
    const { state, cache } = setUp();
    state.changesAt = 2_000;
    await cache('a.b', 'p1');
    state.clock = 1_999;
    await cache('a.b', 'p1');
    expect(state.reads).toBe(1);
    state.clock = 2_000;
    await cache('a.b', 'p1');
    expect(state.reads).toBe(2);
  });

  it('does not keep an answer read while the version moved', async () => {
    const { state, cache } = setUp();
    state.table.set('p1/a.b', ['w1']);
    // Another lookup sees the new version while this one reads: what it read may predate the change.
    state.duringRead = () => {
      state.duringRead = () => {};
      state.version = 2;
      void cache('x.y', 'p9');
    };
    await cache('a.b', 'p1');
    await cache('a.b', 'p1');
    expect(state.reads).toBe(3); // a.b twice, x.y once
  });

  it('stays within its bound, the oldest answers out first', async () => {
    // Each entry: ~15 bytes of body + key + 96 of overhead ≈ 120.
    const { state, cache } = setUp(400);
    for (const p of ['p1', 'p2', 'p3', 'p4']) {
      state.table.set(`${p}/a.b`, [p]);
      await cache('a.b', p);
    }
    expect(state.reads).toBe(4);
    await cache('a.b', 'p4');
    await cache('a.b', 'p2');
    expect(state.reads).toBe(4);
    await cache('a.b', 'p1'); // the oldest, evicted
    expect(state.reads).toBe(5);
  });

  it('keeps nothing with a bound smaller than one answer', async () => {
    const { state, cache } = setUp(10);
    await cache('a.b', 'p1');
    await cache('a.b', 'p1');
    expect(state.reads).toBe(2);
  });
});
