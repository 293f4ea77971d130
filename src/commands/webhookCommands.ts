// Command handlers: read the webhook's stream, fold it with evolve, check the
// Idempotency-Key against the log, decide, and append with the expected
// revision. A concurrent writer makes the append conflict; the handler then
// reloads and decides again, so the answer is always derived from the log.
import { sealEvent } from '../domain/hashChain.ts';
import { secretFromBytes } from '../domain/secret.ts';
import {
  decide,
  foldWebhook,
  type Webhook,
  type WebhookCommand,
  type WebhookEvent,
  type WebhookState,
} from '../domain/webhook.ts';
import {
  ConcurrentWriteError,
  IdempotencyKeyExpiredError,
  IdempotencyKeyReusedError,
  NotFoundError,
  PreconditionFailedError,
  ServiceUnavailableError,
} from '../errors.ts';
import { pooledRandomBytes } from '../crypto/randomPool.ts';
import type { SecretBox } from '../crypto/secretBox.ts';
import {
  StreamConflictError,
  webhookStreamName,
  type ActorRef,
  type EventMetadata,
  type EventStore,
  type NewEvent,
  type Position,
  type RecordedEvent,
} from '../stores/eventStore.ts';
import type { ReadModel } from '../stores/readModel.ts';
import { IDEMPOTENCY_WINDOW_MS, idempotencyKeyHash, webhookIdFor, type RequestFingerprints } from './idempotency.ts';

/** Who is writing and under which key; built by the HTTP layer from the request. */
export interface WriteContext {
  readonly organizationId: string;
  readonly actor: ActorRef;
  readonly requestId: string;
  readonly idempotencyKey: string;
  /** The request as fingerprinted (`canonicalRequest`); only its keyed fingerprint is stored. */
  readonly request: string;
  readonly now: Date;
}

export interface RegisterInput {
  readonly url: string;
  readonly events: readonly string[];
  readonly partnerIds?: readonly string[] | undefined;
  readonly secret?: string | undefined;
  readonly authorizedPartnerIds: readonly string[];
}

/** The documented 201 body of a registration (the only answer that shows the secret). */
export interface RegistrationBody {
  readonly id: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly status: 'ACTIVE';
  readonly createdAt: string;
  readonly partnerIds?: readonly string[];
  readonly secret: string;
  readonly updatedAt: string;
}

export interface WriteOutcome<T> {
  readonly result: T;
  /** True when answered from an earlier request with the same key. */
  readonly replayed: boolean;
  /** Log position of what was written (undefined for replays and no-ops). */
  readonly position: Position | undefined;
}

export interface WebhookAtRevision {
  readonly webhook: Webhook;
  readonly revision: number;
}

export interface UpdateInput {
  readonly url?: string | undefined;
  readonly events?: readonly string[] | undefined;
  readonly partnerIds?: readonly string[] | null | undefined;
  readonly status?: 'ACTIVE' | 'PAUSED' | undefined;
  readonly authorizedPartnerIds: readonly string[];
}

export interface RotationResult {
  readonly secret: string;
  readonly previousSecretExpiresAt: string;
  /** Only when MAX_PREVIOUS_SECRETS made this rotation retire earlier previous secrets before their expiry. */
  readonly retiredPreviousSecrets?: { expiresAt: string }[];
}

/** Group commit lets one append per stream win per batch, so heavy contention needs a few rounds. */
const MAX_ATTEMPTS = 10;
/** Key claims kept in memory; each is needed only until the projector indexes its key (milliseconds). */
const MAX_KEY_CLAIMS = 10_000;
/** Registrations kept for retries (~0.5 KB each): a client retries within seconds or minutes of its first try. */
const MAX_KEPT_REGISTRATIONS = 5_000;

type RegisteredData = Extract<WebhookEvent, { type: 'WebhookRegistered' }>['data'];

/**
 * What answering a retry of a registration needs of its event (the first
 * of its stream, which never changes): its data, and the fingerprint and
 * instant the replay check compares.
 */
interface Registration {
  readonly data: RegisteredData;
  readonly fingerprint: string | null;
  readonly occurredAt: string;
}

