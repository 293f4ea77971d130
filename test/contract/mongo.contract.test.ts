// The read-model contract against MongoDB, when MONGODB_URL points at a
// server (e.g. the docker-compose one:
// MONGODB_URL='mongodb://localhost:27017/?replicaSet=rs0&directConnection=true').
// Each test gets its own database, dropped afterwards. The suite runs twice:
// with transactions (when the server is a replica set) and with them forced
// off, the path a standalone server takes.
import { randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/stores/eventStore.ts';
import { openMongoReadModel } from '../../src/stores/mongo/mongoReadModel.ts';
import { readModelContract, type ReadModelFactory } from './readModel.contract.ts';

const url = process.env.MONGODB_URL;

if (!url) {
  console.warn(
    [
      '',
      '⚠⚠⚠ SKIPPED: MongoDB contract suite NOT run (MONGODB_URL unset) — the MongoDB read model is untested in this run.',
      "    Run it with: MONGODB_URL='mongodb://localhost:27017/?replicaSet=rs0&directConnection=true' npx vitest run test/contract (see docs/scaling-out.md)",
      '',
    ].join('\n'),
  );
}

function factory(transactions: boolean | undefined): ReadModelFactory {
  return async () => {
    const database = `webhook_registry_contract_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
    const readModel = await openMongoReadModel({
      url: url!,
      database,
      dropGraceMs: 0,
      ...(transactions === undefined ? {} : { transactions }),
    });
    return {
      readModel,
      async cleanup() {
        await readModel.close();
        const admin = new MongoClient(url!, { serverSelectionTimeoutMS: 5_000 });
        try {
          await admin.db(database).dropDatabase();
        } finally {
          await admin.close();
        }
      },
    };
  };
}

// Skipped only when no MongoDB server is configured: the server cannot be
// installed on the build machines (not in Debian, no Docker engine). The banner
// above makes the skip loud; a skipped suite is reported as skipped, never passed.
describe.skipIf(!url)('MongoDB engine', () => {
  readModelContract('MongoDB', factory(undefined));
  readModelContract('MongoDB, transactions off', factory(false));
});

// These need no server and always run.
describe('MongoDB read model without a server', () => {
  it('open fails fast with a StoreUnavailableError that does not leak credentials', async () => {
    const started = Date.now();
    const error = await openMongoReadModel({
      url: 'mongodb://app:sup3r-s3cret@127.0.0.1:1/registry?replicaSet=rs0',
      serverSelectionTimeoutMS: 1_000,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain('cannot be reached');
    expect((error as Error).message).not.toContain('sup3r-s3cret');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rejects a malformed URL without quoting its credentials', async () => {
    const error = await openMongoReadModel({ url: 'mongodb://app:pw-123@[not-a-host' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain('MONGODB_URL');
    expect((error as Error).message).not.toContain('pw-123');
  });
});
