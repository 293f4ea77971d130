// Progress bars for long-running commands, on stderr so stdout stays clean for
// data (`audit replay` writes JSON lines there). Drawn only when stderr is a
// terminal (a cli-progress bar), or when asked for with --progress (then, on a
// pipe or file, as one plain line per second: cli-progress redraws a non-TTY
// bar from a timer, which never fires while a synchronous store keeps the
// loop busy).
import cliProgress from 'cli-progress';

export interface ProgressBar {
  /** `total` undefined: no known end, show counts only. */
  start(total: number | undefined, value?: number): void;
  /** `count` is what the label's unit counts (events, streams), shown beside the bar. */
  update(value: number, count: number): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Text before the bar, e.g. "replay". */
  readonly label: string;
  /** What `count` counts, e.g. "events". */
  readonly unit: string;
  /** --progress: draw even when stderr is not a terminal. */
  readonly forced: boolean;
  readonly stream?: NodeJS.WriteStream;
  /** Plain-line mode: at most one line per this many ms (default 1000). */
  readonly intervalMs?: number;
}

const NONE: ProgressBar = { start: () => undefined, update: () => undefined, stop: () => undefined };

export function createProgressBar(options: ProgressOptions): ProgressBar {
  const stream = options.stream ?? process.stderr;
  if (stream.isTTY === true) return terminalBar(options, stream);
  return options.forced ? lineBar(options, stream) : NONE;
}

function terminalBar(options: ProgressOptions, stream: NodeJS.WriteStream): ProgressBar {
  let bar: cliProgress.SingleBar | undefined;
  return {
    start(total, value = 0) {
      bar?.stop();
      const format =
        total === undefined
          ? `${options.label} | {count} ${options.unit} | {duration_formatted}`
          : `${options.label} [{bar}] {percentage}% | {count} ${options.unit} | {duration_formatted} elapsed | ETA {eta_formatted}`;
      bar = new cliProgress.SingleBar({ format, stream, hideCursor: true, etaBuffer: 50 });
      bar.start(Math.max(total ?? 1, 1), value, { count: 0 });
    },
    update(value, count) {
      bar?.update(value, { count });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

function lineBar(options: ProgressOptions, stream: NodeJS.WriteStream): ProgressBar {
  const interval = options.intervalMs ?? 1000;
  let total: number | undefined;
  let started = 0;
  let last = 0;
  let value = 0;
  let count = 0;
  let active = false;
  const line = (): void => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const percent = total === undefined ? '' : ` ${Math.min(100, Math.floor((value / Math.max(total, 1)) * 100))}% |`;
    stream.write(`${options.label}${percent} ${count} ${options.unit} | ${seconds}s\n`);
  };
  return {
    start(t, v = 0) {
      total = t;
      value = v;
      count = 0;
      started = Date.now();
      last = started;
      active = true;
      line();
    },
    update(v, c) {
      value = v;
      count = c;
      const now = Date.now();
      if (active && now - last >= interval) {
        last = now;
        line();
      }
    },
    stop() {
      if (!active) return;
      active = false;
      line();
    },
  };
}
