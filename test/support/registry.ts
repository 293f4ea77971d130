// Test harness: the real registry (HTTP app, stores, projector) verifying
// tokens from a real in-process OAuth 2.0 server.
//
// Engines: SQLite files in a temp folder by default. When this process has
// EVENTSTORE_URL and/or MONGODB_URL set (e.g. the docker-compose services, see
// docs/scaling-out.md), every registry uses those servers instead, isolated by
// an EVENTSTORE_NAMESPACE / MONGODB_DATABASE of its own derived from its data
// folder (so a restart over the same folder finds its data again). With
// POSTGRES_URL set (the `postgres` test project sets it to the run's server),
// each registry gets a PostgreSQL database of its own, named the same way,
// for whichever port the other two leave. A test that needs the SQLite files
// passes `env: SQLITE_ENGINES`.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../src/config.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { StoreUnavailableError } from '../../src/stores/eventStore.ts';
import { startOAuthServer, type OAuthClientConfig, type OAuthServer } from './oauthServer.ts';
import { createDatabase, dropDatabase, withDatabase } from './postgres.ts';

export const PARTNER_A = '3c90c3cc-0d44-4b50-8888-8dd25736052a';
export const PARTNER_B = '7f1e2d3c-4b5a-4c6d-8e9f-0a1b2c3d4e5f';
export const PARTNER_C = 'c0ffee00-1234-4abc-9def-001122334455';

/** Organizations and service accounts every test registry knows. */
export const DEFAULT_CLIENTS: OAuthClientConfig[] = [
  {
    clientId: 'acme-integration',
    clientSecret: 'acme-secret',
    orgId: 'acme',
    partnerIds: [PARTNER_A, PARTNER_B],
    scopes: ['webhooks:read', 'webhooks:write'],
  },
  {
    clientId: 'globex-integration',
    clientSecret: 'globex-secret',
    orgId: 'globex',
    partnerIds: [PARTNER_C],
    scopes: ['webhooks:read', 'webhooks:write'],
  },
  { clientId: 'acme-reader', clientSecret: 'reader-secret', orgId: 'acme', partnerIds: [PARTNER_A], scopes: ['webhooks:read'] },
  { clientId: 'dispatcher', clientSecret: 'dispatcher-secret', scopes: ['webhooks:dispatch'] },
  { clientId: 'compliance-auditor', clientSecret: 'auditor-secret', scopes: ['webhooks:audit'] },
];

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response bodies loosely
export interface TestResponse<T = any> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
  readonly text: string;
}

export interface RequestOptions {
  readonly token?: string | undefined;
  readonly body?: unknown;
  /** Sent as-is instead of JSON-encoding `body`. */
  readonly rawBody?: string;
  readonly headers?: Record<string, string>;
}

export interface TestRegistry {
  readonly url: string;
  readonly dataDir: string;
  readonly config: Config;
  /** The environment the registry was started with (engines included): give it to a CLI run on the same data. */
  readonly env: Readonly<Record<string, string>>;
  readonly server: RunningServer;
  readonly oauth: OAuthServer;
  /** Log lines written by the server (JSON strings). */
  readonly logs: string[];
  token(clientId?: string, scope?: string): Promise<string>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see TestResponse
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<TestResponse<T>>;
  /** Stops the registry (not the OAuth server); the data folder stays. */
  stop(): Promise<void>;
  /** Stops everything and removes the data folder (and its generated MongoDB database). */
  close(): Promise<void>;
}

export interface StartRegistryOptions {
  readonly env?: Record<string, string>;
  readonly clients?: OAuthClientConfig[];
  /** Reuse a running OAuth server (and keep it running on close). */
  readonly oauth?: OAuthServer;
  /** Reuse a data folder (e.g. to restart over the same files). */
  readonly dataDir?: string;
  /** The registry's clock (default: real time). */
  readonly now?: () => Date;
}

export function tempDataDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'webhook-registry-test-'));
}

// ---- engines ------------------------------------------------------------------------