export class WebhookCommands {
  /**
   * Idempotency keys this process has written, or is writing, that the
   * projector's key index may not show yet: key hash → webhook id. Without it
   * a key reused on another webhook right after (or at the same moment as)
   * its first use would slip past the index and be used twice. Only ever
   * rejects; answers (replays) still come from the log.
   */
  private readonly keyClaims = new Map<string, string>();
  /**
   * Registrations this process wrote or replayed, by key hash, oldest first:
   * a retry is then answered without reading its stream from the log (a
   * read transaction and ~1 KB of JSON, 60 % of a replay's command in the
   * bench's profile). Only the stream read is skipped: the key's look-up
   * still decides whether it is a replay at all.
   */
  private readonly registrations = new Map<string, Registration>();

  constructor(
    private readonly store: EventStore,
    private readonly readModel: ReadModel,
    private readonly secrets: SecretBox,
    private readonly fingerprints: RequestFingerprints,
  ) {}

  async register(ctx: WriteContext, input: RegisterInput): Promise<WriteOutcome<RegistrationBody>> {
    const webhookId = webhookIdFor(ctx.organizationId, ctx.idempotencyKey);
    const keyHash = idempotencyKeyHash(ctx.organizationId, ctx.idempotencyKey);
    const stream = webhookStreamName(webhookId);
    // One look-up answers both questions: whether the key was used, and (it
    // names this registration's webhook) whether the stream exists. A new
    // registration (the common case) then reads no stream: the append below
    // expects 'no_stream', which the writer checks inside its transaction. A
    // retry is answered from the log without an append, unless its first use
    // is not indexed yet and was another process's: then the append conflicts
    // and the answer comes from the log all the same.
    const used = this.keyClaims.get(keyHash) ?? (await this.readModel.findIdempotencyKey(ctx.organizationId, keyHash))?.webhookId;
    if (used !== undefined && used !== webhookId) throw keyReused();
    if (used !== undefined) {
      const kept = this.registrations.get(keyHash);
      if (kept !== undefined) return this.replayRegistration(ctx, keyHash, kept);
      const existing = await this.store.readStream(stream);
      if (existing.length > 0) return this.replayRegistration(ctx, keyHash, registrationOf(existing));
    }

    const secret = input.secret ?? secretFromBytes(pooledRandomBytes(32));
    const context = { webhookId, organizationId: ctx.organizationId };
    const command: WebhookCommand = {
      type: 'RegisterWebhook',
      data: {
        webhookId,
        organizationId: ctx.organizationId,
        url: input.url,
        events: input.events,
        partnerIds: input.partnerIds ?? null,
        authorizedPartnerIds: input.authorizedPartnerIds,
        secret: this.secrets.encrypt(secret, context),
      },
      metadata: { now: ctx.now },
    };
    const events = decide(command, { kind: 'absent' });
    const release = this.claimKey(keyHash, webhookId);
    try {
      const sealed = chain(events, { ...ctx, keyHash, fingerprint: this.fingerprints.of(ctx.request) }, null);
      const appended = await this.store.append(stream, sealed, 'no_stream');
      const registered = events[0] as Extract<WebhookEvent, { type: 'WebhookRegistered' }>;
      const { requestFingerprint, occurredAt } = sealed[0]!.metadata;
      this.keepRegistration(keyHash, { data: registered.data, fingerprint: requestFingerprint, occurredAt });
      return { result: registrationBody(registered, secret), replayed: false, position: appended.position };
    } catch (error) {
      if (!(error instanceof StreamConflictError)) {
        release();
        throw error;
      }
      // The stream exists: a retry, or a registration with this key at the same moment. Answer from its event.
      return this.replayRegistration(ctx, keyHash, registrationOf(await this.store.readStream(stream)));
    }
  }

  private keepRegistration(keyHash: string, registration: Registration): void {
    if (this.registrations.size >= MAX_KEPT_REGISTRATIONS) this.registrations.delete(this.registrations.keys().next().value!);
    this.registrations.set(keyHash, registration);
  }

  /** A write under a used key is a replay only if it is the same request, within the window. */
  private checkReplay(fingerprint: string | null, occurredAt: string, ctx: WriteContext): void {
    if (!this.fingerprints.matches(fingerprint, ctx.request)) throw keyReused();
    if (ctx.now.getTime() - Date.parse(occurredAt) > IDEMPOTENCY_WINDOW_MS) {
      throw new IdempotencyKeyExpiredError('this Idempotency-Key expired; use a new key');
    }
  }

