// Dispatch lookups on the embedded engine read their candidates' rows in
// slices of LOOKUP_SLICE, each slice its own read transaction with a turn on
// the event loop before it (src/dispatch/lookupTurns.ts). With more targets
// than one slice holds: the sliced answer is the one-transaction answer; a
// webhook paused between two slices is left out by the slice that reads it
// after the pause, one registered meanwhile is in the next lookup; stale
// index entries dropped by a slice come back when the webhook does; and a
// rebuild that switches the tables between two slices makes the lookup
// start again instead of reading other webhooks' rows. Each row becomes its
// target in the slice that read it, so rows do not wait through the turns.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatchLookup, type DispatchLookup } from '../../src/dispatch/dispatchTargets.ts';
import { createTurns, LOOKUP_SLICE, type Turns } from '../../src/dispatch/lookupTurns.ts';
import { rebuildReadModel } from '../../src/projections/rebuild.ts';
import { READ_MODEL_FILE } from '../../src/runtime.ts';
import { openSqliteReadModel } from '../../src/stores/sqlite/sqliteReadModel.ts';
import { PARTNER_A, SQLITE_ENGINES, startRegistry, type TestRegistry } from '../support/registry.ts';
import { DispatcherApi, settleProjection, WebhookApi } from '../support/webhookApi.ts';

const TYPE = 'kyc.verification.approved';
/** Three slices of rows: two full, one of 10. */
const COUNT = 2 * LOOKUP_SLICE + 10;

describe('dispatch lookups in slices (embedded engine)', () => {
  let registry: TestRegistry;
  let api: WebhookApi;
  let dispatcher: DispatcherApi;
  /** In registration order, so also in the index's (seq) order. */
  const ids: string[] = [];
  let inOneGo: DispatchLookup;

  /** Turns taken by the last lookup of slicedWith. */
  let taken = 0;
  /** A lookup whose turns run `action` before the `at`-th turn is given. */
  function slicedWith(at: number, action: () => Promise<void>): DispatchLookup {
    const real = createTurns();
    taken = 0;
    const turns: Turns = {
      take: async () => {
        taken += 1;
        if (taken === at) await action();
        await real.take();
      },
    };
    return createDispatchLookup(registry.server.core.readModel, registry.server.core.secrets, undefined, { turns });
  }
  const idsOf = async (lookup: DispatchLookup): Promise<string[]> => (await lookup(TYPE, PARTNER_A)).map((t) => t.id);
  const sorted = (list: readonly string[]): string[] => [...list].sort();

  beforeAll(async () => {
    registry = await startRegistry({ env: SQLITE_ENGINES });
    api = await WebhookApi.as(registry, 'acme-integration');
    dispatcher = await DispatcherApi.as(registry);
    for (let i = 0; i < COUNT; i++) {
      const created = await api.registered({ url: `https://hooks.example.com/sliced/${i}`, events: ['kyc.*'], partnerIds: [PARTNER_A] });
      ids.push(created.id);
    }
    await settleProjection(registry);
    inOneGo = createDispatchLookup(registry.server.core.readModel, registry.server.core.secrets);
  }, 60_000);

  afterAll(async () => {
    await registry?.close();
  });

  it('answers over HTTP, in slices, exactly what one read transaction answers, before and after changes', async () => {
    const overHttp = async (): Promise<string[]> => (await dispatcher.targetsOk(TYPE, PARTNER_A)).map((t) => t.id);
    expect(await overHttp()).toEqual(sorted(ids));
    expect(await idsOf(inOneGo)).toEqual(sorted(ids));

    // Pause some in every slice; the slices drop them from the index as stale.
    const paused = [ids[3]!, ids[LOOKUP_SLICE + 1]!, ids[COUNT - 2]!];
    for (const id of paused) expect((await api.patch(id, { status: 'PAUSED' })).status).toBe(200);
    await settleProjection(registry);
    const live = sorted(ids.filter((id) => !paused.includes(id)));
    expect(await overHttp()).toEqual(live);
    expect(await idsOf(inOneGo)).toEqual(live);

    // Back to ACTIVE: the routes the slices dropped are there again.
    for (const id of paused) expect((await api.patch(id, { status: 'ACTIVE' })).status).toBe(200);
    await settleProjection(registry);
    expect(await overHttp()).toEqual(sorted(ids));
    expect(await idsOf(inOneGo)).toEqual(sorted(ids));
  });

  it('leaves out a webhook paused between two slices, and has one registered meanwhile in the next lookup', async () => {
    const last = ids[COUNT - 1]!;
    let added = '';
    // Turns: 1 before the lookup, 2 before the second slice of rows, 3 before the third (which reads `last`).
    const lookup = slicedWith(3, async () => {
      expect((await api.patch(last, { status: 'PAUSED' })).status).toBe(200);
      added = (await api.registered({ url: 'https://hooks.example.com/sliced/meanwhile', events: [TYPE], partnerIds: [PARTNER_A] })).id;
      await settleProjection(registry);
    });
    const during = await idsOf(lookup);
    expect(added).not.toBe('');
    expect(during).toEqual(sorted(ids.filter((id) => id !== last)));
    const after = sorted([...ids.filter((id) => id !== last), added]);
    expect(await idsOf(inOneGo)).toEqual(after);
    expect(await idsOf(slicedWith(0, () => Promise.resolve()))).toEqual(after);

    expect((await api.patch(last, { status: 'ACTIVE' })).status).toBe(200);
    expect((await api.delete(added)).status).toBe(204);
    await settleProjection(registry);
    expect(await idsOf(inOneGo)).toEqual(sorted(ids));
  });

  it('turns each row into what the caller keeps in the slice that read it, not after the last slice', async () => {
    const keptBeforeTurn: number[] = [];
    let kept = 0;
    const answer = await registry.server.core.readModel.dispatchTargets(TYPE, PARTNER_A, {
      keep: (view) => {
        kept += 1;
        return { id: view.id, url: view.url };
      },
      between: async () => {
        keptBeforeTurn.push(kept);
        await Promise.resolve();
      },
    });
    expect(keptBeforeTurn).toEqual([LOOKUP_SLICE, 2 * LOOKUP_SLICE]);
    expect(kept).toBe(COUNT);
    expect(answer.map((t) => t.id)).toEqual(sorted(ids));
  });

  it('starts again when a rebuild in another connection switches the tables between two slices', async () => {
    const lookup = slicedWith(2, async () => {
      const other = openSqliteReadModel({ path: path.join(registry.dataDir, READ_MODEL_FILE) });
      try {
        await rebuildReadModel(registry.server.core.store, other);
      } finally {
        await other.close();
      }
    });
    const answer = await lookup(TYPE, PARTNER_A);
    expect(answer.map((t) => t.id)).toEqual(sorted(ids));
    // It read its slices again: 1 turn before the lookup, 1 before the slice that found the tables switched,
    // 2 for the second and third slices of the new start (each slice decrypts what it read; a lookup read once takes 3).
    expect(taken).toBe(4);
    // Every target is the webhook it names (rows read by a seq of the old tables would belong to others).
    for (const target of answer) expect(target.url).toBe(`https://hooks.example.com/sliced/${ids.indexOf(target.id)}`);
  });
});
