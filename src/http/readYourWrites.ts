// Read-your-writes for list queries served by the read model: a read waits
// until the projector has applied every write acknowledged before the read
// began — the log's head at that moment, whichever process made the write —
// and at least the newest write its organization made through this process.
// So a list on one replica shows a write just answered by another.
// (Single-webhook reads come from the log itself.)
import { ServiceUnavailableError } from '../errors.ts';
import { comparePositions, type Position } from '../stores/eventStore.ts';

export type WaitForPosition = (position: Position, timeoutMs: number) => Promise<boolean>;

const MAX_TRACKED = 100_000;

export class ReadYourWrites {
  private readonly pending = new Map<string, Position>();

  constructor(
    private readonly waitFor: WaitForPosition,
    private readonly timeoutMs: number,
    /** The log's head (every acknowledged write is at or below it); omitted, only this process's writes are waited for. */
    private readonly head?: () => Promise<Position | undefined>,
  ) {}

  private running: Promise<Position | undefined> | undefined;
  private queued: Promise<Position | undefined> | undefined;

  /**
   * A head read that started after this call, shared by every caller waiting
   * for one: concurrent lists cost at most two head queries in flight (the
   * running one, which may have started too early for them, and the next).
   */
  private headAfterNow(): Promise<Position | undefined> {
    const head = this.head!;
    if (this.running === undefined) {
      const query = head();
      this.running = query;
      const clear = (): void => {
        if (this.running === query) this.running = undefined;
      };
      query.then(clear, clear);
      return query;
    }
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.headAfterNow();
      });
    return this.queued;
  }

  noteWrite(organizationId: string, position: Position): void {
    const known = this.pending.get(organizationId);
    if (known && comparePositions(known, position) >= 0) return;
    if (this.pending.size >= MAX_TRACKED && !known) {
      const oldest = this.pending.keys().next();
      if (oldest.done !== true) this.pending.delete(oldest.value);
    }
    this.pending.set(organizationId, position);
  }

  async settle(organizationId: string): Promise<void> {
    const own = this.pending.get(organizationId);
    const head = this.head ? await this.headAfterNow() : undefined;
    const position = own === undefined || (head !== undefined && comparePositions(head, own) > 0) ? head : own;
    if (position === undefined) return;
    if (!(await this.waitFor(position, this.timeoutMs))) {
      throw new ServiceUnavailableError('The read model is behind the log; retry shortly.', {
        headers: { 'retry-after': '1' },
      });
    }
    if (own !== undefined && this.pending.get(organizationId) === own) this.pending.delete(organizationId);
  }
}
