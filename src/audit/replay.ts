// Point-in-time replay: the state of every webhook at a past instant, rebuilt
// from the event log alone (never from the read model, which may be damaged or
// behind). Shared by `audit replay` (CLI) and GET /internal/v1/audit/webhooks.
//
// "At instant T" means: for each stream, the longest prefix of its events
// whose metadata.occurredAt <= T. The prefix rule (rather than "every event
// with occurredAt <= T") keeps a stream foldable even if a writer's clock
// stepped backwards: an event is never applied after one that was skipped.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { previousSecretsExpireAt } from '../domain/webhook.ts';
import { nextView, type WebhookView } from '../projections/webhookView.ts';
import {
  comparePositions,
  WEBHOOK_STREAM_PREFIX,
  type EventStore,
  type Position,
  type RecordedEvent,
} from '../stores/eventStore.ts';

export const DEFAULT_LOG_PAGE_SIZE = 2000;

/** The replay was cancelled through its AbortSignal (e.g. Ctrl-C). */
export class ReplayAbortedError extends Error {
  override readonly name = 'ReplayAbortedError';
  constructor() {
    super('replay aborted');
  }
}

/** The log cannot be folded (a stream does not start with a registration, or has a gap). */
export class LogDamagedError extends Error {
  override readonly name = 'LogDamagedError';
  constructor(
    readonly streamId: string,
    readonly revision: number,
    reason: string,
  ) {
    super(`the event log is damaged at ${streamId} revision ${revision}: ${reason}; run "audit verify"`);
  }
}

