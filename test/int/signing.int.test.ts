// Signing end to end: the secrets the dispatch query returns sign a payload
// with signPayload, and the reference `standardwebhooks` library verifies it —
// during a rotation's grace period with either secret, and never with a secret
// that was revoked (grace period 0, or after it ran out on the registry's clock).
import { randomBytes, randomUUID } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatchLookup } from '../../src/dispatch/dispatchTargets.ts';
import { signPayload } from '../../src/dispatch/signing.ts';
import { PARTNER_A, startRegistry, type TestRegistry } from '../support/registry.ts';
import { DispatcherApi, settleProjection, TestClock, WebhookApi } from '../support/webhookApi.ts';

const EVENT = 'kyc.verification.approved';

function payloadFor(webhookId: string): string {
  return JSON.stringify({
    type: EVENT,
    timestamp: new Date().toISOString(),
    data: { partnerId: PARTNER_A, verificationId: randomUUID(), webhookId },
  });
}

/** Signs as a dispatcher would: now (real time — receivers check freshness), with the given secrets. */
function sign(payload: string, secrets: readonly string[]) {
  return signPayload({ messageId: `msg_${randomUUID()}`, timestamp: new Date(), payload, secrets });
}

function expectVerifies(secret: string, payload: string, headers: ReturnType<typeof sign>): void {
  expect(new Webhook(secret).verify(payload, { ...headers })).toEqual(JSON.parse(payload));
}

function expectRejects(secret: string, payload: string, headers: ReturnType<typeof sign>): void {
  expect(() => new Webhook(secret).verify(payload, { ...headers })).toThrow(WebhookVerificationError);
}

