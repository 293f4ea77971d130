// `npx tsx bench/phases.ts [--count <n>]`: the CPU one registration costs,
// phase by phase, measured in this process on the embedded engine (temp
// folder, SQLite with its durable settings): the pieces of work a
// registration does, each repeated `count` times and timed alone, so the
// profile of `npm run bench -- --profile` can be read against them.
//
// Synchronous phases are timed with hrtime (on one thread that is CPU time).
// The command phase (stream and key look-ups, secret generation and
// encryption, hashes, the append through the writer thread and its group
// commit) is asynchronous: it is charged the process's CPU (process.cpuUsage,
// every thread) over `count` registrations run 50 at a time, as the HTTP
// bench runs them. The projection is the read model's applyBatch over those
// events in batches of 30 (the projector's batch size under that load). The
// change feed's follower (which every server runs beside the projector) is
// timed over the same events, from the beginning of the log.
// What remains of the HTTP bench's per-answer figure is fastify, the hooks
// (auth, metrics, logging, rate limit) and the socket.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { canonicalRequest, RequestFingerprints } from '../src/commands/idempotency.ts';
import type { WriteContext } from '../src/commands/webhookCommands.ts';
import { loadCatalog } from '../src/catalog.ts';
import { loadConfig } from '../src/config.ts';
import { malformedTextPointers } from '../src/http/jsonBody.ts';
import { createSchemas, registeredResponse } from '../src/http/schemas.ts';
import { serializerCompiler } from '../src/http/serializer.ts';
import { createIdentity } from '../src/identity/identity.ts';
import { loadDevIssuer } from '../src/identity/devIssuer.ts';
import { ChangeFeed } from '../src/dispatch/changeFeed.ts';
import { closeCore, loadEncryptionKeys, openCore } from '../src/runtime.ts';
import { openSqliteReadModel } from '../src/stores/sqlite/sqliteReadModel.ts';
import type { RecordedEvent } from '../src/stores/eventStore.ts';

const countArg = process.argv.indexOf('--count');
const COUNT = countArg >= 0 ? Number(process.argv[countArg + 1]) : 5_000;
const IN_FLIGHT = 50;
const BATCH = 30;

const dataDir = mkdtempSync(path.join(tmpdir(), 'webhook-registry-phases-'));
const config = loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir, LOG_LEVEL: 'silent' });
const results: { phase: string; us: number; note: string }[] = [];

/** µs per call of `work`, after a warm-up of a tenth as many calls. */
/** Calls before a synchronous phase is timed: a server has run each of these millions of times (zod's first 400 calls took 5x its steady cost). */
const WARM_UP = 20_000;

function timeSync(phase: string, note: string, work: (i: number) => unknown): void {
  for (let i = 0; i < WARM_UP; i++) work(i);
  const started = process.hrtime.bigint();
  for (let i = 0; i < COUNT; i++) work(i);
  results.push({ phase, us: Number(process.hrtime.bigint() - started) / 1000 / COUNT, note });
}

const partner = '3c90c3cc-0d44-4b50-8888-8dd25736052a';
const bodyOf = (i: number) => ({
  url: `https://hooks.example.com/phases/${i}`,
  events: ['kyc.*', 'compliance.case.opened'],
  partnerIds: [partner],
});
const rawBodies = Array.from({ length: COUNT }, (_, i) => JSON.stringify(bodyOf(i)));

