// What held a child's event loop during a window: its garbage collections
// (each pause, from the `gc` performance entries) and the loop's delay
// (perf_hooks.monitorEventLoopDelay). Used by the servers and the replica
// child to tell a latency tail's cause: a long collection, or long tasks.
import { monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

export interface PauseSummary {
  /** Collections in the window, their summed and longest pause (ms), and the longest major (mark-compact) one. */
  readonly gcCount: number;
  readonly gcTotalMs: number;
  readonly gcMaxMs: number;
  readonly majorGcCount: number;
  readonly majorGcMaxMs: number;
  /** Event-loop delay over the window (ms, 10 ms resolution of the histogram's timer). */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
}

/** Starts recording; the function it returns stops and summarizes. */
export function startPauseProbe(): () => PauseSummary {
  let gcCount = 0;
  let gcTotalMs = 0;
  let gcMaxMs = 0;
  let majorGcCount = 0;
  let majorGcMaxMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcCount += 1;
      gcTotalMs += entry.duration;
      gcMaxMs = Math.max(gcMaxMs, entry.duration);
      // kind 2: NODE_PERFORMANCE_GC_MAJOR (mark-sweep-compact).
      if ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === 2) {
        majorGcCount += 1;
        majorGcMaxMs = Math.max(majorGcMaxMs, entry.duration);
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  return () => {
    observer.disconnect();
    delay.disable();
    return {
      gcCount,
      gcTotalMs,
      gcMaxMs,
      majorGcCount,
      majorGcMaxMs,
      loopDelayP99Ms: delay.percentile(99) / 1e6,
      loopDelayMaxMs: delay.max / 1e6,
    };
  };
}