  private replayRegistration(ctx: WriteContext, keyHash: string, registration: Registration): WriteOutcome<RegistrationBody> {
    this.checkReplay(registration.fingerprint, registration.occurredAt, ctx);
    if (!this.registrations.has(keyHash)) this.keepRegistration(keyHash, registration);
    const registered = registration.data;
    const secret = this.secrets.decrypt(registered.secret, {
      webhookId: registered.webhookId,
      organizationId: registered.organizationId,
    });
    return {
      result: registrationBody({ type: 'WebhookRegistered', data: registered }, secret),
      replayed: true,
      position: undefined,
    };
  }

  async update(
    ctx: WriteContext,
    webhookId: string,
    input: UpdateInput,
    ifMatch: number | undefined,
  ): Promise<WriteOutcome<WebhookAtRevision>> {
    return this.write(ctx, webhookId, ifMatch, {
      command: () => ({
        type: 'UpdateWebhook',
        data: {
          changes: {
            ...(input.url !== undefined ? { url: input.url } : {}),
            ...(input.events !== undefined ? { events: input.events } : {}),
            ...(input.partnerIds !== undefined ? { partnerIds: input.partnerIds } : {}),
            ...(input.status !== undefined ? { status: input.status } : {}),
          },
          authorizedPartnerIds: input.authorizedPartnerIds,
        },
        metadata: { now: ctx.now },
      }),
      result: (recorded, upTo) => webhookAt(recorded, upTo),
    });
  }

  async rotateSecret(
    ctx: WriteContext,
    webhookId: string,
    input: { secret?: string | undefined; gracePeriodSeconds: number; authorizedPartnerIds?: readonly string[] },
  ): Promise<WriteOutcome<RotationResult>> {
    return this.write(ctx, webhookId, undefined, {
      command: (webhook) => ({
        type: 'RotateWebhookSecret',
        data: {
          secret: this.secrets.encrypt(input.secret ?? secretFromBytes(pooledRandomBytes(32)), {
            webhookId: webhook.id,
            organizationId: webhook.organizationId,
          }),
          gracePeriodSeconds: input.gracePeriodSeconds,
          ...(input.authorizedPartnerIds !== undefined ? { authorizedPartnerIds: input.authorizedPartnerIds } : {}),
        },
        metadata: { now: ctx.now },
      }),
      result: (recorded, upTo) => {
        const event = recorded[upTo]!;
        const data = event.data as Extract<WebhookEvent, { type: 'WebhookSecretRotated' }>['data'];
        const webhook = webhookAt(recorded, upTo).webhook;
        // From the event, so a replay of this request gives the same answer.
        const retired = data.retiredPreviousSecrets ?? [];
        return {
          secret: this.secrets.decrypt(data.secret, { webhookId: webhook.id, organizationId: webhook.organizationId }),
          previousSecretExpiresAt: data.previousSecretExpiresAt,
          ...(retired.length > 0 ? { retiredPreviousSecrets: retired.map((p) => ({ expiresAt: p.expiresAt })) } : {}),
        };
      },
    });
  }

  async delete(ctx: WriteContext, webhookId: string, ifMatch: number | undefined): Promise<WriteOutcome<null>> {
    return this.write(ctx, webhookId, ifMatch, {
      command: () => ({ type: 'DeleteWebhook', metadata: { now: ctx.now } }),
      result: () => null,
    });
  }

  /** Dispatcher-side: not bound to an organization and naturally idempotent, so it takes no key. */
  async disable(
    actor: ActorRef,
    requestId: string,
    webhookId: string,
    reason: string,
    now: Date,
  ): Promise<WriteOutcome<WebhookAtRevision>> {
    for (let attempt = 0; ; attempt++) {
      const stream = webhookStreamName(webhookId);
      const recorded = await this.store.readStream(stream);
      const state = fold(recorded);
      if (state.kind !== 'live') throw new NotFoundError('webhook not found');
      const events = decide({ type: 'DisableWebhook', data: { reason }, metadata: { now } }, state);
      if (events.length === 0) {
        return { result: webhookAt(recorded, recorded.length - 1), replayed: false, position: undefined };
      }
      const ctx = { organizationId: state.webhook.organizationId, actor, requestId, now, keyHash: null, fingerprint: null };
      const last = recorded[recorded.length - 1]!;
      try {
        const appended = await this.store.append(stream, chain(events, ctx, last.metadata.hash), last.revision);
        return {
          // The ETag counts changes (representationRevision), not stream revisions: a recorded no-op is no change.
          result: { webhook: foldAll(recorded, events), revision: representationRevision(recorded) + events.length },
          replayed: false,
          position: appended.position,
        };
      } catch (error) {
        if (!(error instanceof StreamConflictError)) throw error;
        if (attempt + 1 >= MAX_ATTEMPTS) throw contended();
      }
    }
  }

