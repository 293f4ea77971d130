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
   * `between`, when given, is awaited between slices of synchronous work (the
   * embedded engine's row reads); the slices are then separate reads, so a
   * webhook changed meanwhile shows as it was when its slice read it, and one
   * created meanwhile is not in the answer (as if the lookup had run a moment
   * earlier). Engines whose work is I/O may ignore it.
   */
  dispatchTargets(eventType: string, partnerId: string, between?: () => Promise<void>): Promise<DispatchView[]>;
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
