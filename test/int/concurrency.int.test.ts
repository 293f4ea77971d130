// Two identical requests at the same moment → exactly one webhook; one key with
// different bodies at the same moment → exactly one 201. Through the real HTTP
// app on real SQLite files, with parallel fetches.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CLIENTS, PARTNER_A, startRegistry, type TestRegistry } from '../support/registry.ts';

interface Registered {
  id: string;
  url: string;
  events: string[];
  createdAt: string;
  secret: string;
}

const PARALLEL = 20;

// One organization per test, so each test sees only its own webhooks in the list.
const ORGS = ['conc-identical', 'conc-different', 'conc-mixed'] as const;
const clients = [
  ...DEFAULT_CLIENTS,
  ...ORGS.map((org) => ({
    clientId: `${org}-integration`,
    clientSecret: `${org}-secret`,
    orgId: org,
    partnerIds: [PARTNER_A],
    scopes: ['webhooks:read', 'webhooks:write'],
  })),
];

describe('concurrent registrations', () => {
  let registry: TestRegistry;

  beforeAll(async () => {
    registry = await startRegistry({ clients });
  });
  afterAll(async () => {
    await registry.close();
  });

  /** Fires all requests at once over separate fetches. */
  async function fire(token: string, requests: { key: string; body: unknown }[]) {
    return Promise.all(
      requests.map(async ({ key, body }) => {
        const res = await fetch(`${registry.url}/v1/webhooks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify(body),
        });
        return { status: res.status, replayed: res.headers.get('idempotent-replayed'), text: await res.text() };
      }),
    );
  }

  async function listAll(token: string): Promise<Registered[]> {
    const res = await registry.request<{ data: Registered[]; nextCursor: string | null }>('GET', '/v1/webhooks?limit=100', { token });
    expect(res.status).toBe(200);
    expect(res.body.nextCursor).toBeNull();
    return res.body.data;
  }

  it(`${PARALLEL} identical requests in parallel → one webhook and ${PARALLEL} identical 201 bodies`, async () => {
    const token = await registry.token('conc-identical-integration');
    const key = randomUUID();
    const body = { url: 'https://hooks.example.com/parallel', events: ['kyc.*'], partnerIds: [PARTNER_A] };
    const answers = await fire(token, Array.from({ length: PARALLEL }, () => ({ key, body })));

    expect(answers.map((a) => a.status)).toEqual(Array<number>(PARALLEL).fill(201));
    const bodies = new Set(answers.map((a) => a.text));
    expect(bodies.size).toBe(1);
    const created = JSON.parse(answers[0]!.text) as Registered;
    expect(created.secret).toMatch(/^whsec_/);
    // exactly one of them did the work; the others were answered from it
    expect(answers.filter((a) => a.replayed === null)).toHaveLength(1);

    const list = await listAll(token);
    expect(list.map((w) => w.id)).toEqual([created.id]);
    const got = await registry.request<Registered>('GET', `/v1/webhooks/${created.id}`, { token });
    expect(got.status).toBe(200);
    expect(got.body.createdAt).toBe(created.createdAt);

    // the log holds exactly one event for that webhook
    const stream = await registry.server.core.store.readStream(`webhook-${created.id}`);
    expect(stream.map((e) => e.type)).toEqual(['WebhookRegistered']);
  });

  it(`${PARALLEL} requests with one key and different bodies → exactly one 201, the others 422`, async () => {
    const token = await registry.token('conc-different-integration');
    const key = randomUUID();
    const requests = Array.from({ length: PARALLEL }, (_, i) => ({
      key,
      body: { url: `https://hooks.example.com/racer/${i}`, events: ['kyc.*'] },
    }));
    const answers = await fire(token, requests);

    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([201, ...Array<number>(PARALLEL - 1).fill(422)]);
    const winnerIndex = answers.findIndex((a) => a.status === 201);
    const winner = JSON.parse(answers[winnerIndex]!.text) as Registered;
    expect(winner.url).toBe(`https://hooks.example.com/racer/${winnerIndex}`);
    for (const loser of answers.filter((a) => a.status === 422)) {
      expect(JSON.parse(loser.text)).toMatchObject({ status: 422, type: expect.stringMatching(/idempotency-key/) as unknown });
      expect(loser.text).not.toContain(winner.secret);
    }

    const list = await listAll(token);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ id: winner.id, url: winner.url });
    const stream = await registry.server.core.store.readStream(`webhook-${winner.id}`);
    expect(stream).toHaveLength(1);
  });

  it(`${PARALLEL} distinct keys in parallel → ${PARALLEL} webhooks, all readable`, async () => {
    const token = await registry.token('conc-mixed-integration');
    const requests = Array.from({ length: PARALLEL }, (_, i) => ({
      key: randomUUID(),
      body: { url: `https://hooks.example.com/distinct/${i}`, events: ['compliance.*'] },
    }));
    // each key twice, all at once
    const answers = await fire(token, [...requests, ...requests]);
    expect(answers.every((a) => a.status === 201)).toBe(true);
    const ids = new Set(answers.map((a) => (JSON.parse(a.text) as Registered).id));
    expect(ids.size).toBe(PARALLEL);
    for (let i = 0; i < PARALLEL; i++) expect(answers[i]!.text).toBe(answers[i + PARALLEL]!.text);
    const list = await listAll(token);
    expect(new Set(list.map((w) => w.id))).toEqual(ids);
  });
});
