// A database of its own for a test on the run's PostgreSQL server (started by
// test/setup/postgres.globalSetup.ts, or the one POSTGRES_URL names).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** The server URL the global setup provides (its `postgres` database). */
export function postgresServerUrl(): string {
  return inject('postgresUrl');
}

/** `url` with its database replaced. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function admin<T>(serverUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** FILE_COPY: for a small template, faster to create and to drop than the default WAL_LOG. */
export async function createDatabase(serverUrl: string, database: string, options: { ifMissing?: boolean } = {}): Promise<void> {
  await admin(serverUrl, async (c) => {
    try {
      await c.query(`CREATE DATABASE "${database}" STRATEGY FILE_COPY`);
    } catch (error) {
      if (!(options.ifMissing && (error as { code?: string }).code === '42P04')) throw error; // duplicate_database
    }
  });
}

/** Drops a database even while connections to it remain (best effort: never fails the test). */
export async function dropDatabase(serverUrl: string, database: string): Promise<void> {
  await admin(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)).catch(() => undefined);
}

export interface TestDatabase {
  readonly name: string;
  /** URL of the new database (POSTGRES_URL for an engine under test). */
  readonly url: string;
  drop(): Promise<void>;
}

/** Creates a fresh, empty database with a random name. */
export async function createTestDatabase(serverUrl = postgresServerUrl()): Promise<TestDatabase> {
  const name = `test_${randomBytes(8).toString('hex')}`;
  await createDatabase(serverUrl, name);
  return { name, url: withDatabase(serverUrl, name), drop: () => dropDatabase(serverUrl, name) };
}
