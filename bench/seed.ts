// Seeds a data folder with registrations through the real command handler
// (same events, metadata, hash chain and encrypted secrets as over HTTP),
// many at once so the event store group-commits them. The read model is not
// touched here: the bench rebuilds it from the log afterwards (figure 4).
// On PostgreSQL the appends are durable as usual (one WAL flush per group commit).
import { canonicalRequest } from '../src/commands/idempotency.ts';
import { loadConfig } from '../src/config.ts';
import { closeCore, openCore } from '../src/runtime.ts';
import { SqliteEventStore } from '../src/stores/sqlite/sqliteEventStore.ts';
import { rng, type Workload } from './workload.ts';

export interface SeedOptions {
  readonly dataDir: string;
  readonly workload: Workload;
  /** Index of the first registration (so a folder can be grown in steps with distinct keys). */
  readonly from: number;
  readonly count: number;
  /** Registrations in flight together (one group commit each). */
  readonly concurrency?: number;
  readonly onProgress?: (done: number) => void;
  /** More settings for the stores (e.g. POSTGRES_URL); default: SQLite files in dataDir. */
  readonly env?: Record<string, string>;
}

export async function seedRegistrations(options: SeedOptions): Promise<{ seconds: number }> {
  const started = process.hrtime.bigint();
  const config = loadConfig({ ...options.env, NODE_ENV: 'test', DATA_DIR: options.dataDir, LOG_LEVEL: 'silent' });
  const core = await openCore(config);
  try {
    if (core.store instanceof SqliteEventStore) {
      // Seeding only: the data is synthetic, so skip fsyncs and keep more of the
      // index in memory. The server under test reopens the file with its own settings.
      core.store.database.pragma('synchronous = OFF');
      core.store.database.pragma('cache_size = -262144');
    }
    const random = rng(options.from + 1);
    const { organizations } = options.workload;
    const concurrency = options.concurrency ?? 2000;
    const now = new Date();
    for (let base = options.from; base < options.from + options.count; base += concurrency) {
      const end = Math.min(base + concurrency, options.from + options.count);
      const batch: Promise<unknown>[] = [];
      for (let i = base; i < end; i++) {
        const org = organizations[i % organizations.length]!;
        const body = options.workload.registration(random, org, i);
        batch.push(
          core.commands.register(
            {
              organizationId: org.id,
              actor: { clientId: `${org.id}-integration`, subject: `service-account-${org.id}-integration` },
              requestId: `seed-${i}`,
              idempotencyKey: `seed-${i}`,
              request: canonicalRequest('POST', '/v1/webhooks', body),
              now,
            },
            { ...body, authorizedPartnerIds: org.partnerIds },
          ),
        );
      }
      await Promise.all(batch);
      options.onProgress?.(end - options.from);
    }
  } finally {
    await closeCore(core);
  }
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}
