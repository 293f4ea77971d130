// The dispatcher change feed (DESIGN.md §4b), one per process: follows the
// log from the read model's checkpoint at start, turns each event into the
// change a dispatcher's copy of the routing table needs (`webhook.upserted`
// with the target, or `webhook.removed`), and keeps the latest changes in a
// bounded ring so clients can resume from a position. It works on every
// engine and in API processes without a projector (PROJECTOR=off): it needs
// only the log and the read model's checkpoint. Event semantics come from
// nextView alone. Secrets stay encrypted in the ring; they are decrypted
// only when a change is sent.
import { BackgroundLoop } from '../projections/backgroundLoop.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SecretBox } from '../crypto/secretBox.ts';
import type { EncryptedSecret, PreviousSecret } from '../domain/webhook.ts';
import { nextView, type WebhookView } from '../projections/webhookView.ts';
import {
  comparePositions,
  decodePosition,
  encodePosition,
  webhookStreamName,
  type EventStore,
  type Position,
  type RecordedEvent,
} from '../stores/eventStore.ts';
import type { ReadModel } from '../stores/readModel.ts';
import { dispatchable, sameDispatch } from '../stores/webhookRows.ts';

export type ChangeType = 'webhook.upserted' | 'webhook.removed';

/** What a dispatcher needs of a dispatchable webhook, secrets still encrypted. */
export interface FeedTarget {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly partnerIds: readonly string[];
  readonly secret: EncryptedSecret;
  readonly previousSecrets: readonly PreviousSecret[];
  readonly revision: number;
}

export interface FeedChange {
  readonly position: Position;
  readonly type: ChangeType;
  /** The target for an upsert; for a removal only id and organization matter. */
  readonly target: FeedTarget | { readonly id: string; readonly organizationId: string };
}

/** A Target as sent (DESIGN.md §4b), secrets decrypted. */
export interface TargetJson {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly partnerIds: readonly string[];
  readonly status: 'ACTIVE';
  readonly secrets: readonly { readonly secret: string; readonly expiresAt: string | null }[];
  readonly revision: number;
}

/** The position before the first event of any log (every engine's positions are above it). */
export const BEGINNING: Position = Object.freeze({ commit: 0n, prepare: 0n });

export function feedTargetOf(view: WebhookView): FeedTarget {
  return {
    id: view.id,
    organizationId: view.organizationId,
    url: view.url,
    events: view.events,
    partnerIds: view.effectivePartnerIds,
    secret: view.secret,
    previousSecrets: view.previousSecrets,
    revision: view.revision,
  };
}

/**
 * The Target as sent: current secret first, then the previous ones not yet
 * expired at `now`, newest first. `remember: false` leaves the decrypted-secret
 * cache as it was (bulk reads, see SecretBox.decrypt).
 */
export function targetJson(target: FeedTarget, secrets: SecretBox, now: number, remember = true): TargetJson {
  const context = { webhookId: target.id, organizationId: target.organizationId };
  const valid: { secret: string; expiresAt: string | null }[] = [
    { secret: secrets.decrypt(target.secret, context, remember), expiresAt: null },
  ];
  for (const previous of target.previousSecrets) {
    if (Date.parse(previous.expiresAt) > now) {
      valid.push({ secret: secrets.decrypt(previous.secret, context, remember), expiresAt: previous.expiresAt });
    }
  }
  return {
    id: target.id,
    organizationId: target.organizationId,
    url: target.url,
    events: target.events,
    partnerIds: target.partnerIds,
    status: 'ACTIVE',
    secrets: valid,
    revision: target.revision,
  };
}

/** The change's `data` as sent. */
export function changeData(change: FeedChange, secrets: SecretBox, now: number): TargetJson | { id: string; organizationId: string } {
  if (change.type === 'webhook.removed') return { id: change.target.id, organizationId: change.target.organizationId };
  return targetJson(change.target as FeedTarget, secrets, now);
}

export interface FeedLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ChangeFeedOptions {
  /** Changes kept for resuming clients (CHANGE_FEED_CAPACITY). */
  readonly capacity: number;
  readonly logger: FeedLogger;
}

/** What `read` answers: the changes after a position, or that the position is older than the ring. */
export type FeedRead =
  | { readonly kind: 'changes'; readonly changes: readonly FeedChange[]; readonly next: Position }
  | { readonly kind: 'gone' };

