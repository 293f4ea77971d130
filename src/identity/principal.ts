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

/** The identity provider's keys could not be fetched: 503, never 401. */
export class IdentityProviderUnavailableError extends Error {
  override readonly name = 'IdentityProviderUnavailableError';
}
