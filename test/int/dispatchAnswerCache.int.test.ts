// Dispatch answers kept in memory (src/dispatch/answerCache.ts) on the
// embedded engine: a repeated lookup is answered from the kept text, and a
// kept answer never outlives a change — here one made by another process (a
// `project` process writing the read-model file while this server has
// PROJECTOR=off), which only the file itself can tell the server about.
// The changes made by this server's own projector, and secrets leaving their
// grace period, are covered by the lifecycle, rotation and replica-oracle
// suites, which ask the same route after every step.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCli, type CliRun } from '../support/cli.ts';
import { PARTNER_A, registryEnv, SQLITE_ENGINES, startRegistry, VALID_REGISTRATION, type TestRegistry } from '../support/registry.ts';
import { DispatcherApi, settleProjection, WebhookApi } from '../support/webhookApi.ts';

const EVENT = 'kyc.verification.approved';

async function answerSources(registry: TestRegistry): Promise<{ kept: number; read: number }> {
  const text = (await registry.request('GET', '/metrics')).text;
  const count = (source: string): number =>
    Number(new RegExp(`^webhook_registry_dispatch_answers_total\\{source="${source}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { kept: count('kept'), read: count('read') };
}

describe('kept dispatch answers (embedded engine)', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;
  let dispatcher: DispatcherApi;

  beforeAll(async () => {
    registry = await startRegistry({ env: SQLITE_ENGINES });
    acme = await WebhookApi.as(registry, 'acme-integration');
    dispatcher = await DispatcherApi.as(registry);
  });

  afterAll(async () => {
    await registry.close();
  });

  it('answers a repeated lookup from the kept text, byte for byte, with the same headers', async () => {
    const webhook = await acme.registered({ ...VALID_REGISTRATION, url: 'https://kept.example.com/h' });
    await settleProjection(registry);
    const before = await answerSources(registry);
    const first = await dispatcher.targets(EVENT, PARTNER_A);
    const second = await dispatcher.targets(EVENT, PARTNER_A.toUpperCase());
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.text).toBe(first.text);
    expect(first.body.data.map((t: { id: string }) => t.id)).toContain(webhook.id);
    for (const response of [first, second]) {
      expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(response.headers.get('cache-control')).toBe('no-store');
    }
    const after = await answerSources(registry);
    expect(after.read - before.read).toBe(1);
    expect(after.kept - before.kept).toBe(1);
  });

  it('reads afresh after a write, and keeps the new answer', async () => {
    const webhook = await acme.registered({ ...VALID_REGISTRATION, url: 'https://paused-later.example.com/h' });
    await settleProjection(registry);
    expect((await dispatcher.targetsOk(EVENT, PARTNER_A)).map((t) => t.id)).toContain(webhook.id);
    await acme.patched(webhook.id, { status: 'PAUSED' });
    await settleProjection(registry);
    const before = await answerSources(registry);
    expect((await dispatcher.targetsOk(EVENT, PARTNER_A)).map((t) => t.id)).not.toContain(webhook.id);
    expect((await dispatcher.targetsOk(EVENT, PARTNER_A)).map((t) => t.id)).not.toContain(webhook.id);
    const after = await answerSources(registry);
    expect([after.read - before.read, after.kept - before.kept]).toEqual([1, 1]);
  });
});

describe('kept dispatch answers with the projector in another process', () => {
  let registry: TestRegistry;
  let projector: CliRun | undefined;

  beforeAll(async () => {
    registry = await startRegistry({ env: { ...SQLITE_ENGINES, PROJECTOR: 'off' } });
  });

  afterEach(async () => {
    projector?.child.kill('SIGTERM');
    await projector?.done;
    projector = undefined;
  });

  afterAll(async () => {
    await registry.close();
  });

  it('a kept answer gives way to what the other process wrote to the file', async () => {
    const acme = await WebhookApi.as(registry, 'acme-integration');
    const dispatcher = await DispatcherApi.as(registry);
    projector = startCli(['project'], registryEnv(registry.oauth, registry.dataDir, { ...SQLITE_ENGINES, PROJECTOR: 'off' }), 60_000);

    // Asked again and again until the other process has projected it: the
    // answers kept meanwhile (without it) must give way once it is in the file.
    const seen = async (id: string): Promise<boolean> => (await dispatcher.targetsOk(EVENT, PARTNER_A)).some((t) => t.id === id);
    for (const url of ['https://first.example.com/h', 'https://second.example.com/h']) {
      const webhook = await acme.registered({ ...VALID_REGISTRATION, url });
      const deadline = Date.now() + 20_000;
      while (!(await seen(webhook.id)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(await seen(webhook.id), url).toBe(true);
    }
    expect((await answerSources(registry)).kept).toBeGreaterThan(0);
  });
});
