// Rotations inside one another's grace periods, over HTTP: every expiry a
// rotation answered holds (a second rotation must not cut the first one's
// grace short), up to the documented bound of three previous secrets, which
// the rotation that reaches it names in its answer and the audit trail shows.
import { randomUUID } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signPayload } from '../../src/dispatch/signing.ts';
import { PARTNER_A, startRegistry, type TestRegistry } from '../support/registry.ts';
import { DispatcherApi, settleProjection, TestClock, WebhookApi } from '../support/webhookApi.ts';

const EVENT = 'kyc.verification.approved';
const HOUR = 3600_000;

interface HistoryBody {
  data: { type: string; occurredAt: string; changes: Record<string, { from: unknown; to: unknown }> }[];
}

describe('secret rotation inside a grace period', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let dispatcher: DispatcherApi;
  // Real time at the start: receivers check the signature timestamp against their own clock.
  const clock = new TestClock(new Date());

  beforeAll(async () => {
    registry = await startRegistry({ now: clock.now });
    acme = await WebhookApi.as(registry, 'acme-integration');
    dispatcher = await DispatcherApi.as(registry);
  });
  afterAll(async () => {
    await registry.close();
  });

  async function secretsOf(id: string): Promise<string[] | undefined> {
    await settleProjection(registry);
    return (await dispatcher.targetsOk(EVENT, PARTNER_A)).find((t) => t.id === id)?.secrets;
  }

  async function newHook(): Promise<{ id: string; secret: string }> {
    const created = await acme.registered({ url: `https://hooks.example.com/rotation/${randomUUID()}`, events: [EVENT] });
    return { id: created.id, secret: created.secret };
  }

  async function rotate(id: string, gracePeriodSeconds: number, key: string = randomUUID()) {
    const response = await acme.rotate(id, { gracePeriodSeconds }, key);
    expect(response.status).toBe(200);
    return response.body;
  }

  /** A message signed as a dispatcher would with `secrets`: does a receiver holding `secret` accept it? */
  function verifies(secret: string, secrets: readonly string[]): boolean {
    const payload = JSON.stringify({ type: EVENT, data: { partnerId: PARTNER_A, n: randomUUID() } });
    const headers = signPayload({ messageId: `msg_${randomUUID()}`, timestamp: new Date(), payload, secrets });
    try {
      new Webhook(secret).verify(payload, { ...headers });
      return true;
    } catch (error) {
      if (error instanceof WebhookVerificationError) return false;
      throw error;
    }
  }

  it('rotate A→B (grace 3600 s), then B→C: A stays valid until the expiry its rotation answered, then only [C, B]', async () => {
    const { id, secret: a } = await newHook();
    const first = await rotate(id, 3600);
    const b = first.secret;
    expect(first).toEqual({ secret: b, previousSecretExpiresAt: new Date(Date.parse(clock.iso()) + HOUR).toISOString() });
    clock.advance(60_000);
    const second = await rotate(id, 3600);
    const c = second.secret;
    // Nothing was retired: the answer is exactly the documented one.
    expect(second).toEqual({ secret: c, previousSecretExpiresAt: new Date(Date.parse(clock.iso()) + HOUR).toISOString() });

    const during = await secretsOf(id);
    expect(during).toEqual([c, b, a]);
    // A receiver still on A (the first rotation promised it an hour) accepts what a dispatcher signs.
    for (const receiver of [a, b, c]) expect(verifies(receiver, during!)).toBe(true);

    // One millisecond before A's expiry: still all three.
    clock.advance(HOUR - 60_000 - 1);
    expect(await secretsOf(id)).toEqual([c, b, a]);
    // At A's expiry A is gone; B keeps its own, later expiry.
    clock.advance(1);
    const after = await secretsOf(id);
    expect(after).toEqual([c, b]);
    expect(verifies(a, after!)).toBe(false);
    expect(verifies(b, after!)).toBe(true);
    // At B's expiry only C.
    clock.advance(60_000);
    expect(await secretsOf(id)).toEqual([c]);
  });

  it('each previous secret keeps its own grace period: a short second one does not shorten the first', async () => {
    const { id, secret: a } = await newHook();
    const b = (await rotate(id, 7200)).secret;
    const c = (await rotate(id, 60)).secret;
    expect(await secretsOf(id)).toEqual([c, b, a]);
    clock.advance(60_000);
    expect(await secretsOf(id)).toEqual([c, a]);
    clock.advance(2 * HOUR);
    expect(await secretsOf(id)).toEqual([c]);
  });

  it('at most 3 previous secrets: the 4th rotation inside the grace periods retires the one expiring soonest and says so', async () => {
    const { id, secret: s0 } = await newHook();
    const answers = [];
    for (const grace of [3600, 600, 7200]) {
      answers.push(await rotate(id, grace));
      clock.advance(1000);
    }
    const [s1, s2, s3] = answers.map((r) => r.secret) as [string, string, string];
    for (const r of answers) expect(r.retiredPreviousSecrets).toBeUndefined();
    expect(await secretsOf(id)).toEqual([s3, s2, s1, s0]);

    // s1 (grace 600 s) expires soonest, though s0 is older.
    const key = randomUUID();
    const fourth = await rotate(id, 3600, key);
    const s4 = fourth.secret;
    expect(fourth).toEqual({
      secret: s4,
      previousSecretExpiresAt: new Date(Date.parse(clock.iso()) + HOUR).toISOString(),
      retiredPreviousSecrets: [{ expiresAt: answers[1]!.previousSecretExpiresAt }],
    });
    const secrets = await secretsOf(id);
    expect(secrets).toEqual([s4, s3, s2, s0]);
    expect(verifies(s1, secrets!)).toBe(false);
    expect(verifies(s0, secrets!)).toBe(true);

    // A replay of that request gives the same answer, retirement included.
    const replay = await acme.rotate(id, { gracePeriodSeconds: 3600 }, key);
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(fourth);

    // The audit trail shows the retired expiry leaving the list early, and no secret.
    const history = await registry.request<HistoryBody>('GET', `/v1/webhooks/${id}/history`, { token: acme.token });
    expect(history.status).toBe(200);
    const rotations = history.body.data.filter((e) => e.type === 'WebhookSecretRotated');
    expect(rotations).toHaveLength(4);
    const expiries = answers.map((r) => r.previousSecretExpiresAt);
    expect(rotations[3]!.changes.previousSecretExpiries).toEqual({
      from: [expiries[2], expiries[1], expiries[0]],
      to: [fourth.previousSecretExpiresAt, expiries[2], expiries[0]],
    });
    expect(Date.parse(expiries[1]!)).toBeGreaterThan(Date.parse(rotations[3]!.occurredAt));
    for (const s of [s0, s1, s2, s3, s4]) expect(history.text).not.toContain(s.slice('whsec_'.length, 30));
    expect(history.text).not.toMatch(/ciphertext|keyId|"iv"/);
  });

  it('documents the bound in the rotate answer of the OpenAPI document', async () => {
    const doc = await registry.request<{ components: { schemas: Record<string, { properties: Record<string, { description?: string }>; required?: string[] }> } }>(
      'GET',
      '/openapi.json',
    );
    const rotated = doc.body.components.schemas.RotatedSecret!;
    expect(rotated.required).toEqual(['secret', 'previousSecretExpiresAt']);
    expect(rotated.properties.retiredPreviousSecrets?.description).toMatch(/at most 3 previous secrets/);
  });
});
