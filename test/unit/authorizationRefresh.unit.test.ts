// Without a partner filter a webhook delivers for the partners its organization
// was authorized for at its last write. Every client write — also a PATCH that
// only changes the status, and a secret rotation — records a moved authorized set.
import { describe, expect, it } from 'vitest';
import {
  decide,
  effectivePartnerIds,
  evolve,
  foldWebhook,
  type EncryptedSecret,
  type WebhookEvent,
  type WebhookState,
} from '../../src/domain/webhook.ts';

const P1 = '3c90c3cc-0d44-4b50-8888-8dd25736052a';
const P2 = '7f1e2d3c-4b5a-4c6d-8e9f-0a1b2c3d4e5f';
const ID = 'b1a7c0de-0000-5000-8000-000000000002';
const T0 = new Date('2026-02-01T10:00:00.000Z');
const T1 = new Date('2026-02-01T11:00:00.000Z');
const SECRET_1: EncryptedSecret = { keyId: 'k1', iv: 'aXYx', ciphertext: 'Y2lwaGVyMQ==' };
const SECRET_2: EncryptedSecret = { keyId: 'k1', iv: 'aXYy', ciphertext: 'Y2lwaGVyMg==' };

function registeredWith(partnerIds: string[] | null, authorizedPartnerIds: string[]): WebhookState {
  return foldWebhook([
    {
      type: 'WebhookRegistered',
      data: {
        webhookId: ID,
        organizationId: 'acme',
        url: 'https://hooks.example.com/a',
        events: ['kyc.*'],
        partnerIds,
        authorizedPartnerIds,
        secret: SECRET_1,
        at: T0.toISOString(),
      },
    },
  ]);
}

const after = (state: WebhookState, events: WebhookEvent[]): WebhookState => events.reduce(evolve, state);

const effective = (state: WebhookState): readonly string[] => {
  if (state.kind !== 'live') throw new Error('not live');
  return effectivePartnerIds(state.webhook);
};

describe('the authorized partner set follows the last write', () => {
  it('a status-only PATCH by a client with fewer partners narrows a filter-less webhook', () => {
    const state = registeredWith(null, [P1, P2]);
    const events = decide(
      { type: 'UpdateWebhook', data: { changes: { status: 'PAUSED' }, authorizedPartnerIds: [P1] }, metadata: { now: T1 } },
      state,
    );
    expect(events).toEqual([
      { type: 'WebhookUpdated', data: { webhookId: ID, changes: {}, authorizedPartnerIds: [P1], at: T1.toISOString() } },
      { type: 'WebhookPaused', data: { webhookId: ID, at: T1.toISOString() } },
    ]);
    expect(effective(after(state, events))).toEqual([P1]);
  });

  it('a no-op status PATCH with a moved set still records the set', () => {
    const state = registeredWith(null, [P1]);
    const events = decide(
      { type: 'UpdateWebhook', data: { changes: { status: 'ACTIVE' }, authorizedPartnerIds: [P1, P2] }, metadata: { now: T1 } },
      state,
    );
    expect(events).toEqual([
      { type: 'WebhookUpdated', data: { webhookId: ID, changes: {}, authorizedPartnerIds: [P1, P2], at: T1.toISOString() } },
    ]);
    expect(effective(after(state, events))).toEqual([P1, P2]);
  });

  it('nothing is recorded when the set did not move, or when an explicit filter decides', () => {
    expect(
      decide(
        { type: 'UpdateWebhook', data: { changes: { status: 'ACTIVE' }, authorizedPartnerIds: [P1, P2] }, metadata: { now: T1 } },
        registeredWith(null, [P1, P2]),
      ),
    ).toEqual([]);
    expect(
      decide(
        { type: 'UpdateWebhook', data: { changes: { status: 'ACTIVE' }, authorizedPartnerIds: [P1] }, metadata: { now: T1 } },
        registeredWith([P1], [P1, P2]),
      ),
    ).toEqual([]);
  });

  it('a rotation by a client with another set records it before the rotation', () => {
    const state = registeredWith(null, [P1, P2]);
    const events = decide(
      {
        type: 'RotateWebhookSecret',
        data: { secret: SECRET_2, gracePeriodSeconds: 60, authorizedPartnerIds: [P2] },
        metadata: { now: T1 },
      },
      state,
    );
    expect(events.map((e) => e.type)).toEqual(['WebhookUpdated', 'WebhookSecretRotated']);
    expect(events[0]).toEqual({
      type: 'WebhookUpdated',
      data: { webhookId: ID, changes: {}, authorizedPartnerIds: [P2], at: T1.toISOString() },
    });
    // Without the set (older callers) or with the same one: only the rotation.
    for (const data of [
      { secret: SECRET_2, gracePeriodSeconds: 60 },
      { secret: SECRET_2, gracePeriodSeconds: 60, authorizedPartnerIds: [P1, P2] },
    ]) {
      expect(decide({ type: 'RotateWebhookSecret', data, metadata: { now: T1 } }, state).map((e) => e.type)).toEqual([
        'WebhookSecretRotated',
      ]);
    }
  });
});
