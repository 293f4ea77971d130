// The API driven from its own OpenAPI document (GET /openapi.json of a real
// registry): for every operation, requests generated from the document's
// schemas — valid ones, and mutations the document itself says are invalid
// (missing required, wrong type, unknown property, too long, bad pattern, …) —
// sent with the right token, no token, a bad token and the wrong scope, plus
// the answers every operation can give (404, 412, 413, 415, 422, 429, 431,
// 414, 503, …). Every answer is checked against the document: the status
// must be documented for that operation, and the body (by media type) and
// headers must match what it declares for that status. Valid generated
// requests must be accepted (2xx), invalid ones refused with a 4xx.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { signForeignToken } from '../support/oauthServer.ts';
import { ApiDocument, isObject, Sampler, seededRandom, type Answer, type Json, type Operation } from '../support/openapiDocument.ts';

const SEED = Number(process.env.OPENAPI_CONTRACT_SEED ?? 20_240_501);
const VALID_PER_OPERATION = 6;

/** Which configured client holds each scope (test/support/registry.ts DEFAULT_CLIENTS). */
const CLIENT_FOR_SCOPE: Record<string, string> = {
  'webhooks:write': 'acme-integration',
  'webhooks:read': 'acme-reader',
  'webhooks:dispatch': 'dispatcher',
  'webhooks:audit': 'compliance-auditor',
};
const CLIENT_SCOPES: Record<string, string[]> = {
  'acme-integration': ['webhooks:read', 'webhooks:write'],
  'acme-reader': ['webhooks:read'],
  dispatcher: ['webhooks:dispatch'],
  'compliance-auditor': ['webhooks:audit'],
};
const ACME_PARTNERS = ['3c90c3cc-0d44-4b50-8888-8dd25736052a', '7f1e2d3c-4b5a-4c6d-8e9f-0a1b2c3d4e5f'];

interface Sent extends Answer {
  readonly body: unknown;
}

interface RequestSpec {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/** node:http, not fetch: fetch refuses some headers (Expect) and rewrites some paths. */
function send(baseUrl: string, spec: RequestSpec): Promise<Sent> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: spec.method.toUpperCase(),
        path: spec.path,
        headers: { ...(spec.body !== undefined ? { 'content-length': String(Buffer.byteLength(spec.body)) } : {}), ...spec.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (spec.body !== undefined) req.write(spec.body);
    req.end();
  });
}

/** Everything the document got wrong, and the statuses seen, over one run. */
class Findings {
  readonly problems: string[] = [];
  readonly seen = new Map<string, Set<number>>();

  record(op: Operation, what: string, answer: Answer, problems: string[]): void {
    let set = this.seen.get(op.id);
    if (!set) this.seen.set(op.id, (set = new Set()));
    set.add(answer.status);
    for (const p of problems) this.problems.push(`${p} [${what}]`);
  }

  statuses(): Set<number> {
    return new Set([...this.seen.values()].flatMap((s) => [...s]));
  }
}

class Driver {
  readonly sampler: Sampler;
  private readonly usedKeys = new Set<string>();

  constructor(
    readonly registry: TestRegistry,
    readonly api: ApiDocument,
    readonly findings: Findings,
    seed: number,
  ) {
    this.sampler = new Sampler(api, seededRandom(seed));
  }

  scopesOf(op: Operation): string[] {
    const security = Array.isArray(op.spec.security) ? (op.spec.security as Json[]) : [];
    const oauth = security.find((s) => Array.isArray(s.oauth2));
    return oauth ? (oauth.oauth2 as string[]) : [];
  }

  /** A token with one of the operation's scopes (undefined for public operations). */
  async tokenFor(op: Operation): Promise<string | undefined> {
    const scope = this.sampler.pick(this.scopesOf(op).length > 0 ? this.scopesOf(op) : [undefined]);
    return scope === undefined ? undefined : this.registry.token(CLIENT_FOR_SCOPE[scope]);
  }

  /** A token of a configured client holding none of the operation's scopes. */
  async wrongScopeToken(op: Operation): Promise<string> {
    const scopes = this.scopesOf(op);
    const client = Object.entries(CLIENT_SCOPES).find(([, held]) => !held.some((s) => scopes.includes(s)));
    return this.registry.token(client![0]);
  }

