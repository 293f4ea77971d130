// Sign-in with OpenID Connect, authorization code with PKCE, through
// oidc-client-ts. The signed-in user (and so the access token) lives in
// memory only: a reload signs in again. What must survive the round trip to
// the identity provider — the state and the PKCE verifier, never a token —
// is kept in sessionStorage by the library, and the code it comes back with
// is taken off the address bar at once.
import { ErrorResponse, InMemoryWebStorage, UserManager, WebStorageStateStore, type User } from 'oidc-client-ts';

/** GET /console/config.json: where to sign in. */
export interface ConsoleConfig {
  readonly clientId: string;
  /** The OpenID provider (Keycloak's realm URL); its metadata from discovery, or from metadataUrl. */
  readonly authority: string;
  readonly metadataUrl?: string;
  readonly scope: string;
  /** The access token's organization claim (the registry's ORG_CLAIM). */
  readonly orgClaim: string;
  /** The development sign-in (no identity provider configured). */
  readonly development: boolean;
}

export interface SignedIn {
  readonly name: string;
  readonly accessToken: string;
  readonly scopes: readonly string[];
  readonly organizationId: string | undefined;
}

export class Auth {
  private readonly manager: UserManager;
  private user: User | null = null;
  /** The renewal under way: every caller that needs one waits for the same (a refresh token is good for one use). */
  private renewing: Promise<boolean> | undefined;
  /** Told when a renewal before expiry finds the session over (the provider refused the refresh token). */
  onEnded: () => void = () => undefined;

  constructor(readonly config: ConsoleConfig) {
    const redirect = new URL('./', window.location.href).href;
    this.manager = new UserManager({
      authority: config.authority,
      ...(config.metadataUrl === undefined ? {} : { metadataUrl: config.metadataUrl }),
      client_id: config.clientId,
      redirect_uri: redirect,
      post_logout_redirect_uri: redirect,
      response_type: 'code',
      scope: config.scope,
      userStore: new WebStorageStateStore({ store: new InMemoryWebStorage() }),
      // Renewed by renew() below with the refresh token, never through a hidden iframe.
      automaticSilentRenew: false,
      loadUserInfo: false,
    });
    // A minute before the access token expires, trade the refresh token (in memory too) for a new one.
    this.manager.events.addAccessTokenExpiring(() => {
      void this.renew().then((renewed) => {
        if (!renewed && this.user === null) this.onEnded();
      });
    });
  }

  /**
   * A new access token from the refresh token, if the provider gave one
   * (Keycloak does; the development sign-in does not). False when there is
   * none, when the provider refused it (its session ended: the tokens are
   * forgotten), or when it could not be asked (the tokens are kept; the next
   * 401 asks again). Concurrent callers share one renewal.
   */
  renew(): Promise<boolean> {
    this.renewing ??= this.refresh().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async refresh(): Promise<boolean> {
    if (this.user?.refresh_token === undefined) return false;
    try {
      this.user = (await this.manager.signinSilent()) ?? this.user;
      return true;
    } catch (error) {
      if (error instanceof ErrorResponse) await this.forget();
      return false;
    }
  }

  /** Drops the tokens from memory (the session is over; the provider's may live on). */
  async forget(): Promise<void> {
    this.user = null;
    await this.manager.removeUser();
  }

  /** After the provider sent the browser back (?code=…&state=…): the user, and a clean address bar. */
  async completeSignIn(): Promise<SignedIn | undefined> {
    const url = new URL(window.location.href);
    if (!url.searchParams.has('state') || !(url.searchParams.has('code') || url.searchParams.has('error'))) return undefined;
    try {
      this.user = await this.manager.signinCallback(url.href) ?? null;
    } finally {
      window.history.replaceState(null, '', url.pathname);
    }
    return this.signedIn();
  }

  signIn(): Promise<void> {
    return this.manager.signinRedirect();
  }

  /** Forgets the tokens; with a real provider, ends its session too. */
  async signOut(): Promise<void> {
    const user = this.user;
    await this.forget();
    // RP-initiated logout names the session by its ID token (id_token_hint, in the logout URL as the
    // specification has it); an ID token opens no API: the registry refuses its typ and audience.
    if (!this.config.development && user !== null) {
      await this.manager.signoutRedirect(user.id_token === undefined ? {} : { id_token_hint: user.id_token }).catch(() => undefined);
    }
  }

  token(): string | undefined {
    return this.user?.access_token;
  }

  signedIn(): SignedIn | undefined {
    const user = this.user;
    if (user === null) return undefined;
    const claims = decodeClaims(user.access_token);
    const scope = typeof claims.scope === 'string' ? claims.scope : '';
    const org = claims[this.config.orgClaim];
    const profile = user.profile as { name?: unknown; preferred_username?: unknown; sub: string };
    const name = typeof profile.name === 'string' ? profile.name : typeof profile.preferred_username === 'string' ? profile.preferred_username : profile.sub;
    return { name, accessToken: user.access_token, scopes: scope.split(' ').filter(Boolean), organizationId: typeof org === 'string' ? org : undefined };
  }
}

/** The access token's claims, for display only (the registry verifies it). */
function decodeClaims(jwt: string): Record<string, unknown> {
  try {
    const part = jwt.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return {};
  }
}
