// The webhook aggregate as given (past events) / when (command) / then (new events or an error).
import { describe, expect, it } from 'vitest';
import {
  decide,
  effectivePartnerIds,
  evolve,
  foldWebhook,
  initialState,
  MAX_PREVIOUS_SECRETS,
  previousSecretsExpireAt,
  WebhookAlreadyExistsError,
  WebhookNotFoundError,
  type EncryptedSecret,
  type PreviousSecret,
  type Webhook,
  type WebhookCommand,
  type WebhookEvent,
  type WebhookRegistered,
} from '../../src/domain/webhook.ts';

const P1 = '3c90c3cc-0d44-4b50-8888-8dd25736052a';
const P2 = '7f1e2d3c-4b5a-4c6d-8e9f-0a1b2c3d4e5f';
const ID = 'b1a7c0de-0000-5000-8000-000000000001';
const T0 = new Date('2026-01-01T10:00:00.000Z');
const T1 = new Date('2026-01-01T11:00:00.000Z');
const T2 = new Date('2026-01-01T12:00:00.000Z');
const SECRET_1: EncryptedSecret = { keyId: 'k1', iv: 'aXYx', ciphertext: 'Y2lwaGVyMQ==' };
const SECRET_2: EncryptedSecret = { keyId: 'k1', iv: 'aXYy', ciphertext: 'Y2lwaGVyMg==' };
const SECRET_3: EncryptedSecret = { keyId: 'k1', iv: 'aXYz', ciphertext: 'Y2lwaGVyMw==' };
const SECRET_4: EncryptedSecret = { keyId: 'k1', iv: 'aXY0', ciphertext: 'Y2lwaGVyNA==' };
const SECRET_5: EncryptedSecret = { keyId: 'k1', iv: 'aXY1', ciphertext: 'Y2lwaGVyNQ==' };
const SECRET_6: EncryptedSecret = { keyId: 'k1', iv: 'aXY2', ciphertext: 'Y2lwaGVyNg==' };
/** Minutes after T1. */
const min = (m: number): string => new Date(T1.getTime() + m * 60_000).toISOString();

/** A recorded rotation from `previous` to `secret` at minute `atMin`, with the old secret kept for `graceMin` minutes. */
const rotation = (
  previous: EncryptedSecret,
  secret: EncryptedSecret,
  atMin: number,
  graceMin: number,
  retiredPreviousSecrets?: PreviousSecret[],
): WebhookEvent => ({
  type: 'WebhookSecretRotated',
  data: {
    webhookId: ID,
    secret,
    previousSecret: previous,
    previousSecretExpiresAt: min(atMin + graceMin),
    ...(retiredPreviousSecrets ? { retiredPreviousSecrets } : {}),
    at: min(atMin),
  },
});

const rotate = (secret: EncryptedSecret, atMin: number, graceMin: number): WebhookCommand => ({
  type: 'RotateWebhookSecret',
  data: { secret, gracePeriodSeconds: graceMin * 60 },
  metadata: { now: new Date(min(atMin)) },
});

function previousOf(...events: WebhookEvent[]): readonly PreviousSecret[] {
  const s = foldWebhook([registered(), ...events]);
  if (s.kind !== 'live') throw new Error(`expected a live webhook, got ${s.kind}`);
  return s.webhook.previousSecrets;
}

const registered = (overrides: Partial<WebhookRegistered['data']> = {}): WebhookRegistered => ({
  type: 'WebhookRegistered',
  data: {
    webhookId: ID,
    organizationId: 'acme',
    url: 'https://hooks.example.com/a',
    events: ['kyc.*'],
    partnerIds: [P1],
    authorizedPartnerIds: [P1, P2],
    secret: SECRET_1,
    at: T0.toISOString(),
    ...overrides,
  },
});

function given(...events: WebhookEvent[]) {
  const state = foldWebhook(events);
  return {
    when: (command: WebhookCommand) => ({
      then: (expected: WebhookEvent[]) => expect(decide(command, state)).toEqual(expected),
      thenThrows: (error: new (...args: never[]) => Error) => expect(() => decide(command, state)).toThrow(error),
    }),
  };
}