try {
  // 1. The body as the JSON parser takes it: JSON.parse and the lone-surrogate walk.
  timeSync('parse the JSON body', 'JSON.parse + the well-formed text check', (i) => {
    const value: unknown = JSON.parse(rawBodies[i % COUNT]!);
    return malformedTextPointers(value);
  });

  // 2. The zod schema of the contract, with the URL policy and the catalog check.
  const schemas = createSchemas({ catalog: loadCatalog(config.EVENT_TYPES_FILE), allowInsecureUrls: false });
  const parsed = rawBodies.map((b) => JSON.parse(b) as unknown);
  timeSync('validate (zod)', 'registerBody.safeParse', (i) => schemas.registerBody.safeParse(parsed[i % COUNT]));

  // 3. The bearer token, as every request after the first presents it (verified once, then cached).
  const identity = await createIdentity(config);
  const issuer = await loadDevIssuer(dataDir);
  const token = await issuer.mint({
    audience: config.OIDC_AUDIENCE,
    orgClaim: config.ORG_CLAIM,
    partnersClaim: config.PARTNERS_CLAIM,
    organizationId: 'acme',
    partnerIds: [partner],
    scopes: ['webhooks:write'],
  });
  await identity.verifier.verify(token);
  {
    for (let i = 0; i < COUNT / 10; i++) await identity.verifier.verify(token);
    const started = process.hrtime.bigint();
    for (let i = 0; i < COUNT; i++) await identity.verifier.verify(token);
    results.push({ phase: 'check the token (cached)', us: Number(process.hrtime.bigint() - started) / 1000 / COUNT, note: 'TokenVerifier.verify, cache hit' });
  }

  // 4. The fingerprint: canonical JSON of the validated body and its HMAC.
  const fingerprints = new RequestFingerprints(loadEncryptionKeys(config).keys);
  timeSync('fingerprint the request', 'canonical JSON + HMAC-SHA256', (i) =>
    fingerprints.of(canonicalRequest('POST', '/v1/webhooks', parsed[i % COUNT])),
  );

  // 5. The command: look-ups, secret, encryption, event hash, append and group commit.
  const core = await openCore(config);
  try {
    const contextOf = (i: number): WriteContext => ({
      organizationId: 'acme',
      actor: { clientId: 'acme-integration', subject: 'service-account-acme-integration' },
      requestId: `phases-${i}`,
      idempotencyKey: `phases-${i}`,
      request: canonicalRequest('POST', '/v1/webhooks', parsed[i % COUNT]),
      now: new Date(),
    });
    const register = (i: number) =>
      core.commands.register(contextOf(i), { ...bodyOf(i), authorizedPartnerIds: [partner] });
    for (let i = 0; i < IN_FLIGHT * 4; i++) await register(COUNT + i); // warm-up
    const cpu = process.cpuUsage();
    const wall = process.hrtime.bigint();
    for (let base = 0; base < COUNT; base += IN_FLIGHT) {
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, COUNT - base) }, (_, k) => register(base + k)));
    }
    const used = process.cpuUsage(cpu);
    const wallMs = Number(process.hrtime.bigint() - wall) / 1e6;
    results.push({
      phase: 'run the command (all threads)',
      us: (used.user + used.system) / COUNT,
      note: `key look-up, secret, AES-GCM, event hash, append; ${IN_FLIGHT} in flight, ${(COUNT / (wallMs / 1000)).toFixed(0)}/s, fsync on`,
    });

    // 6. The projection of those events into the read model, in the projector's batches.
    const events: RecordedEvent[] = [];
    let after = undefined as RecordedEvent['position'] | undefined;
    for (;;) {
      const page = await core.store.readAll({ ...(after ? { after } : {}), limit: 1000 });
      if (page.length === 0) break;
      events.push(...page);
      after = page[page.length - 1]!.position;
    }
    const warm = events.slice(0, IN_FLIGHT * 4);
    const measured = events.slice(IN_FLIGHT * 4);
    let checkpoint: string | null = null;
    const { encodePosition } = await import('../src/stores/eventStore.ts');
    for (let i = 0; i < warm.length; i += BATCH) {
      const batch = warm.slice(i, i + BATCH);
      await core.readModel.applyBatch(batch, checkpoint);
      checkpoint = encodePosition(batch[batch.length - 1]!.position);
    }
    const cpuP = process.cpuUsage();
    for (let i = 0; i < measured.length; i += BATCH) {
      const batch = measured.slice(i, i + BATCH);
      await core.readModel.applyBatch(batch, checkpoint);
      checkpoint = encodePosition(batch[batch.length - 1]!.position);
    }
    const usedP = process.cpuUsage(cpuP);
    results.push({
      phase: 'project the event',
      us: (usedP.user + usedP.system) / measured.length,
      note: `SQLite read model applyBatch, ${BATCH} per transaction (the view, its pattern and key rows; the dispatch index is in memory)`,
    });

    // 7. The change feed's follower over the same events, as every server runs it beside the projector.
    {
      // An empty read model, so the follower starts at the beginning of the log (it starts at the model's checkpoint).
      const empty = openSqliteReadModel({ path: path.join(dataDir, 'feed-origin.sqlite') });
      const feed = new ChangeFeed(core.store, empty, { capacity: config.CHANGE_FEED_CAPACITY, logger: { info() {}, error() {} } });
      const head = (await core.store.headPosition())!;
      const cpuF = process.cpuUsage();
      const caughtUp = new Promise<void>((resolve) => {
        const off = feed.onAdvance(() => {
          if (feed.position !== undefined && feed.position.commit >= head.commit) {
            off();
            resolve();
          }
        });
      });
      feed.start();
      await caughtUp;
      const usedF = process.cpuUsage(cpuF);
      await feed.stop();
      await empty.close();
      results.push({
        phase: 'follow the change feed',
        us: (usedF.user + usedF.system) / events.length,
        note: 'the dispatcher feed: read and decode the log, nextView, one ring entry per change (from the read model checkpoint; pages not shared with a projector here)',
      });
    }

    // 8. The 201 body through the route's compiled serializer.
    const serialize = serializerCompiler({ schema: registeredResponse, method: 'POST', url: '/v1/webhooks', httpStatus: '201' });
    const answer = await register(0);
    timeSync('serialize the answer', 'fast-json-stringify of the 201 body', () => serialize(answer.result));
  } finally {
    await closeCore(core);
  }

  const total = results.reduce((sum, r) => sum + r.us, 0);
  const lines = [
    `# CPU per registration, phase by phase (${COUNT.toLocaleString('en')} registrations, embedded engine, Node ${process.version})`,
    '',
    '| phase | µs | what |',
    '|---|---:|---|',
    ...results.map((r) => `| ${r.phase} | ${r.us.toFixed(1)} | ${r.note} |`),
    `| **sum of the phases** | **${total.toFixed(1)}** | the rest of the HTTP bench's per-answer CPU is fastify, hooks and the socket |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
