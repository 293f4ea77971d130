// The registry's public API as the console uses it: same origin, the signed-in
// user's access token on every call (from memory, never from the URL).
import type { Problem, Verification, WebhookSummary } from './format.ts';

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${problem.status ?? '?'}`);
  }
}

export interface WebhookList {
  readonly data: readonly WebhookSummary[];
  readonly nextCursor: string | null;
}

export interface Registered extends WebhookSummary {
  readonly secret: string;
}

/** GET /internal/v1/audit/webhooks: every webhook's state at an instant. */
export interface AuditPage {
  readonly asOf: string;
  readonly data: readonly AuditWebhook[];
  readonly nextCursor: string | null;
}

export interface AuditWebhook {
  readonly id: string;
  readonly organizationId: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly status: string;
  readonly deleted: boolean;
  readonly revision: number;
  readonly updatedAt: string;
}

/** GET /v1/webhooks/{id}/history. */
export interface History {
  readonly webhookId: string;
  readonly organizationId: string | null;
  readonly chain: { readonly intact: boolean; readonly revision?: number; readonly problem?: string };
  readonly data: readonly HistoryEntry[];
  readonly nextCursor: string | null;
}

export interface HistoryEntry {
  readonly revision: number;
  readonly type: string;
  readonly occurredAt: string;
  readonly actor: { readonly clientId: string; readonly subject: string };
  readonly changes: Readonly<Record<string, { readonly from: unknown; readonly to: unknown }>>;
}

export interface EventType {
  readonly name: string;
  readonly description?: string;
}

/** The signed-in session as the API client needs it. */
export interface Session {
  token(): string | undefined;
  /** A fresh access token (refresh token); false when there is none. */
  renew(): Promise<boolean>;
  /** The registry refused the token even after a renewal: the user must sign in again. */
  ended(): void;
}

export class Api {
  /** `origin`: where the registry is ('' in the page: the same origin). */
  constructor(
    private readonly session: Session,
    private readonly origin = '',
  ) {}

  private async call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    return (await this.exchange<T>(method, path, body, headers)).body;
  }

  /** The answer's body and ETag; a problem+json answer throws ApiError. */
  private async exchange<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ body: T; etag: string | null }> {
    const send = () => {
      const token = this.session.token();
      return fetch(`${this.origin}${path}`, {
        method,
        headers: {
          accept: 'application/json',
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    };
    let response = await send();
    // 401: the token expired or is no longer accepted. Once more with a renewed one (writes carry their
    // Idempotency-Key, so sending again is safe); then the session is over.
    if (response.status === 401) {
      if (await this.session.renew()) response = await send();
      if (response.status === 401) this.session.ended();
    }
    const text = await response.text();
    const parsed: unknown = text === '' ? undefined : JSON.parse(text);
    if (!response.ok) throw new ApiError((parsed as Problem | undefined) ?? { status: response.status });
    return { body: parsed as T, etag: response.headers.get('etag') };
  }

  listWebhooks(query: { status?: string; event?: string; cursor?: string; limit?: number }): Promise<WebhookList> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(name, String(value));
    const qs = params.toString();
    return this.call('GET', `/v1/webhooks${qs === '' ? '' : `?${qs}`}`);
  }

  register(body: { url: string; events: string[]; partnerIds?: string[] }, idempotencyKey: string): Promise<Registered> {
    return this.call('POST', '/v1/webhooks', body, { 'idempotency-key': idempotencyKey });
  }

  /** One webhook and its ETag (for If-Match on the next write). */
  async webhook(id: string): Promise<{ webhook: WebhookSummary; etag: string | null }> {
    const { body, etag } = await this.exchange<WebhookSummary>('GET', `/v1/webhooks/${encodeURIComponent(id)}`);
    return { webhook: body, etag };
  }

  async update(
    id: string,
    changes: { url?: string; events?: string[]; partnerIds?: string[] | null; status?: 'ACTIVE' | 'PAUSED' },
    etag: string | null,
  ): Promise<{ webhook: WebhookSummary; etag: string | null }> {
    const { body, etag: next } = await this.exchange<WebhookSummary>('PATCH', `/v1/webhooks/${encodeURIComponent(id)}`, changes, {
      'idempotency-key': crypto.randomUUID(),
      ...(etag === null ? {} : { 'if-match': etag }),
    });
    return { webhook: body, etag: next };
  }

  rotate(id: string, gracePeriodSeconds: number): Promise<{ secret: string; previousSecretExpiresAt: string }> {
    return this.call('POST', `/v1/webhooks/${encodeURIComponent(id)}/secret/rotate`, { gracePeriodSeconds }, { 'idempotency-key': crypto.randomUUID() });
  }

  async remove(id: string, etag: string | null): Promise<void> {
    await this.call('DELETE', `/v1/webhooks/${encodeURIComponent(id)}`, undefined, {
      'idempotency-key': crypto.randomUUID(),
      ...(etag === null ? {} : { 'if-match': etag }),
    });
  }

  auditAt(asOf: string, org: string | undefined, cursor: string | undefined): Promise<AuditPage> {
    const params = new URLSearchParams({ asOf });
    if (org) params.set('org', org);
    if (cursor) params.set('cursor', cursor);
    return this.call('GET', `/internal/v1/audit/webhooks?${params.toString()}`);
  }

  /** The tamper check over every stream and the read model (webhooks:audit). */
  verification(): Promise<Verification> {
    return this.call('GET', '/internal/v1/audit/verification');
  }

  history(id: string, cursor?: string): Promise<History> {
    return this.call('GET', `/v1/webhooks/${encodeURIComponent(id)}/history${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`);
  }

  async eventTypes(): Promise<EventType[]> {
    const answer = await this.call<{ data: EventType[] }>('GET', '/v1/event-types');
    return answer.data;
  }
}
