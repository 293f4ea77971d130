// What every read-model engine with a compact layout stores the same way, so
// an engine folder holds only what its database does differently:
// - a view as one row of typed columns (no JSON document) and back;
// - the index rows a view needs: one per subscribed pattern (listing by event)
//   and one per (partner, pattern) it must receive while dispatchable;
// - the tests that let an engine leave unchanged index rows alone, and the
//   difference to write when they did change.
import type { EncryptedSecret, PreviousSecret, WebhookStatus } from '../domain/webhook.ts';
import { viewOf, type WebhookView } from '../projections/webhookView.ts';
import type { IdempotencyKeyEntry } from './readModel.ts';
import { patternsMatching } from '../domain/eventTypes.ts';

/** A previous signing secret as a row of text: key id, iv, ciphertext, expiry (RFC 3339). */
export type PreviousSecretRow = readonly [keyId: string, iv: string, ciphertext: string, expiresAt: string];

/** A webhook view as typed columns (named as the columns are). */
export interface WebhookRow {
  readonly id: string;
  readonly organization_id: string;
  readonly url: string;
  readonly events: readonly string[];
  /** null: every partner the organization was authorized for (authorized_partner_ids). */
  readonly partner_ids: readonly string[] | null;
  readonly authorized_partner_ids: readonly string[];
  readonly status: WebhookStatus;
  readonly disabled_reason: string | null;
  readonly secret_key_id: string;
  readonly secret_iv: string;
  readonly secret_ciphertext: string;
  /** Newest first. */
  readonly previous_secrets: readonly PreviousSecretRow[];
  readonly created_at: string;
  readonly updated_at: string;
  readonly revision: number;
  readonly position: string;
  readonly deleted: boolean;
}

export function webhookRow(view: WebhookView): WebhookRow {
  return {
    id: view.id,
    organization_id: view.organizationId,
    url: view.url,
    events: view.events,
    partner_ids: view.partnerIds,
    authorized_partner_ids: view.authorizedPartnerIds,
    status: view.status,
    disabled_reason: view.disabledReason,
    secret_key_id: view.secret.keyId,
    secret_iv: view.secret.iv,
    secret_ciphertext: view.secret.ciphertext,
    previous_secrets: previousSecretRows(view.previousSecrets),
    created_at: view.createdAt,
    updated_at: view.updatedAt,
    revision: view.revision,
    position: view.position,
    deleted: view.deleted,
  };
}

export function viewOfRow(row: WebhookRow): WebhookView {
  const webhook = {
    id: row.id,
    organizationId: row.organization_id,
    url: row.url,
    events: row.events,
    partnerIds: row.partner_ids,
    authorizedPartnerIds: row.authorized_partner_ids,
    status: row.status,
    disabledReason: row.disabled_reason,
    secret: secretOfRow(row),
    previousSecrets: previousSecretsOfRows(row.previous_secrets),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  return viewOf(webhook, row.revision, row.position, row.deleted);
}

export function secretOfRow(row: Pick<WebhookRow, 'secret_key_id' | 'secret_iv' | 'secret_ciphertext'>): EncryptedSecret {
  return { keyId: row.secret_key_id, iv: row.secret_iv, ciphertext: row.secret_ciphertext };
}

export function previousSecretRows(secrets: readonly PreviousSecret[]): PreviousSecretRow[] {
  return secrets.map((p) => [p.secret.keyId, p.secret.iv, p.secret.ciphertext, p.expiresAt]);
}

export function previousSecretsOfRows(rows: readonly PreviousSecretRow[]): PreviousSecret[] {
  return rows.map(([keyId, iv, ciphertext, expiresAt]) => ({ secret: { keyId, iv, ciphertext }, expiresAt }));
}

/** A row of the idempotency-key index, as every engine with a compact layout stores it. */
export interface KeyRow {
  readonly organization_id: string;
  readonly key_hash: string;
  readonly webhook_id: string;
  readonly fingerprint: string;
  readonly first_used_at: string;
}

export function keyEntryOfRow(row: KeyRow): IdempotencyKeyEntry {
  return {
    organizationId: row.organization_id,
    keyHash: row.key_hash,
    webhookId: row.webhook_id,
    fingerprint: row.fingerprint,
    firstUsedAt: row.first_used_at,
  };
}

// ---- index rows ----------------------------------------------------------------------

/** Whether dispatchers must see this webhook at all. */
export function dispatchable(view: WebhookView): boolean {
  return !view.deleted && view.status === 'ACTIVE';
}

/** A row of the pattern index: a live webhook subscribed with `pattern`. */
export interface PatternKey {
  readonly pattern: string;
  readonly webhookId: string;
}

/** A row of the dispatch index: `partnerId`'s events matching `pattern` go to the webhook. */
export interface DispatchKey {
  readonly partnerId: string;
  readonly pattern: string;
  readonly webhookId: string;
}

export function patternKeys(view: WebhookView | null): PatternKey[] {
  if (view === null || view.deleted) return [];
  return [...new Set(view.events)].map((pattern) => ({ pattern, webhookId: view.id }));
}

export function dispatchKeys(view: WebhookView | null): DispatchKey[] {
  if (view === null || !dispatchable(view)) return [];
  const keys: DispatchKey[] = [];
  for (const partnerId of new Set(view.effectivePartnerIds)) {
    for (const pattern of new Set(view.events)) keys.push({ partnerId, pattern, webhookId: view.id });
  }
  return keys;
}

/** The rows to delete and to insert to go from `before`'s index rows to `after`'s (disjoint sets). */
export function indexChanges<K>(before: readonly K[], after: readonly K[], keyOf: (k: K) => string): { remove: K[]; add: K[] } {
  const old = new Map(before.map((k) => [keyOf(k), k]));
  const next = new Map(after.map((k) => [keyOf(k), k]));
  return {
    remove: [...old].filter(([key]) => !next.has(key)).map(([, k]) => k),
    add: [...next].filter(([key]) => !old.has(key)).map(([, k]) => k),
  };
}

export const patternKeyOf = (k: PatternKey): string => `${k.pattern}\0${k.webhookId}`;
export const dispatchKeyOf = (k: DispatchKey): string => `${k.partnerId}\0${k.pattern}\0${k.webhookId}`;

/** True when the pattern index rows of `a` (none when null) are already those of `b`. */
export function samePatterns(a: WebhookView | null, b: WebhookView): boolean {
  return a !== null && a.deleted === b.deleted && sameStrings(a.events, b.events);
}

/** True when the dispatch index rows of `a` (none when null), and what they carry, are already those of `b`. */
export function sameDispatch(a: WebhookView | null, b: WebhookView): boolean {
  if (a === null || !dispatchable(a)) return !dispatchable(b);
  return (
    dispatchable(b) &&
    sameStrings(a.events, b.events) &&
    sameStrings(a.effectivePartnerIds, b.effectivePartnerIds) &&
    a.url === b.url &&
    sameSecret(a.secret, b.secret) &&
    a.previousSecrets.length === b.previousSecrets.length &&
    a.previousSecrets.every((p, i) => sameSecret(p.secret, b.previousSecrets[i]!.secret) && p.expiresAt === b.previousSecrets[i]!.expiresAt)
  );
}

export function sameSecret(a: EncryptedSecret, b: EncryptedSecret): boolean {
  return a === b || (a.keyId === b.keyId && a.iv === b.iv && a.ciphertext === b.ciphertext);
}

export function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The pattern-index keys a list filtered by `event` looks up: the value itself, and every pattern matching it as a type. */
export function eventFilterPatterns(event: string): string[] {
  return [...new Set([event, ...patternsMatching(event)])];
}
