// A dispatcher's own copy of the routing table (DESIGN.md §4b), for
// dispatchers in other processes: it takes the registry's snapshot, follows
// the change feed (Server-Sent Events), and answers "who must receive this
// event type for this partner?" from memory, with the rules of
// GET /internal/v1/dispatch-targets. It reconnects with back-off and resumes
// from its position (changes at or before it are skipped, so none is applied
// twice); when the registry no longer holds that position (410) it takes the
// snapshot again. Only fetch and the event-type pattern rules: no server code.
import { patternsMatching } from '../domain/eventTypes.ts';

/** One endpoint to deliver to, as /internal/v1/dispatch-targets gives it. */
export interface ReplicaTarget {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  /** Secrets valid for signing now: the current one first, then previous ones inside their grace period, newest first. */
  readonly secrets: readonly string[];
}

export interface DispatchReplicaOptions {
  /** The registry, e.g. `https://registry.internal` (no trailing path). */
  readonly baseUrl: string;
  /** An access token with the scope `webhooks:dispatch`; called for every request, so it may refresh. */
  readonly getToken: () => string | Promise<string>;
  /** Clock for secret expiry (default Date.now). */
  readonly now?: () => number;
  /** Reconnect back-off: first delay and cap (default 100 ms and 30 s), doubled per failure, with jitter. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /** A stream silent for this long is taken as dead and reconnected (default 45 s: three keep-alive periods). */
  readonly idleTimeoutMs?: number;
  /** Told about each failure the replica recovers from (connection lost, 410, refused token …). */
  readonly onError?: (error: Error) => void;
  readonly fetch?: typeof fetch;
}

export interface ReplicaStats {
  /** Changes applied from the feed (after a snapshot). */
  readonly changesApplied: number;
  /** Changes received at or before the current position, skipped. */
  readonly duplicatesSkipped: number;
  /** Snapshots taken (1 at start, one more per 410). */
  readonly bootstraps: number;
  /** Feed connections opened. */
  readonly connections: number;
}

export interface DispatchReplica {
  /** The ACTIVE webhooks that must receive `eventType` for `partnerId`, ordered by id. Do not modify the result. */
  targets(eventType: string, partnerId: string): readonly ReplicaTarget[];
  /** The registry position this copy is at (undefined before the first snapshot). */
  readonly position: string | undefined;
  /**
   * Milliseconds since the registry was last heard from (a change, a keep-alive,
   * a snapshot): below ~15 s while connected, growing while it is not.
   * Infinity before the first snapshot.
   */
  readonly lag: number;
  /** True once the first snapshot is in memory (then `targets` answers). */
  readonly ready: boolean;
  /** Resolves once ready; rejects if closed first. */
  whenReady(): Promise<void>;
  readonly stats: ReplicaStats;
  /** Stops following the feed; `targets` keeps answering from the last state. */
  close(): Promise<void>;
}

interface WireSecret {
  readonly secret: string;
  readonly expiresAt: string | null;
}

interface WireTarget {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly partnerIds: readonly string[];
  readonly secrets: readonly WireSecret[];
  readonly revision: number;
}

interface ExpiringSecret {
  readonly secret: string;
  readonly expiresAt: number;
}

/**
 * A webhook in memory, which is also the target answered for it: its public
 * fields are exactly a ReplicaTarget's (what JSON.stringify, spreading or a
 * deep comparison see), and what only the table needs is in private fields.
 * One object per webhook, shared by every cached answer that holds it; at
 * 1 000 000 webhooks a separate answered object per entry, and an object
 * per secret, were ~130 MB of the replica's heap. While a previous secret is
 * inside its grace period the entry keeps every secret with its expiry;
 * once one expires, `current()` gives a new entry without it (answers
 * already handed out keep the old one).
 */
class Entry implements ReplicaTarget {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  /** Valid for signing now: the current one first, then previous ones inside their grace period, newest first. */
  readonly secrets: readonly string[];
  readonly #partnerIds: readonly string[];
  /** Every secret with its expiry (Infinity for the current one), only while some secret expires. */
  readonly #expiring: readonly ExpiringSecret[] | undefined;
  /** When `secrets` stops being right: the earliest expiry among them. */
  readonly #until: number;

  constructor(
    base: Pick<ReplicaTarget, 'id' | 'organizationId' | 'url' | 'events'>,
    partnerIds: readonly string[],
    all: readonly ExpiringSecret[],
    now: number,
  ) {
    this.id = base.id;
    this.organizationId = base.organizationId;
    this.url = base.url;
    this.events = base.events;
    this.#partnerIds = partnerIds;
    const valid: string[] = [];
    let until = Infinity;
    for (const s of all) {
      if (s.expiresAt > now) {
        valid.push(s.secret);
        if (s.expiresAt < until) until = s.expiresAt;
      }
    }
    this.secrets = valid;
    this.#until = until;
    this.#expiring = until === Infinity ? undefined : all;
  }

