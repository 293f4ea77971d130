// The embedded log's writer thread: what a failed group commit leaves behind,
// how appends that arrive during a commit are batched, and that closing
// commits everything queued. (The shared behaviour is in the contract suite.)
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreUnavailableError, webhookStreamName } from '../../src/stores/eventStore.ts';
import { openSqliteEventStore, type SqliteEventStore } from '../../src/stores/sqlite/sqliteEventStore.ts';
import { makeEvent } from '../contract/eventStore.contract.ts';
import { tempDataDir } from '../support/registry.ts';

const stream = (): string => webhookStreamName(randomUUID());
const dirs: string[] = [];
const stores: SqliteEventStore[] = [];

function open(onCommit?: (size: number) => void): { store: SqliteEventStore; file: string } {
  const dir = tempDataDir();
  dirs.push(dir);
  const file = path.join(dir, 'events.sqlite');
  const store = openSqliteEventStore({ path: file, ...(onCommit ? { onCommit } : {}) });
  stores.push(store);
  return { store, file };
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('SQLite event store writer thread', () => {
  it('a commit that fails rejects every append of its batch, writes none of them, and the next batch commits', async () => {
    const { store, file } = open();
    const poisoned = stream();
    const bystander = stream();
    // A trigger stands in for a disk or constraint failure in the middle of a batch.
    const raw = new Database(file);
    raw.exec(`CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.stream_id = '${poisoned}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`);
    raw.close();

    const results = await Promise.allSettled([
      store.append(bystander, [makeEvent(bystander)], 'no_stream'),
      store.append(poisoned, [makeEvent(poisoned)], 'no_stream'),
    ]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError);
    }
    expect(await store.readStream(bystander)).toEqual([]);
    expect(await store.headPosition()).toBeUndefined();

    const again = await store.append(bystander, [makeEvent(bystander)], 'no_stream');
    expect(again.nextRevision).toBe(0);
    expect((await store.readStream(bystander)).map((e) => e.revision)).toEqual([0]);
  });

  it('appends that arrive while a commit is in flight form the next batch, each checked in order', async () => {
    const sizes: number[] = [];
    const { store } = open((size) => sizes.push(size));
    const s = stream();
    const first = store.append(s, [makeEvent(s)], 'no_stream');
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is now with the writer
    const rest = Array.from({ length: 20 }, () => {
      const other = stream();
      return store.append(other, [makeEvent(other)], 'no_stream');
    });
    // Expects revision 0, which the in-flight batch is about to write.
    const next = store.append(s, [makeEvent(s)], 0);
    const all = await Promise.all([first, ...rest, next]);
    expect(all[all.length - 1]!.nextRevision).toBe(1);
    const positions = all.map((r) => Number(r.position.commit));
    expect(new Set(positions).size).toBe(positions.length);
    expect(sizes[0]).toBe(1);
    expect(sizes.slice(1).reduce((a, b) => a + b, 0)).toBe(21);
    expect(sizes.length).toBeLessThan(22);
  });

  it('close() during a commit waits for it, then commits what queued behind it', async () => {
    const { store, file } = open();
    const first = stream();
    const inFlight = store.append(first, [makeEvent(first)], 'no_stream');
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is now with the writer
    const behind = Array.from({ length: 10 }, () => stream());
    const queued = behind.map((n) => store.append(n, [makeEvent(n)], 'no_stream'));
    await store.close();
    await Promise.all([inFlight, ...queued]);
    const reopened = openSqliteEventStore({ path: file });
    stores.push(reopened);
    for (const n of [first, ...behind]) expect((await reopened.readStream(n)).map((e) => e.revision)).toEqual([0]);
  });

  it('a payload that cannot be encoded fails its own append only', async () => {
    const { store } = open();
    const good = stream();
    const bad = stream();
    const event = makeEvent(bad);
    const results = await Promise.allSettled([
      store.append(good, [makeEvent(good)], 'no_stream'),
      store.append(bad, [{ ...event, data: { n: 1n } }], 'no_stream'),
    ]);
    expect(results[0].status).toBe('fulfilled');
    expect(results[1].status).toBe('rejected');
    expect(await store.readStream(bad)).toEqual([]);
    expect((await store.readStream(good)).map((e) => e.revision)).toEqual([0]);
  });

  it('close() commits every append queued before it, and only then closes', async () => {
    const { store, file } = open();
    const names = Array.from({ length: 30 }, () => stream());
    const pending = names.map((n) => store.append(n, [makeEvent(n)], 'no_stream'));
    await store.close();
    await Promise.all(pending);
    await expect(store.append(names[0]!, [makeEvent(names[0]!)], 0)).rejects.toBeInstanceOf(StoreUnavailableError);
    const reopened = openSqliteEventStore({ path: file });
    stores.push(reopened);
    for (const n of names) expect((await reopened.readStream(n)).map((e) => e.revision)).toEqual([0]);
  });
});