  /** An Idempotency-Key generated from the document's schema, never used before in this run. */
  idempotencyKey(schema: Json): string {
    for (;;) {
      const key = String(this.sampler.valid(schema));
      if (!this.usedKeys.has(key)) {
        this.usedKeys.add(key);
        return key;
      }
    }
  }

  /** Builds a request for `op`: path parameters given, the rest generated (valid) unless overridden. */
  async build(
    op: Operation,
    options: {
      pathParams: Record<string, string>;
      token?: string | null;
      query?: Record<string, string> | null;
      headers?: Record<string, string | null>;
      body?: unknown;
      rawBody?: string;
      ifMatch?: string;
    },
  ): Promise<{ spec: RequestSpec; body: unknown; headers: Record<string, string> }> {
    let path = op.path;
    for (const p of this.api.parameters(op, 'path')) path = path.replace(`{${p.name}}`, options.pathParams[p.name] ?? '');
    const query =
      options.query === null
        ? {}
        : (options.query ??
          Object.fromEntries(
            this.api
              .parameters(op, 'query')
              // A cursor or a feed position is only valid when the server issued it: valid requests leave it out;
              // so they do a long-poll's wait, which would only make the run longer.
              .filter((p) => !['cursor', 'after', 'wait'].includes(p.name) && (p.required || this.sampler.int(0, 1) === 1))
              .map((p) => [p.name, String(this.sampler.valid(p.schema))]),
          ));
    const search = new URLSearchParams(query).toString();
    const headers: Record<string, string> = {};
    for (const p of this.api.parameters(op, 'header')) {
      if (p.name === 'Idempotency-Key') headers[p.name] = this.idempotencyKey(p.schema);
      else if (p.name === 'If-Match' && options.ifMatch !== undefined) headers[p.name] = options.ifMatch;
    }
    const token = options.token === undefined ? await this.tokenFor(op) : options.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (value === null) delete headers[name];
      else headers[name] = value;
    }
    const requestBody = this.api.requestBody(op);
    let body = options.body;
    let raw = options.rawBody;
    if (raw === undefined && requestBody !== undefined) {
      if (body === undefined && (requestBody.required || this.sampler.int(0, 2) > 0)) {
        body = this.sampler.valid(requestBody.schema, { partnerIds: () => this.partnerSubset() });
      }
      if (body !== undefined) raw = JSON.stringify(body);
    }
    if (raw !== undefined) headers['Content-Type'] ??= 'application/json';
    return { spec: { method: op.method, path: search ? `${path}?${search}` : path, headers, ...(raw !== undefined ? { body: raw } : {}) }, body, headers };
  }

  partnerSubset(): string[] {
    return ACME_PARTNERS.filter(() => this.sampler.int(0, 1) === 1).concat(this.sampler.pick(ACME_PARTNERS)).filter((v, i, a) => a.indexOf(v) === i);
  }

  async exchange(op: Operation, what: string, spec: RequestSpec): Promise<Sent> {
    const answer = await send(this.registry.url, spec);
    this.findings.record(op, what, answer, this.api.check(op, answer));
    return answer;
  }

  /** A fresh webhook of acme (registered through the document, answer checked too). */
  async newWebhook(): Promise<{ id: string; etag: string }> {
    const op = this.api.operation('registerWebhook');
    const { spec } = await this.build(op, { pathParams: {}, token: await this.registry.token('acme-integration') });
    const answer = await this.exchange(op, 'fixture', spec);
    if (answer.status !== 201) throw new Error(`fixture registration failed: ${answer.status} ${answer.text}`);
    return { id: (answer.body as { id: string }).id, etag: String(answer.headers.etag) };
  }

  /** The path parameters a valid request needs: an existing webhook of acme where there is an {id}. */
  async pathParams(op: Operation): Promise<Record<string, string>> {
    return op.path.includes('{id}') ? { id: (await this.newWebhook()).id } : {};
  }

  async currentEtag(id: string): Promise<string> {
    const op = this.api.operation('getWebhook');
    const answer = await this.exchange(op, 'etag', (await this.build(op, { pathParams: { id }, token: await this.registry.token('acme-reader') })).spec);
    return String(answer.headers.etag);
  }
}