const register = (now = T0): WebhookCommand => ({
  type: 'RegisterWebhook',
  data: {
    webhookId: ID,
    organizationId: 'acme',
    url: 'https://hooks.example.com/a',
    events: ['kyc.*'],
    partnerIds: [P1],
    authorizedPartnerIds: [P1, P2],
    secret: SECRET_1,
  },
  metadata: { now },
});

const update = (
  changes: Extract<WebhookCommand, { type: 'UpdateWebhook' }>['data']['changes'],
  authorizedPartnerIds: readonly string[] = [P1, P2],
  now = T1,
): WebhookCommand => ({ type: 'UpdateWebhook', data: { changes, authorizedPartnerIds }, metadata: { now } });

const paused = (at = T1): WebhookEvent => ({ type: 'WebhookPaused', data: { webhookId: ID, at: at.toISOString() } });
const disabled = (at = T1): WebhookEvent => ({
  type: 'WebhookDisabled',
  data: { webhookId: ID, reason: 'endpoint gone', at: at.toISOString() },
});
const deleted = (at = T1): WebhookEvent => ({ type: 'WebhookDeleted', data: { webhookId: ID, at: at.toISOString() } });

describe('RegisterWebhook', () => {
  it('given nothing, when registering, then WebhookRegistered carries the command data and the time', () => {
    given()
      .when(register(T0))
      .then([registered()]);
  });

  it('given a registered webhook, when registering again, then it already exists', () => {
    given(registered()).when(register()).thenThrows(WebhookAlreadyExistsError);
  });

  it('given a deleted webhook, when registering again, then it already exists (ids are never reused)', () => {
    given(registered(), deleted()).when(register()).thenThrows(WebhookAlreadyExistsError);
  });
});

