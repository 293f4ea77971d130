// Tenancy: every read and write is scoped to the token's organization. Another
// organization's webhook is a 404 (indistinguishable from one that does not
// exist), never a 403; partners must be among the token's authorized partners.
// Tokens come from the OAuth server's token endpoint (client_credentials).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OAuthClientConfig } from '../support/oauthServer.ts';
import {
  DEFAULT_CLIENTS,
  PARTNER_A,
  PARTNER_B,
  PARTNER_C,
  startRegistry,
  VALID_REGISTRATION,
  type RequestOptions,
  type TestRegistry,
  type TestResponse,
} from '../support/registry.ts';

const CLIENTS: OAuthClientConfig[] = [
  ...DEFAULT_CLIENTS,
  // Organization ids are opaque and compared exactly: "ACME" is not "acme".
  { clientId: 'shouting-acme', clientSecret: 'sa', orgId: 'ACME', partnerIds: [PARTNER_A], scopes: ['webhooks:read', 'webhooks:write'] },
  { clientId: 'orgless-reader', clientSecret: 'or', scopes: ['webhooks:read'] },
];

/** The fields these tests read from any answer (problem, webhook, list, registration). */
interface Body {
  id: string;
  url: string;
  status: number | string;
  secret: string;
  partnerIds?: string[];
  type: string;
  detail: string;
  errors?: { pointer: string; detail: string }[];
  data: { id: string; organizationId?: string; actor?: { clientId: string; subject: string } }[];
  organizationId?: string | null;
}

const EVENT = 'compliance.case.opened';
const UNKNOWN_PARTNER = '00000000-0000-4000-8000-000000000001';
const NOT_AUTHORIZED = 'is not an authorized partner of this organization';

/** The parts of a problem body that do not vary per request. */
function stable(response: TestResponse<Body>): unknown {
  const { requestId: _r, instance: _i, ...rest } = response.body as unknown as Record<string, unknown>;
  return { status: response.status, contentType: response.headers.get('content-type'), ...rest };
}

