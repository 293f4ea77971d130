// Slices of dispatch lookups wait for a turn each (src/dispatch/lookupTurns.ts):
// other work queued on the event loop runs between two slices, busy other
// work gets two iterations per slice, and a long queue drains in order.
import { describe, expect, it } from 'vitest';
import { createTurns, type Turns } from '../../src/dispatch/lookupTurns.ts';

/** A lookup of `slices` synchronous slices (as the embedded engine's row reads are), each taking a turn first. */
async function lookup(turns: Turns, name: string, slices: number, order: string[]): Promise<void> {
  for (let i = 1; i <= slices; i++) {
    await turns.take();
    order.push(`${name}${i}`);
  }
}

/** Other work on the loop at the same time (say, registrations' next steps): `steps` setImmediate steps of `busyMs` each. */
function otherWork(steps: number, busyMs: number, order: string[]): Promise<void> {
  return new Promise<void>((resolve) => {
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
}

const slicesOf = (order: readonly string[]): string[] => order.filter((x) => !x.startsWith('other'));

describe('lookup turns', () => {
  it('lets other callbacks run between two slices instead of running whole lookups in one go', async () => {
    const turns = createTurns();
    const order: string[] = [];
    const all = Promise.all([lookup(turns, 'a', 2, order), lookup(turns, 'b', 2, order), otherWork(6, 0, order)]);
    expect(order).toEqual([]);
    await all;
    // Slices in the order they asked for turns: a1 and b1 first, then the second slices.
    expect(slicesOf(order)).toEqual(['a1', 'b1', 'a2', 'b2']);
    // Never two slices in a row while other work is waiting.
    const lastSlice = order.indexOf('b2');
    for (let i = 1; i <= lastSlice; i++) {
      expect(order[i - 1]!.startsWith('other') || order[i]!.startsWith('other'), order.join(' ')).toBe(true);
    }
  });

  it('gives other work two iterations per slice while that work is busy', async () => {
    const turns = createTurns();
    const order: string[] = [];
    await Promise.all([lookup(turns, 'a', 3, order), otherWork(10, 2, order)]);
    expect(slicesOf(order)).toEqual(['a1', 'a2', 'a3']);
    const at = (x: string): number => order.indexOf(x);
    expect(at('a2') - at('a1')).toBeGreaterThanOrEqual(3);
    expect(at('a3') - at('a2')).toBeGreaterThanOrEqual(3);
  });

  it('runs slices back to back when nothing else is waiting', async () => {
    const turns = createTurns();
    const order: string[] = [];
    await lookup(turns, 'a', 5, order);
    expect(order).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
  });

  it('drains a queue longer than one compaction, in order, while more turns keep being asked for', async () => {
    const turns = createTurns();
    const seen: number[] = [];
    const ask = (i: number): Promise<void> => turns.take().then(() => void seen.push(i));
    const first = Array.from({ length: 1500 }, (_, i) => ask(i));
    // More arrive while the first ones are being served.
    await first[700];
    const more = Array.from({ length: 1500 }, (_, i) => ask(1500 + i));
    await Promise.all([...first, ...more]);
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    // Idle again: the next turn still comes.
    await ask(3000);
    expect(seen.at(-1)).toBe(3000);
  });
});
