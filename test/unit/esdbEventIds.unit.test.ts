// EventStoreDB event ids: UUIDv5 of the event's hash, so the same append sent
// twice carries the same ids and the server's idempotent append recognises it.
import { describe, expect, it } from 'vitest';
import { eventHash } from '../../src/domain/hashChain.ts';
import { esdbEventId, uuidV5 } from '../../src/stores/esdb/eventIds.ts';
import type { EventMetadata, NewEvent } from '../../src/stores/eventStore.ts';

const DNS_NAMESPACE = Buffer.from('6ba7b8109dad11d180b400c04fd430c8', 'hex');

function event(data: unknown): NewEvent {
  const metadata: Omit<EventMetadata, 'hash'> = {
    actor: { clientId: 'c', subject: 's' },
    organizationId: 'acme',
    requestId: 'req-1',
    idempotencyKeyHash: null,
    requestFingerprint: null,
    occurredAt: '2025-01-01T00:00:00.000Z',
    previousHash: null,
  };
  const unhashed = { type: 'WebhookPaused', data, metadata };
  return { type: unhashed.type, data, metadata: { ...metadata, hash: eventHash(unhashed) } };
}

describe('uuidV5', () => {
  it('matches the RFC 9562 example (DNS namespace, "www.example.com")', () => {
    expect(uuidV5('www.example.com', DNS_NAMESPACE)).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });
});

describe('esdbEventId', () => {
  it('given the same event twice, when ids are derived, then they are equal, version 5 and variant RFC', () => {
    const e = event({ webhookId: 'w1' });
    const id = esdbEventId(e);
    expect(esdbEventId({ ...e, metadata: { ...e.metadata } })).toBe(id);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(id).toBe(uuidV5(e.metadata.hash));
  });

  it('given events that differ, when ids are derived, then they differ', () => {
    expect(esdbEventId(event({ webhookId: 'w1' }))).not.toBe(esdbEventId(event({ webhookId: 'w2' })));
  });

  it('given an event without a hash, when an id is derived, then it is refused', () => {
    const e = event({});
    expect(() => esdbEventId({ ...e, metadata: { ...e.metadata, hash: '' } })).toThrow(TypeError);
  });
});
