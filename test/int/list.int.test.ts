// GET /v1/webhooks: cursor pagination in a stable (createdAt, id) order,
// `limit` 1–100, filters `status` and `event`, only the caller's organization,
// never a secret; and read-your-writes for a list right after a write.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARTNER_A, startRegistry, type TestRegistry } from '../support/registry.ts';
import {
  DispatcherApi,
  settleProjection,
  TestClock,
  WebhookApi,
  withoutSecret,
  type WebhookBody,
} from '../support/webhookApi.ts';

function byCreation(a: WebhookBody, b: WebhookBody): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

const EVENT_SETS = [
  ['kyc.*'],
  ['kyc.verification.*'],
  ['kyc.verification.approved'],
  ['compliance.*'],
  ['compliance.case.opened', 'kyc.document.uploaded'],
  ['self_service_invitation.*'],
];

describe('GET /v1/webhooks', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let globex: WebhookApi;
  let reader: WebhookApi;
  let dispatcher: DispatcherApi;
  const clock = new TestClock('2032-03-01T00:00:00.000Z');
  /** acme's webhooks as the API shows them, kept current by the tests. */
  const acmeHooks = new Map<string, WebhookBody>();
  const globexIds = new Set<string>();

  beforeAll(async () => {
    registry = await startRegistry({ now: clock.now });
    acme = await WebhookApi.as(registry, 'acme-integration');
    globex = await WebhookApi.as(registry, 'globex-integration');
    reader = await WebhookApi.as(registry, 'acme-reader');
    dispatcher = await DispatcherApi.as(registry);

    // 24 webhooks: groups of three share a createdAt (ties are ordered by id).
    for (let i = 0; i < 24; i++) {
      if (i % 3 === 0) clock.advance(1000);
      const body = await acme.registered({
        url: `https://hooks.example.com/list/${i}`,
        events: EVENT_SETS[i % EVENT_SETS.length],
        ...(i % 4 === 0 ? { partnerIds: [PARTNER_A] } : {}),
      });
      acmeHooks.set(body.id, withoutSecret(body));
    }
    for (let i = 0; i < 3; i++) {
      globexIds.add((await globex.registered({ url: `https://hooks.example.com/globex/${i}`, events: ['kyc.*'] })).id);
    }
    // Some statuses: every 5th paused, every 7th disabled, one deleted.
    const ids = [...acmeHooks.keys()];
    for (const [i, id] of ids.entries()) {
      if (i % 5 === 1) acmeHooks.set(id, await acme.patched(id, { status: 'PAUSED' }));
      if (i % 7 === 2) {
        const disabled = await dispatcher.disable(id, 'failing');
        expect(disabled.status).toBe(200);
        acmeHooks.set(id, disabled.body);
      }
    }
    const doomed = ids[10]!;
    expect((await acme.delete(doomed)).status).toBe(204);
    acmeHooks.delete(doomed);
    await settleProjection(registry);
  });
  afterAll(async () => {
    await registry.close();
  });

  const expected = (filter: (w: WebhookBody) => boolean = () => true): WebhookBody[] =>
    [...acmeHooks.values()].filter(filter).sort(byCreation);

  it('lists the organization’s webhooks in (createdAt, id) order with the default limit of 20', async () => {
    const first = await acme.list();
    expect(first.status).toBe(200);
    expect(first.body.data).toEqual(expected().slice(0, 20));
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await acme.list({ cursor: first.body.nextCursor! });
    expect(second.body).toEqual({ data: expected().slice(20), nextCursor: null });
  });

  it('pages through everything exactly once for every limit', async () => {
    for (const limit of [1, 2, 3, 7, 22, 23, 24, 100]) {
      const pages: WebhookBody[][] = [];
      let cursor: string | null = null;
      do {
        const response: Awaited<ReturnType<WebhookApi['list']>> = await acme.list(
          cursor === null ? { limit } : { limit, cursor },
        );
        expect(response.status).toBe(200);
        expect(response.body.data.length).toBeLessThanOrEqual(limit);
        pages.push(response.body.data);
        cursor = response.body.nextCursor;
      } while (cursor !== null);
      expect(pages.flat()).toEqual(expected());
      // A page is full unless it is the last one; no empty trailing page.
      expect(pages.slice(0, -1).every((p) => p.length === limit)).toBe(true);
      expect(pages[pages.length - 1]!.length).toBeGreaterThan(0);
      expect(pages.length).toBe(Math.ceil(expected().length / limit));
    }
  });

  it('keeps its order stable while webhooks change and new ones arrive between pages', async () => {
    const before = expected();
    const firstPage = await acme.list({ limit: 5 });
    expect(firstPage.body.data).toEqual(before.slice(0, 5));
    // Change an item on the first page and one further on; add a new webhook.
    clock.advance(1000);
    const changedEarly = await acme.patched(before[1]!.id, { url: 'https://hooks.example.com/list/changed-early' });
    const changedLate = await acme.patched(before[12]!.id, { url: 'https://hooks.example.com/list/changed-late' });
    acmeHooks.set(changedEarly.id, changedEarly);
    acmeHooks.set(changedLate.id, changedLate);
    clock.advance(1000);
    const added = withoutSecret(await acme.registered({ url: 'https://hooks.example.com/list/late', events: ['kyc.*'] }));
    acmeHooks.set(added.id, added);

    const rest = await acme.listAll({ limit: 5, cursor: firstPage.body.nextCursor! });
    const after = expected();
    expect(rest).toEqual(after.slice(5));
    expect(after[after.length - 1]).toEqual(added);
    expect(rest.find((w) => w.id === changedLate.id)?.url).toBe('https://hooks.example.com/list/changed-late');
    // Order is by creation, not by update: the changed items kept their places.
    expect(after.map((w) => w.id).slice(0, before.length)).toEqual(before.map((w) => w.id));
  });

  it('filters by status', async () => {
    for (const status of ['ACTIVE', 'PAUSED', 'DISABLED'] as const) {
      const all = await acme.listAll({ status, limit: 4 });
      expect(all).toEqual(expected((w) => w.status === status));
      expect(all.length).toBeGreaterThan(0);
    }
  });

  it('filters by event: an exact type matches the patterns that cover it; a pattern matches itself', async () => {
    const covers = (w: WebhookBody, patterns: string[]): boolean => w.events.some((e) => patterns.includes(e));
    const cases: { event: string; patterns: string[] }[] = [
      { event: 'kyc.verification.approved', patterns: ['kyc.verification.approved', 'kyc.verification.*', 'kyc.*'] },
      { event: 'kyc.verification.rejected', patterns: ['kyc.verification.*', 'kyc.*'] },
      { event: 'kyc.document.uploaded', patterns: ['kyc.document.uploaded', 'kyc.*'] },
      { event: 'compliance.case.opened', patterns: ['compliance.case.opened', 'compliance.*'] },
      { event: 'compliance.screening.hit', patterns: ['compliance.*'] },
      { event: 'self_service_invitation.sent', patterns: ['self_service_invitation.*'] },
      { event: 'kyc.*', patterns: ['kyc.*'] },
      { event: 'kyc.verification.*', patterns: ['kyc.verification.*', 'kyc.*'] },
      { event: 'compliance.*', patterns: ['compliance.*'] },
    ];
    for (const c of cases) {
      const got = await acme.listAll({ event: c.event, limit: 3 });
      expect(got, c.event).toEqual(expected((w) => covers(w, c.patterns)));
      expect(got.length, c.event).toBeGreaterThan(0);
    }
    // Both filters at once.
    expect(await acme.listAll({ event: 'kyc.verification.approved', status: 'PAUSED' })).toEqual(
      expected((w) => w.status === 'PAUSED' && covers(w, ['kyc.verification.approved', 'kyc.verification.*', 'kyc.*'])),
    );
    // Nothing subscribed: an empty page.
    expect((await globex.list({ event: 'compliance.case.opened' })).body).toEqual({ data: [], nextCursor: null });
  });

  it('shows only the caller’s organization and never a secret', async () => {
    const globexList = await globex.listAll();
    expect(new Set(globexList.map((w) => w.id))).toEqual(globexIds);
    const acmeList = await acme.listAll({ limit: 100 });
    expect(acmeList.some((w) => globexIds.has(w.id))).toBe(false);
    // A read-only client of the same organization sees the same list.
    expect(await reader.listAll({ limit: 100 })).toEqual(acmeList);
    for (const who of [acme, globex]) {
      const response = await who.list({ limit: 100 });
      expect(response.text).not.toMatch(/whsec_|"secret"|previousSecret|authorizedPartnerIds|organizationId/);
      for (const w of response.body.data) {
        expect(Object.keys(w).sort()).toEqual(
          ['createdAt', 'events', 'id', 'status', 'updatedAt', 'url', ...(w.partnerIds ? ['partnerIds'] : [])].sort(),
        );
      }
    }
    // A cursor from one organization's list does not reveal another's webhooks.
    const acmeCursor = (await acme.list({ limit: 1 })).body.nextCursor!;
    const crossed = await globex.listAll({ cursor: acmeCursor });
    expect(crossed.every((w) => globexIds.has(w.id))).toBe(true);
  });

  it('read-your-writes: a list right after each write sees it (20 times in a tight loop)', async () => {
    const mine = await WebhookApi.as(registry, 'globex-integration');
    let current: WebhookBody | undefined;
    for (let i = 0; i < 20; i++) {
      const step = i % 4;
      if (step === 0 || current === undefined) {
        current = withoutSecret(
          await mine.registered({ url: `https://hooks.example.com/ryw/${i}`, events: ['kyc.*'] }, randomUUID()),
        );
        globexIds.add(current.id);
      } else if (step === 1) {
        current = await mine.patched(current.id, { url: `https://hooks.example.com/ryw/${i}-patched` });
      } else if (step === 2) {
        current = await mine.patched(current.id, { status: 'PAUSED' });
      } else {
        expect((await mine.delete(current.id)).status).toBe(204);
        globexIds.delete(current.id);
      }
      const listed = await mine.listAll({ limit: 100 });
      expect(new Set(listed.map((w) => w.id))).toEqual(globexIds);
      if (step !== 3) expect(listed.find((w) => w.id === current!.id)).toEqual(current);
      else current = undefined;
    }
  });
});
