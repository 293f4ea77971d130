// Configuration: the environment, parsed once by zod into a frozen, typed
// object. A bad value stops start-up with a message naming the variable.
import path from 'node:path';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const url = (protocols: readonly string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a ${protocols.join(' or ')} URL` },
  );

const positiveInt = z.coerce.number().int().positive();

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().min(1).default('127.0.0.1'),
    DATA_DIR: z.string().min(1).default('data'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    OIDC_ISSUER: url(['https:', 'http:']).optional(),
    OIDC_AUDIENCE: z.string().min(1).default('webhook-registry'),
    OIDC_JWKS_URL: url(['https:', 'http:']).optional(),
    OIDC_ALGORITHMS: z
      .string()
      .default('RS256,PS256,ES256')
      .transform((v) => v.split(',').map((a) => a.trim()))
      .pipe(z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])).min(1)),
    ORG_CLAIM: z.string().min(1).default('org_id'),
    PARTNERS_CLAIM: z.string().min(1).default('partner_ids'),
    JWKS_TIMEOUT_MS: positiveInt.default(2000),
    JWKS_COOLDOWN_MS: positiveInt.default(30_000),
    JWKS_CACHE_MAX_AGE_MS: positiveInt.default(600_000),
    TOKEN_CACHE_SIZE: z.coerce.number().int().min(0).default(10_000),
    SECRET_ENCRYPTION_KEYS: z
      .string()
      .optional()
      .transform((v, ctx) => (v === undefined ? undefined : parseKeyList(v, ctx))),
    EVENT_TYPES_FILE: z.string().min(1).optional(),
    ALLOW_INSECURE_URLS: bool.default(false),
    EVENTSTORE_URL: url(['esdb:', 'esdb+discover:', 'kurrentdb:', 'kurrentdb+discover:']).optional(),
    /**
     * Prefix of every EventStoreDB stream name, so several registries can share one server (tests).
     * Never containing `webhook-`, no registry's streams can fall under another's prefix.
     */
    EVENTSTORE_NAMESPACE: z
      .string()
      .regex(/^[A-Za-z0-9_-]{0,64}$/, { message: 'must be at most 64 characters of A-Z, a-z, 0-9, _ and -' })
      .refine((v) => !v.includes('webhook-'), {
        message: 'must not contain "webhook-" (its streams would be read as another registry\'s)',
      })
      .default(''),
    /** Longest wait for one EventStoreDB call (append, read page, ping, subscription confirmation). */
    EVENTSTORE_TIMEOUT_MS: positiveInt.default(5000),
    MONGODB_URL: url(['mongodb:', 'mongodb+srv:']).optional(),
    /** PostgreSQL for the log and the read model (EVENTSTORE_URL / MONGODB_URL, when set, still take their port). */
    POSTGRES_URL: url(['postgres:', 'postgresql:']).optional(),
    /** The read model's database; overrides the one named in MONGODB_URL (default `webhook_registry`). */
    MONGODB_DATABASE: z
      .string()
      .refine(isMongoDatabaseName, {
        message: 'must be a MongoDB database name: 1 to 63 bytes, none of / \\ . space " $ * < > : | ?',
      })
      .optional(),
    PROJECTOR: z.enum(['inline', 'off']).default('inline'),
    BODY_LIMIT_BYTES: positiveInt.default(64 * 1024),
    RATE_LIMIT_PER_SECOND: z.coerce.number().min(0).default(100),
    RATE_LIMIT_BURST: positiveInt.default(200),
    READ_YOUR_WRITES_TIMEOUT_MS: positiveInt.default(2000),
    SHUTDOWN_TIMEOUT_MS: positiveInt.default(10_000),
    /** A client must send a whole request (headers and body) within this, else 408 and the connection closes. */
    REQUEST_TIMEOUT_MS: positiveInt.default(30_000),
    /** ... and its headers within this (at most REQUEST_TIMEOUT_MS). */
    HEADERS_TIMEOUT_MS: positiveInt.default(10_000),
    /** An idle kept-alive connection closes after this (above a load balancer's usual 60 s idle timeout). */
    KEEP_ALIVE_TIMEOUT_MS: positiveInt.default(72_000),
    PROJECTOR_MAX_LAG_SECONDS: z.coerce.number().positive().default(30),
    /** Changes the dispatcher feed keeps for resuming clients; an older position is 410 (bootstrap from the snapshot). */
    CHANGE_FEED_CAPACITY: positiveInt.default(20_000),
    /** Dispatch answers kept in memory for /internal/v1/dispatch-targets (src/dispatch/answerCache.ts), bytes of their text; 0 = none. */
    DISPATCH_CACHE_BYTES: z.coerce.number().int().min(0).max(2 ** 31).default(8 * 1024 * 1024),
    /** Old-generation growth past the live size before a full collection (src/heapGrowth.ts); 0 = V8's own heuristics. */
    HEAP_GROWTH_PERCENT: z.coerce.number().int().min(0).max(300).default(30),
    /** At most this long between two messages on a change-feed stream (a `: keep-alive` comment when idle). */
    CHANGE_FEED_KEEPALIVE_MS: positiveInt.max(15_000).default(15_000),
  })
  .superRefine((c, ctx) => {
    if (c.HEADERS_TIMEOUT_MS > c.REQUEST_TIMEOUT_MS) {
      ctx.addIssue({ code: 'custom', path: ['HEADERS_TIMEOUT_MS'], message: 'must not exceed REQUEST_TIMEOUT_MS' });
    }
    if (c.NODE_ENV === 'production' && c.ALLOW_INSECURE_URLS) {
      ctx.addIssue({ code: 'custom', path: ['ALLOW_INSECURE_URLS'], message: 'must not be true in production' });
    }
    if (c.NODE_ENV === 'production' && c.OIDC_ISSUER === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['OIDC_ISSUER'],
        message: 'is required in production (the development issuer is refused when NODE_ENV=production)',
      });
    }
    if (c.NODE_ENV === 'production' && c.SECRET_ENCRYPTION_KEYS === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['SECRET_ENCRYPTION_KEYS'],
        message: 'is required in production (a generated development key is refused)',
      });
    }
  });

/** MongoDB's rules for database names (the stricter Windows set, so a name works on every server). */
function isMongoDatabaseName(name: string): boolean {
  return Buffer.byteLength(name, 'utf8') <= 63 && /^[^/\\. "$*<>:|?\0]+$/.test(name);
}

export interface EncryptionKey {
  readonly id: string;
  readonly key: Buffer;
}

function parseKeyList(value: string, ctx: z.RefinementCtx): EncryptionKey[] {
  const keys: EncryptionKey[] = [];
  for (const part of value.split(',')) {
    const [id, material] = part.trim().split(':');
    const key = material === undefined ? Buffer.alloc(0) : Buffer.from(material, 'base64');
    if (!id || !/^[A-Za-z0-9_-]{1,32}$/.test(id) || key.length !== 32) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be a comma-separated list of <keyId>:<base64 of 32 bytes>, the first one used for new secrets',
      });
      return [];
    }
    keys.push({ id, key });
  }
  return keys;
}

export type RawConfig = z.output<typeof schema>;

export interface Config extends RawConfig {
  /** Absolute data folder. */
  readonly dataDir: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses the environment once; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const input = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(environment)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return Object.freeze({ ...result.data, dataDir: path.resolve(result.data.DATA_DIR) });
}