  private async write<T>(
    ctx: WriteContext,
    webhookId: string,
    ifMatch: number | undefined,
    handler: {
      command: (webhook: Webhook) => WebhookCommand;
      /** The answer, computed from the stream up to (and including) index `upTo`. */
      result: (recorded: readonly RecordedEvent[], upTo: number) => T;
    },
  ): Promise<WriteOutcome<T>> {
    const keyHash = idempotencyKeyHash(ctx.organizationId, ctx.idempotencyKey);
    const stream = webhookStreamName(webhookId);
    // Releases this write's claim on the key if it ends without appending.
    let release: (() => void) | undefined;
    try {
      for (let attempt = 0; ; attempt++) {
        const recorded = await this.store.readStream(stream);
        const state = fold(recorded);
        if (state.kind === 'absent' || state.webhook.organizationId !== ctx.organizationId) {
          throw new NotFoundError('webhook not found');
        }
        // The key hash includes the organization, so only this organization's writes can match.
        const usedAt = findLastIndex(recorded, (e) => e.metadata.idempotencyKeyHash === keyHash);
        if (usedAt >= 0) {
          const use = recorded[usedAt]!;
          this.checkReplay(use.metadata.requestFingerprint, use.metadata.occurredAt, ctx);
          return { result: handler.result(recorded, usedAt), replayed: true, position: undefined };
        }
        await this.checkKeyUnusedElsewhere(ctx, keyHash, webhookId);
        if (state.kind === 'deleted') throw new NotFoundError('webhook not found');
        const last = recorded[recorded.length - 1]!;
        if (ifMatch !== undefined && ifMatch !== representationRevision(recorded)) {
          throw new PreconditionFailedError('If-Match does not match the current ETag of the webhook');
        }
        const decided = decide(handler.command(state.webhook), state);
        // A write that changes nothing still records its key (see WebhookUnchanged).
        const events: WebhookEvent[] =
          decided.length > 0 ? decided : [{ type: 'WebhookUnchanged', data: { webhookId, at: ctx.now.toISOString() } }];
        const newEvents = chain(events, { ...ctx, keyHash, fingerprint: this.fingerprints.of(ctx.request) }, last.metadata.hash);
        release ??= this.claimKey(keyHash, webhookId);
        try {
          const appended = await this.store.append(stream, newEvents, last.revision);
          const after: RecordedEvent[] = [
            ...recorded,
            ...newEvents.map((e, i) => ({
              ...e,
              streamId: stream,
              revision: last.revision + 1 + i,
              position: appended.position,
            })),
          ];
          return { result: handler.result(after, after.length - 1), replayed: false, position: appended.position };
        } catch (error) {
          if (!(error instanceof StreamConflictError)) throw error;
        if (attempt + 1 >= MAX_ATTEMPTS) throw contended();
          // Another write landed first; reload and decide again (it may be our own key's twin).
        }
      }
    } catch (error) {
      release?.();
      throw error;
    }
  }

  /**
   * Claims the key for this webhook in this process, or throws 422 when a
   * write to another webhook holds it. Synchronous, so check and claim are
   * one step. Returns a release for a write that did not happen.
   */
  private claimKey(keyHash: string, webhookId: string): () => void {
    const holder = this.keyClaims.get(keyHash);
    if (holder !== undefined && holder !== webhookId) throw keyReused();
    if (holder !== undefined) return () => undefined;
    this.keyClaims.set(keyHash, webhookId);
    if (this.keyClaims.size > MAX_KEY_CLAIMS) {
      const oldest = this.keyClaims.keys().next();
      if (oldest.done !== true) this.keyClaims.delete(oldest.value);
    }
    return () => {
      if (this.keyClaims.get(keyHash) === webhookId) this.keyClaims.delete(keyHash);
    };
  }

