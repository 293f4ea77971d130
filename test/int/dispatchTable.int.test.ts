// The dispatch query, table-driven: many webhooks across three organizations
// with different authorized partner sets, in every status, then for each
// (event type, partner) the exact set of webhooks that must receive it.
// A second check compares every catalog type × partner with an oracle written
// from the contract (not from the implementation).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog.ts';
import { createDispatchLookup } from '../../src/dispatch/dispatchTargets.ts';
import { PARTNER_A, PARTNER_B, PARTNER_C, startRegistry, type TestRegistry } from '../support/registry.ts';
import {
  clientsWith,
  DispatcherApi,
  expectProblem,
  PARTNER_D,
  PARTNER_UNKNOWN,
  settleProjection,
  WebhookApi,
} from '../support/webhookApi.ts';

type Client = 'acme-integration' | 'acme-narrow' | 'globex-integration' | 'initech-integration';
type Step =
  | { patch: Record<string, unknown>; as?: Client }
  | { disable: string }
  | { rotate: Record<string, unknown>; as?: Client }
  | { delete: true };

interface HookDef {
  readonly org: 'acme' | 'globex' | 'initech';
  readonly by: Client;
  readonly events: string[];
  readonly partnerIds?: string[];
  readonly then?: Step[];
  /** The final state, written by hand from the contract. */
  readonly final: {
    readonly events: string[];
    /** Who the partner filter admits: partnerIds, or the authorized set of the last writer. */
    readonly partners: string[];
    readonly status: 'ACTIVE' | 'PAUSED' | 'DISABLED' | 'DELETED';
  };
}

const AB = [PARTNER_A, PARTNER_B];
const ACD = [PARTNER_A, PARTNER_C, PARTNER_D];

