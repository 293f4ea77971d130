// The audit trail of one webhook: every recorded event of its stream with its
// time, actor, revision, position and what it changed. "What changed" is the
// difference between the public state before and after the event (folded with
// the domain's own evolve), so it shows the effect of the event, not the
// request; secrets appear only as "[redacted]" markers, never as values or
// ciphertext.
import { verifyChain } from '../domain/hashChain.ts';
import {
  effectivePartnerIds,
  evolve,
  initialState,
  previousSecretsExpireAt,
  type WebhookEvent,
  type WebhookState,
} from '../domain/webhook.ts';
import { encodePosition, type RecordedEvent } from '../stores/eventStore.ts';

export const REDACTED = '[redacted]';

export interface FieldChange {
  readonly from: unknown;
  readonly to: unknown;
}

export interface HistoryEntry {
  readonly revision: number;
  readonly position: string;
  readonly type: string;
  readonly occurredAt: string;
  readonly actor: { readonly clientId: string; readonly subject: string };
  readonly requestId: string;
  /** Public fields whose value the event changed (`secret` only as a redacted marker). */
  readonly changes: Readonly<Record<string, FieldChange>>;
  readonly previousHash: string | null;
  readonly hash: string;
}

export type ChainStatus =
  | { readonly intact: true }
  | { readonly intact: false; readonly revision: number; readonly problem: string };

export interface WebhookHistory {
  /** The organization that registered the webhook (null when the stream has no registration). */
  readonly organizationId: string | null;
  readonly entries: HistoryEntry[];
  /** The stream's hash chain, verified while reading it. */
  readonly chain: ChainStatus;
}

/** The public fields a history diff looks at, in display order. */
const PUBLIC_FIELDS = [
  'url',
  'events',
  'partnerIds',
  'effectivePartnerIds',
  'status',
  'disabledReason',
  'previousSecretExpiresAt',
  // Each previous secret's expiry, newest first: a rotation that retired one
  // early (MAX_PREVIOUS_SECRETS) shows as its expiry leaving the list before its time.
  'previousSecretExpiries',
  'deleted',
] as const;

type PublicState = Record<(typeof PUBLIC_FIELDS)[number] | 'secret', unknown>;

function publicState(state: WebhookState): PublicState {
  if (state.kind === 'absent') {
    return {
      url: null,
      events: null,
      partnerIds: null,
      effectivePartnerIds: null,
      status: null,
      disabledReason: null,
      previousSecretExpiresAt: null,
      previousSecretExpiries: [],
      deleted: false,
      secret: null,
    };
  }
  const w = state.webhook;
  return {
    url: w.url,
    events: w.events,
    partnerIds: w.partnerIds,
    effectivePartnerIds: effectivePartnerIds(w),
    status: w.status,
    disabledReason: w.disabledReason,
    previousSecretExpiresAt: previousSecretsExpireAt(w),
    previousSecretExpiries: w.previousSecrets.map((p) => p.expiresAt),
    deleted: state.kind === 'deleted',
    // Compared by ciphertext, shown only as a marker.
    secret: w.secret.ciphertext,
  };
}

function diff(before: PublicState, after: PublicState): Record<string, FieldChange> {
  const changes: Record<string, FieldChange> = {};
  for (const field of PUBLIC_FIELDS) {
    if (JSON.stringify(before[field]) !== JSON.stringify(after[field])) {
      changes[field] = { from: before[field], to: after[field] };
    }
  }
  if (before.secret !== after.secret) {
    changes.secret = { from: before.secret === null ? null : REDACTED, to: after.secret === null ? null : REDACTED };
  }
  return changes;
}

export function webhookHistory(recorded: readonly RecordedEvent[]): WebhookHistory {
  const first = recorded[0];
  const registered = first?.type === 'WebhookRegistered' ? (first.data as { organizationId?: unknown }) : undefined;
  const organizationId =
    typeof registered?.organizationId === 'string'
      ? registered.organizationId
      : typeof first?.metadata.organizationId === 'string'
        ? first.metadata.organizationId
        : null;

  let state: WebhookState = initialState;
  const entries = recorded.map((e): HistoryEntry => {
    const before = publicState(state);
    try {
      state = evolve(state, { type: e.type, data: e.data } as WebhookEvent);
    } catch {
      // A damaged event (see `chain`) changes nothing we can show.
    }
    const m = e.metadata;
    return {
      revision: e.revision,
      position: encodePosition(e.position),
      type: e.type,
      occurredAt: m.occurredAt,
      actor: { clientId: m.actor.clientId, subject: m.actor.subject },
      requestId: m.requestId,
      changes: diff(before, publicState(state)),
      previousHash: m.previousHash,
      hash: m.hash,
    };
  });

  let chain: ChainStatus;
  try {
    const broken = verifyChain(recorded);
    chain = broken === undefined ? { intact: true } : { intact: false, revision: broken.revision, problem: broken.problem };
  } catch {
    chain = { intact: false, revision: 0, problem: 'unreadable' };
  }
  return { organizationId, entries, chain };
}
