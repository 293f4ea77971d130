// The compliance command-line tools run as child processes against a real
// registry's data folder: `audit replay`, `audit verify`, `projections rebuild`.
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toAuditWebhook, type AuditWebhook } from '../../src/audit/replay.ts';
import type { VerifyReport } from '../../src/audit/verify.ts';
import { eventHash } from '../../src/domain/hashChain.ts';
import type { WebhookView } from '../../src/projections/webhookView.ts';
import { EVENTS_FILE, READ_MODEL_FILE } from '../../src/runtime.ts';
import { runCli, startCli, waitUntil } from '../support/cli.ts';
import {
  PARTNER_C,
  SQLITE_ENGINES,
  registryEnv,
  startRegistry,
  tempDataDir,
  VALID_REGISTRATION,
  type TestRegistry,
} from '../support/registry.ts';
import { DispatcherApi, settleProjection, TestClock, WebhookApi } from '../support/webhookApi.ts';

const env = (registry: TestRegistry, dataDir = registry.dataDir) =>
  registryEnv(registry.oauth, dataDir, SQLITE_ENGINES);

function jsonLines(text: string): AuditWebhook[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AuditWebhook);
}

async function readModelNow(registry: TestRegistry): Promise<WebhookView[]> {
  const out: WebhookView[] = [];
  for await (const view of registry.server.core.readModel.allWebhooks()) out.push(view);
  return out;
}

async function recordedState(registry: TestRegistry): Promise<AuditWebhook[]> {
  await settleProjection(registry);
  return (await readModelNow(registry)).map(toAuditWebhook);
}

describe('the command line', () => {
  it('answers --help for every compliance command without any configuration', async () => {
    const results = await Promise.all(
      [['audit', 'replay'], ['audit', 'verify'], ['projections', 'rebuild'], []].map((cmd) => runCli([...cmd, '--help'], {})),
    );
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(results[0]!.stdout).toMatch(/^usage: audit replay --as-of <instant> \[--org <id>\] \[--out <file>\]/);
    expect(results[1]!.stdout).toMatch(/^usage: audit verify/);
    expect(results[2]!.stdout).toMatch(/^usage: projections rebuild/);
    const top = results[3]!;
    expect(top.stdout).toContain('audit replay');
    expect(top.stdout).toContain('audit verify');
    expect(top.stdout).toContain('projections rebuild');
  });
});

