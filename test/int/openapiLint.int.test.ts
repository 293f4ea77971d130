// The API document served at /openapi.json passes Redocly's OpenAPI linter
// (@redocly/openapi-core, the engine of `npx @redocly/cli lint`) with its
// recommended rules: no errors and no warnings, so a new finding (a missing
// operationId, servers entry, 4xx answer, license, …) fails this test.
// Linted as a real registry serves it, with rate limiting on and off (the two
// documents differ: 429 and the RateLimit-* headers).
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../support/registry.ts';

type Json = Record<string, unknown>;

async function lintDocument(registry: TestRegistry): Promise<string[]> {
  const response = await registry.request('GET', '/openapi.json');
  expect(response.status).toBe(200);
  const config = await createConfig({ extends: ['recommended'] });
  const problems = await lintFromString({ source: response.text, absoluteRef: `${registry.url}/openapi.json`, config });
  return problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer ?? '?'}: ${p.message}`);
}

describe('the OpenAPI document, linted by Redocly (recommended rules)', () => {
  let limited: TestRegistry;
  let unlimited: TestRegistry;

  beforeAll(async () => {
    limited = await startRegistry();
    unlimited = await startRegistry({ oauth: limited.oauth, env: { RATE_LIMIT_PER_SECOND: '0' } });
  });
  afterAll(async () => {
    await unlimited?.close();
    await limited?.close();
  });

  it('has no errors and no warnings with rate limiting on', async () => {
    expect(await lintDocument(limited)).toEqual([]);
  });

  it('has no errors and no warnings with rate limiting off', async () => {
    expect(await lintDocument(unlimited)).toEqual([]);
  });

  it('spells and words what the API reference page does', async () => {
    const doc = (await limited.request<Json>('GET', '/openapi.json')).body;
    const at = (...keys: string[]): unknown => keys.reduce<unknown>((node, key) => (node as Json | undefined)?.[key], doc);
    const register = at('paths', '/v1/webhooks', 'post') as { parameters: { name: string; in: string }[]; responses: Json };
    expect(register.parameters.filter((p) => p.in === 'header').map((p) => p.name)).toEqual(['Idempotency-Key']);
    const update = at('paths', '/v1/webhooks/{id}', 'patch') as { parameters: { name: string; in: string }[] };
    expect(update.parameters.filter((p) => p.in === 'header').map((p) => p.name)).toEqual(['Idempotency-Key', 'If-Match']);
    expect(at('paths', '/v1/webhooks', 'post', 'responses', '201', 'description')).toBe('Registered. Secret is shown once in the response.');
    const registered = at('components', 'schemas', 'RegisteredWebhook', 'properties') as Record<string, Json>;
    expect(registered.status?.enum).toEqual(['ACTIVE', 'PAUSED', 'DISABLED']);
    expect(registered.secret?.description).toBe('Signing secret — returned only on the create response. Not included on GET / list.');
    const body = at('components', 'schemas', 'RegisterWebhookRequest', 'properties') as Record<string, Json>;
    expect(body.secret?.description).toMatch(/^Optional provided secret\. If omitted, server generates\./);
    expect(body.events?.description).toBe(
      'Event type or segment wildcard (compliance.*, kyc.*, self_service_invitation.*). Root * is not supported.',
    );
    expect(register.parameters.find((p) => p.name === 'Idempotency-Key')).toMatchObject({
      required: true,
      schema: { minLength: 1, maxLength: 255 },
      description: expect.stringMatching(/^Client-generated unique key \(UUID recommended\) for this write operation\./) as unknown,
    });
  });

  it('is what the rules were checked on: operation ids, a server, a license', async () => {
    const doc = (
      await limited.request<{
        servers: unknown[];
        info: { license?: unknown };
        paths: Record<string, Record<string, { operationId?: string }>>;
      }>('GET', '/openapi.json')
    ).body;
    expect(doc.servers).toHaveLength(1);
    expect(doc.servers).toMatchObject([{ url: '/' }]);
    expect(doc.info.license).toBeDefined();
    const ids = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId));
    expect(ids.sort()).toEqual(
      [
        'deleteWebhook',
        'disableWebhook',
        'getDispatchChanges',
        'getDispatchSnapshot',
        'getDispatchTargets',
        'getLiveness',
        'getReadiness',
        'getWebhook',
        'getWebhookHistory',
        'getWebhooksAsOf',
        'listEventTypes',
        'listWebhooks',
        'registerWebhook',
        'rotateWebhookSecret',
        'updateWebhook',
        'verifyAuditTrail',
      ].sort(),
    );
  });
});
