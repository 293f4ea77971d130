// Who is calling: the organization, partners, scopes and actor taken from a
// verified access token.

export const SCOPES = {
  read: 'webhooks:read',
  write: 'webhooks:write',
  dispatch: 'webhooks:dispatch',
  audit: 'webhooks:audit',
} as const;

export type Scope = (typeof SCOPES)[keyof typeof SCOPES];

export interface Principal {
  /** null: a token without an organization (dispatchers, auditors). */
  readonly organizationId: string | null;
  /** The partners the organization is authorized for, lowercase UUIDs. */
  readonly partnerIds: readonly string[];
  readonly scopes: ReadonlySet<string>;
  readonly clientId: string;
  readonly subject: string;
  /** Token expiry, epoch seconds. */
  readonly expiresAt: number;
}

/** The token is missing, malformed, expired or not ours: 401 invalid_token. */
export class InvalidTokenError extends Error {
  override readonly name = 'InvalidTokenError';
}

/**
 * No usable signing key is at hand because the identity provider cannot be
 * reached or answers something that is not a usable key set: 503 with
 * `Retry-After`, never 401 (the token may well be valid).
 */
export class IdentityProviderUnavailableError extends Error {
  override readonly name = 'IdentityProviderUnavailableError';
  /** Seconds after which a retry can succeed (the value of `Retry-After`). */
  readonly retryAfterSeconds: number;

  constructor(message: string, options: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryAfterSeconds = Math.max(1, Math.ceil(options.retryAfterSeconds ?? 5));
  }
}