/** Pass as (part of) `env` to run a registry on SQLite files whatever the process environment says. */
export const SQLITE_ENGINES: Readonly<Record<string, string>> = Object.freeze({
  EVENTSTORE_URL: '',
  MONGODB_URL: '',
  POSTGRES_URL: '',
});

/** The servers this test process was pointed at (empty means unset, as in loadConfig). */
function serverUrls(): { eventStore: string | undefined; mongo: string | undefined; postgres: string | undefined } {
  return {
    eventStore: process.env.EVENTSTORE_URL || undefined,
    mongo: process.env.MONGODB_URL || undefined,
    postgres: process.env.POSTGRES_URL || undefined,
  };
}

/** True when registries started without an engine override use SQLite for both the log and the read model. */
export function usingSqliteEngines(): boolean {
  const { eventStore, mongo, postgres } = serverUrls();
  return eventStore === undefined && mongo === undefined && postgres === undefined;
}

/** Salt per test process: the same data folder gets the same namespace within a run, never across runs. */
const RUN_SALT = randomBytes(8).toString('hex');

/** The EventStoreDB namespace and MongoDB database of the registry on this data folder. */
export function isolationFor(dataDir: string): { namespace: string; database: string } {
  const id = createHash('sha256').update(`${RUN_SALT}\0${path.resolve(dataDir)}`).digest('hex').slice(0, 16);
  return { namespace: `t${id}-`, database: `t_${id}` };
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/?#]*@/, '//***@');
}

const BANNER_PRINTED = Symbol.for('webhook-registry.test.engineBanner');

/** Once per test process: which engines the HTTP suite runs on. */
function printEngineBanner(): void {
  const global = globalThis as { [BANNER_PRINTED]?: boolean };
  if (global[BANNER_PRINTED]) return;
  global[BANNER_PRINTED] = true;
  const { eventStore, mongo, postgres } = serverUrls();
  const pg = postgres === undefined ? undefined : `PostgreSQL (${redactUrl(postgres)})`;
  const log = eventStore === undefined ? (pg ?? 'SQLite') : `EventStoreDB (${redactUrl(eventStore)})`;
  const readModel = mongo === undefined ? (pg ?? 'SQLite') : `MongoDB (${redactUrl(mongo)})`;
  console.warn(
    [
      '',
      '════════════════════════════════════════════════════════════════════════',
      `  HTTP suite engines: ${log} + ${readModel}`,
      eventStore === undefined && mongo === undefined && postgres === undefined
        ? '  (EVENTSTORE_URL, MONGODB_URL and POSTGRES_URL unset; see docs/scaling-out.md to run on the servers)'
        : '  (one EVENTSTORE_NAMESPACE / MONGODB_DATABASE / PostgreSQL database per registry)',
      '════════════════════════════════════════════════════════════════════════',
      '',
    ].join('\n'),
  );
}

/** EVENTSTORE_URL / MONGODB_URL / POSTGRES_URL of this process, each with this data folder's namespace or database. */
function engineEnv(dataDir: string): Record<string, string> {
  const { eventStore, mongo, postgres } = serverUrls();
  const { namespace, database } = isolationFor(dataDir);
  return {
    ...(eventStore !== undefined ? { EVENTSTORE_URL: eventStore, EVENTSTORE_NAMESPACE: namespace } : {}),
    ...(mongo !== undefined ? { MONGODB_URL: mongo, MONGODB_DATABASE: database } : {}),
    ...(postgres !== undefined ? { POSTGRES_URL: withDatabase(postgres, database) } : {}),
  };
}

/** The PostgreSQL database this harness generated for the data folder, when the registry uses it. */
function generatedPostgresDatabase(config: Config, dataDir: string): { server: string; database: string } | undefined {
  const server = serverUrls().postgres;
  const { database } = isolationFor(dataDir);
  if (server === undefined || config.POSTGRES_URL === undefined) return undefined;
  if (config.POSTGRES_URL !== withDatabase(server, database)) return undefined;
  return { server, database };
}

