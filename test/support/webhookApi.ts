// Typed helpers over the test registry for the webhook lifecycle suites:
// response shapes, a settable clock, and waiting for the projector.
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { OAuthClientConfig } from './oauthServer.ts';
import { DEFAULT_CLIENTS, type TestRegistry, type TestResponse } from './registry.ts';

export interface WebhookBody {
  id: string;
  url: string;
  events: string[];
  status: 'ACTIVE' | 'PAUSED' | 'DISABLED';
  createdAt: string;
  partnerIds?: string[];
  updatedAt: string;
}

export interface RegistrationBody extends WebhookBody {
  secret: string;
}

export interface ListBody {
  data: WebhookBody[];
  nextCursor: string | null;
}

export interface RotationBody {
  secret: string;
  previousSecretExpiresAt: string;
  /** Only when the rotation retired earlier previous secrets before their expiry (the bound of 3). */
  retiredPreviousSecrets?: { expiresAt: string }[];
}

export interface DispatchTargetBody {
  id: string;
  organizationId: string;
  url: string;
  events: string[];
  secrets: string[];
}

export interface DispatchBody {
  data: DispatchTargetBody[];
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  errors?: { pointer: string; detail: string }[];
}

export const PROBLEM_BASE = 'https://api.novatrade24.com/problems/';

/** A clock the registry reads (`startRegistry({ now: clock.now })`) and tests move. */
export class TestClock {
  private current: Date;
  constructor(start: string | Date = '2030-01-01T00:00:00.000Z') {
    this.current = new Date(start);
  }
  readonly now = (): Date => new Date(this.current.getTime());
  iso(): string {
    return this.current.toISOString();
  }
  advance(ms: number): string {
    this.current = new Date(this.current.getTime() + ms);
    return this.iso();
  }
}

/** Waits until the projector has applied everything in the log (dispatch lookups read the read model). */
export async function settleProjection(registry: TestRegistry): Promise<void> {
  const head = await registry.server.core.store.headPosition();
  if (head === undefined) return;
  const projector = registry.server.projector;
  if (!projector) throw new Error('the test registry runs without an inline projector');
  expect(await projector.waitFor(head, 10_000)).toBe(true);
}

/** Asserts a problem+json answer with the given status (and kind, when given); returns the body. */
export function expectProblem(response: TestResponse<unknown>, status: number, kind?: string): ProblemBody {
  expect(response.status, response.text).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = response.body as ProblemBody;
  expect(body).toMatchObject({ status, title: expect.any(String) as string, detail: expect.any(String) as string });
  expect(body.type.startsWith(PROBLEM_BASE)).toBe(true);
  if (kind !== undefined) expect(body.type).toBe(PROBLEM_BASE + kind);
  return body;
}

/** The JSON pointers of a problem's field errors. */
export function pointersOf(response: TestResponse<unknown>): string[] {
  return ((response.body as ProblemBody).errors ?? []).map((e) => e.pointer);
}

export function withoutSecret(body: RegistrationBody): WebhookBody {
  const { secret: _secret, ...rest } = body;
  return rest;
}

/** A small client for one registry and one token. */
export class WebhookApi {
  constructor(
    readonly registry: TestRegistry,
    readonly token: string,
  ) {}

  static async as(registry: TestRegistry, clientId: string): Promise<WebhookApi> {
    return new WebhookApi(registry, await registry.token(clientId));
  }

  register(body: unknown, key: string = randomUUID()): Promise<TestResponse<RegistrationBody>> {
    return this.registry.request<RegistrationBody>('POST', '/v1/webhooks', {
      token: this.token,
      body,
      headers: { 'idempotency-key': key },
    });
  }

  /** Registers and asserts 201; returns the body. */
  async registered(body: unknown, key?: string): Promise<RegistrationBody> {
    const response = await this.register(body, key);
    expect(response.status, response.text).toBe(201);
    return response.body;
  }

