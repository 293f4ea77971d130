// GET /internal/v1/audit/webhooks: the state of every webhook at a past
// instant, rebuilt from the event log alone, for webhooks:audit tokens.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toAuditWebhook, type AuditWebhook } from '../../src/audit/replay.ts';
import { webhookIdFor } from '../../src/commands/idempotency.ts';
import { PARTNER_C, startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import { expectProblem, pointersOf, settleProjection, TestClock, WebhookApi } from '../support/webhookApi.ts';

interface AuditListBody {
  asOf: string;
  organizationId: string | null;
  logPosition: string | null;
  data: AuditWebhook[];
  nextCursor: string | null;
}

const AUDIT_FIELDS = [
  'createdAt',
  'deleted',
  'disabledReason',
  'effectivePartnerIds',
  'events',
  'id',
  'organizationId',
  'partnerIds',
  'position',
  'previousSecretExpiresAt',
  'previousSecretExpiries',
  'revision',
  'status',
  'updatedAt',
  'url',
];

describe('GET /internal/v1/audit/webhooks', () => {
  let registry: TestRegistry;
  let clock: TestClock;
  let acme: WebhookApi;
  let globex: WebhookApi;
  let auditor: string;
  /** Instants after the first and second round of writes, and the read model recorded at each. */
  let t1: string;
  let t2: string;
  let atT1: AuditWebhook[];
  let atT2: AuditWebhook[];
  const ids: Record<string, string> = {};

  const audit = (query: Record<string, string | number>, token: string | undefined = auditor) =>
    registry.request<AuditListBody>(
      'GET',
      `/internal/v1/audit/webhooks?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()}`,
      { token },
    );

  async function recordReadModel(): Promise<AuditWebhook[]> {
    await settleProjection(registry);
    const out: AuditWebhook[] = [];
    for await (const view of registry.server.core.readModel.allWebhooks()) out.push(toAuditWebhook(view));
    return out;
  }

  async function allPages(
    query: Record<string, string | number>,
    between?: (seen: AuditWebhook[]) => Promise<void>,
  ): Promise<AuditWebhook[]> {
    const out: AuditWebhook[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 50; page++) {
      const response = await audit(cursor === null ? query : { ...query, cursor });
      expect(response.status, response.text).toBe(200);
      out.push(...response.body.data);
      cursor = response.body.nextCursor;
      if (cursor === null) return out;
      if (between) await between(out);
    }
    throw new Error('too many pages');
  }

  beforeAll(async () => {
    // In the past, so the instants below are not "in the future" for the server.
    clock = new TestClock(new Date(Date.now() - 3 * 3600_000));
    registry = await startRegistry({ now: clock.now });
    acme = await WebhookApi.as(registry, 'acme-integration');
    globex = await WebhookApi.as(registry, 'globex-integration');
    auditor = await registry.token('compliance-auditor');

    ids.a = (await acme.registered(VALID_REGISTRATION)).id;
    clock.advance(1000);
    ids.b = (await acme.registered({ ...VALID_REGISTRATION, url: 'https://b.example.com/hook' })).id;
    ids.c = (await globex.registered({ url: 'https://globex.example.com/h', events: ['kyc.*'], partnerIds: [PARTNER_C] })).id;
    await acme.patched(ids.a, { status: 'PAUSED' });
    t1 = clock.advance(1000);
    atT1 = await recordReadModel();

    clock.advance(60_000);
    await acme.patched(ids.a, { url: 'https://a2.example.com/hook', status: 'ACTIVE' });
    expect((await acme.delete(ids.b)).status).toBe(204);
    ids.d = (await globex.registered({ url: 'https://globex.example.com/d', events: ['kyc.*'] })).id;
    expect((await acme.rotate(ids.a)).status).toBe(200);
    t2 = clock.advance(1000);
    atT2 = await recordReadModel();

    clock.advance(60_000);
    await acme.patched(ids.a, { events: ['compliance.case.opened'] });
    await globex.patched(ids.c, { status: 'PAUSED' });
  });

  afterAll(async () => {
    await registry.close();
  });

  it('answers the state at an instant, equal to the read model recorded then', async () => {
    const first = await audit({ asOf: t1 });
    expect(first.status, first.text).toBe(200);
    expect(first.headers.get('cache-control')).toBe('no-store');
    expect(first.body).toMatchObject({ asOf: t1, organizationId: null, nextCursor: null });
    expect(first.body.data).toEqual(atT1);
    expect(first.body.data.map((w) => w.id).sort()).toEqual([ids.a, ids.b, ids.c].sort());
    expect(first.body.data.find((w) => w.id === ids.a)).toMatchObject({ status: 'PAUSED', url: VALID_REGISTRATION.url });

    const second = await audit({ asOf: t2 });
    expect(second.status).toBe(200);
    expect(second.body.data).toEqual(atT2);
    expect(second.body.data.find((w) => w.id === ids.b)).toMatchObject({ deleted: true });
    expect(second.body.data.find((w) => w.id === ids.a)).toMatchObject({ status: 'ACTIVE', url: 'https://a2.example.com/hook' });
  });

  it('shows public fields only, never a secret', async () => {
    const response = await audit({ asOf: t2 });
    for (const w of response.body.data) expect(Object.keys(w).sort()).toEqual(AUDIT_FIELDS);
    expect(response.text).not.toMatch(/whsec_|ciphertext|keyId|"iv"|"secret"/);
  });

  it('filters by organization', async () => {
    const response = await audit({ asOf: t2, org: 'globex' });
    expect(response.status).toBe(200);
    expect(response.body.organizationId).toBe('globex');
    expect(response.body.data).toEqual(atT2.filter((w) => w.organizationId === 'globex'));
    expect((await audit({ asOf: t2, org: 'nobody' })).body.data).toEqual([]);
  });

  it('pages over one fixed state of the log, even while writes land between pages', async () => {
    let backdated: string | undefined;
    const paged = await allPages({ asOf: t2, limit: 1 }, async (seen) => {
      if (backdated !== undefined) return;
      // A write stamped before t2 (a slow clock) lands after the first page,
      // with an id that sorts after it: the later pages must not show it
      // (they replay the log as it was at the first page), a fresh query does.
      const key = Array.from({ length: 200 }, (_, i) => `late-${i}`).find((k) => webhookIdFor('acme', k) > seen[0]!.id)!;
      const saved = clock.iso();
      clock.advance(Date.parse(t2) - Date.parse(saved) - 500);
      backdated = (await acme.registered({ ...VALID_REGISTRATION, url: 'https://late.example.com/h' }, key)).id;
      clock.advance(Date.parse(saved) - Date.parse(clock.iso()));
      expect(backdated > seen[0]!.id).toBe(true);
    });
    expect(paged).toEqual(atT2);
    expect(backdated).toBeDefined();
    const fresh = await allPages({ asOf: t2, limit: 2 });
    expect(fresh.map((w) => w.id)).toContain(backdated);
  });

  it('answers 200 with an empty list before the first event', async () => {
    const response = await audit({ asOf: '2001-01-01T00:00:00Z' });
    expect(response.status, response.text).toBe(200);
    expect(response.body.data).toEqual([]);
    expect(response.body.nextCursor).toBeNull();
  });

  it('refuses an asOf in the future, a malformed one, or none with 400 problem+json', async () => {
    const future = expectProblem(await audit({ asOf: new Date(Date.now() + 3600_000).toISOString() }), 400, 'validation');
    expect(future.errors).toEqual([{ pointer: '/query/asOf', detail: expect.stringContaining('future') as string }]);
    for (const bad of ['yesterday', '2024-02-30T00:00:00Z', '2024-01-01T00:00:00', '2024-01-01', '2024-01-01T25:00:00Z', '']) {
      const response = await audit({ asOf: bad });
      expectProblem(response, 400, 'validation');
      expect(pointersOf(response)).toEqual(['/query/asOf']);
    }
    expect(pointersOf(await registry.request('GET', '/internal/v1/audit/webhooks', { token: auditor }))).toEqual(['/query/asOf']);
    // Offsets are honoured: the same instant written in another zone.
    const shifted = new Date(Date.parse(t1)).toISOString().replace('Z', '+00:00');
    expect((await audit({ asOf: shifted })).body.data).toEqual(atT1);
  });

  it('refuses bad paging input', async () => {
    expectProblem(await audit({ asOf: t2, limit: 0 }), 400, 'validation');
    expectProblem(await audit({ asOf: t2, limit: 1001 }), 400, 'validation');
    expectProblem(await audit({ asOf: t2, cursor: 'garbage' }), 400, 'validation');
    const first = await audit({ asOf: t2, limit: 1 });
    const cursor = first.body.nextCursor!;
    expect(cursor).toEqual(expect.any(String));
    // A cursor belongs to its query.
    expectProblem(await audit({ asOf: t1, limit: 1, cursor }), 400, 'validation');
    expectProblem(await audit({ asOf: t2, org: 'acme', limit: 1, cursor }), 400, 'validation');
    expectProblem(await audit({ asOf: t2, limit: 1, cursor: `${cursor.slice(0, -2)}xx` }), 400, 'validation');
    expectProblem(await audit({ asOf: t2, unknown: 1 }), 400, 'validation');
  });

  it('needs webhooks:audit', async () => {
    expectProblem(await audit({ asOf: t2 }, acme.token), 403, 'forbidden');
    expectProblem(await audit({ asOf: t2 }, await registry.token('dispatcher')), 403, 'forbidden');
    expectProblem(await registry.request('GET', `/internal/v1/audit/webhooks?asOf=${t2}`), 401, 'unauthorized');
  });
});
