// The interactive API reference in a real browser: Debian's chromium, driven
// by playwright-core, loads /docs from the running registry and shows the
// operations of the generated OpenAPI document. Every asset must come from
// the registry itself (no CDN: the build machines have no internet).
//
// A machine without Chromium gets it installed first (test/support/browser.ts);
// where that cannot be done this test fails with the reason, it never skips.
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROWSER_SETUP_TIMEOUT_MS, ensureChromium } from '../support/browser.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';

interface JsonSchema {
  required?: string[];
  additionalProperties?: boolean;
  properties: Record<string, { maxItems?: number }>;
}

interface Operation {
  security: Record<string, string[]>[];
  parameters: { in: string; name: string; required: boolean }[];
  requestBody: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { $ref?: string; content?: Record<string, unknown>; headers?: Record<string, unknown> }>;
}

interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, JsonSchema>;
    securitySchemes: { oauth2: { flows: { clientCredentials: { tokenUrl: string } } }; bearerAuth: unknown };
    responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }>;
  };
}

describe('the API reference at /docs in chromium', () => {
  let registry: TestRegistry;
  let browser: Browser | undefined;
  let chromiumPath: string;

  beforeAll(async () => {
    chromiumPath = await ensureChromium();
    registry = await startRegistry();
  }, BROWSER_SETUP_TIMEOUT_MS);
  afterAll(async () => {
    await browser?.close();
    await registry?.close();
  });

  it('is served with its OpenAPI 3.1 document at /openapi.json', async () => {
    const doc = await registry.request<OpenApiDocument>('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
    const register = doc.body.paths['/v1/webhooks']!.post!;
    expect(register.security).toEqual([{ oauth2: ['webhooks:write'] }, { bearerAuth: [] }]);
    // Spelled as the API reference page spells it, so generated clients read like the page (the server matches any case).
    expect(register.parameters).toContainEqual(expect.objectContaining({ in: 'header', name: 'Idempotency-Key', required: true }));
    expect(register.requestBody.content['application/json']?.schema).toEqual({
      $ref: '#/components/schemas/RegisterWebhookRequestInput',
    });
    // Errors are documented once under components/responses and referenced by every operation that can give them.
    const response = (status: string) => {
      const ref = register.responses[status]?.$ref ?? '';
      return doc.body.components.responses[ref.replace('#/components/responses/', '')];
    };
    expect(response('400')?.content?.['application/problem+json']).toBeDefined();
    expect(response('429')?.headers?.['Retry-After']).toBeDefined();
    expect(doc.body.components.securitySchemes.oauth2.flows.clientCredentials.tokenUrl).toBe(
      `${registry.oauth.issuer}/protocol/openid-connect/token`,
    );
    expect(doc.body.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    // The request schema is the one the route validates with.
    const body = doc.body.components.schemas.RegisterWebhookRequestInput!;
    expect(body.required).toEqual(['url', 'events']);
    expect(body.additionalProperties).toBe(false);
    expect(body.properties.events?.maxItems).toBe(50);
    // Public probes are documented without security; /docs itself is not an operation.
    expect(doc.body.paths['/health/ready']?.get?.security).toEqual([]);
    expect(Object.keys(doc.body.paths).some((p) => p.startsWith('/docs'))).toBe(false);
  });

  it('renders POST /v1/webhooks from local assets only', { timeout: 60_000 }, async () => {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    });
    const page = await browser.newPage();
    const origin = new URL(registry.url).origin;
    const foreign: string[] = [];
    const failed: string[] = [];
    page.on('request', (request) => {
      const url = request.url();
      if (!url.startsWith(`${origin}/`) && !url.startsWith('data:')) foreign.push(url);
    });
    page.on('requestfailed', (request) => failed.push(request.url()));
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    const response = await page.goto(`${registry.url}/docs`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);

    const operation = page.locator('.opblock-post', { has: page.locator('[data-path="/v1/webhooks"]') });
    await operation.first().waitFor({ state: 'visible', timeout: 15_000 });
    await expect(operation.first().locator('.opblock-summary-method').innerText()).resolves.toBe('POST');
    const text = await page.locator('#swagger-ui').innerText();
    expect(text).toContain('/v1/webhooks');
    expect(text).toContain('Webhook subscription registry');
    // Swagger UI lists problems it finds in the document here.
    expect(await page.locator('.errors-wrapper').count()).toBe(0);
    expect(foreign).toEqual([]);
    expect(failed).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
