// The read-model contract: every engine (sqlite/, mongo/) must pass it.
// Each test gets a fresh, empty read model from the factory. Expected views
// are computed with the same pure function the engines must use
// (projections/webhookView.ts nextView), so an engine that stores, merges or
// returns a view differently fails here.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EncryptedSecret, PreviousSecret, WebhookEvent } from '../../src/domain/webhook.ts';
import { nextView } from '../../src/projections/webhookView.ts';
import {
  encodePosition,
  webhookStreamName,
  type EventMetadata,
  type RecordedEvent,
} from '../../src/stores/eventStore.ts';
import {
  CheckpointConflictError,
  ProjectionGapError,
  toDispatchView,
  type IdempotencyKeyEntry,
  type ReadModel,
  type WebhookView,
} from '../../src/stores/readModel.ts';

export interface ReadModelHandle {
  readonly readModel: ReadModel;
  cleanup(): Promise<void>;
}

export type ReadModelFactory = () => Promise<ReadModelHandle>;

// ---- fixtures ---------------------------------------------------------------------

const ORG_A = '0a000000-0000-4000-8000-000000000001';
const ORG_B = '0b000000-0000-4000-8000-000000000002';
const P1 = 'a1000000-0000-4000-8000-000000000001';
const P2 = 'a2000000-0000-4000-8000-000000000002';
const P3 = 'a3000000-0000-4000-8000-000000000003';

const EXACT = 'kyc.verification.completed';

/** A webhook id that sorts by `n` (ids are compared as strings). */
function wid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

function secret(label: string): EncryptedSecret {
  return { keyId: 'k1', iv: `iv-${label}`, ciphertext: `ct-${label}` };
}

function at(minute: number): string {
  return new Date(Date.UTC(2025, 5, 1, 12, minute, 0)).toISOString();
}

interface Meta {
  readonly organizationId?: string;
  /** Idempotency key hash; the request fingerprint is derived from it. Null: a write without a key. */
  readonly key?: string | null;
  readonly fingerprint?: string;
}

/** Assigns per-stream revisions and increasing global positions, like a real log. */
class TestLog {
  /** `base` keeps the positions of separate logs in one test apart. */
  constructor(private readonly base = 1000n) {}

  private seq = 0n;
  private readonly revisions = new Map<string, number>();
  private readonly orgs = new Map<string, string>();

  record(event: WebhookEvent, meta: Meta = {}): RecordedEvent {
    const webhookId = event.data.webhookId;
    const organizationId =
      meta.organizationId ??
      (event.type === 'WebhookRegistered' ? event.data.organizationId : undefined) ??
      this.orgs.get(webhookId) ??
      ORG_A;
    this.orgs.set(webhookId, organizationId);
    const revision = (this.revisions.get(webhookId) ?? -1) + 1;
    this.revisions.set(webhookId, revision);
    this.seq += 1n;
    const key = meta.key === undefined ? `key-${randomUUID()}` : meta.key;
    const metadata: EventMetadata = {
      actor: { clientId: 'contract-client', subject: 'service-account-contract' },
      organizationId,
      requestId: `req-${randomUUID()}`,
      idempotencyKeyHash: key,
      requestFingerprint: key === null ? null : (meta.fingerprint ?? `fp-${key}`),
      occurredAt: event.data.at,
      previousHash: revision === 0 ? null : `prev-${this.seq}`,
      hash: `hash-${this.seq}`,
    };
    return {
      streamId: webhookStreamName(webhookId),
      revision,
      // Distinct commit and prepare parts, ordered like EventStoreDB positions.
      position: { commit: this.base + this.seq * 100n, prepare: this.base + this.seq * 100n - 7n },
      type: event.type,
      data: event.data,
      metadata,
    };
  }
}

function registered(
  id: string,
  options: {
    org?: string;
    events?: string[];
    partnerIds?: string[] | null;
    authorized?: string[];
    minute?: number;
    url?: string;
  } = {},
): WebhookEvent {
  return {
    type: 'WebhookRegistered',
    data: {
      webhookId: id,
      organizationId: options.org ?? ORG_A,
      url: options.url ?? `https://hooks.example.com/${id}`,
      events: options.events ?? [EXACT],
      partnerIds: options.partnerIds === undefined ? null : options.partnerIds,
      authorizedPartnerIds: options.authorized ?? [P1, P2],
      secret: secret(`${id}-0`),
      at: at(options.minute ?? 0),
    },
  };
}

function updated(
  id: string,
  changes: { url?: string; events?: string[]; partnerIds?: string[] | null },
  minute: number,
  authorized: string[] = [P1, P2],
): WebhookEvent {
  return { type: 'WebhookUpdated', data: { webhookId: id, changes, authorizedPartnerIds: authorized, at: at(minute) } };
}