// acme-integration is authorized for A and B, acme-narrow (same organization) for A only,
// globex for C, initech for A, C and D.
const HOOKS: Record<string, HookDef> = {
  a1: { org: 'acme', by: 'acme-integration', events: ['kyc.*'], final: { events: ['kyc.*'], partners: AB, status: 'ACTIVE' } },
  a2: {
    org: 'acme',
    by: 'acme-integration',
    events: ['kyc.verification.approved'],
    partnerIds: [PARTNER_A],
    final: { events: ['kyc.verification.approved'], partners: [PARTNER_A], status: 'ACTIVE' },
  },
  a3: {
    org: 'acme',
    by: 'acme-integration',
    events: ['compliance.*', 'kyc.document.uploaded'],
    partnerIds: [PARTNER_B],
    final: { events: ['compliance.*', 'kyc.document.uploaded'], partners: [PARTNER_B], status: 'ACTIVE' },
  },
  a4: {
    org: 'acme',
    by: 'acme-integration',
    events: ['kyc.verification.*'],
    then: [{ patch: { status: 'PAUSED' } }],
    final: { events: ['kyc.verification.*'], partners: AB, status: 'PAUSED' },
  },
  a5: {
    org: 'acme',
    by: 'acme-integration',
    events: ['compliance.case.opened'],
    then: [{ disable: 'endpoint gone' }],
    final: { events: ['compliance.case.opened'], partners: AB, status: 'DISABLED' },
  },
  a6: {
    org: 'acme',
    by: 'acme-integration',
    events: ['compliance.case.*'],
    then: [{ delete: true }],
    final: { events: ['compliance.case.*'], partners: AB, status: 'DELETED' },
  },
  a7: {
    org: 'acme',
    by: 'acme-integration',
    events: ['self_service_invitation.*'],
    // Last written by a client of the organization authorized for A only.
    then: [{ patch: { url: 'https://hooks.example.com/a7-narrowed' }, as: 'acme-narrow' }],
    final: { events: ['self_service_invitation.*'], partners: [PARTNER_A], status: 'ACTIVE' },
  },
  a8: {
    org: 'acme',
    by: 'acme-narrow',
    events: ['compliance.screening.hit'],
    final: { events: ['compliance.screening.hit'], partners: [PARTNER_A], status: 'ACTIVE' },
  },
  a8b: {
    org: 'acme',
    by: 'acme-narrow',
    events: ['compliance.screening.hit'],
    // Paused and resumed by the wider client: its last write was authorized for A and B.
    then: [
      { patch: { status: 'PAUSED' }, as: 'acme-integration' },
      { patch: { status: 'ACTIVE' }, as: 'acme-integration' },
    ],
    final: { events: ['compliance.screening.hit'], partners: AB, status: 'ACTIVE' },
  },
  a8c: {
    org: 'acme',
    by: 'acme-integration',
    events: ['compliance.screening.cleared'],
    // Paused and resumed by the narrower client: B is no longer admitted.
    then: [
      { patch: { status: 'PAUSED' }, as: 'acme-narrow' },
      { patch: { status: 'ACTIVE' }, as: 'acme-narrow' },
    ],
    final: { events: ['compliance.screening.cleared'], partners: [PARTNER_A], status: 'ACTIVE' },
  },
  a9: {
    org: 'acme',
    by: 'acme-integration',
    events: ['kyc.verification.approved', 'kyc.*'],
    final: { events: ['kyc.verification.approved', 'kyc.*'], partners: AB, status: 'ACTIVE' },
  },
  a10: {
    org: 'acme',
    by: 'acme-integration',
    events: ['kyc.*'],
    partnerIds: AB,
    then: [{ patch: { partnerIds: [PARTNER_B] } }],
    final: { events: ['kyc.*'], partners: [PARTNER_B], status: 'ACTIVE' },
  },
  a11: {
    org: 'acme',
    by: 'acme-integration',
    events: ['kyc.document.*'],
    partnerIds: [PARTNER_A],
    // null = all authorized partners — of the client writing it (A only).
    then: [{ patch: { partnerIds: null }, as: 'acme-narrow' }],
    final: { events: ['kyc.document.*'], partners: [PARTNER_A], status: 'ACTIVE' },
  },
  a12: {
    org: 'acme',
    by: 'acme-integration',
    events: ['compliance.case.opened'],
    then: [{ disable: 'flaky' }, { patch: { status: 'ACTIVE' } }],
    final: { events: ['compliance.case.opened'], partners: AB, status: 'ACTIVE' },
  },
  a13: {
    org: 'acme',
    by: 'acme-integration',
    events: ['kyc.verification.rejected'],
    partnerIds: [PARTNER_A],
    then: [{ patch: { events: ['kyc.verification.expired'] } }],
    final: { events: ['kyc.verification.expired'], partners: [PARTNER_A], status: 'ACTIVE' },
  },
  a14: {
    org: 'acme',
    by: 'acme-integration',
    events: ['kyc.verification.started'],
    // A secret rotation is a write too: the A-only client's authorization now applies.
    then: [{ rotate: { gracePeriodSeconds: 3600 }, as: 'acme-narrow' }],
    final: { events: ['kyc.verification.started'], partners: [PARTNER_A], status: 'ACTIVE' },
  },
  g1: { org: 'globex', by: 'globex-integration', events: ['kyc.*'], final: { events: ['kyc.*'], partners: [PARTNER_C], status: 'ACTIVE' } },
  g2: {
    org: 'globex',
    by: 'globex-integration',
    events: ['compliance.case.opened'],
    partnerIds: [PARTNER_C],
    final: { events: ['compliance.case.opened'], partners: [PARTNER_C], status: 'ACTIVE' },
  },
  g3: {
    org: 'globex',
    by: 'globex-integration',
    events: ['kyc.verification.approved'],
    then: [{ patch: { status: 'PAUSED' } }, { patch: { status: 'ACTIVE' } }],
    final: { events: ['kyc.verification.approved'], partners: [PARTNER_C], status: 'ACTIVE' },
  },
  g4: {
    org: 'globex',
    by: 'globex-integration',
    events: ['self_service_invitation.sent'],
    then: [{ rotate: { gracePeriodSeconds: 3600 } }],
    final: { events: ['self_service_invitation.sent'], partners: [PARTNER_C], status: 'ACTIVE' },
  },
  i1: {
    org: 'initech',
    by: 'initech-integration',
    events: ['kyc.verification.approved'],
    final: { events: ['kyc.verification.approved'], partners: ACD, status: 'ACTIVE' },
  },
  i2: {
    org: 'initech',
    by: 'initech-integration',
    events: ['compliance.*'],
    partnerIds: [PARTNER_D],
    final: { events: ['compliance.*'], partners: [PARTNER_D], status: 'ACTIVE' },
  },
  i3: {
    org: 'initech',
    by: 'initech-integration',
    events: ['kyc.*'],
    partnerIds: [PARTNER_A],
    then: [{ patch: { partnerIds: null } }],
    final: { events: ['kyc.*'], partners: ACD, status: 'ACTIVE' },
  },
  i4: {
    org: 'initech',
    by: 'initech-integration',
    events: ['kyc.document.*'],
    partnerIds: [PARTNER_C],
    then: [{ patch: { events: ['self_service_invitation.sent'] } }],
    final: { events: ['self_service_invitation.sent'], partners: [PARTNER_C], status: 'ACTIVE' },
  },
  i5: {
    org: 'initech',
    by: 'initech-integration',
    events: ['compliance.screening.*'],
    then: [{ patch: { status: 'PAUSED' } }],
    final: { events: ['compliance.screening.*'], partners: ACD, status: 'PAUSED' },
  },
};

