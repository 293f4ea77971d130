// The console's API client (console/src/api.ts) against a real HTTP server
// that answers as the registry does when it refuses a token: a 401 gets one
// renewal and one retry with the renewed token; a second 401 ends the
// session; no token is renewed when none was refused; problems become
// ApiError with the problem+json body.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Api, ApiError, type Session } from '../../console/src/api.ts';

/** Tokens the server accepts; requests it saw. */
let accepted = new Set<string>();
const seen: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
let server: Server;
let origin: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    if (!accepted.has(token)) {
      res.writeHead(401, { 'content-type': 'application/problem+json', 'www-authenticate': 'Bearer realm="webhooks", error="invalid_token"' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'The access token has expired.' }));
      return;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json', etag: '"1"' });
      res.end(JSON.stringify({ id: 'w1', url: 'https://a.example/h', events: ['kyc.*'], status: 'ACTIVE', secret: 'whsec_x' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  accepted = new Set();
  seen.length = 0;
});

/** A session whose renewal hands out `renewedTo` (or fails with undefined). */
function session(token: string, renewedTo: string | undefined) {
  const calls = { renew: 0, ended: 0 };
  let current = token;
  const s: Session = {
    token: () => current,
    renew: () => {
      calls.renew += 1;
      if (renewedTo === undefined) return Promise.resolve(false);
      current = renewedTo;
      return Promise.resolve(true);
    },
    ended: () => {
      calls.ended += 1;
    },
  };
  return { s, calls };
}

describe('console: the API client and a refused token', () => {
  it('renews once and sends the write again, with its Idempotency-Key and the new token', async () => {
    accepted.add('fresh');
    const { s, calls } = session('stale', 'fresh');
    const registered = await new Api(s, origin).register({ url: 'https://a.example/h', events: ['kyc.*'] }, 'key-1');
    expect(registered.secret).toBe('whsec_x');
    expect(calls).toEqual({ renew: 1, ended: 0 });
    expect(seen.map((r) => [r.method, r.headers.authorization, r.headers['idempotency-key']])).toEqual([
      ['POST', 'Bearer stale', 'key-1'],
      ['POST', 'Bearer fresh', 'key-1'],
    ]);
  });

  it('ends the session when the renewed token is refused too, and throws the problem', async () => {
    const { s, calls } = session('stale', 'also-refused');
    const failure = await new Api(s, origin).listWebhooks({}).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ApiError);
    expect((failure as ApiError).problem).toMatchObject({ status: 401, detail: 'The access token has expired.' });
    expect(calls).toEqual({ renew: 1, ended: 1 });
    expect(seen).toHaveLength(2);
  });

  it('ends the session without a second request when there is nothing to renew with', async () => {
    const { s, calls } = session('stale', undefined);
    await expect(new Api(s, origin).listWebhooks({})).rejects.toBeInstanceOf(ApiError);
    expect(calls).toEqual({ renew: 1, ended: 1 });
    expect(seen).toHaveLength(1);
  });

  it('renews nothing when the token is accepted', async () => {
    accepted.add('good');
    const { s, calls } = session('good', 'other');
    await new Api(s, origin).listWebhooks({ status: 'ACTIVE', event: '' });
    expect(calls).toEqual({ renew: 0, ended: 0 });
    // Empty filters are left out of the query.
    expect(seen.map((r) => r.url)).toEqual(['/v1/webhooks?status=ACTIVE']);
  });
});
