// Dispatch lookups wait for a turn each (src/dispatch/lookupTurns.ts): other
// work queued on the event loop runs between two lookups, answers and errors
// come back to the caller that asked, and a long queue drains.
import { describe, expect, it } from 'vitest';
import type { DispatchLookup, DispatchTarget } from '../../src/dispatch/dispatchTargets.ts';
import { lookupTurns } from '../../src/dispatch/lookupTurns.ts';

const target = (id: string): DispatchTarget => ({ id, organizationId: 'org', url: 'https://example.com/hook', events: ['kyc.*'], secrets: ['s'] });

describe('lookupTurns', () => {
  /** Three lookups that do their work synchronously (as the embedded engine does), beside other work of `steps` setImmediate steps of `busyMs` each. */
  async function interleave(steps: number, busyMs: number): Promise<string[]> {
    const order: string[] = [];
    const turns = lookupTurns((eventType) => {
      order.push(eventType);
      return Promise.resolve([]);
    });
    const answers = [turns('a', 'p'), turns('b', 'p'), turns('c', 'p')];
    // Other work waiting on the loop at the same time (say, registrations' next steps).
    const other = new Promise<void>((resolve) => {
      let done = 0;
      const step = (): void => {
        const until = performance.now() + busyMs;
        while (performance.now() < until);
        order.push(`other-${++done}`);
        if (done < steps) setImmediate(step);
        else resolve();
      };
      setImmediate(step);
    });
    expect(order).toEqual([]);
    await Promise.all([...answers, other]);
    return order;
  }

  it('lets other callbacks run between two lookups instead of running all lookups in one go', async () => {
    const order = await interleave(3, 0);
    expect(order.filter((x) => !x.startsWith('other'))).toEqual(['a', 'b', 'c']);
    // Never two lookups in a row: at least one other step ran between them.
    for (let i = 1; i < order.length; i++) expect(`${order[i - 1]!.length}:${order[i]!.length}`).not.toBe('1:1');
  });

  it('gives other work two iterations per lookup while that work is busy', async () => {
    const order = await interleave(8, 2);
    expect(order.filter((x) => !x.startsWith('other'))).toEqual(['a', 'b', 'c']);
    const at = (x: string): number => order.indexOf(x);
    expect(at('b') - at('a')).toBeGreaterThanOrEqual(3);
    expect(at('c') - at('b')).toBeGreaterThanOrEqual(3);
  });

  it('answers each caller with its own result or error, in the order they asked', async () => {
    const lookup: DispatchLookup = (eventType, partnerId) =>
      eventType === 'bad' ? Promise.reject(new Error(`no ${partnerId}`)) : Promise.resolve([target(`${eventType}/${partnerId}`)]);
    const turns = lookupTurns(lookup);
    const results = await Promise.allSettled([turns('x', 'p1'), turns('bad', 'p2'), turns('y', 'p3')]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: [target('x/p1')] });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { message: 'no p2' } });
    expect(results[2]).toEqual({ status: 'fulfilled', value: [target('y/p3')] });
  });

  it('turns a lookup that throws instead of rejecting into a rejection', async () => {
    const turns = lookupTurns(() => {
      throw new Error('thrown');
    });
    await expect(turns('x', 'p')).rejects.toThrow('thrown');
    // And the queue keeps working after it.
    const again = lookupTurns(() => Promise.resolve([]));
    await expect(again('x', 'p')).resolves.toEqual([]);
  });

  it('drains a queue longer than one compaction, in order, while more lookups keep arriving', async () => {
    const seen: number[] = [];
    const turns = lookupTurns((eventType) => {
      seen.push(Number(eventType));
      return Promise.resolve([]);
    });
    const first = Array.from({ length: 1500 }, (_, i) => turns(String(i), 'p'));
    // More arrive while the first ones are being served.
    await first[700];
    const more = Array.from({ length: 1500 }, (_, i) => turns(String(1500 + i), 'p'));
    await Promise.all([...first, ...more]);
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    // Idle again: the next lookup is served on its own turn.
    await expect(turns('3000', 'p')).resolves.toEqual([]);
    expect(seen.at(-1)).toBe(3000);
  });
});