  /** A key belongs to one request in the organization: not a registration, not another webhook's write. */
  private async checkKeyUnusedElsewhere(ctx: WriteContext, keyHash: string, webhookId: string): Promise<void> {
    const claimed = this.keyClaims.get(keyHash);
    if (claimed !== undefined && claimed !== webhookId) throw keyReused();
    const indexed = await this.readModel.findIdempotencyKey(ctx.organizationId, keyHash);
    if (indexed !== null && indexed.webhookId !== webhookId) throw keyReused();
    // The key index trails the log slightly; a registration under this key is found directly.
    const registration = webhookStreamName(webhookIdFor(ctx.organizationId, ctx.idempotencyKey));
    if (registration !== webhookStreamName(webhookId) && (await this.store.readStream(registration)).length > 0) {
      throw keyReused();
    }
  }
}

function fold(recorded: readonly RecordedEvent[]): WebhookState {
  return foldWebhook(recorded.map(toDomainEvent));
}

function foldAll(recorded: readonly RecordedEvent[], more: readonly WebhookEvent[]): Webhook {
  const state = foldWebhook([...recorded.map(toDomainEvent), ...more]);
  if (state.kind === 'absent') throw new Error('no webhook in stream');
  return state.webhook;
}

function webhookAt(recorded: readonly RecordedEvent[], upTo: number): WebhookAtRevision {
  const state = fold(recorded.slice(0, upTo + 1));
  if (state.kind === 'absent') throw new Error('no webhook in stream');
  return { webhook: state.webhook, revision: representationRevision(recorded, upTo) };
}

/**
 * The version the ETag names after the first `upTo + 1` events: how many
 * events changed the webhook, less one. It is the stream revision until a
 * WebhookUnchanged is recorded; that one changes no representation, so it
 * neither moves the ETag clients hold nor leaves a gap in the versions.
 */
export function representationRevision(recorded: readonly RecordedEvent[], upTo = recorded.length - 1): number {
  let changes = 0;
  for (let i = 0; i <= upTo; i++) if (recorded[i]!.type !== 'WebhookUnchanged') changes++;
  return changes - 1;
}

export function toDomainEvent(e: RecordedEvent): WebhookEvent {
  return { type: e.type, data: e.data } as WebhookEvent;
}


function contended(): ConcurrentWriteError {
  return new ConcurrentWriteError('Too many concurrent changes to this webhook; retry with the same Idempotency-Key.', {
    headers: { 'retry-after': '1' },
  });
}

function keyReused(): IdempotencyKeyReusedError {
  return new IdempotencyKeyReusedError('this Idempotency-Key was already used for a different request');
}

function findLastIndex<T>(items: readonly T[], predicate: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (predicate(items[i]!)) return i;
  return -1;
}

interface ChainContext {
  readonly organizationId: string;
  readonly actor: ActorRef;
  readonly requestId: string;
  readonly now: Date;
  /** Both null for writes that take no Idempotency-Key. */
  readonly keyHash: string | null;
  readonly fingerprint: string | null;
}

/** Adds metadata and links each event into the stream's hash chain. */
function chain(events: readonly WebhookEvent[], ctx: ChainContext, previousHash: string | null): NewEvent[] {
  let previous = previousHash;
  return events.map((event) => {
    const base: Omit<EventMetadata, 'hash'> = {
      actor: ctx.actor,
      organizationId: ctx.organizationId,
      requestId: ctx.requestId,
      idempotencyKeyHash: ctx.keyHash,
      requestFingerprint: ctx.fingerprint,
      occurredAt: ctx.now.toISOString(),
      previousHash: previous,
    };
    const sealed = sealEvent(event.type, event.data, base);
    previous = sealed.hash;
    return {
      type: event.type,
      data: event.data,
      metadata: { ...base, hash: sealed.hash },
      json: { data: sealed.data, metadata: sealed.metadata },
    };
  });
}

function registrationBody(
  event: Extract<WebhookEvent, { type: 'WebhookRegistered' }>,
  secret: string,
): RegistrationBody {
  const d = event.data;
  return {
    id: d.webhookId,
    url: d.url,
    events: d.events,
    status: 'ACTIVE',
    createdAt: d.at,
    ...(d.partnerIds !== null ? { partnerIds: d.partnerIds } : {}),
    secret,
    updatedAt: d.at,
  };
}

/** The registration a stream starts with (a registration's stream is never empty once it exists). */
function registrationOf(recorded: readonly RecordedEvent[]): Registration {
  const first = recorded[0];
  if (!first || first.type !== 'WebhookRegistered') throw new ServiceUnavailableError('registration stream is damaged');
  return { data: first.data as RegisteredData, fingerprint: first.metadata.requestFingerprint, occurredAt: first.metadata.occurredAt };
}
