// `projections rebuild`: rebuilds the read model from the event log beside the
// live one and switches to it in one step (src/projections/rebuild.ts).
import type { Config } from '../config.ts';
import { rebuildReadModel } from '../projections/rebuild.ts';
import { closeCore, openStores } from '../runtime.ts';
import { SqliteEventStore } from '../stores/sqlite/sqliteEventStore.ts';
import { EXIT_USAGE, PAGE_SIZE_PROBLEM, parseCommandOptions, parsePageSize } from './options.ts';
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
  --page-size <n>    events read from the log per page (default 1000); SQLite
                     applies a page in one transaction, MongoDB in transactions
                     of at most 1000 events and 4 MiB

Uses the same environment as the server (DATA_DIR, EVENTSTORE_URL, MONGODB_URL).
Exit status: 0 rebuilt, 2 bad usage.`;

export async function projectionsRebuildCommand(config: Config, argv: string[]): Promise<number> {
  const parsed = parseCommandOptions('projections rebuild', PROJECTIONS_REBUILD_HELP, argv, {
    progress: { type: 'boolean' },
    'page-size': { type: 'string' },
  });
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  const pageSize = parsePageSize(values['page-size']);
  if (pageSize === 'invalid') {
    // Unlike the audit commands, without the help text after it.
    process.stderr.write(`projections rebuild: ${PAGE_SIZE_PROBLEM}\n`);
    return EXIT_USAGE;
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
