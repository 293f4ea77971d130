// What both PostgreSQL engines (event store and read model) share: the
// connection pool with a timeout on every call, the check of POSTGRES_URL,
// the mapping of driver errors to StoreUnavailableError, and versioned schema
// migrations that are safe when several processes start at once.
import pg from 'pg';
import { StoreUnavailableError } from '../eventStore.ts';

export interface PgConnectionOptions {
  /** `postgres://user:pw@host:5432/db` or `postgresql://…` (POSTGRES_URL). */
  readonly url: string;
  /** How long opening a connection may take (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** How long one statement may run, on the server and as seen by the client (default 10 s). */
  readonly statementTimeoutMs?: number;
  /** Connections of the pool (default 10). */
  readonly maxConnections?: number;
  /** Names the process in pg_stat_activity. */
  readonly applicationName?: string;
}

/** The connection settings every engine uses, for a pool or a single client. */
export function clientConfig(options: PgConnectionOptions): pg.ClientConfig {
  checkPostgresUrl(options.url);
  const statementTimeout = options.statementTimeoutMs ?? 10_000;
  return {
    connectionString: options.url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    // Server side: a statement that runs too long is cancelled...
    statement_timeout: statementTimeout,
    idle_in_transaction_session_timeout: statementTimeout * 2,
    // ...and client side, for a server that stopped answering altogether.
    query_timeout: statementTimeout + 2_000,
    keepAlive: true,
    application_name: options.applicationName ?? 'webhook-registry',
  };
}

/**
 * A pool whose idle connections may die (server restart) without crashing the
 * process; the next query opens a new one.
 */
export function createPool(options: PgConnectionOptions): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(options), max: options.maxConnections ?? 10, idleTimeoutMillis: 30_000 });
  pool.on('error', () => undefined);
  return pool;
}

/** Opens a pool and proves the server answers; a clear StoreUnavailableError naming POSTGRES_URL otherwise. */
export async function openPool(options: PgConnectionOptions): Promise<pg.Pool> {
  const pool = createPool(options);
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new StoreUnavailableError(
      `PostgreSQL at ${redactUrl(options.url)} (POSTGRES_URL) cannot be reached: ${reasonOf(error)}`,
      { cause: error },
    );
  }
  return pool;
}

/** Throws a message naming POSTGRES_URL (and never its password) for a string that is not a PostgreSQL URL. */
export function checkPostgresUrl(url: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  const hasHost = parsed !== undefined && (parsed.hostname !== '' || parsed.searchParams.has('host'));
  if (parsed === undefined || (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') || !hasHost) {
    throw new Error(`POSTGRES_URL must be a postgres:// or postgresql:// URL with a host, or a ?host= socket folder (got ${redactUrl(url)})`);
  }
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/?#]*@/, '//***@');
}

function reasonOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reasonOf(error.errors[0]);
  if (error instanceof Error) return error.message || (error as { code?: string }).code || error.name;
  return String(error);
}

/**
 * SQLSTATE classes that say the server, not the statement, is the problem:
 * 08 connection, 53 resources, 57 operator intervention (shutdown, statement
 * timeout), 58 system errors, 40001/40P01 serialization failure/deadlock.
 */
function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (/^(08|53|57|58)/.test(code) || code === '40001' || code === '40P01') return true;
    if (/^E[A-Z]+$/.test(code)) return true; // ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTFOUND, …
  }
  const message = error instanceof Error ? error.message : '';
  return /timeout|terminated|Connection|connect|not queryable|ended/i.test(message);
}

/** Driver and server failures become StoreUnavailableError (retryable); anything else is a bug and stays as it is. */
export function storeError(error: unknown, operation: string): Error {
  if (error instanceof StoreUnavailableError) return error;
  if (isTransient(error)) return new StoreUnavailableError(`PostgreSQL ${operation} failed: ${reasonOf(error)}`, { cause: error });
  return error instanceof Error ? error : new Error(String(error));
}

// ---- migrations ----------------------------------------------------------------------

/** One round trip to the server; StoreUnavailableError when it cannot answer. */
export async function pingPool(pool: pg.Pool): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    const failure = storeError(error, 'ping');
    throw failure instanceof StoreUnavailableError ? failure : new StoreUnavailableError(failure.message, { cause: error });
  }
}

export interface Migration {
  readonly version: number;
  readonly description: string;
  /** Statements run in one transaction. */
  readonly sql: string;
}

/** One lock for every migration of this database (any key would do; this one spells "webhooks"). */
const MIGRATION_LOCK = 0x7765_6268_6f6f_6b73n;

/**
 * Brings `component`'s schema to its newest version: each missing migration in
 * its own transaction, recorded in `schema_migrations`. Processes starting at
 * once queue on an advisory lock, so each migration runs exactly once.
 */
export async function migrate(pool: pg.Pool, component: string, migrations: readonly Migration[]): Promise<number> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw storeError(error, 'migration');
  }
  let failure: unknown;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        component   text        NOT NULL,
        version     integer     NOT NULL,
        description text        NOT NULL,
        applied_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (component, version)
      )`);
      const applied = await client.query<{ version: number }>(
        'SELECT version FROM schema_migrations WHERE component = $1',
        [component],
      );
      const done = new Set(applied.rows.map((r) => r.version));
      const newest = Math.max(0, ...migrations.map((m) => m.version));
      const unknown = [...done].filter((v) => v > newest);
      if (unknown.length > 0) {
        throw new Error(
          `the ${component} schema is at version ${Math.max(...unknown)}, newer than this program knows (${newest}): upgrade the program`,
        );
      }
      for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (component, version, description) VALUES ($1, $2, $3)', [
            component,
            m.version,
            m.description,
          ]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      }
      return newest;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]).catch(() => undefined);
    }
  } catch (error) {
    failure = error;
    throw storeError(error, `migration of the ${component} schema`);
  } finally {
    client.release(failure instanceof Error ? failure : undefined);
  }
}

/** host:port/database of a URL, for banners and health output (no user or password). */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || u.searchParams.get('host') || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return redactUrl(url);
  }
}