  get partnerIds(): readonly string[] {
    return this.#partnerIds;
  }

  get until(): number {
    return this.#until;
  }

  /** This entry if its secrets are still right at `now`, else a new one with the expired secrets gone. */
  current(now: number): Entry {
    return now < this.#until ? this : new Entry(this, this.#partnerIds, this.#expiring!, now);
  }
}

/** A cached answer, good until a change touches its partner or a secret in it expires. */
interface Answer {
  readonly targets: readonly ReplicaTarget[];
  readonly validUntil: number;
}

/** Maps a sharded id table holds; a power of two. */
const ID_SHARDS = 256;

/**
 * Entries by id in ID_SHARDS Maps instead of one. A Map grows by building its
 * whole table again at twice the size: the bench's replica at 1 000 000
 * webhooks stopped its event loop for 316 ms (lookups and the feed with it)
 * when a new webhook took its Map past 2^20 entries (45 ms for that one set
 * in a quiet process). A shard of ~4 000 grows in microseconds.
 */
class ShardedMap<V> {
  private readonly shards = Array.from({ length: ID_SHARDS }, () => new Map<string, V>());

  private shard(id: string): Map<string, V> {
    let h = 0;
    for (let i = 0; i < 8 && i < id.length; i++) h = (Math.imul(h, 31) + id.charCodeAt(i)) | 0;
    return this.shards[(h ^ (h >>> 8)) & (ID_SHARDS - 1)]!;
  }

  get(id: string): V | undefined {
    return this.shard(id).get(id);
  }

  set(id: string, value: V): void {
    this.shard(id).set(id, value);
  }

  delete(id: string): void {
    this.shard(id).delete(id);
  }
}

/** The routing table: entries by id, and partner → pattern → ids of the entries it routes to. */
class RoutingTable {
  readonly entries = new ShardedMap<Entry>();
  private readonly routes = new Map<string, Map<string, Set<string>>>();
  private readonly answers = new Map<string, Map<string, Answer>>();
  private readonly patterns = new Map<string, readonly string[]>();

  upsert(entry: Entry): void {
    this.remove(entry.id);
    this.entries.set(entry.id, entry);
    for (const partner of entry.partnerIds) {
      let byPattern = this.routes.get(partner);
      if (!byPattern) this.routes.set(partner, (byPattern = new Map<string, Set<string>>()));
      for (const pattern of entry.events) {
        let ids = byPattern.get(pattern);
        if (!ids) byPattern.set(pattern, (ids = new Set()));
        ids.add(entry.id);
      }
      this.answers.delete(partner);
    }
  }

  remove(id: string): void {
    const old = this.entries.get(id);
    if (!old) return;
    this.entries.delete(id);
    for (const partner of old.partnerIds) {
      const byPattern = this.routes.get(partner);
      for (const pattern of old.events) {
        const ids = byPattern?.get(pattern);
        ids?.delete(id);
        if (ids?.size === 0) byPattern!.delete(pattern);
      }
      if (byPattern?.size === 0) this.routes.delete(partner);
      this.answers.delete(partner);
    }
  }

  targets(eventType: string, partnerId: string, now: number): readonly ReplicaTarget[] {
    const partner = partnerId.toLowerCase();
    let byType = this.answers.get(partner);
    const cached = byType?.get(eventType);
    if (cached !== undefined && now < cached.validUntil) return cached.targets;
    const answer = this.compute(eventType, partner, now);
    if (!byType) this.answers.set(partner, (byType = new Map<string, Answer>()));
    // Event types come from a catalog; the bound only guards against callers inventing them.
    if (byType.size >= 10_000) byType.clear();
    byType.set(eventType, answer);
    return answer.targets;
  }