export interface LogPagesOptions {
  /** Exclusive lower bound; from the start of the log when absent. */
  readonly after?: Position | undefined;
  /** Inclusive upper bound: pages stop at this position, so a scan covers one fixed state of the log. */
  readonly until: Position;
  readonly pageSize?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * The log in position order, one `store.readAll` page at a time, up to and
 * including `until`. Every page moves strictly forward and the scan ends at
 * `until`, so it terminates even while writers keep appending. Between pages
 * it yields to the event loop: an embedded store answers synchronously, and a
 * long scan must not starve the server's other requests (or a Ctrl-C handler).
 */
export async function* logPages(store: EventStore, options: LogPagesOptions): AsyncGenerator<RecordedEvent[]> {
  const limit = options.pageSize ?? DEFAULT_LOG_PAGE_SIZE;
  let after = options.after;
  for (;;) {
    if (options.signal?.aborted) throw new ReplayAbortedError();
    const page = await store.readAll({ after, limit });
    if (page.length === 0) return;
    let end = page.length;
    while (end > 0 && comparePositions(page[end - 1]!.position, options.until) > 0) end--;
    if (end > 0) yield end === page.length ? page : page.slice(0, end);
    if (end < page.length) return;
    const last = page[page.length - 1]!.position;
    if (after !== undefined && comparePositions(last, after) <= 0) {
      throw new Error('the event store returned a page that does not move forward');
    }
    after = last;
    await yieldToEventLoop();
  }
}

// ---- instants ----------------------------------------------------------------

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Parses an RFC 3339 date-time with an explicit offset (`2024-05-01T12:00:00Z`); undefined when malformed. */
export function parseInstant(text: string): Date | undefined {
  const m = RFC3339.exec(text.trim());
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  // Fractions below a millisecond are truncated: occurredAt has millisecond
  // precision, so "occurredAt <= instant" is unchanged by the truncation.
  const millis = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000);
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMinutes * 60_000;
  const date = new Date(utc);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export type InstantProblem = 'malformed' | 'future';

/** Why an `as of` instant is refused (malformed, or later than `now`), or undefined when usable. */
export function checkInstant(text: string, now: Date): { problem: InstantProblem; message: string } | { instant: Date } {
  const instant = parseInstant(text);
  if (instant === undefined) {
    return {
      problem: 'malformed',
      message: 'must be an RFC 3339 date-time with a time zone, such as 2024-05-01T12:00:00Z',
    };
  }
  if (instant.getTime() > now.getTime()) {
    return {
      problem: 'future',
      message: `is in the future (now is ${now.toISOString()}); the state of a later instant is not known yet`,
    };
  }
  return { instant };
}

// ---- the public record ----------------------------------------------------------

/** What an audit shows of a webhook: every field except the (encrypted) signing secrets. */
export interface AuditWebhook {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  /** null: every partner the organization is authorized for. */
  readonly partnerIds: readonly string[] | null;
  readonly effectivePartnerIds: readonly string[];
  readonly status: WebhookView['status'];
  readonly disabledReason: string | null;
  /** Until when a previous secret may still sign (the latest of `previousSecretExpiries`), null when none. */
  readonly previousSecretExpiresAt: string | null;
  /** The expiry of each previous secret kept at the last rotation, newest first (the secrets themselves never). */
  readonly previousSecretExpiries: string[];
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly deleted: boolean;
  /** Revision of the last event applied. */
  readonly revision: number;
  /** Encoded log position of that event. */
  readonly position: string;
}

export function toAuditWebhook(view: WebhookView): AuditWebhook {
  return {
    id: view.id,
    organizationId: view.organizationId,
    url: view.url,
    events: [...view.events],
    partnerIds: view.partnerIds === null ? null : [...view.partnerIds],
    effectivePartnerIds: [...view.effectivePartnerIds],
    status: view.status,
    disabledReason: view.disabledReason,
    previousSecretExpiresAt: previousSecretsExpireAt(view),
    previousSecretExpiries: view.previousSecrets.map((p) => p.expiresAt),
    createdAt: view.createdAt,
    updatedAt: view.updatedAt,
    deleted: view.deleted,
    revision: view.revision,
    position: view.position,
  };
}

// ---- replay -------------------------------------------------------------------

export interface ReplayProgress {
  /** Events read so far. */
  readonly events: number;
  /** Position of the last event read. */
  readonly position: Position;
  /** Where the replay stops. */
  readonly until: Position;
}

export interface ReplayOptions {
  readonly asOf: Date;
  /** Only webhooks of this organization. */
  readonly organizationId?: string | undefined;
  /** Exclusive: only webhooks whose id sorts after this one (pagination). */
  readonly afterId?: string | undefined;
  /** At most this many webhooks, the smallest ids first; all when absent. */
  readonly limit?: number | undefined;
  /** Replay the log up to this position; the log's head at the start when absent. */
  readonly until?: Position | undefined;
  readonly pageSize?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((progress: ReplayProgress) => void) | undefined;
}

export interface ReplayResult {
  /** The webhooks that existed at `asOf` (deleted ones flagged), ordered by id. */
  readonly webhooks: AuditWebhook[];
  /** More webhooks follow after the last one (only with `limit`). */
  readonly hasMore: boolean;
  /** The log position the replay covered (undefined: the log is empty). */
  readonly until: Position | undefined;
  readonly events: number;
  /** occurredAt of the earliest event read, or null for an empty log. */
  readonly earliestEventAt: string | null;
}

interface Tracked {
  view: WebhookView;
  /** An event after `asOf` was seen: the rest of the stream is later still. */
  frozen: boolean;
}

/**
 * Folds the log (via the read model's own `nextView`, so replay and projection
 * cannot disagree about what an event means) into the state of every webhook
 * at `asOf`. With `limit`, only the `limit + 1` smallest admissible ids are
 * ever held in memory, so one page costs one scan of the log and O(limit) memory.
 */
export async function replayAsOf(store: EventStore, options: ReplayOptions): Promise<ReplayResult> {
  const until = options.until ?? (await store.headPosition());
  if (until === undefined) return { webhooks: [], hasMore: false, until, events: 0, earliestEventAt: null };
  const asOf = options.asOf.getTime();
  const limit = options.limit;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new RangeError('limit must be a positive integer');
  const capacity = limit === undefined ? undefined : limit + 1;
  const tracked = new Map<string, Tracked>();
  /** Only with a limit: the tracked ids in ascending order. */
  const order: string[] = [];
  let events = 0;
  let earliest: number | undefined;
  let earliestText: string | null = null;

  for await (const page of logPages(store, { until, pageSize: options.pageSize, signal: options.signal })) {
    for (const event of page) {
      events++;
      const at = Date.parse(event.metadata.occurredAt);
      if (earliest === undefined || at < earliest) {
        earliest = at;
        earliestText = event.metadata.occurredAt;
      }
      const id = webhookIdOf(event);
      const entry = tracked.get(id);
      if (entry === undefined) {
        // Only a registration (revision 0) can start tracking a webhook; any
        // other event of an untracked stream belongs to one that was not
        // admitted (other organization, before the cursor, after `asOf`, or
        // evicted by smaller ids) and never will be.
        if (event.revision !== 0 || !(at <= asOf)) continue;
        if (options.afterId !== undefined && id <= options.afterId) continue;
        if (capacity !== undefined && order.length >= capacity && id > order[order.length - 1]!) continue;
        const view = apply(null, event);
        if (options.organizationId !== undefined && view.organizationId !== options.organizationId) continue;
        tracked.set(id, { view, frozen: false });
        if (capacity !== undefined) {
          order.splice(insertionIndex(order, id), 0, id);
          if (order.length > capacity) tracked.delete(order.pop()!);
        }
        continue;
      }
      if (entry.frozen) continue;
      if (!(at <= asOf)) {
        entry.frozen = true;
        continue;
      }
      entry.view = apply(entry.view, event);
    }
    options.onProgress?.({ events, position: page[page.length - 1]!.position, until });
  }

  const ids = capacity !== undefined ? order : [...tracked.keys()].sort(compareIds);
  const visible = limit !== undefined ? ids.slice(0, limit) : ids;
  return {
    webhooks: visible.map((id) => toAuditWebhook(tracked.get(id)!.view)),
    hasMore: limit !== undefined && ids.length > limit,
    until,
    events,
    earliestEventAt: earliestText,
  };
}

function apply(current: WebhookView | null, event: RecordedEvent): WebhookView {
  let change;
  try {
    change = nextView(current, event);
  } catch (error) {
    throw new LogDamagedError(event.streamId, event.revision, (error as Error).message);
  }
  return change.kind === 'apply' ? change.view : current!;
}

/** The webhook an event belongs to: from its data, else from the stream name. */
export function webhookIdOf(event: RecordedEvent): string {
  const fromData = (event.data as { webhookId?: unknown } | null)?.webhookId;
  if (typeof fromData === 'string') return fromData;
  return event.streamId.startsWith(WEBHOOK_STREAM_PREFIX) ? event.streamId.slice(WEBHOOK_STREAM_PREFIX.length) : event.streamId;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function insertionIndex(sorted: readonly string[], id: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

