// What the read model stores per webhook, and the one pure function that turns
// a recorded event into the next view. All read-model engines call it.
import {
  effectivePartnerIds,
  evolve,
  type EncryptedSecret,
  type PreviousSecret,
  type Webhook,
  type WebhookEvent,
} from '../domain/webhook.ts';
import { encodePosition, type RecordedEvent } from '../stores/eventStore.ts';
import type { IdempotencyKeyEntry } from '../stores/readModel.ts';

export interface WebhookView extends Webhook {
  /** Revision of the last applied event of this webhook's stream. */
  readonly revision: number;
  /** Encoded log position of that event. */
  readonly position: string;
  readonly deleted: boolean;
  /** Denormalized for the dispatch index: `partnerIds` or else the authorized set. */
  readonly effectivePartnerIds: readonly string[];
}

export type ViewChange =
  | { readonly kind: 'skip' }
  | { readonly kind: 'apply'; readonly view: WebhookView; readonly key: IdempotencyKeyEntry | null };

/**
 * Given the stored view (or null) and the next recorded event of that stream,
 * decides whether the event was already applied (revision guard) and, if not,
 * the next view. Throws on a gap: events must arrive in stream order.
 */
export function nextView(current: WebhookView | null, event: RecordedEvent): ViewChange {
  const storedRevision = current?.revision ?? -1;
  if (event.revision <= storedRevision) return { kind: 'skip' };
  if (event.revision !== storedRevision + 1) {
    throw new Error(`gap in ${event.streamId}: stored revision ${storedRevision}, got ${event.revision}`);
  }
  const domainEvent = { type: event.type, data: event.data } as WebhookEvent;
  const state = evolve(
    current === null
      ? { kind: 'absent' }
      : current.deleted
        ? { kind: 'deleted', webhook: current, deletedAt: current.updatedAt }
        : { kind: 'live', webhook: current },
    domainEvent,
  );
  if (state.kind === 'absent') throw new Error(`event ${event.type} at ${event.streamId}@0 did not create a webhook`);
  const webhook = stripView(state.webhook);
  const view: WebhookView = {
    ...webhook,
    revision: event.revision,
    position: encodePosition(event.position),
    deleted: state.kind === 'deleted',
    effectivePartnerIds: effectivePartnerIds(webhook),
  };
  const { idempotencyKeyHash, requestFingerprint, organizationId, occurredAt } = event.metadata;
  const key =
    idempotencyKeyHash !== null && requestFingerprint !== null
      ? {
          organizationId,
          keyHash: idempotencyKeyHash,
          webhookId: webhook.id,
          fingerprint: requestFingerprint,
          firstUsedAt: occurredAt,
        }
      : null;
  return { kind: 'apply', view, key };
}

/** Drops view-only fields so the domain's Webhook is what evolve() sees and returns. */
function stripView(w: Webhook | WebhookView): Webhook {
  return {
    id: w.id,
    organizationId: w.organizationId,
    url: w.url,
    events: w.events,
    partnerIds: w.partnerIds,
    authorizedPartnerIds: w.authorizedPartnerIds,
    status: w.status,
    disabledReason: w.disabledReason,
    secret: w.secret,
    previousSecrets: w.previousSecrets,
    createdAt: w.createdAt,
    updatedAt: w.updatedAt,
  };
}

/**
 * A view as an earlier version stored it: one previous secret in two fields
 * (`previousSecret`, `previousSecretExpiresAt`) instead of `previousSecrets`.
 */
export type StoredWebhookView = Omit<WebhookView, 'previousSecrets'> & {
  readonly previousSecrets?: readonly PreviousSecret[];
  readonly previousSecret?: EncryptedSecret | null;
  readonly previousSecretExpiresAt?: string | null;
};

/**
 * The current shape of a stored view, for engines that read views written by
 * an earlier version. The conversion is exact for that version's state (it
 * kept one previous secret); secrets it had already dropped come back only by
 * rebuilding from the log (`projections rebuild`).
 */
export function upgradeStoredView(stored: StoredWebhookView): WebhookView {
  if (stored.previousSecrets !== undefined && !('previousSecret' in stored) && !('previousSecretExpiresAt' in stored)) {
    return stored as WebhookView;
  }
  const { previousSecret, previousSecretExpiresAt, previousSecrets, ...rest } = stored;
  return {
    ...rest,
    previousSecrets:
      previousSecrets ??
      (previousSecret && previousSecretExpiresAt ? [{ secret: previousSecret, expiresAt: previousSecretExpiresAt }] : []),
  };
}