describe('evolve', () => {
  it('turns WebhookRegistered into an ACTIVE webhook with updatedAt = createdAt', () => {
    const state = evolve(initialState, registered());
    expect(state).toEqual({
      kind: 'live',
      webhook: {
        id: ID,
        organizationId: 'acme',
        url: 'https://hooks.example.com/a',
        events: ['kyc.*'],
        partnerIds: [P1],
        authorizedPartnerIds: [P1, P2],
        status: 'ACTIVE',
        disabledReason: null,
        secret: SECRET_1,
        previousSecrets: [],
        createdAt: T0.toISOString(),
        updatedAt: T0.toISOString(),
      } satisfies Webhook,
    });
  });

  it('applies only the fields an update changed and moves updatedAt', () => {
    const state = foldWebhook([
      registered(),
      {
        type: 'WebhookUpdated',
        data: { webhookId: ID, changes: { url: 'https://hooks.example.com/b' }, authorizedPartnerIds: [P1], at: T1.toISOString() },
      },
    ]);
    expect(state.kind).toBe('live');
    if (state.kind !== 'live') return;
    expect(state.webhook).toMatchObject({
      url: 'https://hooks.example.com/b',
      events: ['kyc.*'],
      partnerIds: [P1],
      authorizedPartnerIds: [P1],
      createdAt: T0.toISOString(),
      updatedAt: T1.toISOString(),
    });
  });

  it('tracks status through pause, disable and resume', () => {
    const status = (...events: WebhookEvent[]) => {
      const s = foldWebhook([registered(), ...events]);
      return s.kind === 'live' ? [s.webhook.status, s.webhook.disabledReason] : s.kind;
    };
    expect(status(paused())).toEqual(['PAUSED', null]);
    expect(status(disabled())).toEqual(['DISABLED', 'endpoint gone']);
    expect(status(disabled(), { type: 'WebhookResumed', data: { webhookId: ID, at: T2.toISOString() } })).toEqual(['ACTIVE', null]);
  });

  it('keeps the previous secret after a rotation', () => {
    const s = foldWebhook([
      registered(),
      {
        type: 'WebhookSecretRotated',
        data: {
          webhookId: ID,
          secret: SECRET_2,
          previousSecret: SECRET_1,
          previousSecretExpiresAt: T2.toISOString(),
          at: T1.toISOString(),
        },
      },
    ]);
    expect(s.kind === 'live' && s.webhook).toMatchObject({
      secret: SECRET_2,
      previousSecrets: [{ secret: SECRET_1, expiresAt: T2.toISOString() }],
    });
  });

  it('a second rotation inside the grace period keeps both previous secrets, newest first, each with its own expiry', () => {
    expect(previousOf(rotation(SECRET_1, SECRET_2, 0, 60), rotation(SECRET_2, SECRET_3, 10, 30))).toEqual([
      { secret: SECRET_2, expiresAt: min(40) },
      { secret: SECRET_1, expiresAt: min(60) },
    ]);
  });

  it('a rotation after an earlier grace period ran out drops that previous secret', () => {
    expect(previousOf(rotation(SECRET_1, SECRET_2, 0, 60), rotation(SECRET_2, SECRET_3, 60, 30))).toEqual([
      { secret: SECRET_2, expiresAt: min(90) },
    ]);
  });

  it('a rotation with no grace period keeps no entry for the secret it replaced, but keeps earlier promises', () => {
    expect(previousOf(rotation(SECRET_1, SECRET_2, 0, 0))).toEqual([]);
    expect(previousOf(rotation(SECRET_1, SECRET_2, 0, 60), rotation(SECRET_2, SECRET_3, 10, 0))).toEqual([
      { secret: SECRET_1, expiresAt: min(60) },
    ]);
  });

  it(`keeps at most ${MAX_PREVIOUS_SECRETS} previous secrets: a log without recorded retirements retires those expiring soonest`, () => {
    // Written before the bound existed: five rotations inside one another's grace periods.
    const previous = previousOf(
      rotation(SECRET_1, SECRET_2, 0, 100), // S1 until 100
      rotation(SECRET_2, SECRET_3, 1, 20), // S2 until 21 (expires soonest)
      rotation(SECRET_3, SECRET_4, 2, 200), // S3 until 202
      rotation(SECRET_4, SECRET_5, 3, 50), // S4 until 53
    );
    expect(previous).toEqual([
      { secret: SECRET_4, expiresAt: min(53) },
      { secret: SECRET_3, expiresAt: min(202) },
      { secret: SECRET_1, expiresAt: min(100) },
    ]);
  });

  it('drops the previous secrets a rotation records as retired', () => {
    const retired = [{ secret: SECRET_1, expiresAt: min(100) }];
    expect(previousOf(rotation(SECRET_1, SECRET_2, 0, 100), rotation(SECRET_2, SECRET_3, 1, 100, retired))).toEqual([
      { secret: SECRET_2, expiresAt: min(101) },
    ]);
  });

  it('previousSecretsExpireAt is the latest expiry kept, null when none', () => {
    expect(previousSecretsExpireAt({ previousSecrets: [] })).toBeNull();
    expect(previousSecretsExpireAt({ previousSecrets: previousOf(rotation(SECRET_1, SECRET_2, 0, 60), rotation(SECRET_2, SECRET_3, 10, 5)) })).toBe(
      min(60),
    );
  });

  it('marks a deleted webhook deleted and ignores later events', () => {
    const s = foldWebhook([registered(), deleted(T1), paused(T2)]);
    expect(s).toMatchObject({ kind: 'deleted', deletedAt: T1.toISOString(), webhook: { status: 'ACTIVE', updatedAt: T1.toISOString() } });
  });

  it('ignores events for a webhook that was never registered', () => {
    expect(foldWebhook([paused(), deleted()])).toEqual(initialState);
  });
});