type HookName = keyof typeof HOOKS;

interface Case {
  readonly eventType: string;
  readonly partner: string;
  readonly expected: HookName[];
  readonly why: string;
}

const A = PARTNER_A;
const B = PARTNER_B;
const C = PARTNER_C;
const D = PARTNER_D;

const CASES: Case[] = [
  { eventType: 'kyc.verification.approved', partner: A, expected: ['a1', 'a2', 'a9', 'i1', 'i3'], why: 'exact + wildcards, two orgs; a4 paused' },
  { eventType: 'kyc.verification.approved', partner: B, expected: ['a1', 'a9', 'a10'], why: 'a2 filtered to A; a10 narrowed to B' },
  { eventType: 'kyc.verification.approved', partner: C, expected: ['g1', 'g3', 'i1', 'i3'], why: 'g3 resumed; i3 filter null again' },
  { eventType: 'kyc.verification.approved', partner: D, expected: ['i1', 'i3'], why: 'only initech is authorized for D' },
  { eventType: 'kyc.verification.approved', partner: PARTNER_UNKNOWN, expected: [], why: 'no organization is authorized for it' },
  { eventType: 'kyc.verification.approved', partner: A.toUpperCase(), expected: ['a1', 'a2', 'a9', 'i1', 'i3'], why: 'partner id case-insensitive' },
  { eventType: 'kyc.verification.rejected', partner: A, expected: ['a1', 'a9', 'i3'], why: 'a13 moved off this type' },
  { eventType: 'kyc.verification.expired', partner: A, expected: ['a1', 'a9', 'a13', 'i3'], why: 'a13 moved onto this type' },
  { eventType: 'kyc.verification.expired', partner: B, expected: ['a1', 'a9', 'a10'], why: 'a13 filtered to A' },
  { eventType: 'kyc.verification.started', partner: D, expected: ['i3'], why: 'i1 is exact approved only' },
  { eventType: 'kyc.verification.started', partner: A, expected: ['a1', 'a9', 'a14', 'i3'], why: 'a14 rotated by the A-only client' },
  { eventType: 'kyc.verification.started', partner: B, expected: ['a1', 'a9', 'a10'], why: 'a14 no longer admits B; a4 paused' },
  { eventType: 'kyc.document.uploaded', partner: A, expected: ['a1', 'a9', 'a11', 'i3'], why: 'a3 filtered to B; i4 moved away' },
  { eventType: 'kyc.document.uploaded', partner: B, expected: ['a1', 'a3', 'a9', 'a10'], why: 'a11 null by a client authorized for A only' },
  { eventType: 'kyc.document.uploaded', partner: C, expected: ['g1', 'i3'], why: 'i4 moved to self_service_invitation.sent' },
  { eventType: 'kyc.document.reviewed', partner: B, expected: ['a1', 'a9', 'a10'], why: 'a3 is exact uploaded only' },
  { eventType: 'kyc.document.reviewed', partner: A, expected: ['a1', 'a9', 'a11', 'i3'], why: 'kyc.document.* matches' },
  { eventType: 'compliance.case.opened', partner: A, expected: ['a12'], why: 'a5 disabled, a6 deleted, a12 re-activated' },
  { eventType: 'compliance.case.opened', partner: B, expected: ['a3', 'a12'], why: 'compliance.* with filter B' },
  { eventType: 'compliance.case.opened', partner: C, expected: ['g2'], why: 'explicit filter C' },
  { eventType: 'compliance.case.opened', partner: D, expected: ['i2'], why: 'explicit filter D' },
  { eventType: 'compliance.case.closed', partner: B, expected: ['a3'], why: 'a6 (compliance.case.*) is deleted' },
  { eventType: 'compliance.case.closed', partner: A, expected: [], why: 'nothing for A under compliance.case' },
  { eventType: 'compliance.screening.hit', partner: A, expected: ['a8', 'a8b'], why: 'i5 paused' },
  { eventType: 'compliance.screening.hit', partner: B, expected: ['a3', 'a8b'], why: 'a8b last written by the A+B client' },
  { eventType: 'compliance.screening.hit', partner: D, expected: ['i2'], why: 'i5 paused' },
  { eventType: 'compliance.screening.cleared', partner: A, expected: ['a8c'], why: 'i5 paused; a8c resumed by the A-only client' },
  { eventType: 'compliance.screening.cleared', partner: B, expected: ['a3'], why: 'a8c last written by the A-only client' },
  { eventType: 'self_service_invitation.sent', partner: A, expected: ['a7'], why: 'a7 last written by the A-only client' },
  { eventType: 'self_service_invitation.sent', partner: B, expected: [], why: 'a7 no longer admits B' },
  { eventType: 'self_service_invitation.sent', partner: C, expected: ['g4', 'i4'], why: 'rotated g4 stays ACTIVE' },
  { eventType: 'self_service_invitation.sent', partner: D, expected: [], why: 'i4 filtered to C' },
  { eventType: 'self_service_invitation.accepted', partner: A, expected: ['a7'], why: 'wildcard' },
  { eventType: 'self_service_invitation.created', partner: C, expected: [], why: 'g4 and i4 are exact sent' },
  { eventType: 'kyc.new_kind', partner: B, expected: ['a1', 'a9', 'a10'], why: 'an uncatalogued type under kyc.* still matches the wildcard' },
  { eventType: 'kyc.verification.approved.detail', partner: A, expected: ['a1', 'a9', 'i3'], why: 'deeper type: wildcards match, the exact type does not' },
  { eventType: 'kyc', partner: A, expected: [], why: 'kyc.* matches below kyc, not kyc itself' },
  { eventType: 'compliance.case', partner: B, expected: ['a3'], why: 'compliance.* matches at any depth' },
  { eventType: 'payments.settled', partner: A, expected: [], why: 'nobody subscribes to it' },
];

