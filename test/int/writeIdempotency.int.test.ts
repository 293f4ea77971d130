// Every write (PATCH, DELETE, rotate) takes the registration's Idempotency-Key
// rules: an identical replay answers the original response with
// `Idempotent-Replayed: true`; a key reused for a different request anywhere
// in the organization is a 422 — also when the second request follows the
// first immediately, before the projector's key index has caught up.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookIdFor } from '../../src/commands/idempotency.ts';
import { PARTNER_A, startRegistry, type TestRegistry } from '../support/registry.ts';
import { expectProblem, TestClock, WebhookApi, type RegistrationBody } from '../support/webhookApi.ts';

const DAY_MS = 24 * 3600_000;

describe('Idempotency-Key on PATCH, DELETE and rotate', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let globex: WebhookApi;
  const clock = new TestClock('2031-05-01T12:00:00.000Z');

  beforeAll(async () => {
    registry = await startRegistry({ now: clock.now });
    acme = await WebhookApi.as(registry, 'acme-integration');
    globex = await WebhookApi.as(registry, 'globex-integration');
  });
  afterAll(async () => {
    await registry.close();
  });

  let n = 0;
  const fresh = (who: WebhookApi = acme): Promise<RegistrationBody> =>
    who.registered({ url: `https://hooks.example.com/idem/${n++}`, events: ['kyc.*'] });

  it('an identical PATCH replays the original answer, even after later changes', async () => {
    const hook = await fresh();
    const key = randomUUID();
    const first = await acme.patch(hook.id, { url: 'https://hooks.example.com/idem/first' }, { key });
    expect(first.status).toBe(200);
    expect(first.headers.get('etag')).toBe('"1"');
    const later = await acme.patch(hook.id, { status: 'PAUSED' });
    expect(later.headers.get('etag')).toBe('"2"');

    clock.advance(60_000);
    const replay = await acme.patch(hook.id, { url: 'https://hooks.example.com/idem/first' }, { key });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(first.body);
    expect(replay.headers.get('etag')).toBe('"1"');
    // The replay wrote nothing.
    expect((await acme.get(hook.id)).headers.get('etag')).toBe('"2"');
  });

  it('a key used on PATCH of webhook X, then on PATCH of webhook Y: 422 (20 times in a tight loop)', async () => {
    for (let i = 0; i < 20; i++) {
      const [x, y] = await Promise.all([fresh(), fresh()]);
      const key = randomUUID();
      const body = { url: `https://hooks.example.com/idem/loop-${i}` };
      expect((await acme.patch(x.id, body, { key })).status).toBe(200);
      expectProblem(await acme.patch(y.id, body, { key }), 422, 'idempotency-key-reused');
      const yNow = await acme.get(y.id);
      expect(yNow.body.url).toBe(y.url);
      expect(yNow.headers.get('etag')).toBe('"0"');
    }
  });

  it('a key used on PATCH, then for a registration: 422 and nothing registered (20 times)', async () => {
    for (let i = 0; i < 20; i++) {
      const x = await fresh();
      const key = randomUUID();
      expect((await acme.patch(x.id, { status: 'PAUSED' }, { key })).status).toBe(200);
      expectProblem(
        await acme.register({ url: 'https://hooks.example.com/idem/reg', events: ['kyc.*'] }, key),
        422,
        'idempotency-key-reused',
      );
      expectProblem(await acme.get(webhookIdFor('acme', key)), 404);
    }
  });

  it('a key used for a registration, then for a PATCH (of that webhook or another): 422', async () => {
    const key = randomUUID();
    const registered = await acme.registered({ url: 'https://hooks.example.com/idem/regkey', events: ['kyc.*'] }, key);
    const other = await fresh();
    expectProblem(await acme.patch(other.id, { status: 'PAUSED' }, { key }), 422, 'idempotency-key-reused');
    expectProblem(await acme.patch(registered.id, { status: 'PAUSED' }, { key }), 422, 'idempotency-key-reused');
    expectProblem(await acme.delete(registered.id, { key }), 422, 'idempotency-key-reused');
    expectProblem(await acme.rotate(registered.id, {}, key), 422, 'idempotency-key-reused');
    expect((await acme.get(other.id)).body.status).toBe('ACTIVE');
    expect((await acme.get(registered.id)).headers.get('etag')).toBe('"0"');
  });

  it('a key used on one kind of write cannot be used for another kind (same or other webhook)', async () => {
    const [x, y] = await Promise.all([fresh(), fresh()]);
    const key = randomUUID();
    expect((await acme.patch(x.id, { status: 'PAUSED' }, { key })).status).toBe(200);
    expectProblem(await acme.patch(x.id, { status: 'ACTIVE' }, { key }), 422, 'idempotency-key-reused');
    expectProblem(await acme.rotate(x.id, {}, key), 422, 'idempotency-key-reused');
    expectProblem(await acme.delete(x.id, { key }), 422, 'idempotency-key-reused');
    expectProblem(await acme.rotate(y.id, {}, key), 422, 'idempotency-key-reused');
    expectProblem(await acme.delete(y.id, { key }), 422, 'idempotency-key-reused');
    expect((await acme.get(x.id)).body.status).toBe('PAUSED');
    expect((await acme.get(y.id)).headers.get('etag')).toBe('"0"');

    const rotateKey = randomUUID();
    const rotated = await acme.rotate(y.id, { gracePeriodSeconds: 60 }, rotateKey);
    expect(rotated.status).toBe(200);
    expectProblem(await acme.rotate(y.id, { gracePeriodSeconds: 61 }, rotateKey), 422, 'idempotency-key-reused');
    expectProblem(await acme.rotate(x.id, { gracePeriodSeconds: 60 }, rotateKey), 422, 'idempotency-key-reused');
    const rotatedReplay = await acme.rotate(y.id, { gracePeriodSeconds: 60 }, rotateKey);
    expect(rotatedReplay.status).toBe(200);
    expect(rotatedReplay.body).toEqual(rotated.body);
    expect(rotatedReplay.headers.get('idempotent-replayed')).toBe('true');

    const deleteKey = randomUUID();
    expect((await acme.delete(y.id, { key: deleteKey })).status).toBe(204);
    expectProblem(await acme.delete(x.id, { key: deleteKey }), 422, 'idempotency-key-reused');
    expectProblem(await acme.register({ url: 'https://hooks.example.com/x', events: ['kyc.*'] }, deleteKey), 422);
    expect((await acme.get(x.id)).status).toBe(200);
  });

  it('keys are scoped to the organization', async () => {
    const key = randomUUID();
    const a = await fresh(acme);
    const g = await fresh(globex);
    expect((await acme.patch(a.id, { status: 'PAUSED' }, { key })).status).toBe(200);
    const other = await globex.patch(g.id, { status: 'PAUSED' }, { key });
    expect(other.status).toBe(200);
    expect(other.headers.get('idempotent-replayed')).toBeNull();
  });

  it('a key whose request failed stays free', async () => {
    const hook = await fresh();
    const key = randomUUID();
    expectProblem(
      await acme.patch(hook.id, { url: 'https://hooks.example.com/idem/stale' }, { key, ifMatch: '"7"' }),
      412,
    );
    expectProblem(await acme.patch(hook.id, { url: 'http://insecure.example.com/' }, { key }), 400);
    expectProblem(await acme.patch(hook.id, { partnerIds: ['c0ffee00-1234-4abc-9def-001122334455'] }, { key }), 403);
    const ok = await acme.patch(hook.id, { url: 'https://hooks.example.com/idem/ok' }, { key, ifMatch: '"0"' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('idempotent-replayed')).toBeNull();
    expect(ok.headers.get('etag')).toBe('"1"');
  });

  it('a PATCH key first used more than 24 hours ago is expired (422)', async () => {
    const hook = await fresh();
    const key = randomUUID();
    const body = { partnerIds: [PARTNER_A] };
    expect((await acme.patch(hook.id, body, { key })).status).toBe(200);
    clock.advance(DAY_MS - 1000);
    const withinDay = await acme.patch(hook.id, body, { key });
    expect(withinDay.status).toBe(200);
    expect(withinDay.headers.get('idempotent-replayed')).toBe('true');
    clock.advance(2000);
    expectProblem(await acme.patch(hook.id, body, { key }), 422, 'idempotency-key-expired');
  });

  it('two identical PATCHes at the same moment write once and answer alike', async () => {
    const hook = await fresh();
    const key = randomUUID();
    const body = { url: 'https://hooks.example.com/idem/twins', status: 'PAUSED' };
    const [a, b] = await Promise.all([acme.patch(hook.id, body, { key }), acme.patch(hook.id, body, { key })]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.body).toEqual(b.body);
    expect(a.headers.get('etag')).toBe('"2"');
    expect(b.headers.get('etag')).toBe('"2"');
    expect((await acme.get(hook.id)).headers.get('etag')).toBe('"2"');
  });

  it('key reuse is caught while the projector (and so its key index) is behind the log', async () => {
    const projector = registry.server.projector!;
    const [x, y] = await Promise.all([fresh(), fresh()]);
    await projector.stop();
    try {
      const key = randomUUID();
      expect((await acme.patch(x.id, { status: 'PAUSED' }, { key })).status).toBe(200);
      expectProblem(await acme.patch(y.id, { status: 'PAUSED' }, { key }), 422, 'idempotency-key-reused');
      expectProblem(await acme.rotate(y.id, {}, key), 422, 'idempotency-key-reused');
      expectProblem(await acme.delete(y.id, { key }), 422, 'idempotency-key-reused');
      expectProblem(await acme.register({ url: 'https://hooks.example.com/lag', events: ['kyc.*'] }, key), 422);
      const replay = await acme.patch(x.id, { status: 'PAUSED' }, { key });
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
    } finally {
      projector.start();
    }
    expect((await acme.get(y.id)).headers.get('etag')).toBe('"0"');
  });

  it('the same key on two different webhooks at the same moment: exactly one write succeeds', async () => {
    for (let i = 0; i < 10; i++) {
      const [x, y] = await Promise.all([fresh(), fresh()]);
      const key = randomUUID();
      const answers = await Promise.all([
        acme.patch(x.id, { status: 'PAUSED' }, { key }),
        acme.patch(y.id, { status: 'PAUSED' }, { key }),
      ]);
      expect(answers.map((r) => r.status).sort()).toEqual([200, 422]);
    }
  });
});