  private compute(eventType: string, partner: string, now: number): Answer {
    const byPattern = this.routes.get(partner);
    if (!byPattern) return { targets: [], validUntil: Infinity };
    let patterns = this.patterns.get(eventType);
    if (!patterns) {
      patterns = patternsMatching(eventType);
      if (this.patterns.size >= 10_000) this.patterns.clear();
      this.patterns.set(eventType, patterns);
    }
    const ids = new Set<string>();
    for (const pattern of patterns) for (const id of byPattern.get(pattern) ?? []) ids.add(id);
    const sorted = [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let validUntil = Infinity;
    const targets = sorted.map((id): ReplicaTarget => {
      const stored = this.entries.get(id)!;
      const entry = stored.current(now);
      // Same routes (id, events, partners): only the secrets changed, so the indexes stay as they are.
      if (entry !== stored) this.entries.set(id, entry);
      if (entry.until < validUntil) validUntil = entry.until;
      return entry;
    });
    return { targets, validUntil };
  }

  /**
   * One copy of each organization id, partner id, pattern and list of them:
   * a million targets parsed from JSON would otherwise hold a million copies
   * of the same few thousand strings and arrays.
   */
  private readonly strings = new Map<string, string>();
  private readonly lists = new Map<string, readonly string[]>();

  intern(text: string): string {
    const known = this.strings.get(text);
    if (known !== undefined) return known;
    this.strings.set(text, text);
    return text;
  }

  internList(items: readonly string[]): readonly string[] {
    const key = items.join('\n');
    const known = this.lists.get(key);
    if (known !== undefined) return known;
    const list = Object.freeze(items.map((x) => this.intern(x)));
    this.lists.set(key, list);
    return list;
  }
}

function entryOf(table: RoutingTable, target: WireTarget, now: number): Entry {
  return new Entry(
    { id: target.id, organizationId: table.intern(target.organizationId), url: target.url, events: table.internList([...new Set(target.events)]) },
    table.internList([...new Set(target.partnerIds.map((p) => p.toLowerCase()))]),
    target.secrets.map((s) => ({ secret: s.secret, expiresAt: s.expiresAt === null ? Infinity : Date.parse(s.expiresAt) })),
    now,
  );
}

/** Positions are `<commit>/<prepare>` decimal pairs; compared as numbers, whatever their width. */
function comparePositionText(a: string, b: string): number {
  const [ac = '0', ap = '0'] = a.split('/');
  const [bc = '0', bp = '0'] = b.split('/');
  const c = BigInt(ac) - BigInt(bc);
  if (c !== 0n) return c < 0n ? -1 : 1;
  const p = BigInt(ap) - BigInt(bp);
  return p === 0n ? 0 : p < 0n ? -1 : 1;
}

class PositionGoneError extends Error {
  override readonly name = 'PositionGoneError';
}

class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  constructor(
    readonly status: number,
    what: string,
  ) {
    super(`${what}: HTTP ${status}`);
  }
}

/** Lines of a fetch body as they arrive. */
async function* lines(body: ReadableStream<Uint8Array>, onBytes: () => void): AsyncIterable<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    onBytes();
    buffer += decoder.decode(chunk, { stream: true });
    let start = 0;
    let at: number;
    while ((at = buffer.indexOf('\n', start)) !== -1) {
      yield buffer.endsWith('\r', at) ? buffer.slice(start, at - 1) : buffer.slice(start, at);
      start = at + 1;
    }
    buffer = buffer.slice(start);
  }
  buffer += decoder.decode();
  if (buffer !== '') yield buffer;
}

const SNAPSHOT_HEAD = /^\{"position":"([^"]+)","webhooks":\[$/;

export function createDispatchReplica(options: DispatchReplicaOptions): DispatchReplica {
  return new Replica(options);
}