const paused = (id: string, minute: number): WebhookEvent => ({
  type: 'WebhookPaused',
  data: { webhookId: id, at: at(minute) },
});
const resumed = (id: string, minute: number): WebhookEvent => ({
  type: 'WebhookResumed',
  data: { webhookId: id, at: at(minute) },
});
const disabled = (id: string, minute: number, reason = 'endpoint kept failing'): WebhookEvent => ({
  type: 'WebhookDisabled',
  data: { webhookId: id, reason, at: at(minute) },
});
/** Rotation n (secret n-1 → n) at `minute`, the old secret kept for a day; `retired`: earlier ones it retired early. */
const rotated = (id: string, minute: number, n: number, retired: PreviousSecret[] = []): WebhookEvent => ({
  type: 'WebhookSecretRotated',
  data: {
    webhookId: id,
    secret: secret(`${id}-${n}`),
    previousSecret: secret(`${id}-${n - 1}`),
    previousSecretExpiresAt: at(minute + 60 * 24),
    ...(retired.length > 0 ? { retiredPreviousSecrets: retired } : {}),
    at: at(minute),
  },
});
const deleted = (id: string, minute: number): WebhookEvent => ({
  type: 'WebhookDeleted',
  data: { webhookId: id, at: at(minute) },
});

/** The views a correct engine holds after `events`, computed by the shared pure function. */
function reference(events: readonly RecordedEvent[]): Map<string, WebhookView> {
  const views = new Map<string, WebhookView>();
  for (const event of events) {
    const id = (event.data as { webhookId: string }).webhookId;
    const change = nextView(views.get(id) ?? null, event);
    if (change.kind === 'apply') views.set(id, change.view);
  }
  return views;
}

function referenceKeys(events: readonly RecordedEvent[]): Map<string, IdempotencyKeyEntry> {
  const keys = new Map<string, IdempotencyKeyEntry>();
  const views = new Map<string, WebhookView>();
  for (const event of events) {
    const id = (event.data as { webhookId: string }).webhookId;
    const change = nextView(views.get(id) ?? null, event);
    if (change.kind !== 'apply') continue;
    views.set(id, change.view);
    const key = change.key;
    if (key && !keys.has(`${key.organizationId}/${key.keyHash}`)) keys.set(`${key.organizationId}/${key.keyHash}`, key);
  }
  return keys;
}

const last = (events: readonly RecordedEvent[]): string => encodePosition(events[events.length - 1]!.position);

