// What the registry writes to its log at the most verbose level: never a
// secret (given or generated), a bearer token or an Idempotency-Key; always
// the request id, which is also in the response header and every error body.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signForeignToken } from '../support/tokens.ts';
import { startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import type { ProblemBody, RegistrationBody, RotationBody } from '../support/webhookApi.ts';

interface LogLine {
  level: number;
  reqId?: string;
  msg?: string;
  res?: { statusCode?: number };
  [key: string]: unknown;
}

describe('log lines at LOG_LEVEL=trace', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ env: { LOG_LEVEL: 'trace' } });
  });
  afterAll(async () => {
    await registry.close();
  });

  const parsed = (): LogLine[] => registry.logs.map((line) => JSON.parse(line) as LogLine);
  const linesOf = (requestId: string): LogLine[] => parsed().filter((l) => l.reqId === requestId);

  it('never contain secrets, bearer tokens or Idempotency-Keys', async () => {
    const token = await registry.token();
    const givenSecret = `whsec_${randomBytes(32).toString('base64')}`;
    const keys = { given: `log-given-${randomUUID()}`, generated: `log-generated-${randomUUID()}`, bad: `log-bad-${randomUUID()}` };

    const given = await registry.request<RegistrationBody>('POST', '/v1/webhooks', {
      token,
      body: { ...VALID_REGISTRATION, secret: givenSecret },
      headers: { 'idempotency-key': keys.given },
    });
    expect(given.status).toBe(201);
    expect(given.body.secret).toBe(givenSecret);

    const generated = await registry.request<RegistrationBody>('POST', '/v1/webhooks', {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': `"${keys.generated}"` },
    });
    expect(generated.status).toBe(201);
    const generatedSecret = generated.body.secret;
    // The replay returns the secret again: still not logged.
    const replay = await registry.request('POST', '/v1/webhooks', {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': `"${keys.generated}"` },
    });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');

    // A malformed secret (400 at /secret) and a body that is not JSON, both carrying a secret-looking value.
    const badSecret = `whsec_${randomBytes(8).toString('base64')}`;
    const invalid = await registry.request('POST', '/v1/webhooks', {
      token,
      body: { ...VALID_REGISTRATION, secret: badSecret },
      headers: { 'idempotency-key': keys.bad },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.text).not.toContain(badSecret);
    const brokenSecret = `whsec_${randomBytes(32).toString('base64')}`;
    const broken = await registry.request('POST', '/v1/webhooks', {
      token,
      rawBody: `{"url":"https://hooks.example.com/x","secret":"${brokenSecret}"`,
      headers: { 'idempotency-key': keys.bad, 'content-type': 'application/json' },
    });
    expect(broken.status).toBe(400);
    expect(broken.text).not.toContain(brokenSecret);

    // A rotation returns a new secret.
    const rotated = await registry.request<RotationBody>('POST', `/v1/webhooks/${given.body.id}/secret/rotate`, {
      token,
      body: {},
      headers: { 'idempotency-key': `log-rotate-${randomUUID()}` },
    });
    expect(rotated.status).toBe(200);
    const rotatedSecret = rotated.body.secret;

    // A token the verifier rejects is not logged either.
    const forged = await signForeignToken({ sub: 'x', aud: registry.oauth.audience, iss: registry.oauth.issuer });
    const rejected = await registry.request('GET', '/v1/webhooks', { token: forged });
    expect(rejected.status).toBe(401);

    const logs = registry.logs.join('\n');
    expect(registry.logs.length).toBeGreaterThan(10);
    const forbidden = {
      givenSecret,
      generatedSecret,
      rotatedSecret,
      badSecret,
      brokenSecret,
      token,
      tokenSignature: token.split('.')[2]!,
      forged,
      ...keys,
    };
    for (const [name, value] of Object.entries(forbidden)) {
      expect(value.length, name).toBeGreaterThan(8);
      expect(logs.includes(value), `${name} appears in the log`).toBe(false);
    }
    // Secrets also not in base64url or JSON-escaped form.
    for (const secret of [givenSecret, generatedSecret, rotatedSecret]) {
      const material = secret.slice('whsec_'.length);
      expect(logs.includes(material)).toBe(false);
      expect(logs.includes(Buffer.from(material, 'base64').toString('base64url'))).toBe(false);
    }
  });

  it('tags every request log line with the request id of the response header and the error body', async () => {
    const token = await registry.token();
    const answer = await registry.request<ProblemBody>('POST', '/v1/webhooks', {
      token,
      rawBody: '{"url": ',
      headers: { 'idempotency-key': randomUUID(), 'content-type': 'application/json' },
    });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const requestId = answer.headers.get('x-request-id')!;
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.body.requestId).toBe(requestId);

    const lines = linesOf(requestId);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['incoming request', 'request completed']));
    // The error handler's own line about the malformed body carries it too.
    expect(lines.some((l) => l.msg === 'The request body is not valid JSON.')).toBe(true);
    expect(lines.find((l) => l.msg === 'request completed')?.res?.statusCode).toBe(400);

    // Every line about a request has a request id.
    for (const line of parsed()) {
      if ('req' in line || 'res' in line) expect(typeof line.reqId, JSON.stringify(line)).toBe('string');
    }
  });

  it('takes a well-formed x-request-id from the caller and uses it everywhere', async () => {
    const requestId = `trace-${randomUUID()}`;
    const answer = await registry.request<ProblemBody>('GET', '/v1/webhooks/not-a-uuid', {
      token: await registry.token(),
      headers: { 'x-request-id': requestId },
    });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('x-request-id')).toBe(requestId);
    expect(answer.body.requestId).toBe(requestId);
    expect(linesOf(requestId).length).toBeGreaterThanOrEqual(2);

    // One that is not well-formed is replaced by a fresh id.
    const odd = await registry.request('GET', '/health/live', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(odd.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