describe('audit replay', () => {
  let registry: TestRegistry;
  let clock: TestClock;
  let instant: string;
  let recorded: AuditWebhook[];
  let outDir: string;

  beforeAll(async () => {
    clock = new TestClock(new Date(Date.now() - 2 * 3600_000));
    registry = await startRegistry({ now: clock.now, env: SQLITE_ENGINES });
    outDir = mkdtempSync(path.join(tmpdir(), 'audit-replay-out-'));
    const acme = await WebhookApi.as(registry, 'acme-integration');
    const globex = await WebhookApi.as(registry, 'globex-integration');
    const dispatcher = await DispatcherApi.as(registry);

    const a = await acme.registered(VALID_REGISTRATION);
    clock.advance(500);
    const b = await acme.registered({ ...VALID_REGISTRATION, url: 'https://b.example.com/h' });
    const c = await globex.registered({ url: 'https://globex.example.com/h', events: ['kyc.*'], partnerIds: [PARTNER_C] });
    await acme.patched(a.id, { events: ['kyc.*'], status: 'PAUSED' });
    expect((await acme.rotate(b.id)).status).toBe(200);
    const gone = await globex.registered({ url: 'https://globex.example.com/gone', events: ['kyc.*'] });
    expect((await globex.delete(gone.id)).status).toBe(204);

    // Record the read model at this instant, then keep writing.
    instant = clock.advance(1000);
    recorded = await recordedState(registry);
    expect(recorded).toHaveLength(4);

    clock.advance(1);
    await acme.patched(a.id, { url: 'https://a2.example.com/h', status: 'ACTIVE' });
    expect((await dispatcher.disable(b.id, 'gone away')).status).toBe(200);
    expect((await acme.delete(b.id)).status).toBe(204);
    expect((await globex.rotate(c.id)).status).toBe(200);
    await globex.registered({ url: 'https://globex.example.com/new', events: ['kyc.*'] });
    clock.advance(1000);
    await settleProjection(registry);
  });

  afterAll(async () => {
    await registry.close();
    rmSync(outDir, { recursive: true, force: true });
  });

  it('rebuilds the state at an instant from the log, equal to the read model recorded then', async () => {
    const result = await runCli(['audit', 'replay', '--as-of', instant], env(registry));
    expect(result.code, result.stderr).toBe(0);
    expect(jsonLines(result.stdout)).toEqual(recorded);
    expect(result.stderr).toContain(`4 webhooks as of ${instant}`);
    // Never a secret, not even encrypted.
    expect(result.stdout).not.toMatch(/whsec_|ciphertext|keyId|"iv"|"secret"/);
    // And the present from the log equals the present read model.
    const now = await runCli(['audit', 'replay', '--as-of', clock.iso()], env(registry));
    expect(jsonLines(now.stdout)).toEqual(await recordedState(registry));
  });

  it('filters by organization', async () => {
    const result = await runCli(['audit', 'replay', '--as-of', instant, '--org', 'globex'], env(registry));
    expect(result.code, result.stderr).toBe(0);
    expect(jsonLines(result.stdout)).toEqual(recorded.filter((w) => w.organizationId === 'globex'));
  });

  it('writes --out atomically, with the same content as stdout', async () => {
    const out = path.join(outDir, 'state.jsonl');
    const result = await runCli(['audit', 'replay', '--as-of', instant, '--out', out, '--progress'], env(registry));
    expect(result.code, result.stderr).toBe(0);
    expect(jsonLines(readFileSync(out, 'utf8'))).toEqual(recorded);
    expect(readdirSync(outDir)).toEqual(['state.jsonl']);
    expect(result.stderr).toMatch(/^replay /m); // --progress draws on stderr even without a terminal
    expect(result.stdout).toBe('');
  });

  it('answers nothing, successfully, before the first event', async () => {
    const result = await runCli(['audit', 'replay', '--as-of', '2001-01-01T00:00:00Z'], env(registry));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('the log starts at');
  });

  it('refuses an instant in the future, a malformed one, or none', async () => {
    // (Every malformed form is covered over HTTP, through the same parser.)
    const cases = [['--as-of', new Date(Date.now() + 3600_000).toISOString()], ['--as-of', '2024-02-30T00:00:00Z'], []];
    const results = await Promise.all(cases.map((args) => runCli(['audit', 'replay', ...args], env(registry))));
    for (const r of results) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    }
    expect(results[0]!.stderr).toContain('--as-of is in the future');
    expect(results[1]!.stderr).toContain('--as-of must be an RFC 3339 date-time');
    expect(results[2]!.stderr).toContain('--as-of is required');
  });
});