describe('tenancy', () => {
  let registry: TestRegistry;
  let acme: string;
  let acmeReader: string;
  let globex: string;
  let dispatcher: string;
  let acmeHook: Body;
  let globexHook: Body;

  const call = (method: string, path: string, options?: RequestOptions) => registry.request<Body>(method, path, options);

  const write = (method: string, path: string, token: string, body?: unknown, headers: Record<string, string> = {}) =>
    call(method, path, { token, ...(body !== undefined ? { body } : {}), headers: { 'idempotency-key': randomUUID(), ...headers } });

  beforeAll(async () => {
    registry = await startRegistry({ clients: CLIENTS });
    [acme, acmeReader, globex, dispatcher] = (await Promise.all(
      ['acme-integration', 'acme-reader', 'globex-integration', 'dispatcher'].map((c) => registry.oauth.getToken(c)),
    )) as [string, string, string, string];
    const a = await write('POST', '/v1/webhooks', acme, { ...VALID_REGISTRATION, url: 'https://hooks.acme.example/a' });
    const g = await write('POST', '/v1/webhooks', globex, { url: 'https://hooks.globex.example/g', events: [EVENT], partnerIds: [PARTNER_C] });
    expect([a.status, g.status]).toEqual([201, 201]);
    acmeHook = a.body;
    globexHook = g.body;
  });
  afterAll(async () => {
    await registry.close();
  });

  describe("another organization's webhook is a 404, exactly like one that does not exist", () => {
    it('GET', async () => {
      const foreign = await call('GET', `/v1/webhooks/${acmeHook.id}`, { token: globex });
      const missing = await call('GET', `/v1/webhooks/${randomUUID()}`, { token: globex });
      expect(foreign.status).toBe(404);
      expect(stable(foreign)).toEqual(stable(missing));
      expect(foreign.text).not.toContain(acmeHook.url);
      expect(foreign.headers.get('etag')).toBeNull();
    });

    it('PATCH (also with If-Match: 404, not 412)', async () => {
      const foreign = await write('PATCH', `/v1/webhooks/${acmeHook.id}`, globex, { url: 'https://evil.example/x' });
      const missing = await write('PATCH', `/v1/webhooks/${randomUUID()}`, globex, { url: 'https://evil.example/x' });
      expect(foreign.status).toBe(404);
      expect(stable(foreign)).toEqual(stable(missing));
      const withEtag = await write('PATCH', `/v1/webhooks/${acmeHook.id}`, globex, { status: 'PAUSED' }, { 'if-match': '"0"' });
      expect(withEtag.status).toBe(404);
      const staleEtag = await write('PATCH', `/v1/webhooks/${acmeHook.id}`, globex, { status: 'PAUSED' }, { 'if-match': '"7"' });
      expect(staleEtag.status).toBe(404);
    });

    it('DELETE', async () => {
      const foreign = await write('DELETE', `/v1/webhooks/${acmeHook.id}`, globex);
      const missing = await write('DELETE', `/v1/webhooks/${randomUUID()}`, globex);
      expect(foreign.status).toBe(404);
      expect(stable(foreign)).toEqual(stable(missing));
    });

    it('secret rotation', async () => {
      const foreign = await write('POST', `/v1/webhooks/${acmeHook.id}/secret/rotate`, globex, {});
      const missing = await write('POST', `/v1/webhooks/${randomUUID()}/secret/rotate`, globex, {});
      expect(foreign.status).toBe(404);
      expect(stable(foreign)).toEqual(stable(missing));
      expect(foreign.text).not.toContain('whsec_');
    });

    it('an organization id that differs only in case is another organization', async () => {
      const shouting = await registry.oauth.getToken('shouting-acme');
      expect((await call('GET', `/v1/webhooks/${acmeHook.id}`, { token: shouting })).status).toBe(404);
      expect((await write('DELETE', `/v1/webhooks/${acmeHook.id}`, shouting)).status).toBe(404);
      const list = await call('GET', '/v1/webhooks', { token: shouting });
      expect(list.body.data).toEqual([]);
    });

    it('after all those attempts the webhook is unchanged for its owner', async () => {
      const mine = await call('GET', `/v1/webhooks/${acmeHook.id}`, { token: acme });
      expect(mine.status).toBe(200);
      expect(mine.headers.get('etag')).toBe('"0"');
      const { secret: _secret, ...withoutSecret } = acmeHook;
      expect(mine.body).toEqual(withoutSecret);
    });
  });

  describe('lists and idempotency keys are per organization', () => {
    it('each organization lists only its own webhooks', async () => {
      const acmeList = await call('GET', '/v1/webhooks?limit=100', { token: acme });
      const globexList = await call('GET', '/v1/webhooks?limit=100', { token: globex });
      const ids = (r: TestResponse<Body>) => r.body.data.map((w) => w.id);
      expect(ids(acmeList)).toContain(acmeHook.id);
      expect(ids(acmeList)).not.toContain(globexHook.id);
      expect(ids(globexList)).toEqual([globexHook.id]);
      const filtered = await call('GET', `/v1/webhooks?event=${EVENT}`, { token: globex });
      expect(ids(filtered)).toEqual([globexHook.id]);
    });

    it('another client of the same organization shares its webhooks (read-only with webhooks:read)', async () => {
      expect((await call('GET', `/v1/webhooks/${acmeHook.id}`, { token: acmeReader })).status).toBe(200);
      const list = await call('GET', '/v1/webhooks', { token: acmeReader });
      expect(list.body.data.map((w) => w.id)).toContain(acmeHook.id);
      expect((await write('DELETE', `/v1/webhooks/${acmeHook.id}`, acmeReader)).status).toBe(403);
    });

    it('the same Idempotency-Key in two organizations makes two webhooks, neither a replay of the other', async () => {
      const key = randomUUID();
      const body = { url: 'https://hooks.example.com/shared', events: [EVENT] };
      const a = await call('POST', '/v1/webhooks', { token: acme, body, headers: { 'idempotency-key': key } });
      const g = await call('POST', '/v1/webhooks', { token: globex, body, headers: { 'idempotency-key': key } });
      expect([a.status, g.status]).toEqual([201, 201]);
      expect(g.headers.get('idempotent-replayed')).toBeNull();
      expect(g.body.id).not.toBe(a.body.id);
      expect(g.body.secret).not.toBe(a.body.secret);
      expect((await call('GET', `/v1/webhooks/${a.body.id}`, { token: globex })).status).toBe(404);
    });

    it("a key used by one organization on its webhook does not replay another organization's write", async () => {
      const key = randomUUID();
      const mine = await call('POST', `/v1/webhooks/${acmeHook.id}/secret/rotate`, {
        token: acme,
        body: {},
        headers: { 'idempotency-key': key },
      });
      expect(mine.status).toBe(200);
      const theirs = await call('POST', `/v1/webhooks/${acmeHook.id}/secret/rotate`, {
        token: globex,
        body: {},
        headers: { 'idempotency-key': key },
      });
      expect(theirs.status).toBe(404);
      expect(theirs.text).not.toContain(mine.body.secret);
    });
  });

  describe('partnerIds must be among the token’s authorized partners', () => {
    it('another organization’s partner and an unknown partner get the same 403, one pointer each', async () => {
      const response = await write('POST', '/v1/webhooks', acme, { ...VALID_REGISTRATION, partnerIds: [PARTNER_A, PARTNER_C, UNKNOWN_PARTNER] });
      expect(response.status).toBe(403);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(response.body.type).toMatch(/\/partners-not-authorized$/);
      expect(response.body.errors).toEqual([
        { pointer: '/partnerIds/1', detail: NOT_AUTHORIZED },
        { pointer: '/partnerIds/2', detail: NOT_AUTHORIZED },
      ]);
      const unknownOnly = await write('POST', '/v1/webhooks', acme, { ...VALID_REGISTRATION, partnerIds: [UNKNOWN_PARTNER] });
      const foreignOnly = await write('POST', '/v1/webhooks', acme, { ...VALID_REGISTRATION, partnerIds: [PARTNER_C] });
      expect(stable(unknownOnly)).toEqual(stable(foreignOnly));
    });

    it('the partner ids of the token are compared case-insensitively (UUIDs are normalized)', async () => {
      const response = await write('POST', '/v1/webhooks', acme, { ...VALID_REGISTRATION, partnerIds: [PARTNER_B.toUpperCase()] });
      expect(response.status).toBe(201);
      expect(response.body.partnerIds).toEqual([PARTNER_B]);
    });

    it('PATCH partnerIds is checked the same way, and a refused change leaves the webhook as it was', async () => {
      const response = await write('PATCH', `/v1/webhooks/${acmeHook.id}`, acme, { partnerIds: [PARTNER_B, PARTNER_C] });
      expect(response.status).toBe(403);
      expect(response.body.errors).toEqual([{ pointer: '/partnerIds/1', detail: NOT_AUTHORIZED }]);
      const unchanged = await call('GET', `/v1/webhooks/${acmeHook.id}`, { token: acme });
      expect(unchanged.body.partnerIds).toEqual(acmeHook.partnerIds);
    });

    it('nothing is recorded for a refused registration: the key stays free', async () => {
      const key = randomUUID();
      const refused = await call('POST', '/v1/webhooks', {
        token: acme,
        body: { ...VALID_REGISTRATION, partnerIds: [PARTNER_C] },
        headers: { 'idempotency-key': key },
      });
      expect(refused.status).toBe(403);
      const ok = await call('POST', '/v1/webhooks', { token: acme, body: VALID_REGISTRATION, headers: { 'idempotency-key': key } });
      expect(ok.status).toBe(201);
      expect(ok.headers.get('idempotent-replayed')).toBeNull();
    });
  });

  describe('dispatchers act across organizations (webhooks:dispatch, no organization claim)', () => {
    it('see the matching webhooks of every organization, filtered by partner', async () => {
      const forC = await call('GET', `/internal/v1/dispatch-targets?eventType=${EVENT}&partnerId=${PARTNER_C}`, { token: dispatcher });
      expect(forC.status).toBe(200);
      const idsC = forC.body.data.map((t) => t.id);
      expect(idsC).toContain(globexHook.id);
      expect(idsC).not.toContain(acmeHook.id);
      const forA = await call('GET', `/internal/v1/dispatch-targets?eventType=${EVENT}&partnerId=${PARTNER_A}`, { token: dispatcher });
      const idsA = forA.body.data.map((t) => t.id);
      expect(idsA).toContain(acmeHook.id);
      expect(idsA).not.toContain(globexHook.id);
    });

    it('can disable any organization’s webhook; the owner sees it, the other organization still gets 404', async () => {
      const g = await write('POST', '/v1/webhooks', globex, { url: 'https://hooks.globex.example/d', events: [EVENT] });
      expect(g.status).toBe(201);
      const disabled = await call('POST', `/internal/v1/webhooks/${g.body.id}/disable`, { token: dispatcher, body: { reason: 'endpoint gone' } });
      expect(disabled.status).toBe(200);
      expect(disabled.body.status).toBe('DISABLED');
      expect((await call('GET', `/v1/webhooks/${g.body.id}`, { token: globex })).body.status).toBe('DISABLED');
      expect((await call('GET', `/v1/webhooks/${g.body.id}`, { token: acme })).status).toBe(404);
    });
  });

  describe('compliance endpoints (webhooks:audit)', () => {
    it('a webhook’s history is visible to its own organization, with the actor from the token’s azp and sub', async () => {
      for (const token of [acme, acmeReader]) {
        const history = await call('GET', `/v1/webhooks/${acmeHook.id}/history`, { token });
        expect(history.status).toBe(200);
        expect(history.body.organizationId).toBe('acme');
        expect(history.body.data[0]?.actor).toEqual({
          clientId: 'acme-integration',
          subject: registry.oauth.subjectFor('acme-integration'),
        });
      }
    });

    it('another organization’s history is a 404, exactly like a webhook that does not exist', async () => {
      const foreign = await call('GET', `/v1/webhooks/${acmeHook.id}/history`, { token: globex });
      const missing = await call('GET', `/v1/webhooks/${randomUUID()}/history`, { token: globex });
      expect(foreign.status).toBe(404);
      expect(stable(foreign)).toEqual(stable(missing));
      expect(foreign.text).not.toContain(acmeHook.url);
      const shouting = await registry.oauth.getToken('shouting-acme');
      expect((await call('GET', `/v1/webhooks/${acmeHook.id}/history`, { token: shouting })).status).toBe(404);
    });

    it('the history of a deleted webhook stays with its organization', async () => {
      const created = await write('POST', '/v1/webhooks', globex, { url: 'https://hooks.globex.example/deleted', events: [EVENT] });
      expect((await write('DELETE', `/v1/webhooks/${created.body.id}`, globex)).status).toBe(204);
      expect((await call('GET', `/v1/webhooks/${created.body.id}/history`, { token: globex })).status).toBe(200);
      expect((await call('GET', `/v1/webhooks/${created.body.id}/history`, { token: acme })).status).toBe(404);
    });

    it('an auditor without an organization reads every organization’s history', async () => {
      const auditor = await registry.oauth.getToken('compliance-auditor');
      for (const hook of [acmeHook, globexHook]) {
        expect((await call('GET', `/v1/webhooks/${hook.id}/history`, { token: auditor })).status).toBe(200);
      }
    });

    it('a token without an organization and without webhooks:audit cannot read any history', async () => {
      const orgless = await registry.oauth.getToken('orgless-reader');
      const response = await call('GET', `/v1/webhooks/${acmeHook.id}/history`, { token: orgless });
      expect(response.status).toBe(403);
      expect(response.body.detail).toMatch(/organization/);
      const dispatching = await call('GET', `/v1/webhooks/${acmeHook.id}/history`, { token: dispatcher });
      expect(dispatching.status).toBe(403);
      expect(dispatching.headers.get('www-authenticate')).toBe(
        'Bearer realm="webhooks", error="insufficient_scope", scope="webhooks:read webhooks:audit"',
      );
    });

    it('the state as of an instant is for auditors only, across organizations', async () => {
      const auditor = await registry.oauth.getToken('compliance-auditor');
      const asOf = new Date().toISOString();
      const all = await call('GET', `/internal/v1/audit/webhooks?asOf=${asOf}&limit=1000`, { token: auditor });
      expect(all.status).toBe(200);
      const orgs = new Set(all.body.data.map((w) => w.organizationId));
      expect(orgs).toEqual(new Set(['acme', 'globex']));
      const onlyGlobex = await call('GET', `/internal/v1/audit/webhooks?asOf=${asOf}&org=globex&limit=1000`, { token: auditor });
      expect(onlyGlobex.body.data.every((w) => w.organizationId === 'globex')).toBe(true);
      for (const token of [acme, globex, dispatcher]) {
        const refused = await call('GET', `/internal/v1/audit/webhooks?asOf=${asOf}&org=globex`, { token });
        expect(refused.status).toBe(403);
        expect(refused.headers.get('www-authenticate')).toContain('scope="webhooks:audit"');
      }
    });
  });
});
