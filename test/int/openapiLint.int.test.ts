// The API document served at /openapi.json passes Redocly's OpenAPI linter
// (@redocly/openapi-core, the engine of `npx @redocly/cli lint`) with its
// recommended rules: no errors and no warnings, so a new finding (a missing
// operationId, servers entry, 4xx answer, license, …) fails this test.
// Linted as a real registry serves it, with rate limiting on and off (the two
// documents differ: 429 and the RateLimit-* headers).
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../support/registry.ts';

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
      ].sort(),
    );
  });
});
