// Lists wait for the log's head as of their arrival: a head read that was
// already running when a list arrived may predate a write acknowledged just
// before it, so the list waits for the next one; concurrent lists share it.
import { describe, expect, it } from 'vitest';
import { ReadYourWrites } from '../../src/http/readYourWrites.ts';
import type { Position } from '../../src/stores/eventStore.ts';

const at = (n: number): Position => ({ commit: BigInt(n), prepare: BigInt(n) });

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ReadYourWrites with the log head', () => {
  it('waits for the head read after arrival, shared by concurrent lists: two queries, not one per list', async () => {
    const reads: ReturnType<typeof deferred<Position | undefined>>[] = [];
    const waited: Position[] = [];
    const ryw = new ReadYourWrites(
      (position) => {
        waited.push(position);
        return Promise.resolve(true);
      },
      1000,
      () => {
        const d = deferred<Position | undefined>();
        reads.push(d);
        return d.promise;
      },
    );
    const first = ryw.settle('acme');
    const later = Array.from({ length: 5 }, () => ryw.settle('globex'));
    expect(reads).toHaveLength(1);
    reads[0]!.resolve(at(10)); // the first list's head; too early for the later ones
    await first;
    await new Promise((r) => setTimeout(r, 0));
    expect(reads).toHaveLength(2);
    reads[1]!.resolve(at(12)); // written between the first read and the later lists' arrival
    await Promise.all(later);
    expect(waited.map((p) => Number(p.commit))).toEqual([10, 12, 12, 12, 12, 12]);
    expect(reads).toHaveLength(2);
  });

  it('waits for this process\'s own newer write when the head read lags behind it, and 503s when never reached', async () => {
    const waited: Position[] = [];
    const ryw = new ReadYourWrites(
      (position) => {
        waited.push(position);
        return Promise.resolve(Number(position.commit) < 30);
      },
      1000,
      () => Promise.resolve(at(5)),
    );
    ryw.noteWrite('acme', at(20));
    await ryw.settle('acme');
    expect(Number(waited[0]!.commit)).toBe(20);
    ryw.noteWrite('acme', at(40));
    await expect(ryw.settle('acme')).rejects.toMatchObject({ status: 503 });
  });
});
