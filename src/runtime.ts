// The composition root shared by the server and the command-line tools:
// turns the configuration into stores, the secret box and the command
// handlers. Everything else receives these as parameters.
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config, EncryptionKey } from './config.ts';
import { SecretBox } from './crypto/secretBox.ts';
import { WebhookCommands } from './commands/webhookCommands.ts';
import { RequestFingerprints } from './commands/idempotency.ts';
import type { EventStore } from './stores/eventStore.ts';
import type { ReadModel } from './stores/readModel.ts';
import { openSqliteEventStore } from './stores/sqlite/sqliteEventStore.ts';
import { openSqliteReadModel } from './stores/sqlite/sqliteReadModel.ts';

export interface Stores {
  readonly store: EventStore;
  readonly readModel: ReadModel;
  /** Human-readable engine names for the banner and health output. */
  readonly engines: { readonly log: string; readonly readModel: string };
}

export interface StoreHooks {
  readonly onCommit?: (batchSize: number, seconds: number) => void;
  /**
   * When given, an EventStoreDB that cannot be reached at start is reported
   * here and the stores open anyway (the server starts not ready); without
   * it, start-up fails (the command-line tools).
   */
  readonly onLogUnreachable?: (error: Error) => void;
}

export const EVENTS_FILE = 'events.sqlite';
export const READ_MODEL_FILE = 'readmodel.sqlite';

/**
 * Opens the configured engines: EventStoreDB / MongoDB when their URLs are set
 * (in EVENTSTORE_NAMESPACE / MONGODB_DATABASE when given), else PostgreSQL for
 * both when POSTGRES_URL is set, else SQLite files in DATA_DIR.
 */
export async function openStores(config: Config, hooks: StoreHooks = {}): Promise<Stores> {
  mkdirSync(config.dataDir, { recursive: true });
  let store: EventStore;
  let log: string;
  if (config.EVENTSTORE_URL !== undefined) {
    const { openEsdbEventStore } = await import('./stores/esdb/esdbEventStore.ts');
    store = await openEsdbEventStore({
      connectionString: config.EVENTSTORE_URL,
      ...(config.EVENTSTORE_NAMESPACE !== '' ? { namespace: config.EVENTSTORE_NAMESPACE } : {}),
      timeoutMs: config.EVENTSTORE_TIMEOUT_MS,
      ...(hooks.onLogUnreachable ? { onUnreachable: hooks.onLogUnreachable } : {}),
    });
    log = config.EVENTSTORE_NAMESPACE !== '' ? `EventStoreDB (namespace ${config.EVENTSTORE_NAMESPACE})` : 'EventStoreDB';
  } else if (config.POSTGRES_URL !== undefined) {
    const { openPostgresEventStore } = await import('./stores/postgres/postgresEventStore.ts');
    const { describePostgresUrl } = await import('./stores/postgres/pgDatabase.ts');
    store = await openPostgresEventStore({
      url: config.POSTGRES_URL,
      ...(hooks.onCommit ? { onCommit: hooks.onCommit } : {}),
    });
    log = `PostgreSQL (${describePostgresUrl(config.POSTGRES_URL)})`;
  } else {
    store = openSqliteEventStore({
      path: path.join(config.dataDir, EVENTS_FILE),
      ...(hooks.onCommit ? { onCommit: hooks.onCommit } : {}),
    });
    log = `SQLite (${path.join(config.dataDir, EVENTS_FILE)})`;
  }
  let readModel: ReadModel;
  let rm: string;
  try {
    if (config.MONGODB_URL !== undefined) {
      const { openMongoReadModel } = await import('./stores/mongo/mongoReadModel.ts');
      const mongo = await openMongoReadModel({
        url: config.MONGODB_URL,
        ...(config.MONGODB_DATABASE !== undefined ? { database: config.MONGODB_DATABASE } : {}),
      });
      readModel = mongo;
      rm = `MongoDB (database ${mongo.databaseName})`;
    } else if (config.POSTGRES_URL !== undefined) {
      const { openPostgresReadModel } = await import('./stores/postgres/postgresReadModel.ts');
      const { describePostgresUrl } = await import('./stores/postgres/pgDatabase.ts');
      readModel = await openPostgresReadModel({ url: config.POSTGRES_URL });
      rm = `PostgreSQL (${describePostgresUrl(config.POSTGRES_URL)}, schema read_model)`;
    } else {
      readModel = openSqliteReadModel({ path: path.join(config.dataDir, READ_MODEL_FILE) });
      rm = `SQLite (${path.join(config.dataDir, READ_MODEL_FILE)})`;
    }
  } catch (error) {
    await store.close();
    throw error;
  }
  return { store, readModel, engines: { log, readModel: rm } };
}

const DEV_KEYS_FILE = 'secret-keys.json';

/** SECRET_ENCRYPTION_KEYS, or (outside production) a key generated once into the data folder. */
export function loadEncryptionKeys(config: Config): { keys: EncryptionKey[]; generated: boolean } {
  if (config.SECRET_ENCRYPTION_KEYS !== undefined) return { keys: config.SECRET_ENCRYPTION_KEYS, generated: false };
  mkdirSync(config.dataDir, { recursive: true });
  const file = path.join(config.dataDir, DEV_KEYS_FILE);
  if (!existsSync(file)) {
    const key = { id: `dev-${randomBytes(3).toString('hex')}`, key: randomBytes(32).toString('base64') };
    writeFileSync(file, JSON.stringify([key]), { mode: 0o600, flag: 'wx' });
  }
  const stored = JSON.parse(readFileSync(file, 'utf8')) as { id: string; key: string }[];
  return { keys: stored.map((k) => ({ id: k.id, key: Buffer.from(k.key, 'base64') })), generated: true };
}

export interface Core extends Stores {
  readonly secrets: SecretBox;
  readonly commands: WebhookCommands;
  /** Derived from the current encryption key, so cursors survive restarts and work across replicas. */
  readonly cursorKey: Buffer;
  readonly generatedEncryptionKey: boolean;
}

export async function openCore(config: Config, hooks: StoreHooks = {}): Promise<Core> {
  const { keys, generated } = loadEncryptionKeys(config);
  const secrets = new SecretBox(keys);
  const stores = await openStores(config, hooks);
  const cursorKey = createHmac('sha256', keys[0]!.key).update('list-cursor-signing').digest();
  return {
    ...stores,
    secrets,
    commands: new WebhookCommands(stores.store, stores.readModel, secrets, new RequestFingerprints(keys)),
    cursorKey,
    generatedEncryptionKey: generated,
  };
}

export async function closeCore(core: Stores): Promise<void> {
  await core.store.close();
  await core.readModel.close();
}
