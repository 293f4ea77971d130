// createDispatchReplica against a real registry: after a random (seeded)
// sequence of every kind of write, the replica's answers equal
// GET /internal/v1/dispatch-targets for every catalog type × partner, secrets
// included (the registry is the oracle). It survives a registry restart
// (resuming, or re-bootstrapping on 410), a server process killed with
// SIGKILL in the middle of a burst of writes, and a cut connection within one
// server life, with no change applied twice and none missed.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog.ts';
import { createDispatchReplica, type DispatchReplica } from '../../src/dispatcher.ts';
import { comparePositions, decodePosition } from '../../src/stores/eventStore.ts';
import { PARTNER_A, PARTNER_B, PARTNER_C, startRegistry, tempDataDir, type TestRegistry } from '../support/registry.ts';
import { clientsWith, DispatcherApi, PARTNER_D, PARTNER_UNKNOWN, settleProjection, TestClock, WebhookApi } from '../support/webhookApi.ts';
import { seededRandom } from '../support/openapiDocument.ts';
import { REPO_ROOT } from '../support/cli.ts';

const CATALOG = loadCatalog('catalog/event-types.json').names;
const PARTNERS = [PARTNER_A, PARTNER_B, PARTNER_C, PARTNER_D, PARTNER_UNKNOWN];
const PATTERNS = ['kyc.*', 'kyc.verification.*', 'kyc.document.uploaded', 'compliance.*', 'compliance.case.opened', 'self_service_invitation.*'];
const CLIENTS = clientsWith([
  { clientId: 'acme-narrow', clientSecret: 'narrow-secret', orgId: 'acme', partnerIds: [PARTNER_A], scopes: ['webhooks:read', 'webhooks:write'] },
  {
    clientId: 'initech-integration',
    clientSecret: 'initech-secret',
    orgId: 'initech',
    partnerIds: [PARTNER_A, PARTNER_C, PARTNER_D],
    scopes: ['webhooks:read', 'webhooks:write'],
  },
]);
const WRITERS: Record<string, { org: string; partners: string[] }> = {
  'acme-integration': { org: 'acme', partners: [PARTNER_A, PARTNER_B] },
  'acme-narrow': { org: 'acme', partners: [PARTNER_A] },
  'globex-integration': { org: 'globex', partners: [PARTNER_C] },
  'initech-integration': { org: 'initech', partners: [PARTNER_A, PARTNER_C, PARTNER_D] },
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Writes at random: registers, patches of every field, pauses, resumes, rotations, deletes and disables. */
class RandomWriter {
  readonly random: () => number;
  private readonly hooks: { id: string; by: string }[] = [];
  private apis = new Map<string, WebhookApi>();
  private dispatcher!: DispatcherApi;

  constructor(seed: number) {
    this.random = seededRandom(seed);
  }

  async attach(registry: TestRegistry): Promise<void> {
    this.apis = new Map();
    for (const client of Object.keys(WRITERS)) this.apis.set(client, await WebhookApi.as(registry, client));
    this.dispatcher = await DispatcherApi.as(registry);
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  private subset<T>(items: readonly T[]): T[] {
    const chosen = items.filter(() => this.random() < 0.5);
    return chosen.length > 0 ? chosen : [this.pick(items)];
  }

  async step(): Promise<void> {
    const roll = this.random();
    if (this.hooks.length < 3 || roll < 0.3) {
      const by = this.pick(Object.keys(WRITERS));
      const body: Record<string, unknown> = { url: `https://hooks.example.com/${randomUUID()}`, events: this.subset(PATTERNS) };
      if (this.random() < 0.5) body.partnerIds = this.subset(WRITERS[by]!.partners);
      const created = await this.apis.get(by)!.registered(body);
      this.hooks.push({ id: created.id, by });
      return;
    }
    const hook = this.pick(this.hooks);
    // A writer of the same organization, possibly with fewer authorized partners (acme-narrow).
    const sameOrg = Object.keys(WRITERS).filter((c) => WRITERS[c]!.org === WRITERS[hook.by]!.org);
    const by = this.pick(sameOrg);
    const api = this.apis.get(by)!;
    // Answers other than 2xx (a deleted webhook, partners the writer may not name) change nothing; that is fine here.
    if (roll < 0.45) await api.patch(hook.id, { url: `https://hooks.example.com/${randomUUID()}` });
    else if (roll < 0.55) await api.patch(hook.id, { events: this.subset(PATTERNS) });
    else if (roll < 0.65) await api.patch(hook.id, { partnerIds: this.random() < 0.3 ? null : this.subset(WRITERS[by]!.partners) });
    else if (roll < 0.75) await api.patch(hook.id, { status: this.random() < 0.5 ? 'PAUSED' : 'ACTIVE' });
    // Grace periods far from "now" (none, or an hour and more), so the registry and the replica agree on expiry.
    else if (roll < 0.87) await api.rotate(hook.id, { gracePeriodSeconds: this.pick([0, 3600, 86_400]) });
    else if (roll < 0.94) await this.dispatcher.disable(hook.id, 'too many failures');
    else await api.delete(hook.id);
  }
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits until the read model and the registry's feed hold the whole log, and the replica holds every change of the feed. */
async function settled(registry: TestRegistry, replica: DispatchReplica): Promise<void> {
  await settleProjection(registry);
  const head = await registry.server.core.store.headPosition();
  const feed = registry.server.changeFeed;
  if (head !== undefined) await until(() => comparePositions(feed.position!, head) >= 0, 'the feed to reach the head');
  const dispatcher = await registry.token('dispatcher');
  await until(async () => {
    if (replica.position === undefined) return false;
    const answer = await registry.request<{ changes: unknown[] }>('GET', `/internal/v1/changes?after=${replica.position}`, { token: dispatcher });
    return answer.status === 200 && answer.body.changes.length === 0;
  }, 'the replica to apply every change');
}

/** The oracle: every catalog type × partner, the replica against the registry's own lookup, compared whole. */
async function expectEqualToRegistry(registry: TestRegistry, replica: DispatchReplica): Promise<number> {
  const dispatcher = await DispatcherApi.as(registry);
  let targets = 0;
  for (const eventType of CATALOG) {
    for (const partner of PARTNERS) {
      const expected = await dispatcher.targetsOk(eventType, partner);
      expect(replica.targets(eventType, partner), `${eventType} × ${partner}`).toEqual(expected);
      targets += expected.length;
    }
  }
  return targets;
}

function replicaOf(registry: TestRegistry, baseUrl = registry.url): DispatchReplica {
  const replica = createDispatchReplica({
    baseUrl,
    getToken: () => registry.oauth.getToken('dispatcher'),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  cleanups.push(() => replica.close());
  return replica;
}

describe('createDispatchReplica', () => {
  it('equals /internal/v1/dispatch-targets for every catalog type × partner after random writes', { timeout: 120_000 }, async () => {
    const registry = await startRegistry({ clients: CLIENTS });
    cleanups.push(() => registry.close());
    const writer = new RandomWriter(Number(process.env.REPLICA_ORACLE_SEED ?? 14_2026));
    await writer.attach(registry);
    // Some history before the replica starts (its snapshot), the rest through the feed.
    for (let i = 0; i < 40; i++) await writer.step();
    await settleProjection(registry);
    const replica = replicaOf(registry);
    await replica.whenReady();
    expect(replica.ready).toBe(true);
    await expectEqualToRegistry(registry, replica);
    let compared = 0;
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 40; i++) await writer.step();
      await settled(registry, replica);
      compared += await expectEqualToRegistry(registry, replica);
    }
    // The oracle compared real answers, not empty lists.
    expect(compared).toBeGreaterThan(100);
    expect(replica.stats).toMatchObject({ bootstraps: 1, connections: 1, duplicatesSkipped: 0 });
    expect(replica.stats.changesApplied).toBeGreaterThan(50);
    expect(replica.lag).toBeLessThan(15_000);
  });

  it('drops a previous secret when its grace period ends, with no event, and leaves answers already given alone', { timeout: 60_000 }, async () => {
    const clock = new TestClock();
    const registry = await startRegistry({ clients: CLIENTS, now: clock.now });
    cleanups.push(() => registry.close());
    const acme = await WebhookApi.as(registry, 'acme-integration');
    const rotated = await acme.registered({ url: 'https://rotated.example.com/h', events: ['kyc.*'], partnerIds: [PARTNER_A] });
    const steady = await acme.registered({ url: 'https://steady.example.com/h', events: ['kyc.*'], partnerIds: [PARTNER_A] });
    expect((await acme.rotate(rotated.id, { gracePeriodSeconds: 60 })).status).toBe(200);
    await settleProjection(registry);
    const replica = createDispatchReplica({
      baseUrl: registry.url,
      getToken: () => registry.oauth.getToken('dispatcher'),
      now: () => clock.now().getTime(),
    });
    cleanups.push(() => replica.close());
    await replica.whenReady();

    const during = replica.targets('kyc.verification.approved', PARTNER_A);
    expect(during.find((t) => t.id === rotated.id)?.secrets).toHaveLength(2);
    await expectEqualToRegistry(registry, replica);
    // A target is the five fields of the contract, whatever the replica keeps beside them.
    for (const target of during) expect(Object.keys(target).sort()).toEqual(['events', 'id', 'organizationId', 'secrets', 'url']);
    expect(JSON.parse(JSON.stringify(during))).toEqual(await (await DispatcherApi.as(registry)).targetsOk('kyc.verification.approved', PARTNER_A));

    clock.advance(61_000);
    const after = replica.targets('kyc.verification.approved', PARTNER_A);
    expect(after.find((t) => t.id === rotated.id)?.secrets).toHaveLength(1);
    expect(after.find((t) => t.id === steady.id)).toBe(during.find((t) => t.id === steady.id));
    await expectEqualToRegistry(registry, replica);
    // The answer handed out before is as it was.
    expect(during.find((t) => t.id === rotated.id)?.secrets).toHaveLength(2);
    expect(replica.stats.changesApplied).toBe(0);
  });

  it('after a restart resumes from its position; after one it cannot resume from, re-bootstraps on 410', { timeout: 120_000 }, async () => {
    const dataDir = tempDataDir();
    let registry = await startRegistry({ clients: CLIENTS, dataDir });
    const oauth = registry.oauth;
    const port = new URL(registry.url).port;
    cleanups.push(async () => {
      await registry.close();
      await oauth.stop();
    });
    const writer = new RandomWriter(7);
    await writer.attach(registry);
    for (let i = 0; i < 20; i++) await writer.step();
    const replica = replicaOf(registry);
    await replica.whenReady();

    // Stop in the middle of a burst: the replica is somewhere in the feed when the server goes.
    for (let i = 0; i < 20; i++) await writer.step();
    await registry.stop();
    // The same data, the same address: the replica reconnects on its own.
    registry = await startRegistry({ clients: CLIENTS, dataDir, oauth, env: { PORT: port } });
    await writer.attach(registry);
    for (let i = 0; i < 20; i++) await writer.step();
    await settled(registry, replica);
    await expectEqualToRegistry(registry, replica);
    expect(replica.stats.connections).toBeGreaterThanOrEqual(2);
    const bootstraps = replica.stats.bootstraps;

    // Now the registry moves on while the replica cannot reach it (another address), then comes back:
    // its feed starts after the replica's position, so the replica gets 410 and takes the snapshot again.
    await registry.stop();
    const elsewhere = await startRegistry({ clients: CLIENTS, dataDir, oauth });
    await writer.attach(elsewhere);
    for (let i = 0; i < 20; i++) await writer.step();
    await settleProjection(elsewhere);
    await elsewhere.stop();
    registry = await startRegistry({ clients: CLIENTS, dataDir, oauth, env: { PORT: port } });
    // The follower learns its origin from the read model's checkpoint once it has started (a round trip on PostgreSQL).
    const feed = registry.server.changeFeed;
    await until(() => feed.started, 'the change feed to start');
    const stale = replica.position!;
    expect(comparePositions(decodePosition(stale), registry.server.changeFeed.origin!)).toBeLessThan(0);
    const gone = await registry.request('GET', `/internal/v1/changes?after=${stale}`, { token: await registry.token('dispatcher') });
    expect(gone.status).toBe(410);
    await writer.attach(registry);
    for (let i = 0; i < 10; i++) await writer.step();
    await until(() => replica.stats.bootstraps > bootstraps, 'the replica to take the snapshot again');
    await settled(registry, replica);
    await expectEqualToRegistry(registry, replica);
    expect(replica.stats.duplicatesSkipped).toBe(0);
  });

  it('follows a server process killed with SIGKILL mid-burst, then its restart, with no change twice and none missed', { timeout: 120_000 }, async () => {
    // Set up in-process (which also creates this folder's PostgreSQL database on that engine), then stop.
    const dataDir = tempDataDir();
    const first = await startRegistry({ clients: CLIENTS, dataDir });
    const oauth = first.oauth;
    const port = new URL(first.url).port;
    cleanups.push(() => oauth.stop());
    const writer = new RandomWriter(31);
    await writer.attach(first);
    for (let i = 0; i < 20; i++) await writer.step();
    const replica = replicaOf(first);
    await replica.whenReady();
    await first.stop();

    // The same data and address served by `npm start`'s entry in a process of its own. `first.request`
    // (and so the writer) goes to that address: it now reaches the child.
    const child = await startServerProcess({ ...first.env, PORT: port, LOG_LEVEL: 'warn' }, first.url);
    cleanups.push(() => child.kill());
    const applied = replica.stats.changesApplied;
    const burst = (async () => {
      for (;;) await writer.step(); // until the kill makes a request fail
    })().catch(() => undefined);
    await until(() => replica.stats.changesApplied >= applied + 10, 'the replica to follow the child');
    const connectionsToChild = replica.stats.connections;
    await child.kill(); // SIGKILL, writes and changes in flight
    await burst;

    const registry = await startRegistry({ clients: CLIENTS, dataDir, oauth, env: { PORT: port } });
    cleanups.push(() => registry.stop());
    await writer.attach(registry);
    for (let i = 0; i < 20; i++) await writer.step();
    await settled(registry, replica);
    expect(await expectEqualToRegistry(registry, replica)).toBeGreaterThan(0);
    // It reconnected on its own (resuming, or after a 410 from a snapshot taken again).
    expect(replica.stats.connections).toBeGreaterThan(connectionsToChild);
    expect(replica.stats.duplicatesSkipped).toBe(0);
  });

  it('resumes a cut connection within one server life with no change twice and none missed', { timeout: 60_000 }, async () => {
    const registry = await startRegistry({ clients: CLIENTS });
    cleanups.push(() => registry.close());
    const proxy = await startProxy(new URL(registry.url));
    cleanups.push(() => proxy.close());
    const writer = new RandomWriter(99);
    await writer.attach(registry);
    const replica = replicaOf(registry, proxy.url);
    await replica.whenReady();
    const start = replica.position!;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 15; i++) await writer.step();
      proxy.cut(); // mid-feed: changes may be on the wire
      for (let i = 0; i < 15; i++) await writer.step();
    }
    await settled(registry, replica);
    // Every change of the feed after the snapshot, counted from the registry itself.
    const dispatcher = await registry.token('dispatcher');
    let total = 0;
    let after = start;
    for (;;) {
      const page = await registry.request<{ changes: unknown[]; next: string }>('GET', `/internal/v1/changes?after=${after}&limit=1000`, {
        token: dispatcher,
      });
      expect(page.status).toBe(200);
      total += page.body.changes.length;
      if (page.body.changes.length === 0) break;
      after = page.body.next;
    }
    expect(replica.stats.connections).toBeGreaterThanOrEqual(4);
    expect(replica.stats.bootstraps).toBe(1);
    expect(replica.stats.changesApplied).toBe(total);
    expect(replica.stats.duplicatesSkipped).toBe(0);
    await expectEqualToRegistry(registry, replica);
  });
});

/** `src/main.ts` in a child process with `env`, once it answers at `url`; `kill()` sends SIGKILL and waits for the exit. */
async function startServerProcess(env: Readonly<Record<string, string>>, url: string): Promise<{ kill(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < 100_000) stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    await until(async () => {
      if (child.exitCode !== null) throw new Error('the server process exited during start-up');
      const live = await fetch(`${url}/health/live`).catch(() => undefined);
      await live?.arrayBuffer();
      return live?.status === 200;
    }, 'the server process to listen');
  } catch (error) {
    await kill();
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  return { kill };
}

/** A TCP proxy to the registry whose connections the test can cut. */
async function startProxy(target: URL): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client: Socket) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