export class ChangeFeed {
  // The ring, as parallel arrays: a change costs its JSON text and 17 bytes, not a graph of objects.
  private readonly commits: BigUint64Array;
  private readonly prepares: BigUint64Array;
  private readonly removals: Uint8Array;
  private readonly payloads: string[];
  private readonly capacity: number;
  private first = 0;
  private count = 0;
  /** Every change after this position is in the ring (undefined until the follower started). */
  private originPosition: Position | undefined;
  /** The last event the follower processed. */
  private processed: Position | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly background = new BackgroundLoop((signal) => this.run(signal));

  constructor(
    private readonly store: EventStore,
    private readonly readModel: ReadModel,
    private readonly options: ChangeFeedOptions,
  ) {
    this.capacity = options.capacity;
    this.commits = new BigUint64Array(options.capacity);
    this.prepares = new BigUint64Array(options.capacity);
    this.removals = new Uint8Array(options.capacity);
    this.payloads = new Array<string>(options.capacity);
  }

  /** Whether the follower has started (origin known); until then the feed answers 503. */
  get started(): boolean {
    return this.originPosition !== undefined;
  }

  /** The oldest position a client may resume from. */
  get origin(): Position | undefined {
    return this.originPosition;
  }

  /** The last event processed (at least the origin). */
  get position(): Position | undefined {
    return this.processed;
  }

  /** Changes held now (for metrics and tests). */
  get size(): number {
    return this.count;
  }

  start(): void {
    this.background.start();
  }

  async stop(): Promise<void> {
    await this.background.stop();
    this.notify();
  }