/** Best effort: drops a registry's MongoDB database (never fails the test). */
async function dropMongoDatabase(url: string, database: string): Promise<void> {
  const { MongoClient } = await import('mongodb');
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 2_000 });
  try {
    await client.db(database).dropDatabase();
  } catch {
    // best effort
  } finally {
    await client.close().catch(() => undefined);
  }
}

/** Drops the registry's database when it is the one this harness generated for its data folder. */
async function dropGeneratedDatabase(config: Config, dataDir: string): Promise<void> {
  const pg = generatedPostgresDatabase(config, dataDir);
  if (pg) await dropDatabase(pg.server, pg.database);
  if (config.MONGODB_URL === undefined || config.MONGODB_DATABASE !== isolationFor(dataDir).database) return;
  await dropMongoDatabase(config.MONGODB_URL, config.MONGODB_DATABASE);
}

/**
 * The registry's environment: test settings, the engines of this process (see
 * the top of this file), then `env`, which overrides anything.
 */
export function registryEnv(oauth: OAuthServer, dataDir: string, env: Record<string, string> = {}): Record<string, string> {
  printEngineBanner();
  return {
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    OIDC_ISSUER: oauth.issuer,
    OIDC_JWKS_URL: oauth.jwksUrl,
    OIDC_AUDIENCE: oauth.audience,
    RATE_LIMIT_PER_SECOND: '100000',
    RATE_LIMIT_BURST: '100000',
    ...engineEnv(dataDir),
    ...env,
  };
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const oauth = options.oauth ?? (await startOAuthServer({ clients: options.clients ?? DEFAULT_CLIENTS }));
  const dataDir = options.dataDir ?? tempDataDir();
  const env = registryEnv(oauth, dataDir, options.env);
  const config = loadConfig(env);
  // PostgreSQL databases are not created on first use: make this folder's (once; a restart finds it).
  const pg = generatedPostgresDatabase(config, dataDir);
  if (pg) await createDatabase(pg.server, pg.database, { ifMissing: true });
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  let server: RunningServer;
  try {
    server = await startServer(config, { logStream, ...(options.now ? { now: options.now } : {}) });
  } catch (error) {
    // Nothing is left running or lying around when a registry cannot start (e.g. a server is unreachable).
    if (!options.oauth) await oauth.stop().catch(() => undefined);
    if (!options.dataDir) {
      // An unreachable server created nothing (and a drop would only wait for it again).
      if (!(error instanceof StoreUnavailableError)) await dropGeneratedDatabase(config, dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    }
    throw error;
  }
  const tokens = new Map<string, string>();
  let stopped = false;
  const registry: TestRegistry = {
    url: server.url,
    dataDir,
    config,
    env,
    server,
    oauth,
    logs,
    async token(clientId = 'acme-integration', scope) {
      const key = `${clientId} ${scope ?? ''}`;
      const cached = tokens.get(key);
      if (cached) return cached;
      const token = await oauth.getToken(clientId, scope === undefined ? {} : { scope });
      tokens.set(key, token);
      return token;
    },
    async request(method, urlPath, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
      let body: string | undefined = opts.rawBody;
      if (body === undefined && opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers['content-type'] ??= 'application/json';
      }
      const response = await fetch(`${server.url}${urlPath}`, { method, headers, ...(body !== undefined ? { body } : {}) });
      const text = await response.text();
      let parsed: unknown = undefined;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: response.status, headers: response.headers, body: parsed as never, text };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
    },
    async close() {
      await registry.stop();
      if (!options.oauth) await oauth.stop();
      if (!options.dataDir) {
        // The data folder and its MongoDB database go; EventStoreDB streams stay (the log is never deleted).
        await dropGeneratedDatabase(config, dataDir);
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
  return registry;
}

export const VALID_REGISTRATION = {
  url: 'https://hooks.example.com/nt24',
  events: ['kyc.*', 'compliance.case.opened'],
  partnerIds: [PARTNER_A],
};