function is2xx(status: number): boolean {
  return status >= 200 && status < 300;
}

describe('the API driven from its OpenAPI document', () => {
  let registry: TestRegistry;
  let api: ApiDocument;
  const findings = new Findings();
  let driver: Driver;

  beforeAll(async () => {
    // A short JWKS cooldown lets an unknown key id be looked up again at once (the outage case below).
    registry = await startRegistry({ env: { JWKS_COOLDOWN_MS: '50', BODY_LIMIT_BYTES: '16384' } });
    api = new ApiDocument((await registry.request<Json>('GET', '/openapi.json')).body);
    driver = new Driver(registry, api, findings, SEED);
  });
  afterAll(async () => {
    await registry?.close();
  });

  it('accepts every valid request generated from the document, with documented answers', { timeout: 120_000 }, async () => {
    const refused: string[] = [];
    for (const op of api.operations()) {
      for (let i = 0; i < VALID_PER_OPERATION; i++) {
        const pathParams = await driver.pathParams(op);
        const ifMatch = pathParams.id !== undefined && driver.sampler.int(0, 1) === 1 ? await driver.currentEtag(pathParams.id) : undefined;
        const { spec } = await driver.build(op, { pathParams, ...(ifMatch !== undefined ? { ifMatch } : {}) });
        const answer = await driver.exchange(op, `valid #${i} ${spec.method} ${spec.path} ${spec.body ?? ''}`, spec);
        if (!is2xx(answer.status)) refused.push(`${op.id} → ${answer.status}: ${spec.path} ${spec.body ?? ''} → ${answer.text.slice(0, 300)}`);
      }
    }
    expect(findings.problems).toEqual([]);
    expect(refused).toEqual([]);
  });

  it('replays a repeated write and refuses its key with another body, as documented', { timeout: 60_000 }, async () => {
    const problems: string[] = [];
    for (const op of api.operations().filter((o) => api.parameters(o, 'header').some((p) => p.name === 'Idempotency-Key'))) {
      const pathParams = await driver.pathParams(op);
      const first = await driver.build(op, { pathParams });
      const original = await driver.exchange(op, 'first write', first.spec);
      const replay = await driver.exchange(op, 'replay', first.spec);
      if (!is2xx(original.status) || replay.status !== original.status || replay.headers['idempotent-replayed'] !== 'true') {
        problems.push(`${op.id}: replay ${original.status} → ${replay.status} ${String(replay.headers['idempotent-replayed'])}`);
      }
      const requestBody = api.requestBody(op);
      if (requestBody === undefined) continue;
      // Another valid body under the same key.
      let other: unknown;
      do other = driver.sampler.valid(requestBody.schema, { partnerIds: () => driver.partnerSubset() });
      while (JSON.stringify(other) === first.spec.body);
      const reused = await driver.exchange(op, 'key reused', { ...first.spec, body: JSON.stringify(other) });
      if (reused.status !== 422) problems.push(`${op.id}: key reused with another body → ${reused.status}`);
    }
    expect(findings.problems).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('refuses every request the document says is invalid with a documented 4xx', { timeout: 120_000 }, async () => {
    const accepted: string[] = [];
    const expectRefused = async (op: Operation, what: string, spec: RequestSpec) => {
      const answer = await driver.exchange(op, what, spec);
      if (answer.status < 400 || answer.status >= 500) accepted.push(`${op.id} ${what} → ${answer.status} ${answer.text.slice(0, 200)}`);
    };
    for (const op of api.operations()) {
      const pathParams = await driver.pathParams(op);
      // The body.
      const requestBody = api.requestBody(op);
      if (requestBody !== undefined) {
        const base = driver.sampler.valid(requestBody.schema, { partnerIds: () => driver.partnerSubset() });
        for (const m of driver.sampler.invalid(requestBody.schema, base)) {
          const { spec } = await driver.build(op, { pathParams, body: m.value });
          await expectRefused(op, `body ${m.label}: ${spec.body ?? ''}`, spec);
        }
        await expectRefused(op, 'malformed JSON', (await driver.build(op, { pathParams, rawBody: '{"url": ' })).spec);
      }
      // The query parameters: each made invalid in turn.
      const queryParams = api.parameters(op, 'query');
      for (const p of queryParams) {
        const valid = Object.fromEntries(queryParams.filter((q) => q.required).map((q) => [q.name, String(driver.sampler.valid(q.schema))]));
        const probe = p.schema.type === 'integer' ? driver.sampler.valid(p.schema) : String(driver.sampler.valid(p.schema));
        for (const m of driver.sampler.invalid(p.schema, probe)) {
          if (isObject(m.value) || m.value === null) continue; // not expressible in a query string
          // A query value is text: a mutation that reads as valid text is not one.
          const text = typeof m.value === 'string' ? m.value : JSON.stringify(m.value);
          const asText = p.schema.type === 'integer' ? Number(text) : text;
          if (text === '' && !p.required) continue;
          if (api.isValid(p.schema, asText)) continue;
          const { spec } = await driver.build(op, { pathParams, query: { ...valid, [p.name]: text } });
          await expectRefused(op, `query ${p.name} ${m.label}`, spec);
        }
        if (p.required) {
          const { [p.name]: _missing, ...rest } = valid;
          await expectRefused(op, `query ${p.name} missing`, (await driver.build(op, { pathParams, query: rest })).spec);
        }
      }
      // The path parameter.
      if (op.path.includes('{id}')) {
        await expectRefused(op, 'id not a uuid', (await driver.build(op, { pathParams: { id: 'not-a-uuid' } })).spec);
      }
      // The headers.
      for (const p of api.parameters(op, 'header')) {
        if (p.name !== 'Idempotency-Key') continue;
        await expectRefused(op, 'Idempotency-Key missing', (await driver.build(op, { pathParams, headers: { [p.name]: null } })).spec);
        for (const bad of ['has a space', 'a'.repeat(256), '"quoted"inside"', 'ünïcode']) {
          if (api.isValid(p.schema, bad)) throw new Error(`the document should refuse Idempotency-Key ${bad}`);
          await expectRefused(op, `Idempotency-Key ${bad.slice(0, 20)}`, (await driver.build(op, { pathParams, headers: { [p.name]: bad } })).spec);
        }
      }
    }
    expect(findings.problems).toEqual([]);
    expect(accepted).toEqual([]);
  });

  it('answers tokens, missing webhooks, preconditions and bodies as documented', { timeout: 120_000 }, async () => {
    for (const op of api.operations()) {
      const pathParams = await driver.pathParams(op);
      const authenticated = driver.scopesOf(op).length > 0;
      const expectStatus = async (what: string, status: number, build: Parameters<Driver['build']>[1]) => {
        const answer = await driver.exchange(op, what, (await driver.build(op, build)).spec);
        if (answer.status !== status) findings.problems.push(`${op.id} ${what}: expected ${status}, got ${answer.status} ${answer.text.slice(0, 200)}`);
      };
      if (authenticated) {
        await expectStatus('no token', 401, { pathParams, token: null });
        await expectStatus('not a JWT', 401, { pathParams, token: 'not.a.jwt' });
        await expectStatus('wrong scope', 403, { pathParams, token: await driver.wrongScopeToken(op) });
      }
      if (op.path.includes('{id}')) {
        await expectStatus('unknown webhook', 404, { pathParams: { id: driver.sampler.uuid() } });
        // A path segment beyond the router's limit, and one that is not valid percent-encoding.
        await expectStatus('over-long id', 414, { pathParams: { id: 'a'.repeat(300) } });
        await expectStatus('malformed percent-encoding', 400, { pathParams: { id: '%zz' } });
      }
      if (api.parameters(op, 'header').some((p) => p.name === 'If-Match')) {
        await expectStatus('stale If-Match', 412, { pathParams, ifMatch: '"999"' });
      }
      if (api.requestBody(op) !== undefined || op.method === 'delete') {
        await expectStatus('text/plain body', 415, { pathParams, rawBody: 'hello', headers: { 'Content-Type': 'text/plain' } });
        await expectStatus('body over the limit', 413, { pathParams, rawBody: JSON.stringify({ reason: 'x'.repeat(20_000) }) });
      }
      if (op.id === 'registerWebhook' || op.id === 'updateWebhook') {
        await expectStatus('partners not authorized', 403, { pathParams, body: { url: 'https://hooks.example.com/x', events: ['kyc.*'], partnerIds: [driver.sampler.uuid()] } });
      }
      await expectStatus('headers over the limit', 431, { pathParams, headers: { 'X-Padding': 'p'.repeat(20_000) } });
      await expectStatus('unsupported Expect', 417, { pathParams, headers: { Expect: 'something-else' } });
    }
    expect(findings.problems).toEqual([]);
  });

  it('answers a path that is no operation with the documented NotFound problem', async () => {
    const notFound = api.component('responses', 'NotFound');
    for (const path of ['/v1/nothing-here', '/v2/webhooks', '/internal/v1/unknown']) {
      const answer = await send(registry.url, { method: 'GET', path, headers: { Authorization: `Bearer ${await registry.token()}` } });
      expect(answer.status).toBe(404);
      expect(api.checkResponse(`GET ${path}`, notFound, answer)).toEqual([]);
    }
  });

  it('answers 503 with Retry-After on every authenticated operation while the identity provider is down', { timeout: 60_000 }, async () => {
    const ops = api.operations().filter((op) => driver.scopesOf(op).length > 0);
    const params = new Map<string, Record<string, string>>();
    for (const op of ops) params.set(op.id, await driver.pathParams(op));
    await registry.oauth.stop();
    try {
      for (const op of ops) {
        await new Promise((r) => setTimeout(r, 60)); // past the JWKS cooldown: the unknown key id is looked up
        const client = CLIENT_FOR_SCOPE[driver.scopesOf(op)[0]!]!;
        const token = await signForeignToken(registry.oauth.claimsFor(client, { scope: driver.scopesOf(op).join(' ') }));
        const answer = await driver.exchange(op, 'identity provider down', (await driver.build(op, { pathParams: params.get(op.id)!, token })).spec);
        if (answer.status !== 503 || answer.headers['retry-after'] === undefined) {
          findings.problems.push(`${op.id} identity provider down: ${answer.status} ${answer.text.slice(0, 200)}`);
        }
      }
    } finally {
      await registry.oauth.restart();
    }
    expect(findings.problems).toEqual([]);
  });

  it('exercised every operation and the statuses the document promises', () => {
    for (const op of api.operations()) {
      const seen = findings.seen.get(op.id) ?? new Set();
      expect([...seen].some(is2xx), `${op.id} never answered 2xx`).toBe(true);
      expect([...seen].some((s) => s >= 400 && s < 500), `${op.id} never answered 4xx`).toBe(true);
    }
    expect([...findings.statuses()].sort()).toEqual(expect.arrayContaining([200, 201, 204, 400, 401, 403, 404, 412, 413, 414, 415, 417, 422, 431, 503]));
  });
});

describe('the API under rate limiting, driven from its OpenAPI document', () => {
  it('answers 429 with Retry-After, as documented, on every authenticated operation', { timeout: 60_000 }, async () => {
    // One request per organization (or org-less client) per ~17 minutes: the second is refused.
    const registry = await startRegistry({ env: { RATE_LIMIT_PER_SECOND: '0.001', RATE_LIMIT_BURST: '1' } });
    try {
      const api = new ApiDocument((await registry.request<Json>('GET', '/openapi.json')).body);
      const findings = new Findings();
      const driver = new Driver(registry, api, findings, SEED + 1);
      const ops = api.operations().filter((op) => driver.scopesOf(op).length > 0);
      for (const op of ops) {
        const build = () => driver.build(op, { pathParams: op.path.includes('{id}') ? { id: driver.sampler.uuid() } : {} });
        // The first request uses up the bucket (acme's, the dispatcher's or the auditor's) if nothing did yet.
        await driver.exchange(op, 'first', (await build()).spec);
        const answer = await driver.exchange(op, 'rate limited', (await build()).spec);
        if (answer.status !== 429) findings.problems.push(`${op.id}: expected 429, got ${answer.status} ${answer.text.slice(0, 200)}`);
        if (answer.headers['retry-after'] === undefined) findings.problems.push(`${op.id}: 429 without Retry-After`);
      }
      expect(findings.problems).toEqual([]);
    } finally {
      await registry.close();
    }
  });
});
