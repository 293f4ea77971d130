// The shared point-in-time logic (src/audit/): instants, replay, history.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { webhookHistory } from '../../src/audit/history.ts';
import { checkInstant, LogDamagedError, parseInstant, replayAsOf, type AuditWebhook } from '../../src/audit/replay.ts';
import { eventHash } from '../../src/domain/hashChain.ts';
import type { WebhookEvent } from '../../src/domain/webhook.ts';
import type { EventMetadata } from '../../src/stores/eventStore.ts';
import { openSqliteEventStore, type SqliteEventStore } from '../../src/stores/sqlite/sqliteEventStore.ts';

describe('parseInstant', () => {
  it.each([
    ['2024-05-01T12:00:00Z', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01t12:00:00z', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01T12:00:00.5Z', '2024-05-01T12:00:00.500Z'],
    ['2024-05-01T12:00:00.123999999Z', '2024-05-01T12:00:00.123Z'],
    ['2024-05-01T14:30:00+02:30', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01T00:00:00-05:00', '2024-05-01T05:00:00.000Z'],
    ['2024-02-29T23:59:59Z', '2024-02-29T23:59:59.000Z'],
  ])('reads %s', (text, iso) => {
    expect(parseInstant(text)?.toISOString()).toBe(iso);
  });

  it.each([
    'yesterday',
    '',
    '2024-05-01',
    '2024-05-01T12:00:00',
    '2024-05-01 12:00:00Z',
    '2024-02-30T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2024-13-01T00:00:00Z',
    '2024-05-01T24:00:00Z',
    '2024-05-01T12:60:00Z',
    '2024-05-01T12:00:60Z',
    '2024-05-01T12:00:00+24:00',
    '2024-05-01T12:00:00.Z',
    '1714564800',
  ])('refuses %j', (text) => {
    expect(parseInstant(text)).toBeUndefined();
  });

  it('refuses the future but accepts now', () => {
    const now = new Date('2024-05-01T12:00:00.000Z');
    expect(checkInstant('2024-05-01T12:00:00.001Z', now)).toMatchObject({ problem: 'future' });
    expect(checkInstant('2024-05-01T12:00:00Z', now)).toEqual({ instant: now });
    expect(checkInstant('nope', now)).toMatchObject({ problem: 'malformed' });
  });
});

const SECRET = { keyId: 'k1', iv: 'aXY=', ciphertext: 'c2VjcmV0LWNpcGhlcnRleHQ=' };

describe('replayAsOf and webhookHistory over a real log', () => {
  let dir: string;
  let store: SqliteEventStore;
  const last = new Map<string, { revision: number; hash: string }>();

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'audit-unit-'));
    store = openSqliteEventStore({ path: path.join(dir, 'events.sqlite') });
    last.clear();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Appends one event to a webhook's stream, chained, stamped `at`. */
  async function append(id: string, org: string, at: string, event: WebhookEvent): Promise<void> {
    const previous = last.get(id);
    const base: Omit<EventMetadata, 'hash'> = {
      actor: { clientId: `${org}-client`, subject: 'sub' },
      organizationId: org,
      requestId: 'req',
      idempotencyKeyHash: null,
      requestFingerprint: null,
      occurredAt: at,
      previousHash: previous?.hash ?? null,
    };
    const hash = eventHash({ type: event.type, data: event.data, metadata: base });
    const result = await store.append(`webhook-${id}`, [{ ...event, metadata: { ...base, hash } }], previous?.revision ?? 'no_stream');
    last.set(id, { revision: result.nextRevision, hash });
  }

  const register = (id: string, org: string, at: string, url = `https://${id}.example.com/h`) =>
    append(id, org, at, {
      type: 'WebhookRegistered',
      data: { webhookId: id, organizationId: org, url, events: ['kyc.*'], partnerIds: null, authorizedPartnerIds: ['p'], secret: SECRET, at },
    });
  const update = (id: string, org: string, at: string, url: string) =>
    append(id, org, at, {
      type: 'WebhookUpdated',
      data: { webhookId: id, changes: { url }, authorizedPartnerIds: ['p'], at },
    });
  const pause = (id: string, org: string, at: string) => append(id, org, at, { type: 'WebhookPaused', data: { webhookId: id, at } });

  const T = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s)).toISOString();
  const ids = (ws: readonly AuditWebhook[]) => ws.map((w) => w.id);

  it('folds each stream up to the instant, ordered by id, filtered by organization', async () => {
    await register('c', 'acme', T(1));
    await register('a', 'globex', T(2));
    await update('c', 'acme', T(3), 'https://c2.example.com/h');
    await register('b', 'acme', T(4));
    await pause('c', 'acme', T(5));

    expect(await replayAsOf(store, { asOf: new Date(T(0)) })).toMatchObject({ webhooks: [], hasMore: false, earliestEventAt: T(1) });
    const at3 = await replayAsOf(store, { asOf: new Date(T(3)) });
    expect(ids(at3.webhooks)).toEqual(['a', 'c']);
    expect(at3.webhooks[1]).toMatchObject({ url: 'https://c2.example.com/h', status: 'ACTIVE', revision: 1 });
    const at9 = await replayAsOf(store, { asOf: new Date(T(9)), organizationId: 'acme' });
    expect(ids(at9.webhooks)).toEqual(['b', 'c']);
    expect(at9.webhooks[1]).toMatchObject({ status: 'PAUSED', revision: 2 });
    expect(JSON.stringify(at9.webhooks)).not.toContain(SECRET.ciphertext);
  });

  it('pages by id with O(limit) state, and the pages add up to the whole', async () => {
    const all = 'kqzbxmwaecyl'.split('');
    for (const [i, id] of all.entries()) await register(id, i % 2 ? 'acme' : 'globex', T(i));
    for (const [i, id] of all.entries()) if (i % 3 === 0) await update(id, 'x', T(20 + i), `https://${id}2.example.com/h`);
    const whole = await replayAsOf(store, { asOf: new Date(T(59)) });
    expect(ids(whole.webhooks)).toEqual([...all].sort());
    for (const limit of [1, 2, 5, 12, 13]) {
      const pages: AuditWebhook[] = [];
      let afterId: string | undefined;
      for (let n = 0; n < 20; n++) {
        const page = await replayAsOf(store, { asOf: new Date(T(59)), limit, afterId, until: whole.until });
        pages.push(...page.webhooks);
        expect(page.webhooks.length).toBeLessThanOrEqual(limit);
        if (!page.hasMore) break;
        afterId = page.webhooks.at(-1)!.id;
      }
      expect(pages).toEqual(whole.webhooks);
    }
  });

  it('stops a stream at its first event after the instant, even if a later one is stamped earlier', async () => {
    await register('w', 'acme', T(1));
    await update('w', 'acme', T(10), 'https://late.example.com/h');
    // A writer whose clock is behind: stamped before the instant, but after an event that is not.
    await update('w', 'acme', T(4), 'https://skewed.example.com/h');
    const at5 = await replayAsOf(store, { asOf: new Date(T(5)) });
    expect(at5.webhooks).toEqual([expect.objectContaining({ url: 'https://w.example.com/h', revision: 0 })]);
  });

  it('replays only up to a pinned position', async () => {
    await register('a', 'acme', T(1));
    const pinned = await store.headPosition();
    await register('b', 'acme', T(2));
    expect(ids((await replayAsOf(store, { asOf: new Date(T(9)), until: pinned })).webhooks)).toEqual(['a']);
    expect(ids((await replayAsOf(store, { asOf: new Date(T(9)) })).webhooks)).toEqual(['a', 'b']);
  });

  it('refuses a log whose stream has a gap', async () => {
    await register('a', 'acme', T(1));
    await update('a', 'acme', T(2), 'https://x.example.com/h');
    await pause('a', 'acme', T(3));
    store.database.prepare('DELETE FROM events WHERE revision = 1').run();
    await expect(replayAsOf(store, { asOf: new Date(T(9)) })).rejects.toBeInstanceOf(LogDamagedError);
    await expect(replayAsOf(store, { asOf: new Date(T(9)) })).rejects.toThrow(/webhook-a revision 2/);
  });

  it('builds a history with diffs and a verified chain, then sees its break', async () => {
    await register('h', 'acme', T(1));
    await update('h', 'acme', T(2), 'https://h2.example.com/h');
    await pause('h', 'acme', T(3));
    const history = webhookHistory(await store.readStream('webhook-h'));
    expect(history.organizationId).toBe('acme');
    expect(history.chain).toEqual({ intact: true });
    expect(history.entries.map((e) => e.changes)).toEqual([
      {
        url: { from: null, to: 'https://h.example.com/h' },
        events: { from: null, to: ['kyc.*'] },
        effectivePartnerIds: { from: null, to: ['p'] },
        status: { from: null, to: 'ACTIVE' },
        secret: { from: null, to: '[redacted]' },
      },
      { url: { from: 'https://h.example.com/h', to: 'https://h2.example.com/h' } },
      { status: { from: 'ACTIVE', to: 'PAUSED' } },
    ]);
    expect(JSON.stringify(history)).not.toContain(SECRET.ciphertext);

    store.database.prepare("UPDATE events SET data = json_set(data, '$.changes.url', 'https://evil.example.com') WHERE revision = 1").run();
    expect(webhookHistory(await store.readStream('webhook-h')).chain).toEqual({ intact: false, revision: 1, problem: 'hash-mismatch' });
  });
});
