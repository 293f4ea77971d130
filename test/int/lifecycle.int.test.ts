// The whole life of a webhook over HTTP — register → list → patch → pause →
// resume → rotate → delete — checking every response: status, headers
// (Location, ETag, Idempotent-Replayed, Cache-Control) and full bodies.
// The registry's clock is injected so every timestamp is known exactly.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CATALOG_FILE } from '../../src/catalog.ts';
import { PARTNER_A, PARTNER_B, PARTNER_C, startRegistry, type TestRegistry } from '../support/registry.ts';
import {
  DispatcherApi,
  expectProblem,
  settleProjection,
  TestClock,
  WebhookApi,
  withoutSecret,
  type RegistrationBody,
  type WebhookBody,
} from '../support/webhookApi.ts';

const SECRET_ONE = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
const SECRET_TWO = `whsec_${Buffer.alloc(32, 2).toString('base64')}`;

describe('webhook lifecycle over HTTP', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let globex: WebhookApi;
  let reader: WebhookApi;
  let dispatcher: DispatcherApi;
  const clock = new TestClock('2030-01-01T00:00:00.000Z');

  beforeAll(async () => {
    registry = await startRegistry({ now: clock.now });
    acme = await WebhookApi.as(registry, 'acme-integration');
    globex = await WebhookApi.as(registry, 'globex-integration');
    reader = await WebhookApi.as(registry, 'acme-reader');
    dispatcher = await DispatcherApi.as(registry);
  });
  afterAll(async () => {
    await registry.close();
  });

  it('GET /v1/event-types returns the catalog', async () => {
    const response = await registry.request<{ data: { name: string; description: string }[] }>('GET', '/v1/event-types', {
      token: reader.token,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const catalog = JSON.parse(readFileSync(DEFAULT_CATALOG_FILE, 'utf8')) as {
      eventTypes: { name: string; description: string }[];
    };
    expect(response.body).toEqual({ data: catalog.eventTypes });
    expect(response.body.data.map((t) => t.name)).toContain('kyc.verification.approved');

    expectProblem(await registry.request('GET', '/v1/event-types'), 401);
  });

  it('register → list → patch → pause → resume → rotate → delete', async () => {
    // ---- register -----------------------------------------------------------
    const t0 = clock.iso();
    const registration = {
      url: 'https://hooks.example.com/acme/one',
      events: ['kyc.*', 'compliance.case.opened', 'kyc.*'],
      partnerIds: [PARTNER_A.toUpperCase()],
      secret: SECRET_ONE,
    };
    const created = await acme.register(registration, 'lifecycle-register');
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const registered: RegistrationBody = {
      id,
      url: 'https://hooks.example.com/acme/one',
      events: ['kyc.*', 'compliance.case.opened'],
      status: 'ACTIVE',
      createdAt: t0,
      partnerIds: [PARTNER_A],
      secret: SECRET_ONE,
      updatedAt: t0,
    };
    expect(created.body).toEqual(registered);
    expect(created.headers.get('location')).toBe(`/v1/webhooks/${id}`);
    expect(created.headers.get('etag')).toBe('"0"');
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(created.headers.get('idempotent-replayed')).toBeNull();

    // The same request with the same key, a little later: the original answer again.
    clock.advance(1000);
    const replay = await acme.register(registration, 'lifecycle-register');
    expect(replay.status).toBe(201);
    expect(replay.body).toEqual(registered);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.headers.get('location')).toBe(`/v1/webhooks/${id}`);

    // ---- read and list ------------------------------------------------------
    const view: WebhookBody = withoutSecret(registered);
    let got = await reader.get(id);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(view);
    expect(got.headers.get('etag')).toBe('"0"');
    expect(got.text).not.toContain('whsec_');

    let list = await acme.list();
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ data: [view], nextCursor: null });
    expect(list.text).not.toContain('whsec_');
    // Other organizations see nothing of it.
    expect((await globex.list()).body).toEqual({ data: [], nextCursor: null });
    expectProblem(await globex.get(id), 404, 'not-found');

    // ---- patch url and events (If-Match the current ETag) --------------------
    const t1 = clock.advance(60_000);
    const change = { url: 'https://hooks.example.com/acme/two', events: ['kyc.verification.approved', 'compliance.*'] };
    const patched = await acme.patch(id, change, { key: 'lifecycle-patch-1', ifMatch: '"0"' });
    expect(patched.status, patched.text).toBe(200);
    const afterPatch: WebhookBody = { ...view, ...change, updatedAt: t1 };
    expect(patched.body).toEqual(afterPatch);
    expect(patched.headers.get('etag')).toBe('"1"');
    expect(patched.headers.get('idempotent-replayed')).toBeNull();

    // Replaying the identical PATCH (same key, body, If-Match) answers the same.
    clock.advance(1000);
    const patchReplay = await acme.patch(id, change, { key: 'lifecycle-patch-1', ifMatch: '"0"' });
    expect(patchReplay.status).toBe(200);
    expect(patchReplay.body).toEqual(afterPatch);
    expect(patchReplay.headers.get('etag')).toBe('"1"');
    expect(patchReplay.headers.get('idempotent-replayed')).toBe('true');

    got = await acme.get(id);
    expect(got.body).toEqual(afterPatch);
    expect(got.headers.get('etag')).toBe('"1"');
    list = await acme.list();
    expect(list.body).toEqual({ data: [afterPatch], nextCursor: null });

    await settleProjection(registry);
    expect((await dispatcher.targetsOk('kyc.verification.approved', PARTNER_A)).map((t) => t.id)).toEqual([id]);
    expect(await dispatcher.targetsOk('kyc.verification.approved', PARTNER_B)).toEqual([]);
    expect(await dispatcher.targetsOk('kyc.verification.rejected', PARTNER_A)).toEqual([]);
    expect((await dispatcher.targetsOk('compliance.screening.hit', PARTNER_A)).map((t) => t.id)).toEqual([id]);

    // ---- pause -----------------------------------------------------------------
    const t2 = clock.advance(60_000);
    const paused = await acme.patch(id, { status: 'PAUSED' }, { key: 'lifecycle-pause', ifMatch: '"1"' });
    expect(paused.status, paused.text).toBe(200);
    const afterPause: WebhookBody = { ...afterPatch, status: 'PAUSED', updatedAt: t2 };
    expect(paused.body).toEqual(afterPause);
    expect(paused.headers.get('etag')).toBe('"2"');
    expect((await acme.get(id)).body).toEqual(afterPause);
    expect((await acme.list({ status: 'PAUSED' })).body).toEqual({ data: [afterPause], nextCursor: null });
    expect((await acme.list({ status: 'ACTIVE' })).body).toEqual({ data: [], nextCursor: null });
    await settleProjection(registry);
    expect(await dispatcher.targetsOk('kyc.verification.approved', PARTNER_A)).toEqual([]);

    // Pausing again changes nothing: same body, same ETag.
    const pausedAgain = await acme.patch(id, { status: 'PAUSED' });
    expect(pausedAgain.status).toBe(200);
    expect(pausedAgain.body).toEqual(afterPause);
    expect(pausedAgain.headers.get('etag')).toBe('"2"');

    // ---- resume ----------------------------------------------------------------
    const t3 = clock.advance(60_000);
    const resumed = await acme.patch(id, { status: 'ACTIVE' }, { key: 'lifecycle-resume', ifMatch: '"2"' });
    expect(resumed.status, resumed.text).toBe(200);
    const afterResume: WebhookBody = { ...afterPause, status: 'ACTIVE', updatedAt: t3 };
    expect(resumed.body).toEqual(afterResume);
    expect(resumed.headers.get('etag')).toBe('"3"');
    expect((await acme.list({ status: 'ACTIVE' })).body).toEqual({ data: [afterResume], nextCursor: null });
    await settleProjection(registry);
    const resumedTargets = await dispatcher.targetsOk('kyc.verification.approved', PARTNER_A);
    expect(resumedTargets).toEqual([
      {
        id,
        organizationId: 'acme',
        url: 'https://hooks.example.com/acme/two',
        events: ['kyc.verification.approved', 'compliance.*'],
        secrets: [SECRET_ONE],
      },
    ]);

    // ---- rotate the secret -------------------------------------------------------
    const t4 = clock.advance(60_000);
    const rotated = await acme.rotate(id, { secret: SECRET_TWO, gracePeriodSeconds: 3600 }, 'lifecycle-rotate');
    expect(rotated.status, rotated.text).toBe(200);
    const expiresAt = new Date(Date.parse(t4) + 3600_000).toISOString();
    expect(rotated.body).toEqual({ secret: SECRET_TWO, previousSecretExpiresAt: expiresAt });
    expect(rotated.headers.get('cache-control')).toBe('no-store');
    expect(rotated.headers.get('idempotent-replayed')).toBeNull();

    clock.advance(1000);
    const rotateReplay = await acme.rotate(id, { secret: SECRET_TWO, gracePeriodSeconds: 3600 }, 'lifecycle-rotate');
    expect(rotateReplay.status).toBe(200);
    expect(rotateReplay.body).toEqual({ secret: SECRET_TWO, previousSecretExpiresAt: expiresAt });
    expect(rotateReplay.headers.get('idempotent-replayed')).toBe('true');

    const afterRotate: WebhookBody = { ...afterResume, updatedAt: t4 };
    got = await acme.get(id);
    expect(got.body).toEqual(afterRotate);
    expect(got.headers.get('etag')).toBe('"4"');
    expect(got.text).not.toContain('whsec_');
    await settleProjection(registry);
    expect((await dispatcher.targetsOk('kyc.verification.approved', PARTNER_A))[0]?.secrets).toEqual([SECRET_TWO, SECRET_ONE]);

    // A rotation without a body generates the secret and uses the default grace period (24 h).
    const t5 = clock.advance(60_000);
    const generated = await acme.rotate(id, undefined, 'lifecycle-rotate-generated');
    expect(generated.status, generated.text).toBe(200);
    expect(generated.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(generated.body.secret).not.toBe(SECRET_TWO);
    expect(generated.body.previousSecretExpiresAt).toBe(new Date(Date.parse(t5) + 24 * 3600_000).toISOString());
    await settleProjection(registry);
    // SECRET_ONE is still inside the grace period the first rotation answered (until t4 + 1 h).
    expect((await dispatcher.targetsOk('kyc.verification.approved', PARTNER_A))[0]?.secrets).toEqual([
      generated.body.secret,
      SECRET_TWO,
      SECRET_ONE,
    ]);
    const afterSecondRotate: WebhookBody = { ...afterRotate, updatedAt: t5 };
    got = await acme.get(id);
    expect(got.body).toEqual(afterSecondRotate);
    expect(got.headers.get('etag')).toBe('"5"');

    // ---- delete ------------------------------------------------------------------
    clock.advance(60_000);
    const deleted = await acme.delete(id, { key: 'lifecycle-delete', ifMatch: '"5"' });
    expect(deleted.status, deleted.text).toBe(204);
    expect(deleted.text).toBe('');
    expect(deleted.headers.get('idempotent-replayed')).toBeNull();

    const deleteReplay = await acme.delete(id, { key: 'lifecycle-delete', ifMatch: '"5"' });
    expect(deleteReplay.status).toBe(204);
    expect(deleteReplay.text).toBe('');
    expect(deleteReplay.headers.get('idempotent-replayed')).toBe('true');

    expectProblem(await acme.get(id), 404, 'not-found');
    expect((await acme.list()).body).toEqual({ data: [], nextCursor: null });
    expectProblem(await acme.delete(id), 404, 'not-found');
    expectProblem(await acme.patch(id, { status: 'PAUSED' }), 404, 'not-found');
    await settleProjection(registry);
    expect(await dispatcher.targetsOk('kyc.verification.approved', PARTNER_A)).toEqual([]);

    // Replaying the registration of a deleted webhook still answers with the original 201.
    const lateReplay = await acme.register(registration, 'lifecycle-register');
    expect(lateReplay.status).toBe(201);
    expect(lateReplay.body).toEqual(registered);
    expect(lateReplay.headers.get('idempotent-replayed')).toBe('true');
  });

  it('PATCH distinguishes an absent field, null and a value', async () => {
    const t0 = clock.advance(3600_000);
    const created = await acme.registered({
      url: 'https://hooks.example.com/acme/partners',
      events: ['kyc.document.*'],
      partnerIds: [PARTNER_A],
    });
    const base = withoutSecret(created);
    expect(base).toEqual({
      id: created.id,
      url: 'https://hooks.example.com/acme/partners',
      events: ['kyc.document.*'],
      status: 'ACTIVE',
      createdAt: t0,
      partnerIds: [PARTNER_A],
      updatedAt: t0,
    });

    // Absent partnerIds: the filter stays.
    const t1 = clock.advance(1000);
    const urlOnly = await acme.patch(created.id, { url: 'https://hooks.example.com/acme/partners-2' });
    expect(urlOnly.status).toBe(200);
    expect(urlOnly.body).toEqual({ ...base, url: 'https://hooks.example.com/acme/partners-2', updatedAt: t1 });
    expect(urlOnly.headers.get('etag')).toBe('"1"');
    await settleProjection(registry);
    expect((await dispatcher.targetsOk('kyc.document.uploaded', PARTNER_A)).map((t) => t.id)).toEqual([created.id]);
    expect(await dispatcher.targetsOk('kyc.document.uploaded', PARTNER_B)).toEqual([]);

    // null: all authorized partners again — the response has no partnerIds.
    const t2 = clock.advance(1000);
    const all = await acme.patch(created.id, { partnerIds: null });
    expect(all.status).toBe(200);
    const allBody: WebhookBody = { ...base, url: 'https://hooks.example.com/acme/partners-2', updatedAt: t2 };
    delete allBody.partnerIds;
    expect(all.body).toEqual(allBody);
    expect(all.headers.get('etag')).toBe('"2"');
    expect((await acme.get(created.id)).body).toEqual(allBody);
    await settleProjection(registry);
    expect((await dispatcher.targetsOk('kyc.document.uploaded', PARTNER_A)).map((t) => t.id)).toEqual([created.id]);
    expect((await dispatcher.targetsOk('kyc.document.uploaded', PARTNER_B)).map((t) => t.id)).toEqual([created.id]);
    expect(await dispatcher.targetsOk('kyc.document.uploaded', PARTNER_C)).toEqual([]);

    // null again changes nothing (same ETag, same body).
    const allAgain = await acme.patch(created.id, { partnerIds: null });
    expect(allAgain.body).toEqual(allBody);
    expect(allAgain.headers.get('etag')).toBe('"2"');

    // A value: exactly those partners (normalized to lowercase, duplicates removed).
    const t3 = clock.advance(1000);
    const onlyB = await acme.patch(created.id, { partnerIds: [PARTNER_B.toUpperCase(), PARTNER_B] });
    expect(onlyB.status).toBe(200);
    expect(onlyB.body).toEqual({ ...allBody, partnerIds: [PARTNER_B], updatedAt: t3 });
    expect(onlyB.headers.get('etag')).toBe('"3"');
    await settleProjection(registry);
    expect(await dispatcher.targetsOk('kyc.document.uploaded', PARTNER_A)).toEqual([]);
    expect((await dispatcher.targetsOk('kyc.document.uploaded', PARTNER_B)).map((t) => t.id)).toEqual([created.id]);

    // Absent events and url: both stay; only the status moves.
    const t4 = clock.advance(1000);
    const pausedOnly = await acme.patch(created.id, { status: 'PAUSED' });
    expect(pausedOnly.body).toEqual({ ...allBody, partnerIds: [PARTNER_B], status: 'PAUSED', updatedAt: t4 });

    // Several fields at once, including a status change: one answer with all of them.
    const t5 = clock.advance(1000);
    const combined = await acme.patch(created.id, {
      events: ['kyc.document.uploaded'],
      partnerIds: [PARTNER_A, PARTNER_B],
      status: 'ACTIVE',
    });
    expect(combined.status).toBe(200);
    expect(combined.body).toEqual({
      ...allBody,
      events: ['kyc.document.uploaded'],
      partnerIds: [PARTNER_A, PARTNER_B],
      status: 'ACTIVE',
      updatedAt: t5,
    });
    // The update and the resume are two events: the ETag moves by two.
    expect(combined.headers.get('etag')).toBe('"6"');
    expect((await acme.get(combined.body.id)).headers.get('etag')).toBe('"6"');
  });

  it('If-Match: a stale ETag is refused with 412, "*" matches the current one', async () => {
    const created = await acme.registered({ url: 'https://hooks.example.com/acme/etag', events: ['kyc.*'] });
    const first = await acme.patch(created.id, { url: 'https://hooks.example.com/acme/etag-2' }, { ifMatch: '"0"' });
    expect(first.headers.get('etag')).toBe('"1"');
    expectProblem(
      await acme.patch(created.id, { url: 'https://hooks.example.com/acme/etag-3' }, { ifMatch: '"0"' }),
      412,
      'precondition-failed',
    );
    expectProblem(await acme.delete(created.id, { ifMatch: '"0"' }), 412, 'precondition-failed');
    expect((await acme.get(created.id)).body.url).toBe('https://hooks.example.com/acme/etag-2');
    const star = await acme.patch(created.id, { url: 'https://hooks.example.com/acme/etag-3' }, { ifMatch: '*' });
    expect(star.status, star.text).toBe(200);
    expect(star.headers.get('etag')).toBe('"2"');
    const gone = await acme.delete(created.id, { ifMatch: '"2"' });
    expect(gone.status).toBe(204);
  });

  it('a client re-activates a webhook a dispatcher disabled', async () => {
    const t0 = clock.advance(3600_000);
    const created = await acme.registered({ url: 'https://hooks.example.com/acme/flaky', events: ['compliance.case.opened'] });
    await settleProjection(registry);
    expect((await dispatcher.targetsOk('compliance.case.opened', PARTNER_B)).map((t) => t.id)).toEqual([created.id]);

    const t1 = clock.advance(1000);
    const disabled = await dispatcher.disable(created.id, 'endpoint answered 410 Gone 20 times');
    expect(disabled.status, disabled.text).toBe(200);
    const disabledBody: WebhookBody = { ...withoutSecret(created), status: 'DISABLED', updatedAt: t1 };
    expect(disabled.body).toEqual(disabledBody);
    expect(disabled.headers.get('etag')).toBe('"1"');
    // Disabling is idempotent: the same answer, no new event.
    clock.advance(1000);
    const again = await dispatcher.disable(created.id, 'still failing');
    expect(again.status).toBe(200);
    expect(again.body).toEqual(disabledBody);
    expect(again.headers.get('etag')).toBe('"1"');

    expect((await acme.get(created.id)).body).toEqual(disabledBody);
    // The dispatcher's write is not the client's own: lists show it once projected.
    await settleProjection(registry);
    expect((await acme.list({ status: 'DISABLED' })).body.data).toEqual([disabledBody]);
    expect(await dispatcher.targetsOk('compliance.case.opened', PARTNER_B)).toEqual([]);

    // The client cannot set DISABLED itself…
    expectProblem(await acme.patch(created.id, { status: 'DISABLED' }), 400, 'validation');
    // …but may re-activate.
    const t2 = clock.advance(1000);
    const reactivated = await acme.patch(created.id, { status: 'ACTIVE' }, { ifMatch: '"1"' });
    expect(reactivated.status, reactivated.text).toBe(200);
    expect(reactivated.body).toEqual({ ...disabledBody, status: 'ACTIVE', updatedAt: t2 });
    expect(reactivated.headers.get('etag')).toBe('"2"');
    await settleProjection(registry);
    expect((await dispatcher.targetsOk('compliance.case.opened', PARTNER_B)).map((t) => t.id)).toEqual([created.id]);

    // A disabled webhook may also be paused directly, and resumed from there.
    await dispatcher.disable(created.id, 'failing again');
    const pausedFromDisabled = await acme.patch(created.id, { status: 'PAUSED' });
    expect(pausedFromDisabled.body.status).toBe('PAUSED');
    expect((await acme.patch(created.id, { status: 'ACTIVE' })).body.status).toBe('ACTIVE');
    expect(t0 < t2).toBe(true);
  });
});