describe('audit replay interrupted and restarted', () => {
  let registry: TestRegistry;
  let outDir: string;

  beforeAll(async () => {
    registry = await startRegistry({ env: SQLITE_ENGINES });
    outDir = mkdtempSync(path.join(tmpdir(), 'audit-replay-restart-'));
    // Enough events that a replay reading one event per page takes a while:
    // valid registrations, appended straight to the log in one group commit.
    const { store, secrets } = registry.server.core;
    const actor = { clientId: 'acme-integration', subject: registry.oauth.subjectFor('acme-integration') };
    const at = new Date(Date.now() - 60_000).toISOString();
    await Promise.all(
      Array.from({ length: 10_000 }, () => {
        const webhookId = randomUUID();
        const data = {
          webhookId,
          organizationId: 'acme',
          url: VALID_REGISTRATION.url,
          events: VALID_REGISTRATION.events,
          partnerIds: null,
          authorizedPartnerIds: [],
          secret: secrets.encrypt(`whsec_${Buffer.alloc(32, 1).toString('base64')}`, { webhookId, organizationId: 'acme' }),
          at,
        };
        const metadata = {
          actor,
          organizationId: 'acme',
          requestId: randomUUID(),
          idempotencyKeyHash: null,
          requestFingerprint: null,
          occurredAt: at,
          previousHash: null,
        };
        const hash = eventHash({ type: 'WebhookRegistered', data, metadata });
        return store.append(`webhook-${webhookId}`, [{ type: 'WebhookRegistered', data, metadata: { ...metadata, hash } }], 'no_stream');
      }),
    );
  });

  afterAll(async () => {
    await registry.close();
    rmSync(outDir, { recursive: true, force: true });
  });

  it('leaves no partial file when interrupted, and a restart produces the same output', async () => {
    const asOf = new Date().toISOString();
    const out = path.join(outDir, 'replay.jsonl');
    const run = startCli(['audit', 'replay', '--as-of', asOf, '--out', out, '--page-size', '1', '--progress'], env(registry));
    // The progress line appears after the first page: the replay is under way.
    expect(await waitUntil(() => /^replay /m.test(run.stderr()), 20_000)).toBe(true);
    expect(readdirSync(outDir).some((f) => f.endsWith('.partial'))).toBe(true);
    run.child.kill('SIGINT');
    const interrupted = await run.done;
    expect(interrupted.code, interrupted.stderr).toBe(130);
    expect(interrupted.stderr).toContain('interrupted');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(outDir)).toEqual([]);

    const restarted = await runCli(['audit', 'replay', '--as-of', asOf, '--out', out], env(registry));
    expect(restarted.code, restarted.stderr).toBe(0);
    const reference = await runCli(['audit', 'replay', '--as-of', asOf], env(registry));
    expect(readFileSync(out, 'utf8')).toBe(reference.stdout);
    expect(jsonLines(reference.stdout)).toHaveLength(10_000);
    expect(readdirSync(outDir)).toEqual(['replay.jsonl']);
  });
});