  get(id: string): Promise<TestResponse<WebhookBody>> {
    return this.registry.request<WebhookBody>('GET', `/v1/webhooks/${id}`, { token: this.token });
  }

  list(query: Record<string, string | number> = {}): Promise<TestResponse<ListBody>> {
    const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString();
    return this.registry.request<ListBody>('GET', `/v1/webhooks${qs ? `?${qs}` : ''}`, { token: this.token });
  }

  /** Every page of the list; asserts each page is a 200. */
  async listAll(query: Record<string, string | number> = {}): Promise<WebhookBody[]> {
    const out: WebhookBody[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const response: TestResponse<ListBody> = await this.list(cursor === null ? query : { ...query, cursor });
      expect(response.status, response.text).toBe(200);
      out.push(...response.body.data);
      cursor = response.body.nextCursor;
      if (cursor === null) return out;
    }
    throw new Error('too many pages');
  }

  patch(
    id: string,
    body: unknown,
    options: { key?: string; ifMatch?: string } = {},
  ): Promise<TestResponse<WebhookBody>> {
    return this.registry.request<WebhookBody>('PATCH', `/v1/webhooks/${id}`, {
      token: this.token,
      body,
      headers: {
        'idempotency-key': options.key ?? randomUUID(),
        ...(options.ifMatch !== undefined ? { 'if-match': options.ifMatch } : {}),
      },
    });
  }

  async patched(id: string, body: unknown, options: { key?: string; ifMatch?: string } = {}): Promise<WebhookBody> {
    const response = await this.patch(id, body, options);
    expect(response.status, response.text).toBe(200);
    return response.body;
  }

  delete(id: string, options: { key?: string; ifMatch?: string } = {}): Promise<TestResponse<undefined>> {
    return this.registry.request<undefined>('DELETE', `/v1/webhooks/${id}`, {
      token: this.token,
      headers: {
        'idempotency-key': options.key ?? randomUUID(),
        ...(options.ifMatch !== undefined ? { 'if-match': options.ifMatch } : {}),
      },
    });
  }

  rotate(id: string, body?: unknown, key: string = randomUUID()): Promise<TestResponse<RotationBody>> {
    return this.registry.request<RotationBody>('POST', `/v1/webhooks/${id}/secret/rotate`, {
      token: this.token,
      ...(body !== undefined ? { body } : {}),
      headers: { 'idempotency-key': key },
    });
  }
}

/** The dispatcher's view: dispatch lookups and disabling. */
export class DispatcherApi {
  constructor(
    readonly registry: TestRegistry,
    readonly token: string,
  ) {}

  static async as(registry: TestRegistry, clientId = 'dispatcher'): Promise<DispatcherApi> {
    return new DispatcherApi(registry, await registry.token(clientId));
  }

  targets(eventType: string, partnerId: string): Promise<TestResponse<DispatchBody>> {
    const qs = new URLSearchParams({ eventType, partnerId }).toString();
    return this.registry.request<DispatchBody>('GET', `/internal/v1/dispatch-targets?${qs}`, { token: this.token });
  }

  /** Asserts 200 and returns the targets. */
  async targetsOk(eventType: string, partnerId: string): Promise<DispatchTargetBody[]> {
    const response = await this.targets(eventType, partnerId);
    expect(response.status, response.text).toBe(200);
    return response.body.data;
  }

  disable(id: string, reason: unknown): Promise<TestResponse<WebhookBody>> {
    return this.registry.request<WebhookBody>('POST', `/internal/v1/webhooks/${id}/disable`, {
      token: this.token,
      body: { reason },
    });
  }
}

export const PARTNER_D = 'd1d2d3d4-0000-4000-8000-00000000000d';
/** A well-formed partner id no organization is authorized for. */
export const PARTNER_UNKNOWN = 'eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee';

/** The default clients plus a second acme writer authorized for fewer partners and a third organization. */
export function clientsWith(extra: OAuthClientConfig[]): OAuthClientConfig[] {
  return [...DEFAULT_CLIENTS, ...extra];
}