describe('Standard Webhooks signatures with the secrets the dispatch query returns', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let dispatcher: DispatcherApi;
  const clock = new TestClock(new Date());
  const seen = new Set<string>();

  beforeAll(async () => {
    registry = await startRegistry({ now: clock.now });
    acme = await WebhookApi.as(registry, 'acme-integration');
    dispatcher = await DispatcherApi.as(registry);
  });
  afterAll(async () => {
    await registry.close();
  });

  /** The dispatch target for this webhook, after the projector caught up. */
  async function secretsOf(id: string): Promise<string[] | undefined> {
    await settleProjection(registry);
    const targets = await dispatcher.targetsOk(EVENT, PARTNER_A);
    const secrets = targets.find((t) => t.id === id)?.secrets;
    // The in-process lookup, on the same clock, answers the same.
    const lookup = createDispatchLookup(registry.server.core.readModel, registry.server.core.secrets, clock.now);
    expect((await lookup(EVENT, PARTNER_A)).find((t) => t.id === id)?.secrets).toEqual(secrets);
    for (const s of secrets ?? []) seen.add(s);
    return secrets;
  }

  async function newHook(secret?: string): Promise<{ id: string; secret: string }> {
    const created = await acme.registered({
      url: `https://hooks.example.com/signing/${randomUUID()}`,
      events: [EVENT],
      ...(secret !== undefined ? { secret } : {}),
    });
    seen.add(created.secret);
    return { id: created.id, secret: created.secret };
  }

  it('signs with the registration secret; the library verifies, and rejects tampering and other secrets', async () => {
    const hook = await newHook();
    const secrets = await secretsOf(hook.id);
    expect(secrets).toEqual([hook.secret]);
    const payload = payloadFor(hook.id);
    const headers = sign(payload, secrets!);
    expect(headers['webhook-id']).toMatch(/^msg_/);
    expect(headers['webhook-timestamp']).toMatch(/^\d+$/);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expectVerifies(hook.secret, payload, headers);

    expectRejects(hook.secret, payload.replace(PARTNER_A, PARTNER_A.replace('3', '4')), headers);
    expectRejects(hook.secret, payload, { ...headers, 'webhook-id': 'msg_other' });
    expectRejects(`whsec_${randomBytes(32).toString('base64')}`, payload, headers);
  });

  it('works with client-chosen secrets of 24 and 64 bytes', async () => {
    for (const bytes of [24, 64]) {
      const chosen = `whsec_${randomBytes(bytes).toString('base64')}`;
      const hook = await newHook(chosen);
      expect(hook.secret).toBe(chosen);
      const secrets = await secretsOf(hook.id);
      expect(secrets).toEqual([chosen]);
      const payload = payloadFor(hook.id);
      expectVerifies(chosen, payload, sign(payload, secrets!));
    }
  });

  it('during the grace period both secrets are returned and either verifies the multi-signature header', async () => {
    const hook = await newHook();
    const rotatedAt = clock.iso();
    const rotation = await acme.rotate(hook.id, { gracePeriodSeconds: 3600 });
    expect(rotation.status).toBe(200);
    const next = rotation.body.secret;
    seen.add(next);
    expect(rotation.body.previousSecretExpiresAt).toBe(new Date(Date.parse(rotatedAt) + 3600_000).toISOString());

    const secrets = await secretsOf(hook.id);
    expect(secrets).toEqual([next, hook.secret]);
    const payload = payloadFor(hook.id);
    const headers = sign(payload, secrets!);
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expectVerifies(hook.secret, payload, headers);
    expectVerifies(next, payload, headers);

    // One millisecond before the end of the grace period: still both.
    clock.advance(3600_000 - 1);
    expect(await secretsOf(hook.id)).toEqual([next, hook.secret]);
    // At its end: the old secret is revoked.
    clock.advance(1);
    const after = await secretsOf(hook.id);
    expect(after).toEqual([next]);
    const late = payloadFor(hook.id);
    const lateHeaders = sign(late, after!);
    expectVerifies(next, late, lateHeaders);
    expectRejects(hook.secret, late, lateHeaders);
    // A message signed only with the revoked secret is rejected by a receiver on the new one.
    expectRejects(next, late, sign(late, [hook.secret]));
  });

  it('with gracePeriodSeconds 0 the old secret is revoked at once', async () => {
    const hook = await newHook();
    const rotatedAt = clock.iso();
    const rotation = await acme.rotate(hook.id, { gracePeriodSeconds: 0 });
    expect(rotation.status).toBe(200);
    expect(rotation.body.previousSecretExpiresAt).toBe(rotatedAt);
    const next = rotation.body.secret;
    seen.add(next);

    const secrets = await secretsOf(hook.id);
    expect(secrets).toEqual([next]);
    const payload = payloadFor(hook.id);
    const headers = sign(payload, secrets!);
    expectVerifies(next, payload, headers);
    expectRejects(hook.secret, payload, headers);
    expectRejects(next, payload, sign(payload, [hook.secret]));
  });

  it('a second rotation inside the grace period keeps the first previous secret until its own expiry', async () => {
    const hook = await newHook();
    const second = (await acme.rotate(hook.id, { gracePeriodSeconds: 600 })).body.secret;
    clock.advance(60_000);
    const third = (await acme.rotate(hook.id, { gracePeriodSeconds: 600 })).body.secret;
    seen.add(second);
    seen.add(third);
    const secrets = await secretsOf(hook.id);
    expect(secrets).toEqual([third, second, hook.secret]);
    const payload = payloadFor(hook.id);
    const headers = sign(payload, secrets!);
    expect(headers['webhook-signature'].split(' ')).toHaveLength(3);
    expectVerifies(third, payload, headers);
    expectVerifies(second, payload, headers);
    expectVerifies(hook.secret, payload, headers);
    // The first rotation's 600 s run out 540 s from now; the second's 60 s later.
    clock.advance(540_000);
    const later = await secretsOf(hook.id);
    expect(later).toEqual([third, second]);
    const late = payloadFor(hook.id);
    const lateHeaders = sign(late, later!);
    expectVerifies(second, late, lateHeaders);
    expectRejects(hook.secret, late, lateHeaders);
  });

  it('gives no secrets for a webhook that is not ACTIVE, and signing needs a secret', async () => {
    const hook = await newHook();
    expect((await acme.patch(hook.id, { status: 'PAUSED' })).status).toBe(200);
    expect(await secretsOf(hook.id)).toBeUndefined();
    expect(() => signPayload({ messageId: 'msg_1', timestamp: new Date(), payload: '{}', secrets: [] })).toThrow();
  });

  it('never writes a secret to the logs', () => {
    expect(seen.size).toBeGreaterThan(5);
    const logs = registry.logs.join('\n');
    for (const secret of seen) {
      expect(logs).not.toContain(secret);
      expect(logs).not.toContain(secret.slice('whsec_'.length));
    }
  });
});
