// Graceful shutdown of the real process: `node --import tsx src/main.ts`
// serving a steady stream of registrations gets SIGTERM. It must stop
// accepting, finish what is in flight, flush the last commit batch, stop the
// projector at a checkpoint, close the stores and exit 0 — and the log must
// hold exactly what the clients were told: every 201 is in it, and every
// registration in it is one a client sent (answered 201, or still in flight
// when the connection went away). Nothing refused is in it.
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOAuthServer, type OAuthServer } from '../support/oauthServer.ts';
import { DEFAULT_CLIENTS, registryEnv, startRegistry, tempDataDir, VALID_REGISTRATION, SQLITE_ENGINES } from '../support/registry.ts';
import { freePort } from '../support/ports.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WORKERS = 8;
/** SIGTERM goes out once this many registrations have been acknowledged. */
const ACKED_BEFORE_SIGNAL = 60;
/** Upper bound on requests, whatever happens. */
const MAX_REQUESTS = 3000;

interface Outcome {
  readonly requestId: string;
  /** HTTP status, or 'no answer' when the connection failed before a response. */
  status: number | 'no answer' | 'pending';
  webhookId?: string;
  sentAfterSignal: boolean;
}

describe('SIGTERM under load', () => {
  let oauth: OAuthServer;
  let dataDir: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    oauth = await startOAuthServer({ clients: DEFAULT_CLIENTS });
    dataDir = tempDataDir();
  });
  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await oauth?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('drains in-flight registrations, exits 0, and the log holds exactly the acknowledged ones', { timeout: 90_000 }, async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...registryEnv(oauth, dataDir, { ...SQLITE_ENGINES, PORT: String(port) }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once('exit', (code, signal) => resolve({ code, signal })),
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not start:\n${stderr}`)), 20_000);
      const check = () => {
        if (stderr.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stderr.on('data', check);
      void exited.then(({ code }) => reject(new Error(`the server exited with ${code} before listening:\n${stderr}`)));
    });
    const base = `http://127.0.0.1:${port}`;
    const token = await oauth.getToken('acme-integration');

    const outcomes: Outcome[] = [];
    let acked = 0;
    let signalled = false;
    let inFlightAtSignal = 0;
    let signalledAt = 0;

    const worker = async (): Promise<void> => {
      while (outcomes.length < MAX_REQUESTS) {
        const outcome: Outcome = { requestId: `shutdown-${randomUUID()}`, status: 'pending', sentAfterSignal: signalled };
        outcomes.push(outcome);
        try {
          const response = await fetch(`${base}/v1/webhooks`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': 'application/json',
              'idempotency-key': randomUUID(),
              'x-request-id': outcome.requestId,
            },
            body: JSON.stringify(VALID_REGISTRATION),
          });
          const body = (await response.json()) as { id?: string };
          outcome.status = response.status;
          if (response.status === 201) {
            outcome.webhookId = body.id!;
            acked += 1;
            if (acked === ACKED_BEFORE_SIGNAL && !signalled) {
              signalled = true;
              inFlightAtSignal = outcomes.filter((o) => o.status === 'pending').length;
              signalledAt = performance.now();
              proc.kill('SIGTERM');
            }
          } else {
            // 503 while draining (or anything else): this client stops.
            return;
          }
        } catch {
          outcome.status = 'no answer';
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    expect(signalled, `the load never reached ${ACKED_BEFORE_SIGNAL} registrations:\n${stderr}\n${stdout.slice(-4000)}`).toBe(true);
    const { code, signal } = await exited;
    const drainMs = performance.now() - signalledAt;
    child = undefined;

    expect({ code, signal }, `server output:\n${stderr}\n${stdout.slice(-4000)}`).toEqual({ code: 0, signal: null });
    expect(stdout).toContain('shutting down');
    expect(stdout).not.toContain('graceful shutdown timed out');
    expect(outcomes.length).toBeLessThan(MAX_REQUESTS);

    // The log, read from the file the child left behind.
    const db = new Database(path.join(dataDir, 'events.sqlite'), { readonly: true, fileMustExist: true });
    const rows = db
      .prepare<[], { data: string; metadata: string }>("SELECT data, metadata FROM events WHERE type = 'WebhookRegistered'")
      .all();
    db.close();
    const logged = new Map(
      rows.map((row) => {
        const data = JSON.parse(row.data) as { webhookId: string };
        const metadata = JSON.parse(row.metadata) as { requestId: string };
        return [metadata.requestId, data.webhookId] as const;
      }),
    );

    const byRequest = new Map(outcomes.map((o) => [o.requestId, o]));
    const created = outcomes.filter((o) => o.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(ACKED_BEFORE_SIGNAL);

    // Every 201 the clients saw is in the log, under its own request.
    for (const o of created) expect(logged.get(o.requestId), o.requestId).toBe(o.webhookId);
    // Every registration in the log is a request a client sent that was answered 201
    // or never answered (in flight when its connection went away) — nothing refused.
    for (const [requestId, webhookId] of logged) {
      const o = byRequest.get(requestId);
      expect(o, `unknown request ${requestId} in the log`).toBeDefined();
      expect([201, 'no answer'], `${requestId} answered ${String(o?.status)} but is in the log`).toContain(o!.status);
      if (o!.status === 201) expect(webhookId).toBe(o!.webhookId);
    }
    // Draining refused new work with 503 (open connections) or the port was closed (new ones).
    const refused = outcomes.filter((o) => o.status !== 201);
    expect(refused.length).toBeGreaterThan(0);
    for (const o of refused) expect([503, 'no answer']).toContain(o.status);
    expect(outcomes.some((o) => o.status === 'pending')).toBe(false);
    const unanswered = outcomes.filter((o) => o.status === 'no answer' && logged.has(o.requestId)).length;
    console.info(
      `shutdown: ${outcomes.length} requests, ${created.length} × 201 (${created.length - ACKED_BEFORE_SIGNAL} finished after SIGTERM, ` +
        `${inFlightAtSignal} in flight at the signal), ${refused.filter((o) => o.status === 503).length} × 503, ` +
        `${refused.filter((o) => o.status === 'no answer').length} unanswered (${unanswered} of them logged); exit ${drainMs.toFixed(0)} ms after SIGTERM`,
    );

    // Restarted over the same files, the registry serves every acknowledged
    // webhook, and its read model (stopped at a checkpoint) catches up with the log.
    const restarted = await startRegistry({ oauth, dataDir, env: SQLITE_ENGINES });
    try {
      await expect
        .poll(async () => {
          const ready = await restarted.request<{ checks: { projector: { checkpoint: string | null; head: string | null } } }>(
            'GET',
            '/health/ready',
          );
          const projector = ready.body.checks.projector;
          return ready.status === 200 && projector.checkpoint === projector.head;
        })
        .toBe(true);
      const listed = new Set<string>();
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
        const page = await restarted.request<{ data: { id: string }[]; nextCursor: string | null }>('GET', `/v1/webhooks?limit=100${query}`, {
          token,
        });
        expect(page.status).toBe(200);
        for (const w of page.body.data) listed.add(w.id);
        cursor = page.body.nextCursor;
      } while (cursor !== null);
      expect([...listed].sort()).toEqual([...logged.values()].sort());
    } finally {
      await restarted.close();
    }
  });
});

