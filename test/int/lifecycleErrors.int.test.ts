// Bad input on the lifecycle routes: unknown, foreign and deleted webhooks
// (404), malformed ids (400), PATCH bodies that are empty, carry unknown
// fields or try to set DISABLED (400), stale If-Match (412), rotation grace
// periods out of range (400), tampered cursors and out-of-range limits (400),
// malformed dispatch queries (400) — each a problem+json that changes nothing.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARTNER_A, PARTNER_C, startRegistry, type TestRegistry } from '../support/registry.ts';
import {
  DispatcherApi,
  expectProblem,
  pointersOf,
  settleProjection,
  WebhookApi,
  type RegistrationBody,
} from '../support/webhookApi.ts';

describe('lifecycle routes refuse bad input', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let globex: WebhookApi;
  let dispatcher: DispatcherApi;
  let mine: RegistrationBody;
  let foreign: RegistrationBody;

  beforeAll(async () => {
    registry = await startRegistry();
    acme = await WebhookApi.as(registry, 'acme-integration');
    globex = await WebhookApi.as(registry, 'globex-integration');
    dispatcher = await DispatcherApi.as(registry);
    mine = await acme.registered({ url: 'https://hooks.example.com/errors/mine', events: ['kyc.*'], partnerIds: [PARTNER_A] });
    foreign = await globex.registered({ url: 'https://hooks.example.com/errors/foreign', events: ['kyc.*'] });
  });
  afterAll(async () => {
    await registry.close();
  });

  /** The webhook is exactly as registered: nothing was written. */
  async function unchanged(api: WebhookApi, hook: RegistrationBody): Promise<void> {
    const now = await api.get(hook.id);
    expect(now.status).toBe(200);
    expect(now.headers.get('etag')).toBe('"0"');
    const { secret: _secret, ...view } = hook;
    expect(now.body).toEqual(view);
  }

  describe('unknown and foreign webhooks: 404', () => {
    const unknown = randomUUID();

    it.each([
      ['GET', () => acme.get(unknown)],
      ['PATCH', () => acme.patch(unknown, { status: 'PAUSED' })],
      ['DELETE', () => acme.delete(unknown)],
      ['rotate', () => acme.rotate(unknown, {})],
    ])('%s of an unknown id', async (_name, call) => {
      const response = await call();
      const problem = expectProblem(response, 404, 'not-found');
      expect(problem.instance).toMatch(new RegExp(`^/v1/webhooks/${unknown}`));
    });

    it.each([
      ['GET', () => acme.get(foreign.id)],
      ['PATCH', () => acme.patch(foreign.id, { status: 'PAUSED' })],
      ['PATCH with If-Match', () => acme.patch(foreign.id, { url: 'https://evil.example.com/' }, { ifMatch: '"0"' })],
      ['DELETE', () => acme.delete(foreign.id)],
      ['rotate', () => acme.rotate(foreign.id, { gracePeriodSeconds: 0 })],
    ])('%s of another organization’s webhook looks exactly like an unknown one', async (_name, call) => {
      const response = await call();
      const problem = expectProblem(response, 404, 'not-found');
      expect(problem.detail).toBe('webhook not found');
      await unchanged(globex, foreign);
    });

    it('the same answer for a foreign id and an unknown id (no existence oracle)', async () => {
      const a = await acme.get(foreign.id);
      const b = await acme.get(unknown);
      const strip = (body: unknown) => {
        const { instance: _i, requestId: _r, ...rest } = body as Record<string, unknown>;
        return rest;
      };
      expect(strip(a.body)).toEqual(strip(b.body));
    });

    it('a dispatcher disabling an unknown webhook: 404', async () => {
      expectProblem(await dispatcher.disable(unknown, 'failing'), 404, 'not-found');
    });
  });

  describe('malformed ids: 400', () => {
    const bad = ['not-a-uuid', '123', `${randomUUID()}x`, randomUUID().replace(/-/g, ''), 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz'];

    it.each(bad)('%s', async (id) => {
      const path = `/v1/webhooks/${encodeURIComponent(id)}`;
      for (const [method, body, headers] of [
        ['GET', undefined, {}],
        ['PATCH', { status: 'PAUSED' }, { 'idempotency-key': randomUUID() }],
        ['DELETE', undefined, { 'idempotency-key': randomUUID() }],
      ] as const) {
        const response = await registry.request(method, path, { token: acme.token, body, headers });
        expectProblem(response, 400, 'validation');
        expect(pointersOf(response)).toEqual(['/params/id']);
      }
      const rotate = await registry.request('POST', `${path}/secret/rotate`, {
        token: acme.token,
        body: {},
        headers: { 'idempotency-key': randomUUID() },
      });
      expectProblem(rotate, 400, 'validation');
      expect(pointersOf(rotate)).toEqual(['/params/id']);
      const disable = await dispatcher.disable(encodeURIComponent(id), 'x');
      expectProblem(disable, 400, 'validation');
    });
  });

  describe('PATCH bodies', () => {
    it('unknown fields: 400 with a pointer per field', async () => {
      const response = await acme.patch(mine.id, { url: 'https://hooks.example.com/x', secret: 'whsec_x', colour: 'red' });
      expectProblem(response, 400, 'validation');
      expect(pointersOf(response).sort()).toEqual(['/colour', '/secret']);
      expect(response.text).not.toContain('whsec_x');
      await unchanged(acme, mine);
    });

    it('an empty object: 400', async () => {
      expectProblem(await acme.patch(mine.id, {}), 400, 'validation');
      await unchanged(acme, mine);
    });

    it('no body, null, an array or a string: 400', async () => {
      for (const rawBody of [undefined, 'null', '[]', '"PAUSED"', '42']) {
        const response = await registry.request('PATCH', `/v1/webhooks/${mine.id}`, {
          token: acme.token,
          ...(rawBody !== undefined ? { rawBody } : {}),
          headers: { 'idempotency-key': randomUUID(), ...(rawBody !== undefined ? { 'content-type': 'application/json' } : {}) },
        });
        expectProblem(response, 400, 'validation');
      }
      await unchanged(acme, mine);
    });

    it('status DISABLED (only dispatchers set it) or any other unknown status: 400 at /status', async () => {
      for (const status of ['DISABLED', 'DELETED', 'active', null, 1]) {
        const response = await acme.patch(mine.id, { status });
        expectProblem(response, 400, 'validation');
        expect(pointersOf(response)).toEqual(['/status']);
      }
      await unchanged(acme, mine);
    });

    it('field rules as on registration: url, events, partnerIds', async () => {
      const cases: [unknown, string, number][] = [
        [{ url: 'http://hooks.example.com/' }, '/url', 400],
        [{ url: 'https://127.0.0.1/' }, '/url', 400],
        [{ url: null }, '/url', 400],
        [{ events: [] }, '/events', 400],
        [{ events: ['*'] }, '/events/0', 400],
        [{ events: ['kyc.*', 'nope.nothing'] }, '/events/1', 400],
        [{ events: null }, '/events', 400],
        [{ partnerIds: [] }, '/partnerIds', 400],
        [{ partnerIds: ['not-a-uuid'] }, '/partnerIds/0', 400],
        [{ partnerIds: [PARTNER_C] }, '/partnerIds/0', 403],
      ];
      for (const [body, pointer, status] of cases) {
        const response = await acme.patch(mine.id, body);
        expectProblem(response, status);
        expect(pointersOf(response), JSON.stringify(body)).toContain(pointer);
      }
      await unchanged(acme, mine);
    });

    it('a write without an Idempotency-Key, or with a malformed one: 400', async () => {
      const path = `/v1/webhooks/${mine.id}`;
      for (const headers of [{}, { 'idempotency-key': '' }, { 'idempotency-key': 'has space' }, { 'idempotency-key': 'x'.repeat(256) }]) {
        expectProblem(
          await registry.request('PATCH', path, { token: acme.token, body: { status: 'PAUSED' }, headers }),
          400,
          'idempotency-key-invalid',
        );
        expectProblem(await registry.request('DELETE', path, { token: acme.token, headers }), 400, 'idempotency-key-invalid');
        expectProblem(
          await registry.request('POST', `${path}/secret/rotate`, { token: acme.token, body: {}, headers }),
          400,
          'idempotency-key-invalid',
        );
      }
      await unchanged(acme, mine);
    });

    it('a read-only client cannot write: 403', async () => {
      const reader = await WebhookApi.as(registry, 'acme-reader');
      expectProblem(await reader.patch(mine.id, { status: 'PAUSED' }), 403);
      expectProblem(await reader.delete(mine.id), 403);
      expectProblem(await reader.rotate(mine.id, {}), 403);
      await unchanged(acme, mine);
    });
  });

  describe('If-Match', () => {
    it('a stale ETag: 412 for PATCH and DELETE, nothing changes', async () => {
      const hook = await acme.registered({ url: 'https://hooks.example.com/errors/etag', events: ['kyc.*'] });
      expect((await acme.patch(hook.id, { status: 'PAUSED' }, { ifMatch: '"0"' })).headers.get('etag')).toBe('"1"');
      for (const ifMatch of ['"0"', '"2"', '"99"', 'W/"1"', '1', '"abc"', '"0", "2"']) {
        expectProblem(await acme.patch(hook.id, { status: 'ACTIVE' }, { ifMatch }), 412, 'precondition-failed');
        expectProblem(await acme.delete(hook.id, { ifMatch }), 412, 'precondition-failed');
      }
      const now = await acme.get(hook.id);
      expect(now.headers.get('etag')).toBe('"1"');
      expect(now.body.status).toBe('PAUSED');
      expect((await acme.patch(hook.id, { status: 'ACTIVE' }, { ifMatch: '"1"' })).status).toBe(200);
    });
  });

  describe('rotation', () => {
    it('of a deleted webhook: 404', async () => {
      const hook = await acme.registered({ url: 'https://hooks.example.com/errors/deleted', events: ['kyc.*'] });
      expect((await acme.delete(hook.id)).status).toBe(204);
      expectProblem(await acme.rotate(hook.id, {}), 404, 'not-found');
      expectProblem(await acme.rotate(hook.id, { gracePeriodSeconds: 60 }), 404, 'not-found');
      expectProblem(await acme.patch(hook.id, { status: 'ACTIVE' }), 404, 'not-found');
      expectProblem(await acme.delete(hook.id), 404, 'not-found');
      expectProblem(await dispatcher.disable(hook.id, 'gone'), 404, 'not-found');
    });

    it.each([-1, 604_801, 1e9, 1.5, '60', null, true])('gracePeriodSeconds %s: 400', async (gracePeriodSeconds) => {
      const response = await acme.rotate(mine.id, { gracePeriodSeconds });
      expectProblem(response, 400, 'validation');
      expect(pointersOf(response)).toEqual(['/gracePeriodSeconds']);
      await unchanged(acme, mine);
    });

    it('the range ends are accepted: 0 and 604800 (7 days)', async () => {
      const hook = await acme.registered({ url: 'https://hooks.example.com/errors/grace', events: ['kyc.*'] });
      expect((await acme.rotate(hook.id, { gracePeriodSeconds: 0 })).status).toBe(200);
      expect((await acme.rotate(hook.id, { gracePeriodSeconds: 604_800 })).status).toBe(200);
    });

    it('a malformed or unknown field in the rotation body: 400 without echoing the secret', async () => {
      const response = await acme.rotate(mine.id, { secret: 'whsec_tooshort' });
      expectProblem(response, 400, 'validation');
      expect(pointersOf(response)).toEqual(['/secret']);
      expect(response.text).not.toContain('whsec_tooshort');
      const unknownField = await acme.rotate(mine.id, { grace: 10 });
      expectProblem(unknownField, 400, 'validation');
      expect(pointersOf(unknownField)).toEqual(['/grace']);
      await unchanged(acme, mine);
    });
  });

  describe('list query', () => {
    it('a tampered cursor: 400 at /query/cursor', async () => {
      // Enough webhooks for a second page.
      for (let i = 0; i < 3; i++) await acme.registered({ url: `https://hooks.example.com/errors/page/${i}`, events: ['kyc.*'] });
      const first = await acme.list({ limit: 1 });
      const cursor = first.body.nextCursor!;
      expect(cursor).toEqual(expect.any(String));
      const [body, mac] = cursor.split('.') as [string, string];
      const forged = Buffer.from(JSON.stringify(['1970-01-01T00:00:00.000Z', '00000000-0000-0000-0000-000000000000'])).toString(
        'base64url',
      );
      const flip = (s: string) => s.slice(0, -1) + (s.endsWith('A') ? 'B' : 'A');
      for (const bad of [
        `${forged}.${mac}`,
        `${body}.${flip(mac)}`,
        `${flip(body)}.${mac}`,
        body,
        `${cursor}.x`,
        'garbage',
        '',
        'x'.repeat(600),
      ]) {
        const response = await acme.list({ limit: 1, cursor: bad });
        expectProblem(response, 400, 'validation');
        expect(pointersOf(response), bad).toEqual(['/query/cursor']);
      }
      // The genuine cursor still works.
      expect((await acme.list({ limit: 1, cursor })).status).toBe(200);
    });

    it.each(['0', '101', '-1', '1.5', 'abc', '1e3', ''])('limit=%s: 400 at /query/limit', async (limit) => {
      const response = await registry.request('GET', `/v1/webhooks?limit=${limit}`, { token: acme.token });
      expectProblem(response, 400, 'validation');
      expect(pointersOf(response)).toEqual(['/query/limit']);
    });

    it('limit 1 and 100 are accepted', async () => {
      expect((await acme.list({ limit: 1 })).status).toBe(200);
      expect((await acme.list({ limit: 100 })).status).toBe(200);
    });

    it('an unknown status, a malformed event filter or an unknown parameter: 400', async () => {
      for (const [query, pointer] of [
        ['status=DELETED', '/query/status'],
        ['status=active', '/query/status'],
        ['event=*', '/query/event'],
        ['event=KYC.x', '/query/event'],
        ['event=kyc..x', '/query/event'],
        ['colour=red', '/query/colour'],
      ] as const) {
        const response = await registry.request('GET', `/v1/webhooks?${query}`, { token: acme.token });
        expectProblem(response, 400, 'validation');
        expect(pointersOf(response), query).toEqual([pointer]);
      }
    });
  });

  describe('dispatch query', () => {
    it.each([
      ['kyc.*', '/query/eventType'],
      ['KYC.verification.approved', '/query/eventType'],
      ['kyc..approved', '/query/eventType'],
      ['kyc.verification.', '/query/eventType'],
      ['', '/query/eventType'],
      ['kyc verification', '/query/eventType'],
      ['1kyc.x', '/query/eventType'],
    ])('eventType %j: 400', async (eventType, pointer) => {
      const response = await dispatcher.targets(eventType, PARTNER_A);
      expectProblem(response, 400, 'validation');
      expect(pointersOf(response)).toEqual([pointer]);
    });

    it.each(['not-a-uuid', '', '3c90c3cc0d444b5088888dd25736052a', `${PARTNER_A}0`, 'zzzzzzzz-0d44-4b50-8888-8dd25736052a'])(
      'partnerId %j: 400',
      async (partnerId) => {
        const response = await dispatcher.targets('kyc.verification.approved', partnerId);
        expectProblem(response, 400, 'validation');
        expect(pointersOf(response)).toEqual(['/query/partnerId']);
      },
    );

    it('missing parameters or unknown ones: 400', async () => {
      for (const query of ['', 'eventType=kyc.verification.approved', `partnerId=${PARTNER_A}`, `eventType=kyc.x&partnerId=${PARTNER_A}&extra=1`]) {
        expectProblem(
          await registry.request('GET', `/internal/v1/dispatch-targets?${query}`, { token: dispatcher.token }),
          400,
          'validation',
        );
      }
    });

    it('a well-formed query still works', async () => {
      await settleProjection(registry);
      const targets = await dispatcher.targetsOk('kyc.verification.approved', PARTNER_A);
      expect(targets.map((t) => t.id)).toContain(mine.id);
    });
  });

  describe('disable', () => {
    it('a missing, empty or too long reason, or unknown fields: 400', async () => {
      for (const body of [{}, { reason: '' }, { reason: 'x'.repeat(501) }, { reason: 'ok', extra: 1 }, { reason: 42 }]) {
        const response = await registry.request('POST', `/internal/v1/webhooks/${mine.id}/disable`, {
          token: dispatcher.token,
          body,
        });
        expectProblem(response, 400, 'validation');
      }
      await unchanged(acme, mine);
    });

    it('a client cannot use the dispatcher route: 403', async () => {
      const response = await registry.request('POST', `/internal/v1/webhooks/${mine.id}/disable`, {
        token: acme.token,
        body: { reason: 'mine' },
      });
      expectProblem(response, 403);
      await unchanged(acme, mine);
    });
  });
});