/** Independent matcher straight from the contract: exact, or `p.*` for anything strictly below `p`. */
function oracleMatches(pattern: string, eventType: string): boolean {
  if (!pattern.endsWith('.*')) return pattern === eventType;
  const prefix = pattern.slice(0, -2);
  return eventType.startsWith(`${prefix}.`);
}

describe('GET /internal/v1/dispatch-targets, table-driven', () => {
  let registry: TestRegistry;
  let dispatcher: DispatcherApi;
  const ids = new Map<HookName, string>();
  const names = new Map<string, HookName>();

  beforeAll(async () => {
    registry = await startRegistry({
      clients: clientsWith([
        {
          clientId: 'acme-narrow',
          clientSecret: 'narrow-secret',
          orgId: 'acme',
          partnerIds: [PARTNER_A],
          scopes: ['webhooks:read', 'webhooks:write'],
        },
        {
          clientId: 'initech-integration',
          clientSecret: 'initech-secret',
          orgId: 'initech',
          partnerIds: ACD,
          scopes: ['webhooks:read', 'webhooks:write'],
        },
      ]),
    });
    dispatcher = await DispatcherApi.as(registry);
    const apis = new Map<Client, WebhookApi>();
    for (const c of ['acme-integration', 'acme-narrow', 'globex-integration', 'initech-integration'] as const) {
      apis.set(c, await WebhookApi.as(registry, c));
    }
    for (const [name, def] of Object.entries(HOOKS)) {
      const by = apis.get(def.by)!;
      const created = await by.registered({
        url: `https://hooks.example.com/${name}`,
        events: def.events,
        ...(def.partnerIds ? { partnerIds: def.partnerIds } : {}),
      });
      ids.set(name, created.id);
      names.set(created.id, name);
      for (const step of def.then ?? []) {
        if ('patch' in step) {
          const response = await apis.get(step.as ?? def.by)!.patch(created.id, step.patch);
          expect(response.status, `${name}: ${response.text}`).toBe(200);
        } else if ('disable' in step) {
          expect((await dispatcher.disable(created.id, step.disable)).status).toBe(200);
        } else if ('rotate' in step) {
          expect((await apis.get(step.as ?? def.by)!.rotate(created.id, step.rotate)).status).toBe(200);
        } else {
          expect((await by.delete(created.id)).status).toBe(204);
        }
      }
    }
    await settleProjection(registry);
  });
  afterAll(async () => {
    await registry.close();
  });

  it('has at least 30 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  });

  it.each(CASES)('$eventType for $partner → $expected ($why)', async ({ eventType, partner, expected }) => {
    const targets = await dispatcher.targetsOk(eventType, partner);
    const got = targets.map((t) => names.get(t.id) ?? t.id);
    // Exactly these webhooks, each once.
    expect(new Set(got).size).toBe(got.length);
    expect([...got].sort()).toEqual([...expected].sort());
    for (const target of targets) {
      const name = names.get(target.id)!;
      const def = HOOKS[name]!;
      expect(target.organizationId).toBe(def.org);
      expect(target.events).toEqual(def.final.events);
      expect(target.url).toBe(name === 'a7' ? 'https://hooks.example.com/a7-narrowed' : `https://hooks.example.com/${name}`);
      expect(target.secrets.length).toBe(name === 'g4' || name === 'a14' ? 2 : 1);
      for (const s of target.secrets) expect(s).toMatch(/^whsec_/);
    }
  });

  it('agrees with an oracle written from the contract for every catalog type × partner', async () => {
    const catalog = loadCatalog();
    const lookup = createDispatchLookup(registry.server.core.readModel, registry.server.core.secrets);
    for (const { name: eventType } of catalog.types) {
      for (const partner of [A, B, C, D, PARTNER_UNKNOWN]) {
        const expected = Object.entries(HOOKS)
          .filter(
            ([, d]) =>
              d.final.status === 'ACTIVE' &&
              d.final.partners.includes(partner) &&
              d.final.events.some((p) => oracleMatches(p, eventType)),
          )
          .map(([name]) => name)
          .sort();
        const overHttp = (await dispatcher.targetsOk(eventType, partner)).map((t) => names.get(t.id)!).sort();
        expect(overHttp, `${eventType} for ${partner}`).toEqual(expected);
        // The exported in-process lookup answers the same.
        const inProcess = (await lookup(eventType, partner)).map((t) => names.get(t.id)!).sort();
        expect(inProcess, `${eventType} for ${partner} (in-process)`).toEqual(expected);
      }
    }
  });

  it('needs the dispatch scope and well-formed parameters', async () => {
    const client = await registry.token('acme-integration');
    expectProblem(
      await registry.request('GET', `/internal/v1/dispatch-targets?eventType=kyc.verification.approved&partnerId=${A}`, {
        token: client,
      }),
      403,
    );
    expectProblem(
      await registry.request('GET', `/internal/v1/dispatch-targets?eventType=kyc.verification.approved&partnerId=${A}`),
      401,
    );
    expectProblem(await dispatcher.targets('kyc.*', A), 400, 'validation');
    expectProblem(await dispatcher.targets('kyc.verification.approved', 'not-a-uuid'), 400, 'validation');
  });
});