class Replica implements DispatchReplica {
  private table = new RoutingTable();
  private current: string | undefined;
  private heardAt: number | undefined;
  private closed = false;
  private readonly controller = new AbortController();
  private readonly loop: Promise<void>;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: Error) => void;
  private isReady = false;
  private readonly counts = { changesApplied: 0, duplicatesSkipped: 0, bootstraps: 0, connections: 0 };
  private readonly base: string;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;

  constructor(private readonly options: DispatchReplicaOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Nobody may be waiting; an unobserved rejection must not crash the process.
    this.readyPromise.catch(() => undefined);
    this.loop = this.run();
  }

  targets(eventType: string, partnerId: string): readonly ReplicaTarget[] {
    return this.table.targets(eventType, partnerId, this.now());
  }

  get position(): string | undefined {
    return this.current;
  }

  get lag(): number {
    return this.heardAt === undefined ? Infinity : Math.max(0, Date.now() - this.heardAt);
  }

  get ready(): boolean {
    return this.isReady;
  }

  whenReady(): Promise<void> {
    return this.readyPromise;
  }

  get stats(): ReplicaStats {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    if (this.closed) return this.loop;
    this.closed = true;
    this.controller.abort();
    if (!this.isReady) this.rejectReady(new Error('the dispatch replica was closed before its first snapshot'));
    await this.loop;
  }

  private async run(): Promise<void> {
    const initialMs = this.options.backoff?.initialMs ?? 100;
    const maxMs = this.options.backoff?.maxMs ?? 30_000;
    let failures = 0;
    while (!this.closed) {
      try {
        if (this.current === undefined) await this.bootstrap();
        await this.follow(() => (failures = 0));
      } catch (error) {
        if (this.closed) break;
        const failure = error instanceof Error ? error : new Error(String(error));
        this.options.onError?.(failure);
        if (failure instanceof PositionGoneError) {
          // The registry no longer holds our position: start again from its snapshot (at once, the first time).
          this.current = undefined;
          if (failures++ === 0) continue;
        } else {
          failures++;
        }
        const delay = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 20));
        await this.sleep(delay / 2 + Math.random() * (delay / 2));
        continue;
      }
      // The stream ended cleanly (the registry closed it, e.g. shutting down): reconnect after a short pause.
      if (!this.closed) await this.sleep(initialMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.controller.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.controller.signal.addEventListener('abort', done, { once: true });
    });
  }

  private async request(path: string, accept: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<Response> {
    const token = await this.options.getToken();
    return this.fetch(`${this.base}${path}`, {
      headers: { authorization: `Bearer ${token}`, accept, ...headers },
      signal,
    });
  }

  /** Takes the snapshot into a new table, then swaps it in: lookups never see half of one. */
  private async bootstrap(): Promise<void> {
    const response = await this.request('/internal/v1/dispatch-snapshot', 'application/json', this.controller.signal);
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel();
      throw new HttpStatusError(response.status, 'dispatch snapshot');
    }
    const table = new RoutingTable();
    let position: string | undefined;
    let whole: string | undefined;
    let complete = false;
    for await (const line of lines(response.body, () => (this.heardAt = Date.now()))) {
      if (whole !== undefined) {
        whole += `${line}\n`;
        continue;
      }
      if (position === undefined) {
        const head = SNAPSHOT_HEAD.exec(line);
        // Not laid out one target per line: read it whole.
        if (!head) {
          whole = `${line}\n`;
          continue;
        }
        position = head[1]!;
        continue;
      }
      if (line === ']}') {
        complete = true;
        continue;
      }
      if (line === '') continue;
      table.upsert(entryOf(table, JSON.parse(line.endsWith(',') ? line.slice(0, -1) : line) as WireTarget, this.now()));
    }
    if (whole !== undefined) {
      const body = JSON.parse(whole) as { position: string; webhooks: WireTarget[] };
      position = body.position;
      for (const target of body.webhooks) table.upsert(entryOf(table, target, this.now()));
      complete = true;
    }
    if (!complete || position === undefined) throw new Error('the dispatch snapshot ended early');
    this.table = table;
    this.current = position;
    this.counts.bootstraps++;
    this.heardAt = Date.now();
    if (!this.isReady) {
      this.isReady = true;
      this.resolveReady();
    }
  }

  /** Follows the feed from the current position until the stream ends or fails. */
  private async follow(connected: () => void): Promise<void> {
    const connection = new AbortController();
    const abort = (): void => connection.abort();
    this.controller.signal.addEventListener('abort', abort, { once: true });
    const idleMs = this.options.idleTimeoutMs ?? 45_000;
    let lastBytes = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastBytes > idleMs) connection.abort();
    }, Math.min(1000, idleMs));
    try {
      const from = this.current!;
      const response = await this.request(`/internal/v1/changes?after=${encodeURIComponent(from)}`, 'text/event-stream', connection.signal);
      if (response.status === 410) {
        await response.body?.cancel();
        throw new PositionGoneError(`the registry no longer holds position ${from}`);
      }
      if (response.status !== 200 || response.body === null) {
        await response.body?.cancel();
        throw new HttpStatusError(response.status, 'change feed');
      }
      this.counts.connections++;
      connected();
      let id: string | undefined;
      let event: string | undefined;
      let data = '';
      for await (const line of lines(response.body, () => {
        lastBytes = Date.now();
        this.heardAt = lastBytes;
      })) {
        if (line === '') {
          if (event !== undefined && id !== undefined) this.apply(id, event, data);
          id = undefined;
          event = undefined;
          data = '';
        } else if (line.startsWith(':')) {
          // a keep-alive comment: heard (above)
        } else {
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(line[colon + 1] === ' ' ? colon + 2 : colon + 1);
          if (field === 'id') id = value;
          else if (field === 'event') event = value;
          else if (field === 'data') data = data === '' ? value : `${data}\n${value}`;
        }
      }
    } catch (error) {
      if (this.controller.signal.aborted) return;
      throw error;
    } finally {
      clearInterval(watchdog);
      this.controller.signal.removeEventListener('abort', abort);
    }
  }

  private apply(id: string, event: string, data: string): void {
    if (this.current !== undefined && comparePositionText(id, this.current) <= 0) {
      this.counts.duplicatesSkipped++;
      return;
    }
    if (event === 'webhook.upserted') this.table.upsert(entryOf(this.table, JSON.parse(data) as WireTarget, this.now()));
    else if (event === 'webhook.removed') this.table.remove((JSON.parse(data) as { id: string }).id);
    else return; // an event type this version does not know: not a routing change it can apply
    this.current = id;
    this.counts.changesApplied++;
  }
}