describe('UpdateWebhook', () => {
  it('given nothing, when updating, then not found', () => {
    given().when(update({ url: 'https://hooks.example.com/b' })).thenThrows(WebhookNotFoundError);
  });

  it('given a deleted webhook, when updating, then not found', () => {
    given(registered(), deleted()).when(update({ url: 'https://hooks.example.com/b' })).thenThrows(WebhookNotFoundError);
  });

  it('when changing the url, then WebhookUpdated lists only the url', () => {
    given(registered())
      .when(update({ url: 'https://hooks.example.com/b', events: ['kyc.*'], partnerIds: [P1] }))
      .then([
        {
          type: 'WebhookUpdated',
          data: { webhookId: ID, changes: { url: 'https://hooks.example.com/b' }, authorizedPartnerIds: [P1, P2], at: T1.toISOString() },
        },
      ]);
  });

  it('when nothing changes, then no event', () => {
    given(registered())
      .when(update({ url: 'https://hooks.example.com/a', events: ['kyc.*'], partnerIds: [P1], status: 'ACTIVE' }))
      .then([]);
  });

  it('when partnerIds becomes null, then the filter is cleared', () => {
    given(registered())
      .when(update({ partnerIds: null }))
      .then([
        { type: 'WebhookUpdated', data: { webhookId: ID, changes: { partnerIds: null }, authorizedPartnerIds: [P1, P2], at: T1.toISOString() } },
      ]);
  });

  it('given partnerIds already null, when null again with the same authorized set, then no event; with a changed set, then it is refreshed', () => {
    const all = registered({ partnerIds: null });
    given(all).when(update({ partnerIds: null }, [P1, P2])).then([]);
    given(all)
      .when(update({ partnerIds: null }, [P1]))
      .then([{ type: 'WebhookUpdated', data: { webhookId: ID, changes: { partnerIds: null }, authorizedPartnerIds: [P1], at: T1.toISOString() } }]);
  });

  it('when pausing, then WebhookPaused; when pausing a paused webhook, then nothing', () => {
    given(registered()).when(update({ status: 'PAUSED' })).then([paused(T1)]);
    given(registered(), paused()).when(update({ status: 'PAUSED' })).then([]);
  });

  it('when resuming a disabled webhook, then WebhookResumed', () => {
    given(registered(), disabled())
      .when(update({ status: 'ACTIVE' }, [P1, P2], T2))
      .then([{ type: 'WebhookResumed', data: { webhookId: ID, at: T2.toISOString() } }]);
  });

  it('when changing events and pausing at once, then both events in order', () => {
    given(registered())
      .when(update({ events: ['compliance.*'], status: 'PAUSED' }))
      .then([
        { type: 'WebhookUpdated', data: { webhookId: ID, changes: { events: ['compliance.*'] }, authorizedPartnerIds: [P1, P2], at: T1.toISOString() } },
        paused(T1),
      ]);
  });
});

describe('DisableWebhook', () => {
  const disable: WebhookCommand = { type: 'DisableWebhook', data: { reason: 'endpoint gone' }, metadata: { now: T1 } };

  it('given an active webhook, then WebhookDisabled with the reason', () => {
    given(registered()).when(disable).then([disabled(T1)]);
  });

  it('given a disabled webhook, then nothing (idempotent)', () => {
    given(registered(), disabled()).when(disable).then([]);
  });

  it('given nothing or a deleted webhook, then not found', () => {
    given().when(disable).thenThrows(WebhookNotFoundError);
    given(registered(), deleted()).when(disable).thenThrows(WebhookNotFoundError);
  });
});

