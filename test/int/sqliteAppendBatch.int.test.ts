// The writer thread takes a whole batch as one string cut by UTF-16 lengths
// (appendWorker.ts): text outside ASCII, several events per append and a
// conflict in the middle of a batch must all come back exactly as written.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { sealEvent } from '../../src/domain/hashChain.ts';
import { StreamConflictError, webhookStreamName } from '../../src/stores/eventStore.ts';
import { openSqliteEventStore, type SqliteEventStore } from '../../src/stores/sqlite/sqliteEventStore.ts';
import { makeEvent } from '../contract/eventStore.contract.ts';
import { tempDataDir } from '../support/registry.ts';

const dirs: string[] = [];
const stores: SqliteEventStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('SQLite event store batch encoding', () => {
  it('one batch of mixed text, multi-event appends and a conflict round-trips every event exactly', async () => {
    const dir = tempDataDir();
    dirs.push(dir);
    const store = openSqliteEventStore({ path: path.join(dir, 'events.sqlite') });
    stores.push(store);
    const taken = webhookStreamName(randomUUID());
    await store.append(taken, [makeEvent(taken)], 'no_stream');

    // Astral characters are two UTF-16 units and four UTF-8 bytes; the others one or two bytes.
    const texts = ['🦄 partner 𝄞', 'Grüße aus Köln', '日本語のテキスト', 'plain', '"quoted" \\ back\nslash', ''];
    const streams = texts.map(() => webhookStreamName(randomUUID()));
    const written = streams.map((s, i) => [
      makeEvent(s, 'WebhookRegistered', { url: `https://example.com/${texts[i]}`, label: texts[i] }),
      makeEvent(s, 'WebhookUpdated', { note: texts[(i + 1) % texts.length] }),
    ]);
    // Queued in one loop turn, so one group commit; the conflict sits in the middle.
    const results = await Promise.allSettled([
      ...streams.slice(0, 3).map((s, i) => store.append(s, written[i]!, 'no_stream')),
      store.append(taken, [makeEvent(taken, 'WebhookPaused', { label: '🦄' })], 'no_stream'),
      ...streams.slice(3).map((s, i) => store.append(s, written[i + 3]!, 'no_stream')),
    ]);

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    expect((results[3] as PromiseRejectedResult).reason).toBeInstanceOf(StreamConflictError);
    for (const [i, s] of streams.entries()) {
      const read = await store.readStream(s);
      expect(read.map((e) => ({ streamId: e.streamId, revision: e.revision, type: e.type, data: e.data, metadata: e.metadata }))).toEqual(
        written[i]!.map((e, revision) => ({ streamId: s, revision, type: e.type, data: e.data, metadata: e.metadata })),
      );
    }
    expect(await store.readStream(taken)).toHaveLength(1);
  });

  it("stores a sealed event's JSON text as given: the text its hash is over", async () => {
    const dir = tempDataDir();
    dirs.push(dir);
    const file = path.join(dir, 'events.sqlite');
    const store = openSqliteEventStore({ path: file });
    stores.push(store);
    const s = webhookStreamName(randomUUID());
    const plain = makeEvent(s, 'WebhookRegistered', { zeta: 1, alpha: 'ü' });
    const { hash: _old, ...base } = plain.metadata;
    const sealed = sealEvent(plain.type, plain.data, base);
    const event = { ...plain, metadata: { ...base, hash: sealed.hash }, json: { data: sealed.data, metadata: sealed.metadata } };
    await store.append(s, [event], 'no_stream');

    const raw = new Database(file, { readonly: true });
    const row = raw.prepare('SELECT data, metadata FROM events WHERE stream_id = ?').get(s) as { data: string; metadata: string };
    raw.close();
    expect(row).toEqual({ data: sealed.data, metadata: sealed.metadata });
    expect(row.data).not.toBe(JSON.stringify(plain.data)); // canonical (sorted) text, not the object's own order
    const [read] = await store.readStream(s);
    expect(read!.data).toEqual(plain.data);
    expect(read!.metadata).toEqual(event.metadata);
  });
});