  /** Called after every processed batch (new changes or not) and on stop. Returns the unsubscribe function. */
  onAdvance(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Up to `limit` changes after `after`, in log order, and the position to
   * resume from. `gone` when changes after `after` may have left the ring.
   * A position beyond what this follower processed yields no changes (yet);
   * the caller decides whether it is ahead of the log itself.
   */
  read(after: Position, limit: number): FeedRead {
    const origin = this.originPosition;
    const processed = this.processed;
    if (origin === undefined || processed === undefined) throw new Error('the change feed has not started');
    if (comparePositions(after, origin) < 0) return { kind: 'gone' };
    // Binary search for the first change after `after`.
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareAt(mid, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    const end = Math.min(this.count, lo + limit);
    const changes: FeedChange[] = [];
    for (let i = lo; i < end; i++) changes.push(this.at(i));
    if (end < this.count) return { kind: 'changes', changes, next: changes[changes.length - 1]!.position };
    // Nothing left in the ring: the client may resume from the last processed event (or stay where it is, if ahead).
    return { kind: 'changes', changes, next: comparePositions(processed, after) > 0 ? processed : after };
  }

  /** Resolves on the next advance, after `timeoutMs`, or when `signal` aborts. */
  waitForAdvance(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const unsubscribe = this.onAdvance(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Compares the i-th change's position (0 = oldest held) with `position`. */
  private compareAt(i: number, position: Position): number {
    const slot = (this.first + i) % this.capacity;
    const commit = this.commits[slot]!;
    if (commit !== position.commit) return commit < position.commit ? -1 : 1;
    const prepare = this.prepares[slot]!;
    return prepare === position.prepare ? 0 : prepare < position.prepare ? -1 : 1;
  }

  private at(i: number): FeedChange {
    const slot = (this.first + i) % this.capacity;
    const position = { commit: this.commits[slot]!, prepare: this.prepares[slot]! };
    const payload = JSON.parse(this.payloads[slot]!) as unknown[];
    if (this.removals[slot] === 1) {
      const [id, organizationId] = payload as [string, string];
      return { position, type: 'webhook.removed', target: { id, organizationId } };
    }
    const [id, organizationId, url, events, partnerIds, revision, secret, previous] = payload as [
      string,
      string,
      string,
      string[],
      string[],
      number,
      [string, string, string],
      [string, string, string, string][],
    ];
    return {
      position,
      type: 'webhook.upserted',
      target: {
        id,
        organizationId,
        url,
        events,
        partnerIds,
        revision,
        secret: { keyId: secret[0], iv: secret[1], ciphertext: secret[2] },
        previousSecrets: previous.map(([keyId, iv, ciphertext, expiresAt]) => ({ secret: { keyId, iv, ciphertext }, expiresAt })),
      },
    };
  }

  private push(change: FeedChange): void {
    let slot: number;
    if (this.count === this.capacity) {
      // The oldest change leaves: a client must now be at or after it to resume.
      slot = this.first;
      this.originPosition = { commit: this.commits[slot]!, prepare: this.prepares[slot]! };
      this.first = (this.first + 1) % this.capacity;
    } else {
      slot = (this.first + this.count) % this.capacity;
      this.count++;
    }
    this.commits[slot] = change.position.commit;
    this.prepares[slot] = change.position.prepare;
    const t = change.target;
    if (change.type === 'webhook.removed') {
      this.removals[slot] = 1;
      this.payloads[slot] = JSON.stringify([t.id, t.organizationId]);
      return;
    }
    const target = t as FeedTarget;
    this.removals[slot] = 0;
    this.payloads[slot] = JSON.stringify([
      target.id,
      target.organizationId,
      target.url,
      target.events,
      target.partnerIds,
      target.revision,
      [target.secret.keyId, target.secret.iv, target.secret.ciphertext],
      target.previousSecrets.map((p) => [p.secret.keyId, p.secret.iv, p.secret.ciphertext, p.expiresAt]),
    ]);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private async run(signal: AbortSignal): Promise<void> {
    let backoffMs = 100;
    while (!signal.aborted) {
      try {
        if (this.processed === undefined) {
          // Start at or before any checkpoint a snapshot can report later: the read model's checkpoint now.
          const checkpoint = await this.readModel.checkpoint();
          const origin = checkpoint === null ? BEGINNING : decodePosition(checkpoint);
          this.originPosition = origin;
          this.processed = origin;
          this.options.logger.info({ origin: encodePosition(origin) }, 'change feed following the log');
          this.notify();
        }
        const from = this.processed;
        for await (const batch of this.store.subscribe({
          after: comparePositions(from, BEGINNING) === 0 ? undefined : from,
          signal,
        })) {
          try {
            for (const event of batch) {
              await this.apply(event);
              this.processed = event.position;
            }
          } finally {
            this.notify();
          }
          backoffMs = 100;
        }
      } catch (error) {
        if (signal.aborted) break;
        this.options.logger.error({ err: error }, 'change feed failed; retrying');
        await sleep(backoffMs, undefined, { signal }).catch(() => undefined);
        backoffMs = Math.min(backoffMs * 2, 5000);
      }
    }
  }

  /** Turns one event into a change (or none, when dispatchers see no difference). */
  private async apply(event: RecordedEvent): Promise<void> {
    if (this.processed !== undefined && comparePositions(event.position, this.processed) <= 0) return;
    const id = (event.data as { webhookId: string }).webhookId;
    const previous = event.revision === 0 ? null : await this.viewBefore(id, event.revision);
    const change = nextView(previous, event);
    if (change.kind === 'skip') return;
    const view = change.view;
    const was = previous !== null && dispatchable(previous);
    if (dispatchable(view)) {
      if (was && sameDispatch(previous, view)) return;
      this.push({ position: event.position, type: 'webhook.upserted', target: feedTargetOf(view) });
    } else if (was) {
      this.push({ position: event.position, type: 'webhook.removed', target: { id: view.id, organizationId: view.organizationId } });
    }
  }

  /**
   * The view at `revision - 1`: the read model's when it is exactly there
   * (usually: the projector is at or just behind the follower), else folded
   * from the stream. No cache of views here: one held per recent webhook
   * outlived V8's young generation, and collecting them was a quarter of
   * the follower's CPU.
   */
  private async viewBefore(id: string, revision: number): Promise<WebhookView> {
    const stored = await this.readModel.getWebhook(id);
    if (stored !== null && stored.revision === revision - 1) return stored;
    const view = await viewOfStream(this.store, id, (e) => e.revision < revision);
    if (view === null || view.revision !== revision - 1) {
      throw new Error(`webhook ${id}: the log has no revision ${revision - 1} before ${revision}`);
    }
    return view;
  }
}

/** A webhook's view folded from its stream over the events `include` admits (a prefix of the stream). */
export async function viewOfStream(store: EventStore, id: string, include: (event: RecordedEvent) => boolean): Promise<WebhookView | null> {
  let view: WebhookView | null = null;
  for (const event of await store.readStream(webhookStreamName(id))) {
    if (!include(event)) break;
    const change = nextView(view, event);
    if (change.kind === 'apply') view = change.view;
  }
  return view;
}

/**
 * Every dispatchable webhook as it was at `position`, from the read model:
 * a view the model holds at or before `position` is the webhook's state at
 * `position` (the model's checkpoint was at `position` or later when it was
 * read, and the webhook had no later event); a view that is newer is folded
 * again from its stream up to `position`. Ordered as the read model lists
 * them (by id).
 */
export async function* dispatchableAt(store: EventStore, readModel: ReadModel, position: Position): AsyncIterable<WebhookView> {
  for await (const stored of readModel.allWebhooks()) {
    let view: WebhookView | null = stored;
    if (comparePositions(decodePosition(stored.position), position) > 0) {
      view = await viewOfStream(store, stored.id, (e) => comparePositions(e.position, position) <= 0);
    }
    if (view !== null && dispatchable(view)) yield view;
  }
}