describe('RotateWebhookSecret', () => {
  it('given a webhook, then the new secret replaces it and the old one expires after the grace period', () => {
    given(registered())
      .when({ type: 'RotateWebhookSecret', data: { secret: SECRET_2, gracePeriodSeconds: 3600 }, metadata: { now: T1 } })
      .then([
        {
          type: 'WebhookSecretRotated',
          data: { webhookId: ID, secret: SECRET_2, previousSecret: SECRET_1, previousSecretExpiresAt: T2.toISOString(), at: T1.toISOString() },
        },
      ]);
  });

  it('given a rotation inside its grace period, when rotating again, then the event names no retired secret', () => {
    given(registered(), rotation(SECRET_1, SECRET_2, 0, 60))
      .when(rotate(SECRET_3, 10, 60))
      .then([rotation(SECRET_2, SECRET_3, 10, 60)]);
  });

  it(`given ${MAX_PREVIOUS_SECRETS} previous secrets in their grace periods, when rotating, then the soonest to expire is retired early and the event says so`, () => {
    const history = [
      registered(),
      rotation(SECRET_1, SECRET_2, 0, 100), // S1 until 100
      rotation(SECRET_2, SECRET_3, 1, 20), // S2 until 21: the soonest, though not the oldest
      rotation(SECRET_3, SECRET_4, 2, 100), // S3 until 102
    ];
    const retired = [{ secret: SECRET_2, expiresAt: min(21) }];
    given(...history)
      .when(rotate(SECRET_5, 3, 100))
      .then([rotation(SECRET_4, SECRET_5, 3, 100, retired)]);
    // And the state keeps the bound: the new previous secret and the two that expire last.
    expect(previousOf(...history.slice(1), rotation(SECRET_4, SECRET_5, 3, 100, retired))).toEqual([
      { secret: SECRET_4, expiresAt: min(103) },
      { secret: SECRET_3, expiresAt: min(102) },
      { secret: SECRET_1, expiresAt: min(100) },
    ]);
  });

  it('given equal expiries over the bound, when rotating, then the oldest previous secret is retired first', () => {
    given(registered(), rotation(SECRET_1, SECRET_2, 0, 60), rotation(SECRET_2, SECRET_3, 0, 60), rotation(SECRET_3, SECRET_4, 0, 60))
      .when(rotate(SECRET_5, 0, 60))
      .then([rotation(SECRET_4, SECRET_5, 0, 60, [{ secret: SECRET_1, expiresAt: min(60) }])]);
  });

  it('given previous secrets that expired by now, when rotating, then they are dropped without counting as retired early', () => {
    given(
      registered(),
      rotation(SECRET_1, SECRET_2, 0, 10),
      rotation(SECRET_2, SECRET_3, 1, 10),
      rotation(SECRET_3, SECRET_4, 2, 100),
    )
      .when(rotate(SECRET_5, 30, 100))
      .then([rotation(SECRET_4, SECRET_5, 30, 100)]);
  });

  it('given a rotation with no grace period, when rotating over the bound, then only unexpired secrets count', () => {
    given(registered(), rotation(SECRET_1, SECRET_2, 0, 60), rotation(SECRET_2, SECRET_3, 1, 60), rotation(SECRET_3, SECRET_4, 2, 60))
      .when(rotate(SECRET_6, 3, 0))
      .then([rotation(SECRET_4, SECRET_6, 3, 0)]);
  });

  it('given nothing, then not found', () => {
    given()
      .when({ type: 'RotateWebhookSecret', data: { secret: SECRET_2, gracePeriodSeconds: 0 }, metadata: { now: T1 } })
      .thenThrows(WebhookNotFoundError);
  });
});

describe('DeleteWebhook', () => {
  const del: WebhookCommand = { type: 'DeleteWebhook', metadata: { now: T1 } };

  it('given a webhook, then WebhookDeleted', () => {
    given(registered()).when(del).then([deleted(T1)]);
  });

  it('given a deleted webhook, then not found', () => {
    given(registered(), deleted()).when(del).thenThrows(WebhookNotFoundError);
  });
});

describe('effectivePartnerIds', () => {
  it('is the filter when set, else the authorized partners', () => {
    expect(effectivePartnerIds({ partnerIds: [P1], authorizedPartnerIds: [P1, P2] })).toEqual([P1]);
    expect(effectivePartnerIds({ partnerIds: null, authorizedPartnerIds: [P1, P2] })).toEqual([P1, P2]);
  });
});
