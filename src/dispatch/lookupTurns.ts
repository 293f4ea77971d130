// Dispatch lookups take turns with everything else on the event loop.
//
// A lookup is synchronous work on the embedded engine: at 1 000 000
// registrations one answer reads ~115 rows and decrypts their secrets, 2–3 ms
// of one thread. Node runs every request that arrived in one poll phase back
// to back, so 40 dispatcher connections meant ~40 lookups in a row before the
// loop came back to a registration's commit or answer: the bench measured
// 7 registrations/s with a p99 of 5.9 s beside them (.exp runs of figure 7).
//
// Here each lookup waits for a turn of its own, run from setImmediate (the
// check phase, after I/O), so a registration's steps (its request, its
// commit, its projection, its answer) each wait for at most one lookup, not
// for all of them. And when other work ran since the last lookup (more than
// OTHERS_BUSY_MS of it), the next lookup lets one more iteration go first:
// under contention lookups get about half of the loop, the rest gets the
// other half. With nothing else to do, lookups still run back to back (an
// iteration with no I/O costs microseconds), so alone they lose no throughput.
//
// Measured at 1 000 000 registrations, 40 lookup and 10 registration
// connections: registrations 7/s, p99 5.9 s → ~400–590/s, p99 43–66 ms.
import type { DispatchLookup } from './dispatchTargets.ts';

/** Other work since the last lookup above this means the loop is contended. */
const OTHERS_BUSY_MS = 0.3;
/** The queue is an array and a read index; the part already taken is cut off in steps this long (shift() is O(n)). */
const COMPACT_AFTER = 1024;

export function lookupTurns(lookup: DispatchLookup): DispatchLookup {
  const waiting: (() => void)[] = [];
  let next = 0;
  let scheduled = false;
  /** When the last turn ended (a lookup ran or a turn was given up). */
  let lastEnd = 0;
  let gaveWay = false;

  const turn = (): void => {
    const now = performance.now();
    if (!gaveWay && now - lastEnd > OTHERS_BUSY_MS) {
      gaveWay = true;
      lastEnd = now;
      setImmediate(turn);
      return;
    }
    gaveWay = false;
    const start = waiting[next++]!;
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
    start();
    lastEnd = performance.now();
  };

  return (eventType, partnerId) =>
    new Promise((resolve, reject) => {
      waiting.push(() => {
        try {
          lookup(eventType, partnerId).then(resolve, reject);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      if (!scheduled) {
        scheduled = true;
        // From idle: only the wait for this turn counts as others' time.
        lastEnd = performance.now();
        setImmediate(turn);
      }
    });
}
