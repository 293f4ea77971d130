// The projector: subscribes to the log after the read model's checkpoint and
// applies each batch atomically with a checkpoint compare-and-set. If another
// projector (or a rebuild) moved the checkpoint, it starts again from the
// stored one; applying an event twice changes nothing (revision guard).
import { BackgroundLoop } from './backgroundLoop.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  comparePositions,
  decodePosition,
  encodePosition,
  type EventStore,
  type Position,
  type RecordedEvent,
} from '../stores/eventStore.ts';
import { CheckpointConflictError, type ReadModel } from '../stores/readModel.ts';

export interface ProjectorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ProjectorOptions {
  readonly logger: ProjectorLogger;
  /** Called per applied batch with its events (for lag metrics). */
  readonly onBatch?: (events: readonly RecordedEvent[]) => void;
}

/** How often an idle projector checks whether its checkpoint was moved elsewhere. */
const CHECKPOINT_WATCH_MS = 1000;

interface Waiter {
  readonly position: Position;
  readonly resolve: (reached: boolean) => void;
}

export class Projector {
  private readonly background = new BackgroundLoop((signal) => this.run(signal));
  private applied: Position | undefined;
  private waiters: Waiter[] = [];

  constructor(
    private readonly store: EventStore,
    private readonly readModel: ReadModel,
    private readonly options: ProjectorOptions,
  ) {}

  /** Position of the last event this projector applied (or found applied). */
  get position(): Position | undefined {
    return this.applied;
  }

  get running(): boolean {
    return this.background.running;
  }

  start(): void {
    this.background.start();
  }

  /** Stops after the batch in progress is committed, so the checkpoint is consistent. */
  async stop(): Promise<void> {
    await this.background.stop();
    for (const w of this.waiters) w.resolve(false);
    this.waiters = [];
  }

  /** Resolves true once `position` is applied, false after `timeoutMs`. */
  waitFor(position: Position, timeoutMs: number): Promise<boolean> {
    if (this.applied && comparePositions(this.applied, position) >= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        position,
        resolve: (reached) => {
          clearTimeout(timer);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  private async run(signal: AbortSignal): Promise<void> {
    let backoffMs = 100;
    while (!signal.aborted) {
      // One subscription per round; a round ends when the stored checkpoint moved
      // under us (a rebuild switched tables), so we resume from the stored one.
      const round = new AbortController();
      const endRound = (): void => round.abort();
      signal.addEventListener('abort', endRound, { once: true });
      let watcher: NodeJS.Timeout | undefined;
      try {
        let checkpoint = await this.readModel.checkpoint();
        let applying = false;
        this.advance(checkpoint);
        // The compare-and-set only catches a moved checkpoint when a batch arrives;
        // an idle projector looks for itself, so a rebuild's swap is never missed.
        watcher = setInterval(() => {
          if (applying) return;
          this.readModel.checkpoint().then(
            (stored) => {
              if (!applying && stored !== checkpoint) round.abort();
            },
            () => undefined,
          );
        }, CHECKPOINT_WATCH_MS);
        for await (const batch of this.store.subscribe({
          after: checkpoint === null ? undefined : decodePosition(checkpoint),
          signal: round.signal,
        })) {
          applying = true;
          try {
            await this.readModel.applyBatch(batch, checkpoint);
            checkpoint = encodePosition(batch[batch.length - 1]!.position);
          } finally {
            applying = false;
          }
          this.advance(checkpoint);
          this.options.onBatch?.(batch);
          backoffMs = 100;
        }
        if (round.signal.aborted && !signal.aborted) {
          this.options.logger.info({}, 'projector checkpoint moved elsewhere; resuming from the stored one');
        }
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof CheckpointConflictError) {
          this.options.logger.info({ err: error }, 'projector checkpoint moved elsewhere; resuming from the stored one');
          continue;
        }
        this.options.logger.error({ err: error }, 'projector failed; retrying');
        await sleep(backoffMs, undefined, { signal }).catch(() => undefined);
        backoffMs = Math.min(backoffMs * 2, 5000);
      } finally {
        clearInterval(watcher);
        signal.removeEventListener('abort', endRound);
      }
    }
  }

  private advance(checkpoint: string | null): void {
    if (checkpoint === null) return;
    const position = decodePosition(checkpoint);
    this.applied = position;
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (comparePositions(position, w.position) >= 0) w.resolve(true);
      else still.push(w);
    }
    this.waiters = still;
  }
}

/** Read-your-writes without an in-process projector: poll the read model's checkpoint. */
export async function pollCheckpoint(readModel: ReadModel, position: Position, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const checkpoint = await readModel.checkpoint();
    if (checkpoint !== null && comparePositions(decodePosition(checkpoint), position) >= 0) return true;
    if (Date.now() >= deadline) return false;
    await sleep(10);
  }
}
