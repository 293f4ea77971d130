// The embedded read model's dispatch index, in memory: for each (partner,
// pattern) the sorted `seq`s of the webhooks that may receive it. It only
// proposes candidates: a lookup reads each candidate's row and keeps it only
// if the row itself, as stored now, is ACTIVE, live, admits the partner and
// has one of the patterns (rowQualifies). So the index may hold stale
// entries — a webhook paused, deleted or re-subscribed since — but must never
// lack one: every dispatchable route of every row is added when the row is
// written or synced. Stale entries are dropped when a lookup meets them.
//
// It replaces a SQLite table of (partner, pattern, seq) rows: those rows were
// the largest share of the page writes of a registration's projection (one
// or more rows per partner × pattern, each on a page of its own per batch),
// and a lookup now reads no index pages at all.
// Memory: one small integer per route (a webhook has partners × patterns
// routes; ~1.2 × 2 on average in the bench), in arrays per (partner, pattern).

/** What the index needs of a row to know its routes and whether it still qualifies. */
export interface RoutedRow {
  readonly seq: number;
  readonly status: string;
  readonly deleted: boolean;
  readonly events: readonly string[];
  /** The partners it delivers for: its own filter, else the authorized set. */
  readonly partners: readonly string[];
}

const slotKey = (partnerId: string, pattern: string): string => `${partnerId}\n${pattern}`;

export function rowQualifies(row: RoutedRow, partnerId: string, patterns: readonly string[]): boolean {
  return (
    !row.deleted && row.status === 'ACTIVE' && row.partners.includes(partnerId) && row.events.some((e) => patterns.includes(e))
  );
}

export class RoutingIndex {
  private readonly slots = new Map<string, number[]>();

  /** Adds the routes the row has now (none unless it is dispatchable); stale routes stay until a lookup drops them. */
  add(row: RoutedRow): void {
    if (row.deleted || row.status !== 'ACTIVE') return;
    for (const partner of row.partners) {
      for (const pattern of row.events) {
        const key = slotKey(partner, pattern);
        const slot = this.slots.get(key);
        if (slot === undefined) this.slots.set(key, [row.seq]);
        else insertSorted(slot, row.seq);
      }
    }
  }

  /**
   * What `read(seq)` gives for each candidate of `partnerId` and any of
   * `patterns` that still qualifies (read returns null otherwise), each
   * webhook once, in no particular order. Candidates that no longer qualify
   * are removed from the slot they were found in.
   */
  lookup<T>(partnerId: string, patterns: readonly string[], read: (seq: number) => T | null): T[] {
    const seen = new Map<number, T | null>();
    const found: T[] = [];
    for (const pattern of patterns) {
      const key = slotKey(partnerId, pattern);
      const slot = this.slots.get(key);
      if (slot === undefined) continue;
      let live: number[] | undefined;
      for (let i = 0; i < slot.length; i++) {
        const seq = slot[i]!;
        let value: T | null;
        if (seen.has(seq)) value = seen.get(seq)!;
        else {
          value = read(seq);
          seen.set(seq, value);
          if (value !== null) found.push(value);
        }
        if (value === null) live ??= slot.slice(0, i);
        else live?.push(seq);
      }
      if (live === undefined) continue;
      if (live.length === 0) this.slots.delete(key);
      else this.slots.set(key, live);
    }
    return found;
  }

  /**
   * The candidates of `partnerId` for any of `patterns`, each once, for a
   * lookup that reads their rows in slices: check each with rowQualifies as
   * stored then, and `drop` the ones that do not.
   */
  candidates(partnerId: string, patterns: readonly string[]): number[] {
    if (patterns.length === 1) return [...(this.slots.get(slotKey(partnerId, patterns[0]!)) ?? [])];
    const seqs = new Set<number>();
    for (const pattern of patterns) for (const seq of this.slots.get(slotKey(partnerId, pattern)) ?? []) seqs.add(seq);
    return [...seqs];
  }

  /** Removes `seq` from the slots of `partnerId` × `patterns`: its row, as stored now, qualifies for none of them. */
  drop(partnerId: string, patterns: readonly string[], seq: number): void {
    for (const pattern of patterns) {
      const key = slotKey(partnerId, pattern);
      const slot = this.slots.get(key);
      if (slot === undefined) continue;
      const at = indexOf(slot, seq);
      if (at < 0) continue;
      if (slot.length === 1) this.slots.delete(key);
      else slot.splice(at, 1);
    }
  }

  clear(): void {
    this.slots.clear();
  }

  /** Routes held (stale ones included), for tests and metrics. */
  get size(): number {
    let n = 0;
    for (const slot of this.slots.values()) n += slot.length;
    return n;
  }
}

/** Inserts `seq` into ascending `slot` unless present; new webhooks have the largest seq, so this is usually a push. */
function insertSorted(slot: number[], seq: number): void {
  if (seq > slot[slot.length - 1]!) {
    slot.push(seq);
    return;
  }
  const at = lowerBound(slot, seq);
  if (slot[at] !== seq) slot.splice(at, 0, seq);
}

/** Where `seq` is in ascending `slot`, or -1. */
function indexOf(slot: readonly number[], seq: number): number {
  const at = lowerBound(slot, seq);
  return slot[at] === seq ? at : -1;
}

/** The first index of ascending `slot` whose value is not below `seq`. */
function lowerBound(slot: readonly number[], seq: number): number {
  let lo = 0;
  let hi = slot.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (slot[mid]! < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
