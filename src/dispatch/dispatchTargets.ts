// The dispatcher's question — "who must receive this event type for this
// partner?" — as a function, used by the HTTP route and exported for
// in-process dispatchers. Secrets are decrypted here, only for ACTIVE targets.
import type { SecretBox } from '../crypto/secretBox.ts';
import type { DispatchView, ReadModel } from '../stores/readModel.ts';

export interface DispatchTarget {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  /** Secrets valid for signing now: the current one first, then the previous one inside its grace period. */
  readonly secrets: readonly string[];
}

export type DispatchLookup = (eventType: string, partnerId: string) => Promise<DispatchTarget[]>;

export function createDispatchLookup(readModel: ReadModel, secrets: SecretBox, now: () => Date = () => new Date()): DispatchLookup {
  return async (eventType, partnerId) => {
    const views = await readModel.dispatchTargets(eventType, partnerId.toLowerCase());
    const at = now().getTime();
    return views.map((view) => toTarget(view, secrets, at));
  };
}

function toTarget(view: DispatchView, secrets: SecretBox, at: number): DispatchTarget {
  const context = { webhookId: view.id, organizationId: view.organizationId };
  const valid = [secrets.decrypt(view.secret, context)];
  if (view.previousSecret && view.previousSecretExpiresAt && Date.parse(view.previousSecretExpiresAt) > at) {
    valid.push(secrets.decrypt(view.previousSecret, context));
  }
  return { id: view.id, organizationId: view.organizationId, url: view.url, events: view.events, secrets: valid };
}