describe('a connection busy when the server starts draining', () => {
  it('gets its in-flight answer with Connection: close; a request pipelined behind it is refused unexecuted', async () => {
    // The request in flight waits for the identity provider's keys (which hang
    // until JWKS_TIMEOUT_MS); a registration is pipelined on the same, busy
    // connection after close() has begun.
    const registry = await startRegistry({ env: { ...SQLITE_ENGINES, JWKS_TIMEOUT_MS: '400' } });
    try {
      const token = await registry.token();
      registry.oauth.setJwksMode('hang');
      const { port } = new URL(registry.url);
      const socket = connect(Number(port), '127.0.0.1');
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
      const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.write(`GET /v1/event-types HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nx-request-id: in-flight\r\n\r\n`);
      await expect.poll(() => registry.oauth.jwksRequests).toBeGreaterThan(0);

      const stopping = registry.stop();
      // The listener closes right after the drain has begun.
      await expect.poll(() => registry.server.app.server.listening).toBe(false);
      const body = JSON.stringify(VALID_REGISTRATION);
      socket.write(
        `POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
          `Idempotency-Key: ${randomUUID()}\r\nx-request-id: late\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      await ended;
      await stopping;

      // One answer on the connection: the in-flight request's (a 503 because the
      // keys could not be fetched — never a 401), telling the client to reconnect.
      expect(received.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(received).toMatch(/^HTTP\/1\.1 503 /);
      expect(received).toMatch(/x-request-id: in-flight/i);
      expect(received).toMatch(/connection: close/i);
      // The pipelined registration was refused before authentication and left nothing in the log.
      const late = registry.logs.map((l) => JSON.parse(l) as { reqId?: string; msg?: string }).filter((l) => l.reqId === 'late');
      expect(late.map((l) => l.msg)).toContain('refused: the server is shutting down');
      const db = new Database(path.join(registry.dataDir, 'events.sqlite'), { readonly: true, fileMustExist: true });
      expect(db.prepare('SELECT count(*) AS n FROM events').get()).toEqual({ n: 0 });
      db.close();
    } finally {
      await registry.close();
    }
  });
});
