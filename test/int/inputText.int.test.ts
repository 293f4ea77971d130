// Text that different parsers read differently never gets in (issue 11, H1 and
// H4). Webhook URLs are handed to dispatchers, which fetch them with their own
// HTTP clients: the registry must judge, store and answer one unambiguous form.
// Lone surrogate escapes would be stored as U+FFFD by UTF-8 stores and make
// answers that strict JSON parsers refuse, so they are refused in every field.
import { isWellFormedText } from '../../src/domain/text.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARTNER_A, startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import { DispatcherApi, expectProblem, pointersOf, settleProjection, WebhookApi } from '../support/webhookApi.ts';

describe('webhook URLs that HTTP clients parse differently', () => {
  let registry: TestRegistry;
  let api: WebhookApi;
  let dispatcher: DispatcherApi;
  beforeAll(async () => {
    registry = await startRegistry();
    api = await WebhookApi.as(registry, 'acme-integration');
    dispatcher = await DispatcherApi.as(registry);
  });
  afterAll(async () => {
    await registry.close();
  });

  // curl and Python's urlsplit read the host of the first as 169.254.169.254; WHATWG as evil.com.
  const AMBIGUOUS = [
    'https://evil.com\\@169.254.169.254/latest/meta-data/',
    'https://hooks.example.com/a\r\nX-Injected: 1',
    'https://hooks.example.com/a\nb',
    'https://hooks.example.com/\u0000',
    'https://hooks.example.com/a\tb',
    '\thttps://hooks.example.com/',
    ' https://hooks.example.com/',
    'https://hooks.example.com/ ',
    'https://hooks.example.com/a b',
    'https:\\\\169.254.169.254\\latest',
    'https://hooks.example.com/\u007f',
  ];

  it.each(AMBIGUOUS)('POST refuses %j with 400 at /url', async (url) => {
    const response = await api.register({ ...VALID_REGISTRATION, url });
    expectProblem(response, 400, 'validation');
    expect(pointersOf(response)).toEqual(['/url']);
  });

  it.each(AMBIGUOUS)('PATCH refuses %j with 400 at /url and changes nothing', async (url) => {
    const created = await api.registered(VALID_REGISTRATION);
    const response = await api.patch(created.id, { url });
    expectProblem(response, 400, 'validation');
    expect(pointersOf(response)).toEqual(['/url']);
    const after = await api.get(created.id);
    expect(after.body.url).toBe(VALID_REGISTRATION.url);
    expect(after.headers.get('etag')).toBe('"0"');
  });

  it('stores, answers and hands dispatchers only the normalized form', async () => {
    const raw = 'https://HOOKS.Example.COM:443/Ä/path?q=ü';
    const normalized = 'https://hooks.example.com/%C3%84/path?q=%C3%BC';
    expect(new URL(raw).href).toBe(normalized);
    const created = await api.registered({ ...VALID_REGISTRATION, url: raw, events: ['kyc.verification.approved'] });
    expect(created.url).toBe(normalized);
    expect((await api.get(created.id)).body.url).toBe(normalized);
    await settleProjection(registry);
    const targets = await dispatcher.targetsOk('kyc.verification.approved', PARTNER_A);
    expect(targets.find((t) => t.id === created.id)?.url).toBe(normalized);

    const patched = await api.patched(created.id, { url: 'https://Other.Example.com/x/../y' });
    expect(patched.url).toBe('https://other.example.com/y');
  });

  it('a retry with the raw form and with the normalized form is the same request', async () => {
    const key = `normalized-${Date.now()}`;
    const first = await api.registered({ ...VALID_REGISTRATION, url: 'https://HOOKS.example.com/same' }, key);
    const again = await api.register({ ...VALID_REGISTRATION, url: 'https://hooks.example.com/same' }, key);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.id).toBe(first.id);
  });
});

