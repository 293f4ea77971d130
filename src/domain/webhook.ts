// The webhook aggregate: commands, events, state, decide and evolve.
// Pure: time, ids and (encrypted) secrets come in through the command.

export type WebhookStatus = 'ACTIVE' | 'PAUSED' | 'DISABLED';

/** AES-256-GCM ciphertext of a signing secret; opaque to the domain. */
export interface EncryptedSecret {
  readonly keyId: string;
  readonly iv: string;
  readonly ciphertext: string;
}

/** A replaced signing secret that still signs until `expiresAt` (a rotation's grace period). */
export interface PreviousSecret {
  readonly secret: EncryptedSecret;
  readonly expiresAt: string;
}

/**
 * At most this many previous secrets are kept (so at most 4 secrets sign at once).
 * Every valid secret adds a `v1,` signature to each delivery's `webhook-signature`
 * header, an HMAC per delivery and a decryption per lookup, and receivers try each;
 * three covers rotate → oops → rotate again inside one grace period with room to spare.
 * A rotation that would keep more retires the ones that expire soonest, and says so.
 */
export const MAX_PREVIOUS_SECRETS = 3;

// ---- events ---------------------------------------------------------------

export interface WebhookRegistered {
  readonly type: 'WebhookRegistered';
  readonly data: {
    readonly webhookId: string;
    readonly organizationId: string;
    readonly url: string;
    readonly events: readonly string[];
    /** null: all partners the organization is authorized for (`authorizedPartnerIds`). */
    readonly partnerIds: readonly string[] | null;
    readonly authorizedPartnerIds: readonly string[];
    readonly secret: EncryptedSecret;
    readonly at: string;
  };
}

export interface WebhookUpdated {
  readonly type: 'WebhookUpdated';
  readonly data: {
    readonly webhookId: string;
    readonly changes: {
      readonly url?: string;
      readonly events?: readonly string[];
      readonly partnerIds?: readonly string[] | null;
    };
    /** The partners the organization was authorized for at this write. */
    readonly authorizedPartnerIds: readonly string[];
    readonly at: string;
  };
}

export interface WebhookPaused {
  readonly type: 'WebhookPaused';
  readonly data: { readonly webhookId: string; readonly at: string };
}

export interface WebhookResumed {
  readonly type: 'WebhookResumed';
  readonly data: { readonly webhookId: string; readonly at: string };
}

export interface WebhookDisabled {
  readonly type: 'WebhookDisabled';
  readonly data: { readonly webhookId: string; readonly reason: string; readonly at: string };
}

export interface WebhookSecretRotated {
  readonly type: 'WebhookSecretRotated';
  readonly data: {
    readonly webhookId: string;
    readonly secret: EncryptedSecret;
    /** The secret this rotation replaced; it signs until `previousSecretExpiresAt`. */
    readonly previousSecret: EncryptedSecret;
    readonly previousSecretExpiresAt: string;
    /**
     * Earlier previous secrets, still inside their grace period, that this
     * rotation retired before their expiry because of MAX_PREVIOUS_SECRETS.
     * Absent when none (and in events written before the bound existed).
     */
    readonly retiredPreviousSecrets?: readonly PreviousSecret[];
    readonly at: string;
  };
}

export interface WebhookDeleted {
  readonly type: 'WebhookDeleted';
  readonly data: { readonly webhookId: string; readonly at: string };
}

/**
 * A keyed write that changed nothing (a PATCH to the current values): it
 * records the Idempotency-Key and fingerprint in its metadata, so the key is
 * remembered like any other (a reuse with another body is 422), and the audit
 * trail shows who asked. It changes no state and no ETag.
 */
export interface WebhookUnchanged {
  readonly type: 'WebhookUnchanged';
  readonly data: { readonly webhookId: string; readonly at: string };
}

export type WebhookEvent =
  | WebhookRegistered
  | WebhookUpdated
  | WebhookPaused
  | WebhookResumed
  | WebhookDisabled
  | WebhookSecretRotated
  | WebhookDeleted
  | WebhookUnchanged;

export type WebhookEventType = WebhookEvent['type'];

