// The multi-process deployment, for real (issue 12 item 5): three API
// processes (PROJECTOR=off) and one projector process on one PostgreSQL
// database, driven from the test across all three.
//  - The same Idempotency-Key sent to the three replicas at the same moment
//    makes exactly one webhook, and all three answers are the same body.
//  - A list on replica B right after a write answered by replica A shows it.
//  - SIGKILL one API process and the projector in the middle of a load of
//    registrations and rotations: once the projector is restarted, every 201
//    received is readable through every surviving replica, and the read model
//    equals the log folded afresh (no event applied twice, none missing), its
//    checkpoint at the log's head.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { nextView } from '../../src/projections/webhookView.ts';
import { closeCore, openStores, type Stores } from '../../src/runtime.ts';
import { encodePosition, webhookStreamName } from '../../src/stores/eventStore.ts';
import type { WebhookView } from '../../src/stores/readModel.ts';
import { REPO_ROOT } from '../support/cli.ts';
import { startOAuthServer, type OAuthServer } from '../support/oauthServer.ts';
import { createTestDatabase, type TestDatabase } from '../support/postgres.ts';
import { DEFAULT_CLIENTS, PARTNER_A, registryEnv, tempDataDir, VALID_REGISTRATION } from '../support/registry.ts';
import { freePort } from '../support/ports.ts';

const START_DEADLINE_MS = 30_000;
const TOTAL = 240;
const CONCURRENCY = 12;
const KILL_AFTER = 80;

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string | undefined;
  readonly exited: Promise<unknown>;
  output(): string;
}

interface Registered {
  id: string;
  url: string;
  events: string[];
  partnerIds?: string[];
  secret: string;
  createdAt: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('three API processes and a projector process on one PostgreSQL', () => {
  let database: TestDatabase;
  let oauth: OAuthServer;
  let env: Record<string, string>;
  const dataDirs: string[] = [];
  const procs: Proc[] = [];
  let replicas: Proc[];
  let projector: Proc;
  let token: string;

  function spawnProc(name: string, args: string[], port?: number): Proc {
    const dataDir = tempDataDir();
    dataDirs.push(dataDir);
    const childEnv = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ...env,
      DATA_DIR: dataDir,
      ...(port !== undefined ? { PORT: String(port) } : {}),
    };
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      cwd: REPO_ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: string): void => {
      if (output.length < 200_000) output += chunk;
    };
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', keep);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const proc: Proc = { name, child, url: port === undefined ? undefined : `http://127.0.0.1:${port}`, exited, output: () => output };
    procs.push(proc);
    return proc;
  }