async function drain(iterable: AsyncIterable<WebhookView>): Promise<WebhookView[]> {
  const out: WebhookView[] = [];
  for await (const view of iterable) out.push(view);
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

const idsOf = (views: readonly { readonly id: string }[]): string[] => views.map((v) => v.id);
const sortedIds = (views: readonly { readonly id: string }[]): string[] => idsOf(views).sort();

// ---- the contract ---------------------------------------------------------------------

export function readModelContract(name: string, factory: ReadModelFactory): void {
  describe(`ReadModel contract: ${name}`, () => {
    let handle: ReadModelHandle;
    let rm: ReadModel;
    let log: TestLog;

    beforeEach(async () => {
      handle = await factory();
      rm = handle.readModel;
      log = new TestLog();
    });

    afterEach(async () => {
      await handle.cleanup();
    });

    /** Applies batches in order from the current checkpoint; returns every event applied. */
    async function applyAll(...batches: RecordedEvent[][]): Promise<RecordedEvent[]> {
      for (const batch of batches) await rm.applyBatch(batch, await rm.checkpoint());
      return batches.flat();
    }

    async function expectViews(events: readonly RecordedEvent[]): Promise<void> {
      for (const [id, view] of reference(events)) expect(await rm.getWebhook(id), `view of ${id}`).toEqual(view);
    }

    describe('applyBatch', () => {
      it('applies every event type exactly as nextView does', async () => {
        const w = wid(1);
        const first = [
          log.record(registered(w, { events: [EXACT, 'kyc.*'], minute: 1 })),
          log.record(updated(w, { url: 'https://hooks.example.com/v2', events: ['compliance.case.opened'], partnerIds: [P1] }, 2)),
          log.record(paused(w, 3), { key: null }),
          log.record(resumed(w, 4)),
        ];
        await rm.applyBatch(first, null);
        await expectViews(first);
        expect(await rm.checkpoint()).toBe(last(first));

        const second = [
          log.record(disabled(w, 5), { key: null }),
          log.record(resumed(w, 6)),
          log.record(rotated(w, 7, 1)),
          log.record(updated(w, { partnerIds: null }, 8, [P1, P2, P3])),
        ];
        await rm.applyBatch(second, last(first));
        const all = [...first, ...second];
        await expectViews(all);
        expect(await rm.checkpoint()).toBe(last(second));

        const view = (await rm.getWebhook(w))!;
        expect(view).toMatchObject({
          revision: 7,
          status: 'ACTIVE',
          disabledReason: null,
          deleted: false,
          url: 'https://hooks.example.com/v2',
          events: ['compliance.case.opened'],
          partnerIds: null,
          effectivePartnerIds: [P1, P2, P3],
          secret: secret(`${w}-1`),
          previousSecrets: [{ secret: secret(`${w}-0`), expiresAt: at(7 + 60 * 24) }],
          position: encodePosition(second[3]!.position),
        });
      });

      it('keeps a deleted webhook as a tombstone with deleted: true', async () => {
        const w = wid(1);
        const events = await applyAll([log.record(registered(w)), log.record(deleted(w, 9))]);
        const view = await rm.getWebhook(w);
        expect(view).toEqual(reference(events).get(w));
        expect(view?.deleted).toBe(true);
        expect(view?.revision).toBe(1);
      });

      it('is idempotent: the same batch applied twice gives identical state', async () => {
        const batch = [
          log.record(registered(wid(1))),
          log.record(registered(wid(2), { org: ORG_B, partnerIds: [P2] })),
          log.record(paused(wid(1), 2)),
          log.record(rotated(wid(2), 3, 1)),
        ];
        const snapshot = async () => ({
          views: await drain(rm.allWebhooks()),
          checkpoint: await rm.checkpoint(),
          keys: await Promise.all(
            batch.map((e) => rm.findIdempotencyKey(e.metadata.organizationId, e.metadata.idempotencyKeyHash!)),
          ),
          dispatch: await rm.dispatchTargets(EXACT, P2),
          list: await rm.listWebhooks({ organizationId: ORG_A, limit: 10 }),
        });
        await rm.applyBatch(batch, null);
        const once = await snapshot();
        await rm.applyBatch(batch, last(batch));
        const twice = await snapshot();
        expect(twice).toEqual(once);
        expect(once.views).toEqual([...reference(batch).values()].sort((a, b) => a.id.localeCompare(b.id)));
        expect(once.checkpoint).toBe(last(batch));
      });

      it('skips already-applied revisions and applies the rest of an overlapping batch', async () => {
        const w = wid(1);
        const e = [
          log.record(registered(w)),
          log.record(paused(w, 1)),
          log.record(resumed(w, 2)),
          log.record(disabled(w, 3)),
          log.record(rotated(w, 4, 1)),
        ];
        await rm.applyBatch(e.slice(0, 3), null);
        await rm.applyBatch(e.slice(1), last(e.slice(0, 3)));
        await expectViews(e);
        expect((await rm.getWebhook(w))?.revision).toBe(4);
        expect(await rm.checkpoint()).toBe(last(e));
      });

      it('the revision guard skips an applied revision even when its content differs', async () => {
        const w = wid(1);
        const e = [log.record(registered(w)), log.record(paused(w, 1))];
        await rm.applyBatch(e, null);
        const before = await rm.getWebhook(w);
        // A different event claiming revision 1 (e.g. a stale duplicate delivery).
        const impostor: RecordedEvent = { ...e[1]!, type: 'WebhookDisabled', data: disabled(w, 5).data };
        await rm.applyBatch([impostor], last(e));
        expect(await rm.getWebhook(w)).toEqual(before);
        expect((await rm.getWebhook(w))?.status).toBe('PAUSED');
      });

      it('a gap in revisions throws ProjectionGapError and applies nothing of the batch', async () => {
        const w1 = wid(1);
        const w2 = wid(2);
        const applied = [log.record(registered(w1))];
        await rm.applyBatch(applied, null);
        const checkpoint = await rm.checkpoint();

        const skippedOne = log.record(paused(w1, 1)); // revision 1, never applied
        const gap = log.record(resumed(w1, 2)); // revision 2
        const fine = log.record(registered(w2));
        const error = await rejection(rm.applyBatch([fine, gap], checkpoint));
        expect(error).toBeInstanceOf(ProjectionGapError);

        // Atomic: the valid event before the gap was not applied, the checkpoint did not move.
        expect(await rm.getWebhook(w2)).toBeNull();
        expect((await rm.getWebhook(w1))?.revision).toBe(0);
        expect(await rm.checkpoint()).toBe(checkpoint);

        // The same events in order apply cleanly.
        await rm.applyBatch([skippedOne, gap, fine], checkpoint);
        await expectViews([...applied, skippedOne, gap, fine]);
      });

      it('an unknown webhook whose first event is not revision 0 is a gap', async () => {
        const w = wid(1);
        log.record(registered(w));
        const later = log.record(paused(w, 1));
        expect(await rejection(rm.applyBatch([later], null))).toBeInstanceOf(ProjectionGapError);
        expect(await rm.getWebhook(w)).toBeNull();
        expect(await rm.checkpoint()).toBeNull();
      });
    });

    describe('checkpoint compare-and-set', () => {
      it('starts at null and moves to the encoded position of the last event of each batch', async () => {
        expect(await rm.checkpoint()).toBeNull();
        const b1 = [log.record(registered(wid(1))), log.record(registered(wid(2)))];
        await rm.applyBatch(b1, null);
        expect(await rm.checkpoint()).toBe(encodePosition(b1[1]!.position));
        const b2 = [log.record(paused(wid(1), 1))];
        await rm.applyBatch(b2, encodePosition(b1[1]!.position));
        expect(await rm.checkpoint()).toBe(encodePosition(b2[0]!.position));
      });

      it('rejects a wrong expected checkpoint with CheckpointConflictError and applies nothing', async () => {
        const w = wid(1);
        const b1 = [log.record(registered(w))];
        const wrong = encodePosition({ commit: 1n, prepare: 1n });
        const e1 = await rejection(rm.applyBatch(b1, wrong));
        expect(e1).toBeInstanceOf(CheckpointConflictError);
        expect((e1 as CheckpointConflictError).expected).toBe(wrong);
        expect((e1 as CheckpointConflictError).actual).toBeNull();
        expect(await rm.getWebhook(w)).toBeNull();
        expect(await rm.checkpoint()).toBeNull();

        await rm.applyBatch(b1, null);
        const b2 = [log.record(paused(w, 1))];
        const e2 = await rejection(rm.applyBatch(b2, null));
        expect(e2).toBeInstanceOf(CheckpointConflictError);
        expect((e2 as CheckpointConflictError).expected).toBeNull();
        expect((e2 as CheckpointConflictError).actual).toBe(last(b1));
        expect((await rm.getWebhook(w))?.status).toBe('ACTIVE');
        expect(await rm.checkpoint()).toBe(last(b1));
      });

      it('two appliers racing from the same checkpoint: exactly one wins', async () => {
        const w = wid(1);
        const b0 = [log.record(registered(w))];
        await rm.applyBatch(b0, null);
        const next = [log.record(paused(w, 1))];
        const results = await Promise.allSettled([
          rm.applyBatch(next, last(b0)),
          rm.applyBatch(next, last(b0)),
          rm.applyBatch(next, last(b0)),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CheckpointConflictError);
        expect(await rm.checkpoint()).toBe(last(next));
        await expectViews([...b0, ...next]);
      });
    });

    describe('getWebhook', () => {
      it('is null for an unknown id', async () => {
        await applyAll([log.record(registered(wid(1)))]);
        expect(await rm.getWebhook(wid(99))).toBeNull();
      });
    });

    describe('listWebhooks', () => {
      /** ORG_A: six live webhooks (two share a createdAt) and one deleted; ORG_B: two. */
      async function seed(): Promise<RecordedEvent[]> {
        return applyAll(
          [
            log.record(registered(wid(7), { minute: 5, events: [EXACT] })),
            log.record(registered(wid(3), { minute: 5, events: ['kyc.*'] })),
            log.record(registered(wid(9), { minute: 1, events: ['kyc.verification.*'] })),
            log.record(registered(wid(1), { minute: 8, events: ['compliance.case.opened'] })),
            log.record(registered(wid(20), { org: ORG_B, minute: 2, events: [EXACT] })),
          ],
          [
            log.record(registered(wid(5), { minute: 3, events: [EXACT, 'compliance.case.opened'] })),
            log.record(registered(wid(4), { minute: 0, events: [EXACT] })),
            log.record(deleted(wid(4), 10)),
            log.record(registered(wid(2), { minute: 9, events: ['compliance.*'] })),
            log.record(registered(wid(21), { org: ORG_B, minute: 4, events: ['kyc.*'] })),
            log.record(paused(wid(3), 11)),
            log.record(disabled(wid(1), 12)),
          ],
        );
      }
      // Order by (createdAt, id): 9 (m1), 5 (m3), 3 (m5), 7 (m5), 1 (m8), 2 (m9); 4 is deleted.
      const ORDER_A = [wid(9), wid(5), wid(3), wid(7), wid(1), wid(2)];

      it('lists one organization, ordered by createdAt then id, without tombstones', async () => {
        const events = await seed();
        const all = await rm.listWebhooks({ organizationId: ORG_A, limit: 100 });
        expect(idsOf(all)).toEqual(ORDER_A);
        const refs = reference(events);
        for (const view of all) expect(view).toEqual(refs.get(view.id));
        expect(idsOf(await rm.listWebhooks({ organizationId: ORG_B, limit: 100 }))).toEqual([wid(20), wid(21)]);
        expect(await rm.listWebhooks({ organizationId: randomUUID(), limit: 100 })).toEqual([]);
      });

      it('pages with limit and an exclusive (createdAt, id) cursor', async () => {
        await seed();
        for (const limit of [1, 2, 4]) {
          const seen: string[] = [];
          let after: { createdAt: string; id: string } | undefined;
          for (let guard = 0; guard < 20; guard++) {
            const page = await rm.listWebhooks({ organizationId: ORG_A, limit, after });
            expect(page.length).toBeLessThanOrEqual(limit);
            seen.push(...idsOf(page));
            if (page.length < limit) break;
            const tail = page[page.length - 1]!;
            after = { createdAt: tail.createdAt, id: tail.id };
          }
          expect(seen, `limit ${limit}`).toEqual(ORDER_A);
        }
        // A cursor between two webhooks with the same createdAt.
        const three = (await rm.getWebhook(wid(3)))!;
        const rest = await rm.listWebhooks({
          organizationId: ORG_A,
          limit: 10,
          after: { createdAt: three.createdAt, id: three.id },
        });
        expect(idsOf(rest)).toEqual([wid(7), wid(1), wid(2)]);
      });

      it('filters by status', async () => {
        await seed();
        expect(idsOf(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, status: 'ACTIVE' }))).toEqual([
          wid(9),
          wid(5),
          wid(7),
          wid(2),
        ]);
        expect(idsOf(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, status: 'PAUSED' }))).toEqual([wid(3)]);
        expect(idsOf(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, status: 'DISABLED' }))).toEqual([
          wid(1),
        ]);
        expect(await rm.listWebhooks({ organizationId: ORG_B, limit: 10, status: 'PAUSED' })).toEqual([]);
      });

      it('filters by event: an exact type matches exact and wildcard subscriptions; a pattern matches itself', async () => {
        await seed();
        expect(idsOf(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, event: EXACT }))).toEqual([
          wid(9),
          wid(5),
          wid(3),
          wid(7),
        ]);
        expect(
          idsOf(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, event: 'compliance.case.opened' })),
        ).toEqual([wid(5), wid(1), wid(2)]);
        expect(idsOf(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, event: 'kyc.*' }))).toEqual([wid(3)]);
        expect(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, event: 'payments.settled' })).toEqual([]);
      });

      it('combines status, event and cursor', async () => {
        await seed();
        const first = await rm.listWebhooks({ organizationId: ORG_A, limit: 1, status: 'ACTIVE', event: EXACT });
        expect(idsOf(first)).toEqual([wid(9)]);
        const next = await rm.listWebhooks({
          organizationId: ORG_A,
          limit: 5,
          status: 'ACTIVE',
          event: EXACT,
          after: { createdAt: first[0]!.createdAt, id: first[0]!.id },
        });
        expect(idsOf(next)).toEqual([wid(5), wid(7)]);
      });

      it('follows updates to the subscribed events', async () => {
        await seed();
        await applyAll([log.record(updated(wid(2), { events: [EXACT] }, 20))]);
        expect(idsOf(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, event: EXACT }))).toEqual([
          wid(9),
          wid(5),
          wid(3),
          wid(7),
          wid(2),
        ]);
        expect(
          idsOf(await rm.listWebhooks({ organizationId: ORG_A, limit: 10, event: 'compliance.case.opened' })),
        ).toEqual([wid(5), wid(1)]);
      });
    });

    describe('dispatchTargets', () => {
      async function seed(): Promise<RecordedEvent[]> {
        return applyAll([
          // All authorized partners (P1, P2) of ORG_A.
          log.record(registered(wid(1), { events: [EXACT] })),
          log.record(registered(wid(2), { events: ['kyc.*'] })),
          log.record(registered(wid(3), { events: ['kyc.verification.*', 'compliance.case.opened'] })),
          // Explicit partner filter.
          log.record(registered(wid(4), { events: [EXACT], partnerIds: [P1] })),
          log.record(registered(wid(5), { events: ['kyc.*'], partnerIds: [P2] })),
          // Other organization, authorized for P3 only.
          log.record(registered(wid(6), { org: ORG_B, events: [EXACT], authorized: [P3] })),
          // Not ACTIVE or not live: never targets.
          log.record(registered(wid(7), { events: [EXACT] })),
          log.record(paused(wid(7), 1)),
          log.record(registered(wid(8), { events: ['kyc.*'] })),
          log.record(disabled(wid(8), 1)),
          log.record(registered(wid(9), { events: [EXACT] })),
          log.record(deleted(wid(9), 1)),
          // Does not match.
          log.record(registered(wid(10), { events: ['compliance.*'] })),
          log.record(registered(wid(11), { events: ['kyc.verification.completed_late'] })),
        ]);
      }

      it('matches exact and wildcard patterns and applies the partner filter', async () => {
        const events = await seed();
        const refs = reference(events);
        const p1 = await rm.dispatchTargets(EXACT, P1);
        expect(idsOf(p1)).toEqual([wid(1), wid(2), wid(3), wid(4)].sort());
        for (const view of p1) expect(view).toEqual(toDispatchView(refs.get(view.id)!));
        expect(sortedIds(await rm.dispatchTargets(EXACT, P2))).toEqual([wid(1), wid(2), wid(3), wid(5)]);
        expect(sortedIds(await rm.dispatchTargets(EXACT, P3))).toEqual([wid(6)]);
        expect(await rm.dispatchTargets(EXACT, randomUUID())).toEqual([]);
      });

      it('a wildcard matches every type below its prefix, at any depth, but not the prefix itself', async () => {
        await seed();
        expect(sortedIds(await rm.dispatchTargets('kyc.document.expired', P2))).toEqual([wid(2), wid(5)]);
        expect(sortedIds(await rm.dispatchTargets('kyc.verification.a.b', P1))).toEqual([wid(2), wid(3)]);
        expect(sortedIds(await rm.dispatchTargets('compliance.case.opened', P1))).toEqual([wid(10), wid(3)].sort());
        expect(await rm.dispatchTargets('kyc', P1)).toEqual([]);
        expect(await rm.dispatchTargets('payments.settled', P1)).toEqual([]);
      });

      it('follows status, pattern and partner changes', async () => {
        await seed();
        await applyAll([
          log.record(resumed(wid(7), 2)), // back to ACTIVE
          log.record(updated(wid(1), { events: ['compliance.*'] }, 2)), // no longer matches
          log.record(updated(wid(4), { partnerIds: null }, 2, [P1, P2])), // now all partners
          log.record(updated(wid(2), {}, 2, [P1])), // authorized set shrank: P2 gone
          log.record(deleted(wid(3), 3)),
        ]);
        expect(sortedIds(await rm.dispatchTargets(EXACT, P1))).toEqual([wid(2), wid(4), wid(7)]);
        expect(sortedIds(await rm.dispatchTargets(EXACT, P2))).toEqual([wid(4), wid(5), wid(7)]);
      });

      it('returns the signing secrets with the view', async () => {
        await seed();
        await applyAll([log.record(rotated(wid(1), 5, 1))]);
        const target = (await rm.dispatchTargets(EXACT, P1)).find((x) => x.id === wid(1));
        expect(target?.secret).toEqual(secret(`${wid(1)}-1`));
        expect(target?.previousSecrets).toEqual([{ secret: secret(`${wid(1)}-0`), expiresAt: at(5 + 60 * 24) }]);
      });

      it('two rotations inside the grace period: the current secret and both previous ones, newest first', async () => {
        const events = await seed();
        const more = await applyAll([log.record(rotated(wid(1), 5, 1)), log.record(rotated(wid(1), 6, 2))]);
        const target = (await rm.dispatchTargets(EXACT, P1)).find((x) => x.id === wid(1));
        expect(target?.secret).toEqual(secret(`${wid(1)}-2`));
        expect(target?.previousSecrets).toEqual([
          { secret: secret(`${wid(1)}-1`), expiresAt: at(6 + 60 * 24) },
          { secret: secret(`${wid(1)}-0`), expiresAt: at(5 + 60 * 24) },
        ]);
        expect(target).toEqual(toDispatchView(reference([...events, ...more]).get(wid(1))!));
        expect((await rm.getWebhook(wid(1)))?.previousSecrets).toEqual(target?.previousSecrets);
      });

      it('at the bound of three previous secrets, a rotation retires the one expiring soonest (here the oldest)', async () => {
        const events = await seed();
        const w = wid(1);
        const more = await applyAll([
          log.record(rotated(w, 5, 1)),
          log.record(rotated(w, 6, 2)),
          log.record(rotated(w, 7, 3)),
          log.record(rotated(w, 8, 4, [{ secret: secret(`${w}-0`), expiresAt: at(5 + 60 * 24) }])),
        ]);
        const target = (await rm.dispatchTargets(EXACT, P1)).find((x) => x.id === w);
        expect(target?.secret).toEqual(secret(`${w}-4`));
        expect(target?.previousSecrets).toEqual([
          { secret: secret(`${w}-3`), expiresAt: at(8 + 60 * 24) },
          { secret: secret(`${w}-2`), expiresAt: at(7 + 60 * 24) },
          { secret: secret(`${w}-1`), expiresAt: at(6 + 60 * 24) },
        ]);
        expect(target).toEqual(toDispatchView(reference([...events, ...more]).get(w)!));
        expect((await rm.getWebhook(w))?.previousSecrets).toEqual(target?.previousSecrets);
      });

      it('answers with the current URL, patterns and secrets after every change', async () => {
        const events = await seed();
        const more = await applyAll([
          log.record(updated(wid(1), { url: 'https://moved.example.com/hook', events: [EXACT, 'kyc.*'] }, 2)),
          log.record(rotated(wid(4), 3, 1)),
          log.record(rotated(wid(4), 4, 2)),
        ]);
        const refs = reference([...events, ...more]);
        const p1 = await rm.dispatchTargets(EXACT, P1);
        // One entry per webhook even when two of its patterns match.
        expect(idsOf(p1)).toEqual([wid(1), wid(2), wid(3), wid(4)].sort());
        for (const view of p1) expect(view).toEqual(toDispatchView(refs.get(view.id)!));
        expect(p1.find((x) => x.id === wid(1))?.url).toBe('https://moved.example.com/hook');
        expect(p1.find((x) => x.id === wid(4))?.secret).toEqual(secret(`${wid(4)}-2`));
      });

      it('a change of the URL alone reaches the dispatch answer', async () => {
        await seed();
        await applyAll([log.record(updated(wid(4), { url: 'https://only-the-url.example.com/hook' }, 2, [P1, P2]))]);
        const target = (await rm.dispatchTargets(EXACT, P1)).find((x) => x.id === wid(4));
        expect(target?.url).toBe('https://only-the-url.example.com/hook');
      });
    });

    describe('findIdempotencyKey', () => {
      it('finds every recorded key by organization and hash; the first use wins', async () => {
        const w1 = wid(1);
        const w2 = wid(2);
        const events = await applyAll([
          log.record(registered(w1), { key: 'k-register' }),
          log.record(paused(w1, 1), { key: 'k-pause' }),
          log.record(resumed(w1, 2), { key: null }),
          log.record(registered(w2, { org: ORG_B }), { key: 'k-register' }),
        ]);
        // Reuse of a key on another resource later: the index keeps the first use.
        await applyAll([log.record(disabled(w2, 3), { organizationId: ORG_B, key: 'k-register', fingerprint: 'fp-other' })]);

        const keys = referenceKeys(events);
        expect(await rm.findIdempotencyKey(ORG_A, 'k-register')).toEqual(keys.get(`${ORG_A}/k-register`));
        expect(await rm.findIdempotencyKey(ORG_A, 'k-register')).toEqual({
          organizationId: ORG_A,
          keyHash: 'k-register',
          webhookId: w1,
          fingerprint: 'fp-k-register',
          firstUsedAt: at(0),
        });
        expect(await rm.findIdempotencyKey(ORG_A, 'k-pause')).toMatchObject({ webhookId: w1, firstUsedAt: at(1) });
        // Scoped to the organization.
        expect(await rm.findIdempotencyKey(ORG_B, 'k-register')).toEqual({
          organizationId: ORG_B,
          keyHash: 'k-register',
          webhookId: w2,
          fingerprint: 'fp-k-register',
          firstUsedAt: at(0),
        });
        expect(await rm.findIdempotencyKey(ORG_B, 'k-pause')).toBeNull();
        expect(await rm.findIdempotencyKey(ORG_A, 'k-unknown')).toBeNull();
      });
    });

    describe('allWebhooks', () => {
      it('yields every webhook of every organization, tombstones included, ordered by id', async () => {
        const events = await applyAll([
          log.record(registered(wid(5))),
          log.record(registered(wid(2), { org: ORG_B })),
          log.record(registered(wid(9))),
          log.record(deleted(wid(9), 1)),
          log.record(registered(wid(1))),
        ]);
        const all = await drain(rm.allWebhooks());
        expect(idsOf(all)).toEqual([wid(1), wid(2), wid(5), wid(9)]);
        const refs = reference(events);
        for (const view of all) expect(view).toEqual(refs.get(view.id));
        expect(all[3]?.deleted).toBe(true);
      });

      it('yields nothing for an empty model', async () => {
        expect(await drain(rm.allWebhooks())).toEqual([]);
      });

      it('yields each of more webhooks than an engine reads at once exactly once, in id order', async () => {
        // Inserted in a scrambled order, so an engine paging by insertion order would fail too.
        const ids = Array.from({ length: 2_345 }, (_, i) => wid(((i * 7919) % 2_345) + 1));
        await applyAll(ids.map((id) => log.record(registered(id))));
        const all = idsOf(await drain(rm.allWebhooks()));
        expect(all).toEqual([...ids].sort());
      });
    });

    describe('reset', () => {
      it('drops every webhook, key and the checkpoint', async () => {
        await applyAll([log.record(registered(wid(1)), { key: 'k1' }), log.record(registered(wid(2)))]);
        await rm.reset();
        expect(await rm.checkpoint()).toBeNull();
        expect(await rm.getWebhook(wid(1))).toBeNull();
        expect(await rm.findIdempotencyKey(ORG_A, 'k1')).toBeNull();
        expect(await rm.listWebhooks({ organizationId: ORG_A, limit: 10 })).toEqual([]);
        expect(await rm.dispatchTargets(EXACT, P1)).toEqual([]);
        expect(await drain(rm.allWebhooks())).toEqual([]);

        // Usable again from the start of the log.
        const again = new TestLog();
        const replay = [again.record(registered(wid(1)))];
        await rm.applyBatch(replay, null);
        await expectViews(replay);
      });
    });

    describe('rebuild', () => {
      it('builds beside the live model and switches atomically on commit', async () => {
        // The live model holds an old projection: wid(1) paused, wid(2) present.
        const old = new TestLog(900_000n);
        const oldEvents = [
          old.record(registered(wid(1)), { key: 'k-old' }),
          old.record(paused(wid(1), 1)),
          old.record(registered(wid(2))),
        ];
        await rm.applyBatch(oldEvents, null);
        const oldCheckpoint = await rm.checkpoint();

        const target = await rm.beginRebuild();
        expect(await target.checkpoint()).toBeNull();
        const fresh = [
          log.record(registered(wid(1), { url: 'https://hooks.example.com/rebuilt' }), { key: 'k-new' }),
          log.record(registered(wid(3))),
        ];
        const more = [log.record(rotated(wid(3), 2, 1))];
        await target.applyBatch(fresh, null);
        await target.applyBatch(more, last(fresh));
        expect(await target.checkpoint()).toBe(last(more));
        const wrong = await rejection(target.applyBatch(more, null));
        expect(wrong).toBeInstanceOf(CheckpointConflictError);

        // Before commit every read sees the old model.
        expect(await rm.checkpoint()).toBe(oldCheckpoint);
        expect(await rm.getWebhook(wid(1))).toEqual(reference(oldEvents).get(wid(1)));
        expect(await rm.getWebhook(wid(3))).toBeNull();
        expect(await rm.findIdempotencyKey(ORG_A, 'k-new')).toBeNull();
        expect(sortedIds(await rm.dispatchTargets(EXACT, P1))).toEqual([wid(2)]);

        // The live model keeps being projected meanwhile, without touching the copy.
        const liveMore = [old.record(registered(wid(4)))];
        await rm.applyBatch(liveMore, oldCheckpoint);
        expect(await rm.getWebhook(wid(4))).not.toBeNull();

        await target.commit();

        const rebuilt = [...fresh, ...more];
        expect(await rm.checkpoint()).toBe(last(more));
        await expectViews(rebuilt);
        expect(await rm.getWebhook(wid(2))).toBeNull();
        expect(await rm.getWebhook(wid(4))).toBeNull();
        expect(await rm.findIdempotencyKey(ORG_A, 'k-old')).toBeNull();
        expect(await rm.findIdempotencyKey(ORG_A, 'k-new')).toMatchObject({ webhookId: wid(1) });
        expect(sortedIds(await rm.dispatchTargets(EXACT, P1))).toEqual([wid(1), wid(3)]);
        expect(idsOf(await drain(rm.allWebhooks()))).toEqual([wid(1), wid(3)]);

        // The old checkpoint is gone; projection continues from the rebuilt one.
        const after = [log.record(paused(wid(1), 3))];
        expect(await rejection(rm.applyBatch(after, oldCheckpoint))).toBeInstanceOf(CheckpointConflictError);
        await rm.applyBatch(after, last(more));
        await expectViews([...rebuilt, ...after]);
      });

      it('abort discards the copy and leaves the live model untouched', async () => {
        const live = [log.record(registered(wid(1)), { key: 'k-live' })];
        await rm.applyBatch(live, null);

        const target = await rm.beginRebuild();
        const other = new TestLog(900_000n);
        await target.applyBatch([other.record(registered(wid(2)), { key: 'k-copy' })], null);
        await target.abort();

        expect(await rm.checkpoint()).toBe(last(live));
        await expectViews(live);
        expect(await rm.getWebhook(wid(2))).toBeNull();
        expect(await rm.findIdempotencyKey(ORG_A, 'k-copy')).toBeNull();
        expect(idsOf(await drain(rm.allWebhooks()))).toEqual([wid(1)]);

        // A new rebuild starts from an empty copy.
        const second = await rm.beginRebuild();
        expect(await second.checkpoint()).toBeNull();
        const replay = new TestLog();
        const rebuilt = [replay.record(registered(wid(1)), { key: 'k-live' })];
        await second.applyBatch(rebuilt, null);
        await second.commit();
        await expectViews(rebuilt);
        expect(await rm.findIdempotencyKey(ORG_A, 'k-live')).toMatchObject({ webhookId: wid(1) });
      });

      it('an empty rebuild commits an empty model', async () => {
        await applyAll([log.record(registered(wid(1)))]);
        const target = await rm.beginRebuild();
        await target.commit();
        expect(await rm.checkpoint()).toBeNull();
        expect(await drain(rm.allWebhooks())).toEqual([]);
      });
    });

    describe('ping', () => {
      it('resolves while the model is reachable', async () => {
        await expect(rm.ping()).resolves.toBeUndefined();
      });
    });
  });
}