describe('audit verify on a tampered data folder', () => {
  let registry: TestRegistry;
  const ids: Record<'altered' | 'deleted' | 'swapped' | 'rowAltered' | 'truncated' | 'garbled', string> = {
    altered: '',
    deleted: '',
    swapped: '',
    rowAltered: '',
    truncated: '',
    garbled: '',
  };
  const copies: string[] = [];

  /** A copy of the (stopped) registry's data folder with some damage done to it. */
  function damagedCopy(damage: (files: { events: Database.Database; readModel: Database.Database }) => void): string {
    const dir = tempDataDir();
    copies.push(dir);
    cpSync(registry.dataDir, dir, { recursive: true });
    const events = new Database(path.join(dir, EVENTS_FILE));
    const readModel = new Database(path.join(dir, READ_MODEL_FILE));
    try {
      damage({ events, readModel });
    } finally {
      events.close();
      readModel.close();
    }
    return dir;
  }

  const stream = (id: string) => `webhook-${id}`;

  function alterData(db: Database.Database, id: string, revision: number): void {
    const info = db
      .prepare("UPDATE events SET data = json_set(data, '$.changes.url', 'https://evil.example.com/x') WHERE stream_id = ? AND revision = ?")
      .run(stream(id), revision);
    expect(info.changes).toBe(1);
  }

  function deleteEvent(db: Database.Database, id: string, revision: number): void {
    expect(db.prepare('DELETE FROM events WHERE stream_id = ? AND revision = ?').run(stream(id), revision).changes).toBe(1);
  }

  function swapEvents(db: Database.Database, id: string, r1: number, r2: number): void {
    type Row = { type: string; data: string; metadata: string };
    const get = db.prepare<[string, number], Row>('SELECT type, data, metadata FROM events WHERE stream_id = ? AND revision = ?');
    const set = db.prepare<[string, string, string, string, number]>(
      'UPDATE events SET type = ?, data = ?, metadata = ? WHERE stream_id = ? AND revision = ?',
    );
    const one = get.get(stream(id), r1)!;
    const two = get.get(stream(id), r2)!;
    db.transaction(() => {
      set.run(two.type, two.data, two.metadata, stream(id), r1);
      set.run(one.type, one.data, one.metadata, stream(id), r2);
    })();
  }

  function alterRow(db: Database.Database, id: string): void {
    const info = db.prepare("UPDATE webhooks SET url = 'https://evil.example.com/rm' WHERE id = ?").run(id);
    expect(info.changes).toBe(1);
  }

  async function verify(dir: string, ...args: string[]): Promise<{ code: number | null; report: VerifyReport; stderr: string }> {
    const result = await runCli(['audit', 'verify', '--json', ...args], env(registry, dir));
    return { code: result.code, report: JSON.parse(result.stdout) as VerifyReport, stderr: result.stderr };
  }

  beforeAll(async () => {
    registry = await startRegistry({ env: SQLITE_ENGINES });
    const acme = await WebhookApi.as(registry, 'acme-integration');
    // Created first, so its last event is not the last of the whole log.
    ids.truncated = (await acme.registered(VALID_REGISTRATION)).id;
    await acme.patched(ids.truncated, { url: 'https://t1.example.com/h' });
    await acme.patched(ids.truncated, { events: ['kyc.*'] });
    for (const name of ['altered', 'deleted', 'swapped', 'garbled'] as const) {
      const id = (await acme.registered(VALID_REGISTRATION)).id;
      ids[name] = id;
      await acme.patched(id, { url: `https://${name}.example.com/h` }); // revision 1
      await acme.patched(id, { status: 'PAUSED' }); // revision 2
      await acme.patched(id, { status: 'ACTIVE' }); // revision 3
    }
    ids.rowAltered = (await acme.registered(VALID_REGISTRATION)).id;
    await acme.patched(ids.rowAltered, { events: ['kyc.*'] });
    await settleProjection(registry);
    await registry.stop();
  });

  afterAll(async () => {
    await registry.close();
    for (const dir of copies) rmSync(dir, { recursive: true, force: true });
  });

  it('finds nothing wrong with an untouched data folder', async () => {
    const { code, report } = await verify(damagedCopy(() => undefined));
    expect(report).toMatchObject({ ok: true, brokenChains: [], readModelMismatches: [], otherProblems: [] });
    expect(report.streams).toBe(6);
    expect(report.events).toBe(3 + 4 * 4 + 2);
    expect(report.readModelWebhooks).toBe(6);
    expect(code).toBe(0);
  });

  describe('with every kind of damage done to one copy', () => {
    // One copy, one damage per stream, so each finding must name exactly its
    // own stream and revision (and nothing else may be reported).
    let dir: string;
    let json: { code: number | null; report: VerifyReport };
    let text: { code: number | null; stdout: string; stderr: string };

    beforeAll(async () => {
      dir = damagedCopy(({ events, readModel }) => {
        alterData(events, ids.altered, 1);
        deleteEvent(events, ids.deleted, 1);
        swapEvents(events, ids.swapped, 2, 3);
        alterRow(readModel, ids.rowAltered);
        deleteEvent(events, ids.truncated, 2);
      });
      [json, text] = await Promise.all([verify(dir), runCli(['audit', 'verify'], env(registry, dir))]);
    });

    it('exits non-zero', () => {
      expect(json.code).toBe(1);
      expect(text.code, text.stderr).toBe(1);
      expect(json.report.ok).toBe(false);
      expect(json.report.otherProblems).toEqual([]);
    });

    it('names the stream and revision of an altered event, a deleted one and two swapped ones', () => {
      const detail = expect.any(String) as string;
      expect(json.report.brokenChains.sort((a, b) => (a.streamId < b.streamId ? -1 : 1))).toEqual(
        [
          { streamId: stream(ids.altered), revision: 1, problem: 'hash-mismatch', detail },
          { streamId: stream(ids.deleted), revision: 1, problem: 'revision-gap', detail },
          { streamId: stream(ids.swapped), revision: 2, problem: 'previous-hash-mismatch', detail },
        ].sort((a, b) => (a.streamId < b.streamId ? -1 : 1)),
      );
    });

    it('names the webhook of an altered read-model row, with the fields', () => {
      expect(json.report.readModelMismatches).toContainEqual({
        webhookId: ids.rowAltered,
        problem: 'differs',
        fields: ['url'],
        readModelRevision: 1,
        logRevision: 1,
      });
    });

    it('finds an event removed from the end of a stream through the read model', () => {
      // No chain shows a missing last link on its own, but the read model saw it.
      expect(json.report.brokenChains.map((b) => b.streamId)).not.toContain(stream(ids.truncated));
      const truncated = json.report.readModelMismatches.find((m) => m.webhookId === ids.truncated);
      expect(truncated).toMatchObject({ problem: 'differs', readModelRevision: 2, logRevision: 1 });
      expect(truncated!.fields).toEqual(expect.arrayContaining(['events', 'revision', 'position']));
    });

    it('sees the altered log differ from what the read model projected, and nothing else', () => {
      const altered = json.report.readModelMismatches.find((m) => m.webhookId === ids.altered);
      expect(altered).toEqual({ webhookId: ids.altered, problem: 'differs', fields: ['url'], readModelRevision: 3, logRevision: 3 });
      const named = new Set([ids.altered, ids.deleted, ids.swapped, ids.rowAltered, ids.truncated]);
      for (const m of json.report.readModelMismatches) expect(named.has(m.webhookId)).toBe(true);
    });

    it('prints each finding and the first of each kind', () => {
      const out = text.stdout;
      expect(out).toContain(`broken chain: stream ${stream(ids.altered)} at revision 1: hash-mismatch`);
      expect(out).toContain(`broken chain: stream ${stream(ids.deleted)} at revision 1: revision-gap`);
      expect(out).toContain(`broken chain: stream ${stream(ids.swapped)} at revision 2: previous-hash-mismatch`);
      expect(out).toContain(
        `read model mismatch: webhook ${ids.rowAltered} differs from the log (read model revision 1, log revision 1): url`,
      );
      expect(out).toContain(`first hash-mismatch: stream ${stream(ids.altered)} revision 1`);
      expect(out).toContain(`first revision-gap: stream ${stream(ids.deleted)} revision 1`);
      expect(out).toContain(`first previous-hash-mismatch: stream ${stream(ids.swapped)} revision 2`);
      expect(out).toMatch(/^first read model differs: webhook [0-9a-f-]{36} \(/m);
      expect(out).toMatch(/^DAMAGED: 3 broken chain\(s\), \d+ read-model mismatch\(es\)/m);
    });
  });

  it('names an event that cannot even be decoded', async () => {
    const { code, report } = await verify(
      damagedCopy(({ events }) => {
        events.prepare("UPDATE events SET data = '{not json' WHERE stream_id = ? AND revision = 2").run(stream(ids.garbled));
      }),
    );
    expect(code).toBe(1);
    expect(report.brokenChains).toEqual([
      { streamId: stream(ids.garbled), revision: 2, problem: 'unreadable', detail: expect.any(String) as string },
    ]);
    expect(report.otherProblems).toEqual([expect.stringContaining('the event log cannot be read')]);
  });

  it('names a read-model row that cannot even be decoded', async () => {
    const { code, report } = await verify(
      damagedCopy(({ readModel }) => {
        expect(readModel.prepare("UPDATE webhooks SET events = '[not json' WHERE id = ?").run(ids.rowAltered).changes).toBe(1);
      }),
    );
    expect(code).toBe(1);
    expect(report.readModelMismatches).toEqual([
      { webhookId: ids.rowAltered, problem: 'unreadable', fields: [], readModelRevision: null, logRevision: null },
    ]);
    expect(report.otherProblems).toEqual([expect.stringContaining('the read model cannot be read')]);
  });
});

describe('projections rebuild and audit verify while the registry serves', () => {
  let registry: TestRegistry;
  let acme: WebhookApi;

  beforeAll(async () => {
    registry = await startRegistry({ env: SQLITE_ENGINES });
    acme = await WebhookApi.as(registry, 'acme-integration');
    const globex = await WebhookApi.as(registry, 'globex-integration');
    for (let i = 0; i < 20; i++) {
      const w = await acme.registered({ ...VALID_REGISTRATION, url: `https://r${i}.example.com/h` });
      if (i % 3 === 0) await acme.patched(w.id, { status: 'PAUSED' });
      if (i % 4 === 0) expect((await acme.rotate(w.id)).status).toBe(200);
      if (i % 5 === 0) expect((await acme.delete(w.id)).status).toBe(204);
    }
    for (let i = 0; i < 5; i++) await globex.registered({ url: `https://g${i}.example.com/h`, events: ['kyc.*'] });
    await settleProjection(registry);
  });

  afterAll(async () => {
    await registry.close();
  });

  it('reproduces the read model exactly, while reads keep being answered', async () => {
    const before = await readModelNow(registry);
    const checkpointBefore = await registry.server.core.readModel.checkpoint();
    expect(before).toHaveLength(25);

    const run = startCli(['projections', 'rebuild', '--progress', '--page-size', '3'], env(registry));
    let finished = false;
    void run.done.then(() => (finished = true));
    const statuses: number[] = [];
    const listSizes = new Set<number>();
    const live = before.filter((w) => w.organizationId === 'acme' && !w.deleted).length;
    for (let i = 0; i < 2000 && !finished; i++) {
      const [list, targets] = await Promise.all([
        acme.list({ limit: 100 }),
        registry.request('GET', `/internal/v1/dispatch-targets?eventType=kyc.verification.approved&partnerId=${VALID_REGISTRATION.partnerIds[0]}`, {
          token: await registry.token('dispatcher'),
        }),
      ]);
      statuses.push(list.status, targets.status);
      listSizes.add(list.body.data.length);
    }
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/^rebuild /m);
    const head = await registry.server.core.store.headPosition();
    expect(result.stderr).toContain(`projections rebuild: ${String(head!.commit)} events applied`);
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200)).toBe(true);
    // Readers saw the whole read model throughout: the old copy, then the new one, never a half-built one.
    expect([...listSizes]).toEqual([live]);

    expect(await readModelNow(registry)).toEqual(before);
    expect(await registry.server.core.readModel.checkpoint()).toBe(checkpointBefore);

    // The in-process projector carries on over the rebuilt read model.
    const after = await acme.registered({ ...VALID_REGISTRATION, url: 'https://after-rebuild.example.com/h' });
    const listed = await acme.listAll();
    expect(listed.map((w) => w.id)).toContain(after.id);
  });

  it('verifies a healthy registry while it serves and writes', async () => {
    const ids = (await acme.listAll()).map((w) => w.id);
    const run = startCli(['audit', 'verify', '--page-size', '2'], env(registry));
    let finished = false;
    void run.done.then(() => (finished = true));
    // Writes land while verify reads: projection lag is not damage.
    for (let i = 0; i < 200 && !finished; i++) {
      await acme.patched(ids[i % ids.length]!, { url: `https://moving-${i}.example.com/h` });
    }
    const result = await run.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('OK: every stream');
  });
});
