// Responses are written from the zod schemas by fast-json-stringify: only
// declared fields leave the process, and valid data comes out as JSON.stringify
// would write it.
import { describe, expect, it } from 'vitest';
import type { ZodType } from 'zod';
import { serializerCompiler } from '../../src/http/serializer.ts';
import { dispatchTargets, problem, registeredResponse, webhookList, webhookResponse } from '../../src/http/schemas.ts';

const serializer = (schema: ZodType) => serializerCompiler({ schema, method: 'GET', url: '/x', httpStatus: '200' });

const webhook = {
  id: '0b5fd2a4-55c4-5d2b-9a43-6e3e0b9b2c10',
  url: 'https://hooks.example.com/a',
  events: ['kyc.*', 'compliance.case.opened'],
  status: 'ACTIVE',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-02T00:00:00.000Z',
  partnerIds: ['34b4f981-b378-400f-842c-1c3f8fe98648'],
};

describe('response serialization', () => {
  it('writes valid data exactly as JSON.stringify does', () => {
    expect(JSON.parse(serializer(webhookResponse)(webhook))).toEqual(webhook);
    const registered = { ...webhook, secret: 'whsec_abc' };
    expect(JSON.parse(serializer(registeredResponse)(registered))).toEqual(registered);
    const list = { data: [webhook, { ...webhook, partnerIds: undefined }], nextCursor: null };
    expect(serializer(webhookList)(list)).toBe(JSON.stringify(list));
    const targets = { data: [{ id: webhook.id, organizationId: 'org-1', url: webhook.url, events: webhook.events, secrets: ['whsec_a', 'whsec_b'] }] };
    expect(serializer(dispatchTargets)(targets)).toBe(JSON.stringify(targets));
  });

  it('never writes a field the response schema does not declare, at any depth', () => {
    const leaky = { ...webhook, secret: 'whsec_leak', previousSecret: { ciphertext: 'c2VjcmV0' }, revision: 3 };
    const out = serializer(webhookResponse)(leaky);
    expect(out).not.toMatch(/secret|ciphertext|revision/);
    expect(serializer(webhookList)({ data: [leaky], nextCursor: 'n' })).not.toMatch(/secret|ciphertext/);
  });

  it('writes problem details with their optional members', () => {
    const p = { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'nope', requestId: 'r-1', errors: [{ pointer: '/url', detail: 'must be https' }] };
    expect(JSON.parse(serializer(problem)(p))).toEqual(p);
  });
});
