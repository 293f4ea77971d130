// The contract suites against the embedded engines, each test on its own
// temporary SQLite files.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteEventStore } from '../../src/stores/sqlite/sqliteEventStore.ts';
import { openSqliteReadModel } from '../../src/stores/sqlite/sqliteReadModel.ts';
import { eventStoreContract } from './eventStore.contract.ts';
import { readModelContract } from './readModel.contract.ts';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'webhook-registry-contract-'));
}

eventStoreContract('SQLite', async () => {
  const dir = await tempDir();
  const store = openSqliteEventStore({ path: join(dir, 'events.sqlite') });
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

readModelContract('SQLite', async () => {
  const dir = await tempDir();
  const readModel = openSqliteReadModel({ path: join(dir, 'read-model.sqlite') });
  return {
    readModel,
    async cleanup() {
      await readModel.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
