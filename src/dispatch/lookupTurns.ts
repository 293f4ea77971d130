// Dispatch lookups take turns with everything else on the event loop.
//
// A lookup is synchronous work on the embedded engine: at 1 000 000
// registrations one answer reads ~115 rows and decrypts their secrets, 2–3 ms
// of one thread. Node runs every request that arrived in one poll phase back
// to back, so 40 dispatcher connections meant ~40 lookups in a row before the
// loop came back to a registration's commit or answer: the bench measured
// 2 registrations/s with a p99 of 9.5 s beside them.
//
// So lookups do their work in slices (createDispatchLookup and the read
// model cut it into parts of LOOKUP_SLICE targets), and every slice of every
// lookup waits here for a turn: one per event-loop iteration, run from
// setImmediate (the check phase, after I/O). A registration's steps (its
// request, its commit, its projection, its answer) then each wait for at most
// one slice, not for whole lookups. And when other work ran since the last
// slice (more than OTHERS_BUSY_MS of it), the next slice lets one more
// iteration go first: under contention lookups get about half of the loop.
// With nothing else to do, slices still run back to back (an iteration with
// no I/O costs microseconds), so alone lookups lose little throughput.

/** Targets per slice of a lookup: ~0.3 ms of row reads or decryptions at 1 000 000 registrations. */
export const LOOKUP_SLICE = 32;

/** Other work since the last slice above this means the loop is contended. */
const OTHERS_BUSY_MS = 0.3;
/** The queue is an array and a read index; the part already taken is cut off in steps this long (shift() is O(n)). */
const COMPACT_AFTER = 1024;

export interface Turns {
  /** Resolves when it is the caller's turn; the caller's synchronous work right after it is its slice. */
  take(): Promise<void>;
}

export function createTurns(): Turns {
  const waiting: (() => void)[] = [];
  let next = 0;
  let scheduled = false;
  /** When the last slice ended (or a turn was given up). */
  let lastEnd = 0;
  let gaveWay = false;
  const sliceEnded = (): void => {
    lastEnd = performance.now();
  };

  const turn = (): void => {
    const now = performance.now();
    if (!gaveWay && now - lastEnd > OTHERS_BUSY_MS) {
      gaveWay = true;
      lastEnd = now;
      setImmediate(turn);
      return;
    }
    gaveWay = false;
    const resume = waiting[next++]!;
    if (next === waiting.length) {
      waiting.length = 0;
      next = 0;
      scheduled = false;
    } else {
      if (next >= COMPACT_AFTER) {
        waiting.splice(0, next);
        next = 0;
      }
      setImmediate(turn);
    }
    resume();
    // Queued after the caller's continuation, so it runs once the caller's slice (its synchronous work) is done.
    queueMicrotask(sliceEnded);
  };

  return {
    take: () =>
      new Promise<void>((resolve) => {
        waiting.push(resolve);
        if (!scheduled) {
          scheduled = true;
          // From idle: only the wait for this turn counts as others' time.
          lastEnd = performance.now();
          setImmediate(turn);
        }
      }),
  };
}
