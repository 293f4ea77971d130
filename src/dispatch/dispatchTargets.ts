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
  /** Secrets valid for signing now: the current one first, then previous ones inside their grace period, newest first. */
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
  // Newest first, as the view keeps them; each until its own expiry (grace periods differ per rotation).
  for (const previous of view.previousSecrets) {
    if (Date.parse(previous.expiresAt) > at) valid.push(secrets.decrypt(previous.secret, context));
  }
  return { id: view.id, organizationId: view.organizationId, url: view.url, events: view.events, secrets: valid };
}
