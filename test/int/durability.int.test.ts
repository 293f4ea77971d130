// A server process killed with SIGKILL in the middle of a load of
// registrations: after a restart on the same data folder every registration
// whose 201 the client received is readable, and the log holds nothing
// half-written (contiguous revisions, parseable JSON, intact hash chains,
// SQLite integrity_check ok).
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/domain/hashChain.ts';
import { startOAuthServer, type OAuthServer } from '../support/oauthServer.ts';
import { DEFAULT_CLIENTS, PARTNER_A, registryEnv, tempDataDir, SQLITE_ENGINES } from '../support/registry.ts';
import { freePort } from '../support/ports.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOTAL = 300;
const CONCURRENCY = 20;
const KILL_AFTER = 100;
const LOAD_DEADLINE_MS = 30_000;
const START_DEADLINE_MS = 20_000;

interface Registered {
  id: string;
  url: string;
  events: string[];
  createdAt: string;
  secret: string;
}

interface Acknowledged {
  key: string;
  body: { url: string; events: string[]; partnerIds: string[] };
  response: Registered;
}

interface ServerProcess {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startChild(oauth: OAuthServer, dataDir: string): Promise<ServerProcess> {
  const port = await freePort();
  const env = {
    PATH: process.env.PATH ?? '',
    ...registryEnv(oauth, dataDir, { ...SQLITE_ENGINES, PORT: String(port), LOG_LEVEL: 'warn' }),
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderr.length < 100_000) stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_DEADLINE_MS;
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  for (;;) {
    if (exitedEarly) throw new Error(`server exited during start-up:\n${stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not listen within ${START_DEADLINE_MS} ms:\n${stderr}`);
    }
    try {
      const res = await fetch(`${url}/v1/event-types`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 401) break; // listening and verifying tokens
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return { child, url, stderr: () => stderr, exited };
}

async function stopChild(server: ServerProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill(signal);
  const timeout = sleep(15_000).then(() => 'timeout' as const);
  if ((await Promise.race([server.exited, timeout])) === 'timeout') {
    server.child.kill('SIGKILL');
    await server.exited;
  }
}

interface StoredEvent {
  revision: number;
  type: string;
  data: unknown;
  metadata: { previousHash: string | null; hash: string };
}

/**
 * Opens the event log read-only and checks it is whole: SQLite integrity_check,
 * every event's JSON parses, revisions contiguous from 0 in every stream, each
 * stream starts with WebhookRegistered and its hash chain verifies.
 */
function inspectLog(dataDir: string): Map<string, StoredEvent[]> {
  const db = new Database(path.join(dataDir, 'events.sqlite'), { readonly: true, fileMustExist: true });
  const streams = new Map<string, StoredEvent[]>();
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const rows = db
      .prepare<[], { stream_id: string; revision: number; type: string; data: string; metadata: string; position: number }>(
        'SELECT stream_id, revision, type, data, metadata, position FROM events ORDER BY stream_id, revision',
      )
      .all();
    for (const row of rows) {
      const list = streams.get(row.stream_id) ?? [];
      list.push({
        revision: row.revision,
        type: row.type,
        data: JSON.parse(row.data) as unknown,
        metadata: JSON.parse(row.metadata) as StoredEvent['metadata'],
      });
      streams.set(row.stream_id, list);
    }
    expect(new Set(rows.map((r) => r.position)).size).toBe(rows.length);
  } finally {
    db.close();
  }
  for (const [streamId, events] of streams) {
    expect(events.map((e) => e.revision), streamId).toEqual(events.map((_, i) => i));
    expect(events[0]!.type, streamId).toBe('WebhookRegistered');
    expect(verifyChain(events), streamId).toBeUndefined();
  }
  return streams;
}

/** Every webhook id the list endpoint shows, across pages (bounded). */
async function listIds(baseUrl: string, token: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 20; page++) {
    const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const res = await fetch(`${baseUrl}/v1/webhooks?limit=100${query}`, { headers: { authorization: `Bearer ${token}` } });
    if (res.status !== 200) throw new Error(`list: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { data: { id: string }[]; nextCursor: string | null };
    ids.push(...body.data.map((w) => w.id));
    cursor = body.nextCursor;
    if (cursor === null) break;
  }
  return ids;
}

function expectAcknowledgedIn(streams: Map<string, StoredEvent[]>, acknowledged: readonly Acknowledged[]): void {
  for (const a of acknowledged) {
    const events = streams.get(`webhook-${a.response.id}`);
    expect(events, `acknowledged ${a.key} is in the log`).toHaveLength(1);
    expect((events![0]!.data as { url: string }).url).toBe(a.body.url);
  }
}

describe('durability across SIGKILL', () => {
  const dataDir = tempDataDir();
  let oauth: OAuthServer;
  let first: ServerProcess | undefined;
  let second: ServerProcess | undefined;

  beforeAll(async () => {
    oauth = await startOAuthServer({ clients: DEFAULT_CLIENTS });
  });
  afterAll(async () => {
    await stopChild(first, 'SIGKILL');
    await stopChild(second, 'SIGKILL');
    await oauth.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('every acknowledged registration survives, and the log is intact', { timeout: 120_000 }, async () => {
    const token = await oauth.getToken('acme-integration');
    const runId = randomUUID();
    first = await startChild(oauth, dataDir);
    const server = first;

    // ---- load, then SIGKILL in the middle ----------------------------------
    const acknowledged: Acknowledged[] = [];
    const otherStatuses: number[] = [];
    let next = 0;
    let killed = false;
    const loadDeadline = Date.now() + LOAD_DEADLINE_MS;
    const worker = async () => {
      while (!killed && next < TOTAL && Date.now() < loadDeadline) {
        const i = next++;
        const key = `durability-${runId}-${i}`;
        const body = { url: `https://hooks.example.com/durability/${i}`, events: ['kyc.*'], partnerIds: [PARTNER_A] };
        let res: Response;
        try {
          res = await fetch(`${server.url}/v1/webhooks`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': key },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(10_000),
          });
        } catch {
          return; // the server is gone
        }
        let text: string;
        try {
          text = await res.text();
        } catch {
          return; // cut off mid-response: not acknowledged
        }
        if (res.status !== 201) {
          otherStatuses.push(res.status);
          continue;
        }
        acknowledged.push({ key, body, response: JSON.parse(text) as Registered });
        if (acknowledged.length >= KILL_AFTER && !killed) {
          killed = true;
          server.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const exit = await server.exited;

    expect(otherStatuses, server.stderr()).toEqual([]);
    expect(killed, 'the load reached the kill point').toBe(true);
    expect(exit.signal).toBe('SIGKILL');
    expect(acknowledged.length).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(acknowledged.length).toBeLessThan(TOTAL); // killed in the middle, not after the end

    // ---- the files exactly as the crash left them: whole, and holding every acknowledged registration
    expectAcknowledgedIn(inspectLog(dataDir), acknowledged);

    // ---- restart on the same data folder -----------------------------------
    second = await startChild(oauth, dataDir);
    const restarted = second;
    const get = async (id: string) => {
      const res = await fetch(`${restarted.url}/v1/webhooks/${id}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, body: (await res.json()) as Registered };
    };

    const queue = [...acknowledged];
    const check = async () => {
      for (let a = queue.shift(); a !== undefined; a = queue.shift()) {
        const got = await get(a.response.id);
        expect(got.status, `GET ${a.response.id} (key ${a.key})`).toBe(200);
        expect(got.body).toMatchObject({ id: a.response.id, url: a.body.url, createdAt: a.response.createdAt });
        // a retry of the acknowledged request replays the very same answer, secret included
        const replay = await fetch(`${restarted.url}/v1/webhooks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': a.key },
          body: JSON.stringify(a.body),
        });
        expect(replay.status).toBe(201);
        expect(replay.headers.get('idempotent-replayed')).toBe('true');
        expect(await replay.json()).toEqual(a.response);
      }
    };
    await Promise.all(Array.from({ length: 10 }, check));

    await stopChild(restarted, 'SIGTERM');
    expect(restarted.child.exitCode, restarted.stderr()).toBe(0);

    // ---- the log holds nothing half-written, and holds every acknowledged registration
    const streams = inspectLog(dataDir);
    expectAcknowledgedIn(streams, acknowledged);
    // nothing beyond what was sent: at most one stream per request that was started
    expect(streams.size).toBeGreaterThanOrEqual(acknowledged.length);
    expect(streams.size).toBeLessThanOrEqual(Math.min(TOTAL, next));

    // ---- a third start: the read model (rebuilt from the log after the crash) lists every webhook in the log
    second = await startChild(oauth, dataDir);
    const third = second;
    const deadline = Date.now() + 10_000;
    let ids: string[] = [];
    const logIds = [...streams.keys()].map((s) => s.slice('webhook-'.length)).sort();
    for (;;) {
      ids = (await listIds(third.url, token)).sort();
      if (ids.length === logIds.length || Date.now() > deadline) break;
      await sleep(200);
    }
    expect(ids).toEqual(logIds);
    await stopChild(third, 'SIGTERM');
  });
});
