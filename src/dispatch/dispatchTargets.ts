// The dispatcher's question — "who must receive this event type for this
// partner?" — as a function, used by the HTTP route and exported for
// in-process dispatchers. Secrets are decrypted here, only for ACTIVE targets.
import type { SecretBox } from '../crypto/secretBox.ts';
import type { DispatchView, ReadModel } from '../stores/readModel.ts';
import type { Turns } from './lookupTurns.ts';

export interface DispatchTarget {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  /** Secrets valid for signing now: the current one first, then previous ones inside their grace period, newest first. */
  readonly secrets: readonly string[];
}

export type DispatchLookup = (eventType: string, partnerId: string) => Promise<DispatchTarget[]>;

export interface DispatchLookupOptions {
  /**
   * Take turns on the event loop (lookupTurns.ts): every slice of a lookup —
   * the read model's row reads and their decryptions, LOOKUP_SLICE targets at
   * a time — waits for one. The HTTP route's lookups do; without it a lookup
   * runs in one go.
   */
  readonly turns?: Turns;
}

export function createDispatchLookup(
  readModel: ReadModel,
  secrets: SecretBox,
  now: () => Date = () => new Date(),
  options: DispatchLookupOptions = {},
): DispatchLookup {
  return targetsOf(createDispatchAnswerLookup(readModel, secrets, now, options));
}

/** A lookup answering the targets only, from one that also says until when they hold. */
export function targetsOf(answer: DispatchAnswerLookup): DispatchLookup {
  return async (eventType, partnerId) => (await answer(eventType, partnerId)).targets;
}

/** A lookup's targets, and until when they hold without a change to the read model. */
export interface DispatchAnswer {
  readonly targets: DispatchTarget[];
  /** Epoch ms at which a previous secret in the answer expires (the answer then changes with no event); Infinity if none. */
  readonly changesAt: number;
}

export type DispatchAnswerLookup = (eventType: string, partnerId: string) => Promise<DispatchAnswer>;

/** createDispatchLookup, with the instant its answer stops holding (for callers that keep answers: answerCache.ts). */
export function createDispatchAnswerLookup(
  readModel: ReadModel,
  secrets: SecretBox,
  now: () => Date = () => new Date(),
  options: DispatchLookupOptions = {},
): DispatchAnswerLookup {
  const { turns } = options;
  if (turns === undefined) {
    return async (eventType, partnerId) => {
      const views = await readModel.dispatchTargets(eventType, partnerId.toLowerCase());
      const expiry = new Expiry(now().getTime());
      const targets = views.map((view) => toTarget(view, secrets, expiry));
      return { targets, changesAt: expiry.first };
    };
  }
  const between = (): Promise<void> => turns.take();
  return async (eventType, partnerId) => {
    await turns.take();
    const expiry = new Expiry(now().getTime());
    // Each row becomes its target (secrets decrypted) in the slice that read it.
    const targets = await readModel.dispatchTargets(eventType, partnerId.toLowerCase(), {
      keep: (view) => toTarget(view, secrets, expiry),
      between,
    });
    return { targets, changesAt: expiry.first };
  };
}

/** The lookup's instant, and the first expiry after it among the previous secrets it kept. */
class Expiry {
  first = Infinity;
  constructor(readonly at: number) {}
}

function toTarget(view: DispatchView, secrets: SecretBox, expiry: Expiry): DispatchTarget {
  const context = { webhookId: view.id, organizationId: view.organizationId };
  const valid = [secrets.decrypt(view.secret, context)];
  // Newest first, as the view keeps them; each until its own expiry (grace periods differ per rotation).
  for (const previous of view.previousSecrets) {
    const expiresAt = Date.parse(previous.expiresAt);
    if (expiresAt > expiry.at) {
      valid.push(secrets.decrypt(previous.secret, context));
      if (expiresAt < expiry.first) expiry.first = expiresAt;
    }
  }
  return { id: view.id, organizationId: view.organizationId, url: view.url, events: view.events, secrets: valid };
}