  async function startReplica(name: string): Promise<Proc> {
    const proc = spawnProc(name, ['src/main.ts'], await freePort());
    const deadline = Date.now() + START_DEADLINE_MS;
    for (;;) {
      if (proc.child.exitCode !== null) throw new Error(`${name} exited during start-up:\n${proc.output()}`);
      if (Date.now() > deadline) throw new Error(`${name} did not listen within ${START_DEADLINE_MS} ms:\n${proc.output()}`);
      try {
        const res = await fetch(`${proc.url}/health/live`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return proc;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
  }

  async function startProjector(): Promise<Proc> {
    const proc = spawnProc('projector', ['src/cli/main.ts', 'project']);
    const deadline = Date.now() + START_DEADLINE_MS;
    while (!proc.output().includes('projector running')) {
      if (proc.child.exitCode !== null) throw new Error(`the projector exited during start-up:\n${proc.output()}`);
      if (Date.now() > deadline) throw new Error(`the projector did not start within ${START_DEADLINE_MS} ms:\n${proc.output()}`);
      await sleep(50);
    }
    return proc;
  }

  async function kill(proc: Proc): Promise<void> {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
    await proc.exited;
  }

  async function call(
    replica: Proc,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: unknown; headers: Headers }> {
    const res = await fetch(`${replica.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown), headers: res.headers };
  }

  async function listIds(replica: Proc): Promise<Set<string>> {
    const ids = new Set<string>();
    let cursor: string | null = null;
    do {
      const page = await call(replica, 'GET', `/v1/webhooks?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      const body = page.body as { data: { id: string }[]; nextCursor: string | null };
      for (const w of body.data) ids.add(w.id);
      cursor = body.nextCursor;
    } while (cursor);
    return ids;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    oauth = await startOAuthServer({ clients: DEFAULT_CLIENTS });
    env = registryEnv(oauth, tempDataDir(), {
      POSTGRES_URL: database.url,
      EVENTSTORE_URL: '',
      MONGODB_URL: '',
      PROJECTOR: 'off',
      LOG_LEVEL: 'info',
      // One key set for every process: secrets, cursors and fingerprints must agree across replicas.
      SECRET_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    });
    dataDirs.push(env.DATA_DIR!);
    replicas = await Promise.all(['api-a', 'api-b', 'api-c'].map((name) => startReplica(name)));
    projector = await startProjector();
    token = await oauth.getToken('acme-integration');
  }, 120_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => kill(p)));
    await oauth?.stop();
    await database?.drop();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  it('the same Idempotency-Key sent to the three replicas at once makes one webhook, answered identically', async () => {
    for (let round = 0; round < 10; round++) {
      const key = randomUUID();
      const body = { ...VALID_REGISTRATION, url: `https://hooks.example.com/same-key/${round}` };
      const answers = await Promise.all(replicas.map((r) => call(r, 'POST', '/v1/webhooks', body, { 'idempotency-key': key })));
      expect(answers.map((a) => a.status)).toEqual([201, 201, 201]);
      expect(answers.filter((a) => a.headers.get('idempotent-replayed') !== 'true')).toHaveLength(1);
      expect(answers[1]!.body).toEqual(answers[0]!.body);
      expect(answers[2]!.body).toEqual(answers[0]!.body);
      // One stream with one event: the log holds one webhook for the key.
      const history = await call(replicas[round % 3]!, 'GET', `/v1/webhooks/${(answers[0]!.body as Registered).id}/history`);
      expect((history.body as { data: { type: string }[] }).data.map((e) => e.type)).toEqual(['WebhookRegistered']);
    }
  });

  it('a list on replica B right after a write answered by replica A shows it', async () => {
    for (let i = 0; i < 10; i++) {
      const [writer, reader] = [replicas[i % 3]!, replicas[(i + 1) % 3]!];
      const created = await call(writer, 'POST', '/v1/webhooks', { ...VALID_REGISTRATION, url: `https://hooks.example.com/ryw/${i}` }, {
        'idempotency-key': randomUUID(),
      });
      expect(created.status).toBe(201);
      const id = (created.body as Registered).id;
      expect((await listIds(reader)).has(id), `${reader.name} lists the webhook ${writer.name} just registered`).toBe(true);
      const paused = await call(writer, 'PATCH', `/v1/webhooks/${id}`, { status: 'PAUSED' }, { 'idempotency-key': randomUUID() });
      expect(paused.status).toBe(200);
      const listed = await call(reader, 'GET', '/v1/webhooks?status=PAUSED&limit=100');
      expect((listed.body as { data: { id: string }[] }).data.map((w) => w.id)).toContain(id);
    }
  });

  it(
    'SIGKILL of one API process and the projector mid-load loses no acknowledged write and projects each event once',
    { timeout: 180_000 },
    async () => {
      const acknowledged = new Map<string, Registered>();
      const rotated = new Set<string>();
      let attempts = 0;
      let killed = false;
      let killing: Promise<void> | undefined;
      const victim = replicas[2]!;
      const alive = (): Proc[] => (killed ? replicas.filter((r) => r !== victim) : replicas);

      const worker = async (w: number): Promise<void> => {
        for (;;) {
          const n = attempts++;
          if (n >= TOTAL) return;
          const targets = alive();
          const replica = targets[n % targets.length]!;
          const body = {
            url: `https://hooks.example.com/load/${n}`,
            events: ['kyc.*', 'compliance.case.opened'],
            partnerIds: [PARTNER_A],
          };
          try {
            const created = await call(replica, 'POST', '/v1/webhooks', body, { 'idempotency-key': `load-${n}` });
            if (created.status !== 201) continue; // refused or cut off: not acknowledged
            const registered = created.body as Registered;
            acknowledged.set(registered.id, registered);
            // Every fourth webhook gets a rotation through another replica: an event whose double application would show.
            if (n % 4 === w % 4) {
              const other = alive()[(n + 1) % alive().length]!;
              const rotation = await call(other, 'POST', `/v1/webhooks/${registered.id}/secret/rotate`, {}, {
                'idempotency-key': `rotate-${n}`,
              });
              if (rotation.status === 200) rotated.add(registered.id);
            }
          } catch {
            // The connection to a killed process broke: an unknown outcome, never counted as acknowledged.
          }
          if (!killed && acknowledged.size >= KILL_AFTER) {
            killed = true;
            killing = Promise.all([kill(victim), kill(projector)]).then(() => undefined);
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
      await killing;
      expect(killed).toBe(true);
      expect(acknowledged.size).toBeGreaterThan(KILL_AFTER);
      expect(rotated.size).toBeGreaterThan(0);

      projector = await startProjector();
      const survivors = replicas.filter((r) => r !== victim);

      // Every acknowledged registration is readable through every survivor: single reads from the log...
      for (const replica of survivors) {
        for (const [id, registered] of acknowledged) {
          const got = await call(replica, 'GET', `/v1/webhooks/${id}`);
          expect(got.status, `${replica.name} GET ${id}`).toBe(200);
          expect(got.body).toMatchObject({ id, url: registered.url, createdAt: registered.createdAt });
        }
      }
      // ... and lists from the read model the restarted projector keeps (they wait for the log's head).
      for (const replica of survivors) {
        const listed = await listIds(replica);
        for (const id of acknowledged.keys()) expect(listed.has(id), `${replica.name} lists ${id}`).toBe(true);
      }

      // The read model equals the log folded afresh: nothing applied twice, nothing skipped.
      const config = loadConfig({ ...env, DATA_DIR: tempDataDir() });
      dataDirs.push(config.dataDir);
      const stores: Stores = await openStores(config);
      try {
        const head = await stores.store.headPosition();
        await expect.poll(() => stores.readModel.checkpoint(), { timeout: 20_000 }).toBe(encodePosition(head!));
        const live = new Map<string, WebhookView>();
        for await (const view of stores.readModel.allWebhooks()) live.set(view.id, view);
        for (const id of acknowledged.keys()) expect(live.has(id)).toBe(true);
        for (const [id, view] of live) {
          let expected: WebhookView | null = null;
          for (const event of await stores.store.readStream(webhookStreamName(id))) {
            const change = nextView(expected, event);
            if (change.kind === 'apply') expected = change.view;
          }
          expect(view, `the read model's ${id}`).toEqual(expected);
        }
        for (const id of rotated) expect(live.get(id)!.previousSecrets).toHaveLength(1);
      } finally {
        await closeCore(stores);
      }
    },
  );
});
