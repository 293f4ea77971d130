import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';

describe('registering a webhook with a token from the OAuth server', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry.close();
  });

  it('returns 201 with the documented body, then replays it', async () => {
    const token = await registry.token();
    const key = randomUUID();
    const first = await registry.request('POST', '/v1/webhooks', {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': key },
    });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ ...VALID_REGISTRATION, status: 'ACTIVE' });
    expect((first.body as { secret: string }).secret).toMatch(/^whsec_/);
    const again = await registry.request('POST', '/v1/webhooks', {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': key },
    });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
  });
});
