// The read-model port: what the projector writes and the API and dispatchers
// query. Engines: sqlite/ (embedded default) and mongo/ (MongoDB). Both pass
// test/contract/readModel.contract.ts. Every engine applies events through the
// same pure function (src/projections/webhookView.ts), so they cannot disagree
// about what an event means.
import type { RecordedEvent } from './eventStore.ts';
import type { WebhookView } from '../projections/webhookView.ts';

export type { WebhookView } from '../projections/webhookView.ts';

/**
 * The part of a webhook's view a dispatcher needs. Stores keep it beside the
 * dispatch index, so a lookup reads only its own rows, not whole views.
 */
export type DispatchView = Pick<WebhookView, 'id' | 'organizationId' | 'url' | 'events' | 'secret' | 'previousSecrets'>;

/**
 * How a dispatch lookup reads its rows (ReadModel.dispatchTargets): what it
 * keeps of each, and what it waits for between slices. Keeping the small
 * thing (a target with its secrets) in the slice that read the row, rather
 * than every row until the end, lets the rows die young: a lookup of 117
 * targets waits through several turns, and rows kept that long were promoted
 * to the old generation by the megabyte.
 */
export interface DispatchSlices<T> {
  readonly keep: (view: DispatchView) => T;
  readonly between: () => Promise<void>;
}

/** What an engine that reads in one go answers (see ReadModel.dispatchTargets). */
export function keptTargets<T extends { readonly id: string }>(views: DispatchView[], slices: DispatchSlices<T> | undefined): T[] {
  // Without slices T is its default, DispatchView: the views are the answer.
  return slices === undefined ? (views as unknown as T[]) : views.map(slices.keep);
}

export function toDispatchView(view: WebhookView): DispatchView {
  return {
    id: view.id,
    organizationId: view.organizationId,
    url: view.url,
    events: view.events,
    secret: view.secret,
    previousSecrets: view.previousSecrets,
  };
}

/** An Idempotency-Key use recorded in the log, indexed for cross-resource reuse checks. */
export interface IdempotencyKeyEntry {
  readonly organizationId: string;
  readonly keyHash: string;
  readonly webhookId: string;
  readonly fingerprint: string;
  readonly firstUsedAt: string;
}

export interface ListQuery {
  readonly organizationId: string;
  readonly limit: number;
  /** Exclusive: the (createdAt, id) of the last item of the previous page. */
  readonly after?: { readonly createdAt: string; readonly id: string } | undefined;
  readonly status?: 'ACTIVE' | 'PAUSED' | 'DISABLED' | undefined;
  /** Only webhooks subscribed with exactly this pattern, or with a pattern matching this event type. */
  readonly event?: string | undefined;
}

/** Another projector moved the checkpoint first. */
export class CheckpointConflictError extends Error {
  override readonly name = 'CheckpointConflictError';
  constructor(
    readonly expected: string | null,
    readonly actual: string | null,
  ) {
    super(`checkpoint moved: expected ${String(expected)}, found ${String(actual)}`);
  }
}

/** An event arrived out of order for its webhook (a gap in revisions). */
export class ProjectionGapError extends Error {
  override readonly name = 'ProjectionGapError';
}

export interface ReadModel {
  /**
   * Applies a batch in order, each event guarded by its webhook's stored
   * revision (already applied → no-op), and moves the checkpoint from
   * `expectedCheckpoint` to the last event's position, all atomically.
   */
  applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void>;
  /** Encoded position of the last applied event, or null before the first. */
  checkpoint(): Promise<string | null>;
  /** A webhook including deleted ones (tombstones carry `deleted: true`). */
  getWebhook(id: string): Promise<WebhookView | null>;
  /** Live (not deleted) webhooks of one organization ordered by (createdAt, id). */
  listWebhooks(query: ListQuery): Promise<WebhookView[]>;
  /**
   * ACTIVE, live webhooks with a pattern matching `eventType` whose partner
   * filter admits `partnerId`, ordered by id: only what a dispatcher needs.
   * With `slices`, each row becomes `slices.keep(row)` as soon as it is read,
   * and the answer is those, ordered by id. The embedded engine then reads
   * the rows in slices with `slices.between` awaited before each slice after
   * the first; the slices are separate reads, so a webhook changed meanwhile
   * shows as it was when its slice read it, and one created meanwhile is not
   * in the answer (as if the lookup had run a moment earlier). Engines whose
   * work is I/O read in one go and keep every row afterwards.
   */
  dispatchTargets<T extends { readonly id: string } = DispatchView>(
    eventType: string,
    partnerId: string,
    slices?: DispatchSlices<T>,
  ): Promise<T[]>;
  /**
   * A number that changes whenever an answer of dispatchTargets may have
   * changed: a batch applied here, a commit by another writer, a switch of
   * the tables. Equal numbers mean every dispatch answer is as it was (except
   * previous secrets whose grace period ends, which needs no write), so a
   * caller may keep answers while it stays equal. Engines that cannot tell
   * cheaply (other processes write them, nothing signals it) leave it out.
   */
  dispatchVersion?(): Promise<number>;
  findIdempotencyKey(organizationId: string, keyHash: string): Promise<IdempotencyKeyEntry | null>;
  /** Every stored webhook, tombstones included, ordered by id (for audits and rebuild checks). */
  allWebhooks(): AsyncIterable<WebhookView>;
  /** Drops every webhook, key and the checkpoint. */
  reset(): Promise<void>;
  /**
   * Starts building a fresh copy beside the live one (new tables or a new
   * versioned collection). The live model keeps serving reads until
   * `commit()` switches to the copy atomically.
   */
  beginRebuild(): Promise<RebuildTarget>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A read model under construction by `projections rebuild`. */
export interface RebuildTarget {
  /** Same semantics as ReadModel.applyBatch, against the copy. */
  applyBatch(events: readonly RecordedEvent[], expectedCheckpoint: string | null): Promise<void>;
  checkpoint(): Promise<string | null>;
  /** Makes the copy the live read model (webhooks, keys and checkpoint) in one step. */
  commit(): Promise<void>;
  /** Throws the copy away. */
  abort(): Promise<void>;
}
