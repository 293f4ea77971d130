// `projections rebuild`: rebuilds the read model from the event log beside the
// live one and switches to it in one step (src/projections/rebuild.ts).
import { parseArgs } from 'node:util';
import type { Config } from '../config.ts';
import { rebuildReadModel } from '../projections/rebuild.ts';
import { closeCore, openStores } from '../runtime.ts';
import { SqliteEventStore } from '../stores/sqlite/sqliteEventStore.ts';
import { createProgressBar } from './progress.ts';

export const PROJECTIONS_REBUILD_HELP = `usage: projections rebuild [--progress] [--page-size <n>]

Rebuilds the read model from the event log. The new copy is filled beside the
live read model (SQLite: "_next" tables in the same file; MongoDB: a new
collection set), which keeps serving reads meanwhile, and replaces it in one
transaction when complete. A running projector notices the moved checkpoint
and continues from the rebuilt one, so it is safe while the API serves.
Interrupting it (Ctrl-C) leaves the live read model as it was.

  --progress         progress on stderr even when it is not a terminal
                     (a bar is drawn by default when stderr is a terminal)
  --page-size <n>    events applied per transaction (default 10000)

Uses the same environment as the server (DATA_DIR, EVENTSTORE_URL, MONGODB_URL).
Exit status: 0 rebuilt, 2 bad usage.`;

export async function projectionsRebuildCommand(config: Config, argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        progress: { type: 'boolean' },
        'page-size': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`projections rebuild: ${(error as Error).message}\n\n${PROJECTIONS_REBUILD_HELP}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${PROJECTIONS_REBUILD_HELP}\n`);
    return 0;
  }
  const pageText = values['page-size'];
  const pageSize = pageText === undefined ? undefined : Number(pageText);
  if (pageSize !== undefined && (!/^\d+$/.test(pageText ?? '') || pageSize < 1 || pageSize > 100_000)) {
    process.stderr.write(`projections rebuild: --page-size must be a whole number from 1 to 100000\n`);
    return 2;
  }

  const stores = await openStores(config);
  const bar = createProgressBar({ label: 'rebuild', unit: 'events', forced: values.progress === true });
  try {
    // SQLite positions are a dense sequence, so the head is the event count; other engines: counts only.
    const head = stores.store instanceof SqliteEventStore ? await stores.store.headPosition() : undefined;
    const total = head === undefined ? undefined : Number(head.commit);
    bar.start(total);
    const result = await rebuildReadModel(stores.store, stores.readModel, {
      ...(pageSize !== undefined ? { pageSize } : {}),
      ...(total !== undefined ? { total } : {}),
      onProgress: (p) => bar.update(p.events, p.events),
    });
    bar.stop();
    const rate = result.seconds > 0 ? Math.round(result.events / result.seconds) : result.events;
    process.stderr.write(
      `projections rebuild: ${result.events} events applied in ${result.seconds.toFixed(2)}s (${rate} events/s); ` +
        `read model ${stores.engines.readModel} now at checkpoint ${result.checkpoint ?? 'none'}\n`,
    );
    return 0;
  } finally {
    bar.stop();
    await closeCore(stores);
  }
}
