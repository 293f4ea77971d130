// What the registry answers before any route runs, and what it logs of a
// request URL (issue 11 H2, H5, item 3): malformed percent-encoding, over-long
// path segments, over-long headers, bytes that are not HTTP, an unknown
// Expect, a missing Host and clients too slow to send their request all get
// problem+json that echoes nothing of the request; query strings never reach
// the log with their values, and a query parameter no operation declares is
// refused instead of ignored.
import { randomBytes, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import type { ProblemBody } from '../support/webhookApi.ts';

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** Milliseconds from the first byte sent to the connection's close. */
  readonly ms: number;
}

/** Sends `chunks` on a raw TCP connection (each after `gapMs`) and reads the answer until the server closes. */
function raw(baseUrl: string, chunks: string[], { gapMs = 0, giveUpMs = 10_000 } = {}): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(Number(url.port), url.hostname);
    const received: Buffer[] = [];
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${giveUpMs} ms; received: ${Buffer.concat(received).toString('latin1')}`));
    }, giveUpMs);
    socket.on('data', (c: Buffer) => received.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(giveUp);
      const text = Buffer.concat(received).toString('utf8');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const at = line.indexOf(':');
        if (at > 0) headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n'), ms: Date.now() - started });
    });
    socket.on('connect', () => {
      let i = 0;
      const next = (): void => {
        if (i >= chunks.length || socket.destroyed) return;
        socket.write(chunks[i++]!);
        if (i < chunks.length) setTimeout(next, gapMs);
      };
      next();
    });
  });
}

/** A problem+json answer that names no part of what was sent. */
function expectProblem(answer: RawAnswer, status: number, ...notEchoed: string[]): ProblemBody {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/problem+json');
  const body = JSON.parse(answer.body) as ProblemBody;
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^https?:\/\//) as unknown, title: expect.any(String) as unknown });
  expect(body.requestId).toBe(answer.headers['x-request-id']);
  for (const secret of notEchoed) expect(answer.body).not.toContain(secret);
  expect(body).not.toHaveProperty('instance');
  return body;
}

describe('problems answered before a route runs', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ env: { REQUEST_TIMEOUT_MS: '1500', HEADERS_TIMEOUT_MS: '600' } });
  });
  afterAll(async () => {
    await registry.close();
  });

  const secret = (): string => `s3cr3t-${randomBytes(12).toString('hex')}`;
  const loggedText = (): string => registry.logs.join('\n');

  it('a malformed percent-encoding is 400 problem+json that quotes neither the URL nor its query', async () => {
    const token = secret();
    const answer = await raw(registry.url, [
      `GET /v1/webhooks/%E0%A4%A?access_token=${token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ]);
    const body = expectProblem(answer, 400, token, 'access_token', '%E0');
    expect(body.detail).toMatch(/percent-encoding/);
    expect(loggedText()).not.toContain(token);
  });

  it('an over-long path segment is 414 problem+json, not a framework error code', async () => {
    const id = 'a'.repeat(600);
    const answer = await raw(registry.url, [`GET /v1/webhooks/${id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    expectProblem(answer, 414, id, 'FST_ERR');
  });

  it('over-long headers are 431 problem+json, and the header is neither echoed nor logged', async () => {
    const big = secret().repeat(1200);
    const answer = await raw(registry.url, [`GET /v1/webhooks HTTP/1.1\r\nHost: x\r\nX-Filler: ${big}\r\n\r\n`]);
    expectProblem(answer, 431, big.slice(0, 40));
    expect(loggedText()).not.toContain(big.slice(0, 40));
  });

  it('bytes that are not HTTP are 400 problem+json, and none of them is logged', async () => {
    const token = secret();
    const answer = await raw(registry.url, [`GARBAGE\x01 /${token} HTTP/9.9\r\n\r\n`]);
    expectProblem(answer, 400, token);
    expect(loggedText()).not.toContain(token);
  });

  it('an Expect other than 100-continue is 417 problem+json', async () => {
    const answer = await raw(registry.url, [
      'POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
    ]);
    expectProblem(answer, 417, 'teapot');
  });

  it('an HTTP/1.1 request without Host is 400 problem+json', async () => {
    const answer = await raw(registry.url, ['GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n']);
    const body = expectProblem(answer, 400);
    expect(body.detail).toMatch(/Host/);
  });

  it('a client that never finishes its headers gets 408 problem+json at the headers deadline', async () => {
    const answer = await raw(registry.url, ['GET /v1/webhooks HTTP/1.1\r\nHost: x\r\n']);
    expectProblem(answer, 408);
    // HEADERS_TIMEOUT_MS is 600 and Node checks on a timer: the answer came at the deadline, not at the default 60 s.
    expect(answer.ms).toBeGreaterThanOrEqual(500);
    expect(answer.ms).toBeLessThan(5_000);
  });

  it('a client that trickles its body gets 408 problem+json at the request deadline', async () => {
    const token = await registry.token();
    const body = JSON.stringify(VALID_REGISTRATION);
    const head =
      `POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
      `Idempotency-Key: ${randomUUID()}\r\nContent-Length: ${body.length}\r\n\r\n`;
    // Headers at once, then one byte of body every 300 ms: never done within REQUEST_TIMEOUT_MS (1500).
    const answer = await raw(registry.url, [head, ...body.split('')], { gapMs: 300 });
    expect(answer.status).toBe(408);
    expect(answer.headers['content-type']).toBe('application/problem+json');
    expect(answer.body).not.toContain(token);
    expect(answer.ms).toBeLessThan(5_000);
    // Nothing was registered from the half-sent body.
    const list = await registry.request<{ data: unknown[] }>('GET', '/v1/webhooks', { token });
    expect(list.body.data).toEqual([]);
  });
});

