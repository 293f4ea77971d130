// The dispatcher change feed over HTTP (DESIGN.md §4b): the snapshot, the
// JSON long-poll and the Server-Sent Events form, 410 for positions the feed
// no longer holds, and the tenancy rules (webhooks:dispatch only).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARTNER_A, PARTNER_B, startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import { expectProblem, settleProjection, WebhookApi } from '../support/webhookApi.ts';
import { dispatchableAt } from '../../src/dispatch/changeFeed.ts';
import { comparePositions, decodePosition } from '../../src/stores/eventStore.ts';

interface Target {
  id: string;
  organizationId: string;
  url: string;
  events: string[];
  partnerIds: string[];
  status: string;
  secrets: { secret: string; expiresAt: string | null }[];
  revision: number;
}
interface Change {
  position: string;
  type: 'webhook.upserted' | 'webhook.removed';
  data: Target | { id: string; organizationId: string };
}
interface Changes {
  changes: Change[];
  next: string;
}

/** Reads Server-Sent Events from a fetch body until `until` says enough. */
async function readEvents(
  response: Response,
  until: (events: { id?: string; event?: string; data?: string }[], comments: number) => boolean,
): Promise<{ events: { id?: string; event?: string; data?: string }[]; comments: number }> {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: { id?: string; event?: string; data?: string }[] = [];
  let comments = 0;
  let buffer = '';
  let current: { id?: string; event?: string; data?: string } = {};
  try {
    while (!until(events, comments)) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let at: number;
      while ((at = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 1);
        if (line === '') {
          if (Object.keys(current).length > 0) events.push(current);
          current = {};
        } else if (line.startsWith(':')) comments++;
        else {
          const colon = line.indexOf(':');
          const field = line.slice(0, colon) as 'id' | 'event' | 'data';
          current[field] = line.slice(colon + 2);
        }
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return { events, comments };
}

describe('the dispatcher change feed', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let dispatcher: string;

  beforeAll(async () => {
    registry = await startRegistry({ env: { CHANGE_FEED_KEEPALIVE_MS: '200' } });
    acme = await WebhookApi.as(registry, 'acme-integration');
    dispatcher = await registry.token('dispatcher');
  });
  afterAll(async () => {
    await registry?.close();
  });

  const changes = (query: string, token = dispatcher) => registry.request<Changes>('GET', `/internal/v1/changes${query}`, { token });
  const snapshot = (token = dispatcher) =>
    registry.request<{ position: string; webhooks: Target[] }>('GET', '/internal/v1/dispatch-snapshot', { token });

  it('gives every ACTIVE webhook in the snapshot, then each change after its position in log order', async () => {
    const before = await snapshot();
    expect(before.status, before.text).toBe(200);
    expect(before.headers.get('cache-control')).toBe('no-store');
    const hook = await acme.registered({ ...VALID_REGISTRATION, partnerIds: undefined });
    const paused = await acme.registered(VALID_REGISTRATION);

    const first = await changes(`?after=${before.body.position}&wait=5`);
    expect(first.status, first.text).toBe(200);
    // Long-poll: it may answer as soon as the first change is there; gather the rest.
    const seen = [...first.body.changes];
    let next = first.body.next;
    while (seen.length < 2) {
      const more = await changes(`?after=${next}&wait=5`);
      seen.push(...more.body.changes);
      next = more.body.next;
    }
    expect(seen.map((c) => [c.type, c.data.id])).toEqual([
      ['webhook.upserted', hook.id],
      ['webhook.upserted', paused.id],
    ]);
    expect(seen[0]!.data).toEqual({
      id: hook.id,
      organizationId: 'acme',
      url: VALID_REGISTRATION.url,
      events: VALID_REGISTRATION.events,
      partnerIds: [PARTNER_A, PARTNER_B], // resolved: the authorized set
      status: 'ACTIVE',
      secrets: [{ secret: hook.secret, expiresAt: null }],
      revision: 0,
    });
    expect(seen[0]!.position < seen[1]!.position).toBe(true);

    await acme.patched(paused.id, { status: 'PAUSED' });
    const rotated = await acme.rotate(hook.id, { gracePeriodSeconds: 3600 });
    expect(rotated.status).toBe(200);
    const later: Change[] = [];
    while (later.length < 2) {
      const more = await changes(`?after=${next}&wait=5`);
      later.push(...more.body.changes);
      next = more.body.next;
    }
    expect(later[0]).toMatchObject({ type: 'webhook.removed', data: { id: paused.id, organizationId: 'acme' } });
    expect(later[0]!.data).toEqual({ id: paused.id, organizationId: 'acme' });
    expect(later[1]).toMatchObject({
      type: 'webhook.upserted',
      data: {
        id: hook.id,
        secrets: [
          { secret: rotated.body.secret, expiresAt: null },
          { secret: hook.secret, expiresAt: rotated.body.previousSecretExpiresAt },
        ],
        revision: 1,
      },
    });

    // The snapshot (at the read model's checkpoint) once the projector has caught up: the rotated webhook only.
    await settleProjection(registry);
    const after = await snapshot();
    const mine = after.body.webhooks.filter((w) => [hook.id, paused.id].includes(w.id));
    expect(mine).toEqual([later[1]!.data]);
    // Nothing after the snapshot's position that it does not already hold.
    const rest = await changes(`?after=${after.body.position}`);
    expect(rest.body.changes).toEqual([]);
  });

  it('answers a long-poll without changes after `wait`, with a position to resume from', async () => {
    const head = await snapshot();
    const answer = await changes(`?after=${head.body.position}&wait=1`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ changes: [], next: expect.stringMatching(/^\d+\/\d+$/) as string });
    expect(answer.body.next >= head.body.position).toBe(true);
  });

  it('answers a waiting long-poll with the change that arrives while it waits', async () => {
    const head = await registry.request<Changes>('GET', '/internal/v1/changes', { token: dispatcher });
    // Waits up to 25 s; the registration below must end the wait with its change (else the answer is empty).
    const waiting = changes(`?after=${head.body.next}&wait=25`);
    await new Promise((r) => setTimeout(r, 100));
    const hook = await acme.registered(VALID_REGISTRATION);
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body.changes.map((c) => c.data.id)).toEqual([hook.id]);
  });

  it('builds the snapshot at its position even from views the read model has moved past', async () => {
    const { store, readModel } = registry.server.core;
    const kept = await acme.registered(VALID_REGISTRATION);
    const paused = await acme.registered(VALID_REGISTRATION);
    const at = (await store.headPosition())!;
    await acme.patched(kept.id, { url: 'https://hooks.example.com/moved' });
    await acme.patched(paused.id, { status: 'PAUSED' });
    const later = await acme.registered(VALID_REGISTRATION);
    await settleProjection(registry);
    const views = [];
    for await (const view of dispatchableAt(store, readModel, at)) views.push(view);
    const byId = new Map(views.map((v) => [v.id, v]));
    expect(byId.get(kept.id)).toMatchObject({ url: VALID_REGISTRATION.url, revision: 0 });
    expect(byId.get(paused.id)).toMatchObject({ status: 'ACTIVE', revision: 0 });
    expect(byId.has(later.id)).toBe(false);
    // Every view is as it was at `at`: none newer.
    for (const view of views) expect(comparePositions(decodePosition(view.position), at)).toBeLessThanOrEqual(0);
  });

  it('limits a page and resumes exactly after its last change', async () => {
    await settleProjection(registry); // the snapshot is at the read model's checkpoint: past the earlier tests' writes
    const head = await snapshot();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await acme.registered(VALID_REGISTRATION)).id);
    const got: string[] = [];
    let next = head.body.position;
    while (got.length < 5) {
      const page = await changes(`?after=${next}&limit=2&wait=5`);
      expect(page.body.changes.length).toBeLessThanOrEqual(2);
      got.push(...page.body.changes.map((c) => c.data.id));
      next = page.body.next;
    }
    expect(got).toEqual(ids);
  });

  it('streams Server-Sent Events with ids, resumes from Last-Event-ID, and keeps the connection alive', async () => {
    await settleProjection(registry);
    const head = await snapshot();
    const one = await acme.registered(VALID_REGISTRATION);
    const two = await acme.registered(VALID_REGISTRATION);
    const response = await fetch(`${registry.url}/internal/v1/changes?after=${head.body.position}`, {
      headers: { authorization: `Bearer ${dispatcher}`, accept: 'text/event-stream' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const { events, comments } = await readEvents(response, (e, c) => e.length >= 2 && c >= 3);
    expect(events.map((e) => [e.event, (JSON.parse(e.data!) as Target).id])).toEqual([
      ['webhook.upserted', one.id],
      ['webhook.upserted', two.id],
    ]);
    expect(comments).toBeGreaterThanOrEqual(3); // the opening one and keep-alives (every ≤ 200 ms here)

    // Resuming after the first event gives the second, and nothing twice.
    const resumed = await fetch(`${registry.url}/internal/v1/changes`, {
      headers: { authorization: `Bearer ${dispatcher}`, accept: 'text/event-stream', 'last-event-id': events[0]!.id! },
    });
    const again = await readEvents(resumed, (e) => e.length >= 1);
    expect(again.events.map((e) => e.id)).toEqual([events[1]!.id]);
  });

  it('answers 410 problem+json for a position before what it holds, or beyond the log', async () => {
    // Positions below the feed's origin: this registry started on an empty log, so take one from the future instead
    // and one that cannot be of this log (all nines), plus an old one on a registry that keeps one change (below).
    const future = await changes('?after=99999999999999999999/99999999999999999999');
    expectProblem(future, 410, 'position-gone');
    const stream = await registry.request('GET', '/internal/v1/changes', {
      token: dispatcher,
      headers: { accept: 'text/event-stream', 'last-event-id': '99999999999999999999/99999999999999999999' },
    });
    expectProblem(stream, 410, 'position-gone');
    expectProblem(await changes('?after=not-a-position'), 400, 'validation');
  });

  it('answers 410 once the position has left the bounded feed, and the snapshot is the way back', async () => {
    const small = await startRegistry({ env: { CHANGE_FEED_CAPACITY: '2' }, oauth: registry.oauth });
    try {
      const api = await WebhookApi.as(small, 'acme-integration');
      const token = await small.token('dispatcher');
      const start = (await small.request<{ position: string }>('GET', '/internal/v1/dispatch-snapshot', { token })).body.position;
      for (let i = 0; i < 4; i++) await api.registered(VALID_REGISTRATION);
      // Wait until the feed saw all four (the snapshot's position follows the projector, the feed follows the log).
      let fresh = start;
      for (let i = 0; i < 100; i++) {
        const page = await small.request<Changes>('GET', `/internal/v1/changes?after=${fresh}&wait=1`, { token });
        if (page.status === 410) break;
        fresh = page.body.next;
      }
      expectProblem(await small.request('GET', `/internal/v1/changes?after=${start}`, { token }), 410, 'position-gone');
      await settleProjection(small);
      const snap = await small.request<{ position: string; webhooks: Target[] }>('GET', '/internal/v1/dispatch-snapshot', { token });
      expect(snap.body.webhooks).toHaveLength(4);
      expect((await small.request<Changes>('GET', `/internal/v1/changes?after=${snap.body.position}`, { token })).status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('refuses every token without webhooks:dispatch with 403, on both endpoints and both forms', async () => {
    const others = [
      await registry.token('acme-integration'),
      await registry.token('acme-reader'),
      await registry.token('compliance-auditor'),
    ];
    for (const token of others) {
      expectProblem(await snapshot(token), 403);
      expectProblem(await changes('', token), 403);
      expectProblem(await registry.request('GET', '/internal/v1/changes', { token, headers: { accept: 'text/event-stream' } }), 403);
    }
    expectProblem(await registry.request('GET', '/internal/v1/dispatch-snapshot'), 401);
  });

  it('never shows secrets to other scopes: only the feed and dispatch-targets carry them', async () => {
    const hook = await acme.registered(VALID_REGISTRATION);
    await settleProjection(registry);
    const snap = await snapshot();
    expect(snap.text).toContain(hook.secret);
    const reads = [
      await acme.get(hook.id),
      await acme.list(),
      await registry.request('GET', `/v1/webhooks/${hook.id}/history`, { token: await registry.token('acme-reader') }),
      await snapshot(await registry.token('acme-integration')),
      await changes(`?after=${snap.body.position}`, await registry.token('acme-integration')),
    ];
    for (const answer of reads) expect(answer.text).not.toContain(hook.secret);
  });
});