describe('unpaired surrogates in any text field', () => {
  let registry: TestRegistry;
  let api: WebhookApi;
  beforeAll(async () => {
    registry = await startRegistry();
    api = await WebhookApi.as(registry, 'acme-integration');
  });
  afterAll(async () => {
    await registry.close();
  });

  const raw = (method: string, path: string, body: string, headers: Record<string, string> = {}) =>
    registry.request(method, path, {
      token: api.token,
      rawBody: body,
      headers: { 'content-type': 'application/json', 'idempotency-key': crypto.randomUUID(), ...headers },
    });

  it('refuses "https://example.com/\\ud800" with 400 at /url; nothing is stored', async () => {
    const response = await raw('POST', '/v1/webhooks', '{"url":"https://example.com/\\ud800","events":["kyc.*"]}');
    expectProblem(response, 400, 'validation');
    expect(pointersOf(response)).toEqual(['/url']);
    expect(isWellFormedText(response.text)).toBe(true);
    const list = await api.list();
    expect(list.body.data).toEqual([]);
  });

  it.each([
    ['a low surrogate alone', '\\udc00'],
    ['a high surrogate at the end', 'abc\\uDBFF'],
    ['two high surrogates', '\\ud800\\ud800'],
  ])('refuses %s in an event name, a nested array and a key', async (_name, escape) => {
    const inEvents = await raw('POST', '/v1/webhooks', `{"url":"https://hooks.example.com/x","events":["kyc.*","${escape}"]}`);
    expect(pointersOf(inEvents)).toEqual(['/events/1']);
    const asKey = await raw('POST', '/v1/webhooks', `{"url":"https://hooks.example.com/x","events":["kyc.*"],"${escape}":1}`);
    expectProblem(asKey, 400, 'validation');
  });

  it('refuses one in a PATCH (merge-patch too) and in a disable reason', async () => {
    const created = await api.registered(VALID_REGISTRATION);
    const patch = await raw('PATCH', `/v1/webhooks/${created.id}`, '{"url":"https://hooks.example.com/\\ud83d"}');
    expect(pointersOf(patch)).toEqual(['/url']);
    const merge = await raw('PATCH', `/v1/webhooks/${created.id}`, '{"url":"https://hooks.example.com/\\ud83d"}', {
      'content-type': 'application/merge-patch+json',
    });
    expect(pointersOf(merge)).toEqual(['/url']);
    const dispatcher = await registry.token('dispatcher');
    const disable = await registry.request('POST', `/internal/v1/webhooks/${created.id}/disable`, {
      token: dispatcher,
      rawBody: '{"reason":"bad \\udfff"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(pointersOf(disable)).toEqual(['/reason']);
    expect((await api.get(created.id)).body.status).toBe('ACTIVE');
  });

  it('accepts a correctly paired escape (an emoji) as ordinary text', async () => {
    const created = await api.registered({ ...VALID_REGISTRATION, url: 'https://hooks.example.com/%F0%9F%98%80' });
    const reason = await registry.request('POST', `/internal/v1/webhooks/${created.id}/disable`, {
      token: await registry.token('dispatcher'),
      rawBody: '{"reason":"flaky \\ud83d\\ude00"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(reason.status).toBe(200);
  });
});

describe('the fingerprint of a write is taken over the route, not its spelling', () => {
  let registry: TestRegistry;
  let api: WebhookApi;
  beforeAll(async () => {
    registry = await startRegistry();
    api = await WebhookApi.as(registry, 'acme-integration');
  });
  afterAll(async () => {
    await registry.close();
  });

  it('POST /v1/%77ebhooks with a used key and the same body is a replay', async () => {
    const key = crypto.randomUUID();
    const first = await api.registered(VALID_REGISTRATION, key);
    const again = await registry.request('POST', '/v1/%77ebhooks', {
      token: api.token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': key },
    });
    expect(again.status, again.text).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first);
  });

  it('a PATCH retried with the id in upper case is a replay', async () => {
    const created = await api.registered(VALID_REGISTRATION);
    const key = crypto.randomUUID();
    const first = await api.patched(created.id, { status: 'PAUSED' }, { key });
    const again = await registry.request('PATCH', `/v1/webhooks/${created.id.toUpperCase()}`, {
      token: api.token,
      body: { status: 'PAUSED' },
      headers: { 'idempotency-key': key },
    });
    expect(again.status, again.text).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first);
  });
});
