// GET /v1/webhooks/{id}/history: the audit trail of one webhook.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import { DispatcherApi, expectProblem, TestClock, WebhookApi } from '../support/webhookApi.ts';

interface HistoryBody {
  webhookId: string;
  organizationId: string | null;
  chain: { intact: boolean; revision?: number; problem?: string };
  data: {
    revision: number;
    position: string;
    type: string;
    occurredAt: string;
    actor: { clientId: string; subject: string };
    requestId: string;
    changes: Record<string, { from: unknown; to: unknown }>;
    previousHash: string | null;
    hash: string;
  }[];
  nextCursor: string | null;
}

const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

describe('GET /v1/webhooks/{id}/history', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let clock: TestClock;
  let id: string;
  const times: string[] = [];

  const history = (webhookId: string, token: string | undefined, query = '') =>
    registry.request<HistoryBody>('GET', `/v1/webhooks/${webhookId}/history${query}`, { token });

  beforeAll(async () => {
    clock = new TestClock('2024-03-01T09:00:00.000Z');
    registry = await startRegistry({ now: clock.now });
    acme = await WebhookApi.as(registry, 'acme-integration');
    const dispatcher = await DispatcherApi.as(registry);

    times.push(clock.iso());
    id = (await acme.registered({ ...VALID_REGISTRATION, secret: SECRET })).id;
    times.push(clock.advance(60_000));
    await acme.patched(id, { url: 'https://hooks.example.com/v2', events: ['kyc.*'] });
    times.push(clock.advance(60_000));
    await acme.patched(id, { status: 'PAUSED' });
    times.push(clock.advance(60_000));
    const rotated = await acme.rotate(id, { gracePeriodSeconds: 3600 });
    expect(rotated.status, rotated.text).toBe(200);
    times.push(clock.advance(60_000));
    expect((await dispatcher.disable(id, 'endpoint returns 410')).status).toBe(200);
    times.push(clock.advance(60_000));
    await acme.patched(id, { status: 'ACTIVE', partnerIds: null });
    times.push(clock.advance(60_000));
    expect((await acme.delete(id)).status).toBe(204);
  });

  afterAll(async () => {
    await registry.close();
  });

  it('lists every change in order with time, actor, revision, position and what changed', async () => {
    const response = await history(id, acme.token);
    expect(response.status, response.text).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = response.body;
    expect(body.webhookId).toBe(id);
    expect(body.organizationId).toBe('acme');
    expect(body.chain).toEqual({ intact: true });
    expect(body.nextCursor).toBeNull();
    // One PATCH {status: ACTIVE, partnerIds: null} records an update and a resume.
    expect(body.data.map((e) => e.type)).toEqual([
      'WebhookRegistered',
      'WebhookUpdated',
      'WebhookPaused',
      'WebhookSecretRotated',
      'WebhookDisabled',
      'WebhookUpdated',
      'WebhookResumed',
      'WebhookDeleted',
    ]);
    expect(body.data.map((e) => e.revision)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const positions = body.data.map((e) => e.position);
    expect([...positions].sort()).toEqual(positions);
    expect(new Set(positions).size).toBeGreaterThanOrEqual(7); // the update and resume share one append
    expect(body.data.map((e) => e.occurredAt)).toEqual([
      times[0],
      times[1],
      times[2],
      times[3],
      times[4],
      times[5],
      times[5],
      times[6],
    ]);

    const acmeActor = { clientId: 'acme-integration', subject: registry.oauth.subjectFor('acme-integration') };
    expect(body.data[0]!.actor).toEqual(acmeActor);
    expect(body.data[4]!.actor).toEqual({ clientId: 'dispatcher', subject: registry.oauth.subjectFor('dispatcher') });
    for (const e of body.data) expect(e.requestId).toEqual(expect.any(String));

    // Hash chain links are shown (they are not secrets) and link up.
    expect(body.data[0]!.previousHash).toBeNull();
    for (let i = 1; i < body.data.length; i++) expect(body.data[i]!.previousHash).toBe(body.data[i - 1]!.hash);

    const [registered, updated, paused, rotated, disabled, refreshed, resumed, deleted] = body.data.map((e) => e.changes);
    expect(registered).toEqual({
      url: { from: null, to: VALID_REGISTRATION.url },
      events: { from: null, to: VALID_REGISTRATION.events },
      partnerIds: { from: null, to: VALID_REGISTRATION.partnerIds },
      effectivePartnerIds: { from: null, to: VALID_REGISTRATION.partnerIds },
      status: { from: null, to: 'ACTIVE' },
      secret: { from: null, to: '[redacted]' },
    });
    expect(updated).toEqual({
      url: { from: VALID_REGISTRATION.url, to: 'https://hooks.example.com/v2' },
      events: { from: VALID_REGISTRATION.events, to: ['kyc.*'] },
    });
    expect(paused).toEqual({ status: { from: 'ACTIVE', to: 'PAUSED' } });
    const previousExpiry = new Date(Date.parse(times[3]!) + 3600_000).toISOString();
    expect(rotated).toEqual({
      previousSecretExpiresAt: { from: null, to: previousExpiry },
      previousSecretExpiries: { from: [], to: [previousExpiry] },
      secret: { from: '[redacted]', to: '[redacted]' },
    });
    expect(disabled).toEqual({
      status: { from: 'PAUSED', to: 'DISABLED' },
      disabledReason: { from: null, to: 'endpoint returns 410' },
    });
    expect(refreshed).toMatchObject({ partnerIds: { from: VALID_REGISTRATION.partnerIds, to: null } });
    expect(resumed).toEqual({ status: { from: 'DISABLED', to: 'ACTIVE' }, disabledReason: { from: 'endpoint returns 410', to: null } });
    expect(deleted).toEqual({ deleted: { from: false, to: true } });
  });

  it('never shows a secret, not even its ciphertext', async () => {
    const response = await history(id, acme.token);
    const recorded = await registry.server.core.store.readStream(`webhook-${id}`);
    const ciphertexts = recorded.flatMap((e) => {
      type Sealed = { ciphertext: string; iv: string };
      const d = e.data as { secret?: Sealed; previousSecret?: Sealed; retiredPreviousSecrets?: { secret: Sealed }[] };
      return [d.secret, d.previousSecret, ...(d.retiredPreviousSecrets ?? []).map((r) => r.secret)].flatMap((s) =>
        s ? [s.ciphertext, s.iv] : [],
      );
    });
    expect(ciphertexts.length).toBeGreaterThanOrEqual(3);
    for (const c of ciphertexts) expect(response.text).not.toContain(c);
    expect(response.text).not.toContain('whsec_');
    expect(response.text).not.toContain(SECRET.slice(6, 30));
    expect(response.text).not.toMatch(/ciphertext|keyId|"iv"/);
  });

  it('pages with limit and cursor, in order, without gaps', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 20; page++) {
      const response = await history(id, acme.token, `?limit=3${cursor === null ? '' : `&cursor=${cursor}`}`);
      expect(response.status, response.text).toBe(200);
      expect(response.body.data.length).toBeLessThanOrEqual(3);
      seen.push(...response.body.data.map((e) => e.revision));
      cursor = response.body.nextCursor;
      if (cursor === null) break;
    }
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expectProblem(await history(id, acme.token, '?limit=0'), 400, 'validation');
    expectProblem(await history(id, acme.token, '?cursor=abc'), 400, 'validation');
    expectProblem(await history(id, acme.token, '?since=1'), 400, 'validation');
  });

  it('is visible to the own organization (read scope) and to auditors of any organization only', async () => {
    expect((await history(id, await registry.token('acme-reader'))).status).toBe(200);
    const audited = await history(id, await registry.token('compliance-auditor'));
    expect(audited.status, audited.text).toBe(200);
    expect(audited.body.data).toHaveLength(8);
    // Another organization: the webhook does not exist for it.
    expectProblem(await history(id, await registry.token('globex-integration')), 404, 'not-found');
    // A token with neither scope.
    expectProblem(await history(id, await registry.token('dispatcher')), 403, 'forbidden');
    expectProblem(await history(id, undefined), 401, 'unauthorized');
  });

  it('answers 404 for an unknown webhook and 400 for a malformed id', async () => {
    expectProblem(await history(randomUUID(), acme.token), 404, 'not-found');
    expectProblem(await history(randomUUID(), await registry.token('compliance-auditor')), 404, 'not-found');
    expectProblem(await history('not-a-uuid', acme.token), 400, 'validation');
  });

  it('keeps the trail of a webhook after its deletion while GET answers 404', async () => {
    expectProblem(await acme.get(id), 404, 'not-found');
    const response = await history(id, acme.token);
    expect(response.status).toBe(200);
    expect(response.body.data.at(-1)!.type).toBe('WebhookDeleted');
  });
});
