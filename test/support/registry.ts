// Test harness: the real registry (HTTP app, SQLite files in a temp folder,
// projector) verifying tokens from a real in-process OAuth 2.0 server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../src/config.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { startOAuthServer, type OAuthClientConfig, type OAuthServer } from './oauthServer.ts';

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
  readonly server: RunningServer;
  readonly oauth: OAuthServer;
  /** Log lines written by the server (JSON strings). */
  readonly logs: string[];
  token(clientId?: string, scope?: string): Promise<string>;
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<TestResponse<T>>;
  /** Stops the registry (not the OAuth server); the data folder stays. */
  stop(): Promise<void>;
  /** Stops everything and removes the data folder. */
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

export function registryEnv(oauth: OAuthServer, dataDir: string, env: Record<string, string> = {}): Record<string, string> {
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
    ...env,
  };
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const oauth = options.oauth ?? (await startOAuthServer({ clients: options.clients ?? DEFAULT_CLIENTS }));
  const dataDir = options.dataDir ?? tempDataDir();
  const config = loadConfig(registryEnv(oauth, dataDir, options.env));
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  const server = await startServer(config, { logStream, ...(options.now ? { now: options.now } : {}) });
  const tokens = new Map<string, string>();
  let stopped = false;
  const registry: TestRegistry = {
    url: server.url,
    dataDir,
    config,
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
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return registry;
}

export const VALID_REGISTRATION = {
  url: 'https://hooks.example.com/nt24',
  events: ['kyc.*', 'compliance.case.opened'],
  partnerIds: [PARTNER_A],
};