describe('query strings', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ env: { LOG_LEVEL: 'trace' } });
  });
  afterAll(async () => {
    await registry.close();
  });

  it('never reach the log with their values: a token in the URL is logged as [redacted]', async () => {
    const token = await registry.token();
    const answer = await registry.request('GET', `/v1/webhooks?access_token=${token}&limit=5`, { token });
    expect(answer.status).toBe(400);
    const lines = registry.logs.filter((l) => l.includes(answer.headers.get('x-request-id')!));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain(token.slice(-20));
    expect(lines.join('\n')).toContain('/v1/webhooks?access_token=[redacted]&limit=[redacted]');
  });

  it('a secret in the query of a write is refused with 400 naming the parameter, and not logged', async () => {
    const token = await registry.token();
    const whsec = `whsec_${randomBytes(32).toString('base64url')}`;
    const answer = await registry.request<ProblemBody>('POST', `/v1/webhooks?secret=${whsec}`, {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(answer.body.errors).toEqual([{ pointer: '/query/secret', detail: 'is not a known query parameter' }]);
    expect(answer.text).not.toContain(whsec);
    expect(registry.logs.join('\n')).not.toContain(whsec);
    const list = await registry.request<{ data: unknown[] }>('GET', '/v1/webhooks', { token });
    expect(list.body.data).toEqual([]);
  });

  it('a token or secret sent as a parameter name is neither repeated nor logged, on routes with and without a query', async () => {
    const token = await registry.token();
    const whsec = `whsec_${randomBytes(24).toString('base64url')}`;
    const strict = await registry.request<ProblemBody>('GET', `/v1/webhooks?limit=5&${token}`, { token });
    const none = await registry.request<ProblemBody>('POST', `/v1/webhooks?${whsec}`, {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': randomUUID() },
    });
    const inBody = await registry.request<ProblemBody>('POST', '/v1/webhooks', {
      token,
      body: { ...VALID_REGISTRATION, [whsec]: true },
      headers: { 'idempotency-key': randomUUID() },
    });
    for (const answer of [strict, none, inBody]) {
      expect(answer.status).toBe(400);
      expect(answer.text).not.toContain(token.slice(-20));
      expect(answer.text).not.toContain(whsec);
    }
    expect(strict.body.errors?.map((e) => e.pointer)).toEqual(['/query']);
    expect(none.body.errors).toEqual([{ pointer: '/query', detail: 'is not a known query parameter' }]);
    expect(inBody.body.errors?.map((e) => e.pointer)).toEqual(['']);
    const logged = registry.logs.join('\n');
    expect(logged).not.toContain(token.slice(-20));
    expect(logged).not.toContain(whsec);
  });

  it('probes, the API document, /docs and unknown paths are not API operations: their queries are left alone', async () => {
    expect((await registry.request('GET', '/health/live?probe=1')).status).toBe(200);
    expect((await registry.request('GET', '/openapi.json?v=1')).status).toBe(200);
    expect((await registry.request('GET', '/metrics?name[]=x')).status).toBe(200);
    expect((await registry.request('GET', '/docs?url=/openapi.json')).status).toBeLessThan(400);
    expect((await registry.request('GET', '/nope?x=1')).status).toBe(404);
  });

  it('an unknown parameter is refused on every kind of operation, a declared one is still accepted', async () => {
    const token = await registry.token();
    const created = await registry.request<{ id: string }>('POST', '/v1/webhooks', {
      token,
      body: VALID_REGISTRATION,
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    for (const [method, path] of [
      ['GET', `/v1/webhooks/${id}?x=1`],
      ['DELETE', `/v1/webhooks/${id}?force=true`],
      ['GET', '/v1/event-types?q=kyc'],
      ['GET', '/v1/webhooks?limit=5&bogus=1'],
    ] as const) {
      const answer = await registry.request<ProblemBody>(method, path, { token, headers: { 'idempotency-key': randomUUID() } });
      expect(answer.status, `${method} ${path}`).toBe(400);
      expect(answer.body.errors?.[0]?.pointer, `${method} ${path}`).toMatch(/^\/query\//);
    }
    // Nothing was deleted by the refused DELETE.
    expect((await registry.request('GET', `/v1/webhooks/${id}`, { token })).status).toBe(200);
    expect((await registry.request('GET', '/v1/webhooks?limit=5', { token })).status).toBe(200);
  });
});