export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = [
  'WebhookRegistered',
  'WebhookUpdated',
  'WebhookPaused',
  'WebhookResumed',
  'WebhookDisabled',
  'WebhookSecretRotated',
  'WebhookDeleted',
  'WebhookUnchanged',
];

// ---- state ----------------------------------------------------------------

export interface Webhook {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly partnerIds: readonly string[] | null;
  readonly authorizedPartnerIds: readonly string[];
  readonly status: WebhookStatus;
  readonly disabledReason: string | null;
  readonly secret: EncryptedSecret;
  /**
   * Replaced secrets still inside their grace period at the last rotation,
   * newest first (at most MAX_PREVIOUS_SECRETS). Entries are not pruned as time
   * passes: a reader compares `expiresAt` with its own clock.
   */
  readonly previousSecrets: readonly PreviousSecret[];
  readonly createdAt: string;
  readonly updatedAt: string;
}

export type WebhookState =
  | { readonly kind: 'absent' }
  | { readonly kind: 'live'; readonly webhook: Webhook }
  | { readonly kind: 'deleted'; readonly webhook: Webhook; readonly deletedAt: string };

export const initialState: WebhookState = { kind: 'absent' };

export function evolve(state: WebhookState, event: WebhookEvent): WebhookState {
  switch (event.type) {
    case 'WebhookRegistered': {
      const d = event.data;
      return {
        kind: 'live',
        webhook: {
          id: d.webhookId,
          organizationId: d.organizationId,
          url: d.url,
          events: d.events,
          partnerIds: d.partnerIds,
          authorizedPartnerIds: d.authorizedPartnerIds,
          status: 'ACTIVE',
          disabledReason: null,
          secret: d.secret,
          previousSecrets: [],
          createdAt: d.at,
          updatedAt: d.at,
        },
      };
    }
    case 'WebhookUpdated':
      return mapLive(state, (w) => ({
        ...w,
        ...(event.data.changes.url !== undefined ? { url: event.data.changes.url } : {}),
        ...(event.data.changes.events !== undefined ? { events: event.data.changes.events } : {}),
        ...(event.data.changes.partnerIds !== undefined ? { partnerIds: event.data.changes.partnerIds } : {}),
        authorizedPartnerIds: event.data.authorizedPartnerIds,
        updatedAt: event.data.at,
      }));
    case 'WebhookPaused':
      return mapLive(state, (w) => ({ ...w, status: 'PAUSED', updatedAt: event.data.at }));
    case 'WebhookResumed':
      return mapLive(state, (w) => ({ ...w, status: 'ACTIVE', disabledReason: null, updatedAt: event.data.at }));
    case 'WebhookDisabled':
      return mapLive(state, (w) => ({
        ...w,
        status: 'DISABLED',
        disabledReason: event.data.reason,
        updatedAt: event.data.at,
      }));
    case 'WebhookSecretRotated':
      return mapLive(state, (w) => ({
        ...w,
        secret: event.data.secret,
        previousSecrets: previousSecretsAfter(w, event.data).kept,
        updatedAt: event.data.at,
      }));
    case 'WebhookDeleted':
      return state.kind === 'live'
        ? { kind: 'deleted', webhook: { ...state.webhook, updatedAt: event.data.at }, deletedAt: event.data.at }
        : state;
    case 'WebhookUnchanged':
      return state;
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
}

/**
 * The previous secrets after a rotation: the one it replaced, then the earlier
 * ones still unexpired at the rotation, newest first; minus those the event
 * records as retired, then capped at MAX_PREVIOUS_SECRETS by retiring the ones
 * that expire soonest (the oldest first among equal expiries). decide() records
 * what the cap retires, so the event says it and a later change of the bound
 * does not rewrite history; events from before the bound fold through the cap.
 */
function previousSecretsAfter(
  w: Webhook,
  rotation: Pick<WebhookSecretRotated['data'], 'previousSecret' | 'previousSecretExpiresAt' | 'retiredPreviousSecrets' | 'at'>,
): { kept: PreviousSecret[]; retired: PreviousSecret[] } {
  const at = Date.parse(rotation.at);
  const recorded = rotation.retiredPreviousSecrets ?? [];
  const candidates = [{ secret: rotation.previousSecret, expiresAt: rotation.previousSecretExpiresAt }, ...w.previousSecrets].filter(
    (p) => Date.parse(p.expiresAt) > at && !recorded.some((r) => sameSecret(r.secret, p.secret)),
  );
  const excess = candidates.length - MAX_PREVIOUS_SECRETS;
  if (excess <= 0) return { kept: candidates, retired: [] };
  const soonestFirst = candidates
    .map((p, index) => ({ index, expiresAt: Date.parse(p.expiresAt) }))
    .sort((a, b) => a.expiresAt - b.expiresAt || b.index - a.index);
  const dropped = new Set(soonestFirst.slice(0, excess).map((c) => c.index));
  return {
    kept: candidates.filter((_, i) => !dropped.has(i)),
    retired: candidates.filter((_, i) => dropped.has(i)),
  };
}

function sameSecret(a: EncryptedSecret, b: EncryptedSecret): boolean {
  return a.keyId === b.keyId && a.iv === b.iv && a.ciphertext === b.ciphertext;
}

function mapLive(state: WebhookState, f: (w: Webhook) => Webhook): WebhookState {
  return state.kind === 'live' ? { kind: 'live', webhook: f(state.webhook) } : state;
}

export function foldWebhook(events: readonly WebhookEvent[]): WebhookState {
  return events.reduce(evolve, initialState);
}

// ---- commands -------------------------------------------------------------

export interface RegisterWebhook {
  readonly type: 'RegisterWebhook';
  readonly data: {
    readonly webhookId: string;
    readonly organizationId: string;
    readonly url: string;
    readonly events: readonly string[];
    readonly partnerIds: readonly string[] | null;
    readonly authorizedPartnerIds: readonly string[];
    readonly secret: EncryptedSecret;
  };
  readonly metadata: { readonly now: Date };
}

export interface UpdateWebhook {
  readonly type: 'UpdateWebhook';
  readonly data: {
    readonly changes: {
      readonly url?: string;
      readonly events?: readonly string[];
      readonly partnerIds?: readonly string[] | null;
      readonly status?: 'ACTIVE' | 'PAUSED';
    };
    readonly authorizedPartnerIds: readonly string[];
  };
  readonly metadata: { readonly now: Date };
}

export interface DisableWebhook {
  readonly type: 'DisableWebhook';
  readonly data: { readonly reason: string };
  readonly metadata: { readonly now: Date };
}

export interface RotateWebhookSecret {
  readonly type: 'RotateWebhookSecret';
  readonly data: {
    readonly secret: EncryptedSecret;
    readonly gracePeriodSeconds: number;
    /** The partners the organization is authorized for at this write (refreshes a null filter's set). */
    readonly authorizedPartnerIds?: readonly string[];
  };
  readonly metadata: { readonly now: Date };
}

export interface DeleteWebhook {
  readonly type: 'DeleteWebhook';
  readonly metadata: { readonly now: Date };
}

export type WebhookCommand = RegisterWebhook | UpdateWebhook | DisableWebhook | RotateWebhookSecret | DeleteWebhook;

/** The command targets a webhook that does not exist (or no longer does). */
export class WebhookNotFoundError extends Error {
  override readonly name = 'WebhookNotFoundError';
}

/** The command targets a webhook that already exists (registration only). */
export class WebhookAlreadyExistsError extends Error {
  override readonly name = 'WebhookAlreadyExistsError';
}

export function decide(command: WebhookCommand, state: WebhookState): WebhookEvent[] {
  const at = command.metadata.now.toISOString();
  switch (command.type) {
    case 'RegisterWebhook': {
      if (state.kind !== 'absent') throw new WebhookAlreadyExistsError('webhook already exists');
      return [{ type: 'WebhookRegistered', data: { ...command.data, at } }];
    }
    case 'UpdateWebhook': {
      const webhook = requireLive(state);
      return decideUpdate(command, webhook, at);
    }
    case 'DisableWebhook': {
      const webhook = requireLive(state);
      if (webhook.status === 'DISABLED') return [];
      return [{ type: 'WebhookDisabled', data: { webhookId: webhook.id, reason: command.data.reason, at } }];
    }
    case 'RotateWebhookSecret': {
      const webhook = requireLive(state);
      const expiresAt = new Date(command.metadata.now.getTime() + command.data.gracePeriodSeconds * 1000);
      const authorized = command.data.authorizedPartnerIds;
      const refresh: WebhookEvent[] =
        authorized !== undefined && webhook.partnerIds === null && !sameList(authorized, webhook.authorizedPartnerIds)
          ? [{ type: 'WebhookUpdated', data: { webhookId: webhook.id, changes: {}, authorizedPartnerIds: authorized, at } }]
          : [];
      const rotation = { previousSecret: webhook.secret, previousSecretExpiresAt: expiresAt.toISOString(), at };
      const { retired } = previousSecretsAfter(webhook, rotation);
      return [
        ...refresh,
        {
          type: 'WebhookSecretRotated',
          data: {
            webhookId: webhook.id,
            secret: command.data.secret,
            previousSecret: rotation.previousSecret,
            previousSecretExpiresAt: rotation.previousSecretExpiresAt,
            ...(retired.length > 0 ? { retiredPreviousSecrets: retired } : {}),
            at,
          },
        },
      ];
    }
    case 'DeleteWebhook': {
      const webhook = requireLive(state);
      return [{ type: 'WebhookDeleted', data: { webhookId: webhook.id, at } }];
    }
    default: {
      const unreachable: never = command;
      return unreachable;
    }
  }
}

function requireLive(state: WebhookState): Webhook {
  if (state.kind !== 'live') throw new WebhookNotFoundError('webhook not found');
  return state.webhook;
}

function decideUpdate(command: UpdateWebhook, webhook: Webhook, at: string): WebhookEvent[] {
  const { changes, authorizedPartnerIds } = command.data;
  const changed: { url?: string; events?: readonly string[]; partnerIds?: readonly string[] | null } = {};
  if (changes.url !== undefined && changes.url !== webhook.url) changed.url = changes.url;
  if (changes.events !== undefined && !sameList(changes.events, webhook.events)) changed.events = changes.events;
  if (changes.partnerIds !== undefined) {
    const filterChanged = !samePartnerFilter(changes.partnerIds, webhook.partnerIds);
    // `null` means "all authorized partners again": refresh that set when it moved.
    const refreshAll = changes.partnerIds === null && !sameList(authorizedPartnerIds, webhook.authorizedPartnerIds);
    if (filterChanged || refreshAll) changed.partnerIds = changes.partnerIds;
  }
  // With no partner filter the webhook delivers for the partners the organization
  // was authorized for at its last write; a write that changes only the status
  // must still record a moved authorized set, or revoked partners keep receiving.
  const authorizationMoved =
    webhook.partnerIds === null &&
    changed.partnerIds === undefined &&
    !sameList(authorizedPartnerIds, webhook.authorizedPartnerIds);
  const out: WebhookEvent[] = [];
  if (Object.keys(changed).length > 0 || authorizationMoved) {
    out.push({
      type: 'WebhookUpdated',
      data: { webhookId: webhook.id, changes: changed, authorizedPartnerIds, at },
    });
  }
  if (changes.status === 'PAUSED' && webhook.status !== 'PAUSED') {
    out.push({ type: 'WebhookPaused', data: { webhookId: webhook.id, at } });
  } else if (changes.status === 'ACTIVE' && webhook.status !== 'ACTIVE') {
    out.push({ type: 'WebhookResumed', data: { webhookId: webhook.id, at } });
  }
  return out;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function samePartnerFilter(a: readonly string[] | null, b: readonly string[] | null): boolean {
  if (a === null || b === null) return a === b;
  return sameList(a, b);
}

/** Until when a previous secret may still sign: the latest expiry among those kept, null when none. */
export function previousSecretsExpireAt(webhook: Pick<Webhook, 'previousSecrets'>): string | null {
  let latest: string | null = null;
  for (const p of webhook.previousSecrets) if (latest === null || Date.parse(p.expiresAt) > Date.parse(latest)) latest = p.expiresAt;
  return latest;
}

/** The partners a webhook delivers for: its own filter, else the organization's authorized partners. */
export function effectivePartnerIds(webhook: Pick<Webhook, 'partnerIds' | 'authorizedPartnerIds'>): readonly string[] {
  return webhook.partnerIds ?? webhook.authorizedPartnerIds;
}
