import { describe, expect, it } from 'vitest';
import { eventHash, sealEvent, verifyChain } from '../../src/domain/hashChain.ts';

interface ChainedEvent {
  readonly revision: number;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly metadata: { readonly previousHash: string | null; readonly hash: string; readonly [k: string]: unknown };
}

/** Builds a correctly linked stream the way the command handlers do. */
function buildChain(specs: readonly { type: string; data: Record<string, unknown> }[]): ChainedEvent[] {
  let previous: string | null = null;
  return specs.map((spec, revision) => {
    const base = { actor: { clientId: 'acme-integration', subject: 's' }, occurredAt: `2026-01-0${revision + 1}T00:00:00.000Z`, previousHash: previous };
    const hash = eventHash({ type: spec.type, data: spec.data, metadata: base });
    previous = hash;
    return { revision, type: spec.type, data: spec.data, metadata: { ...base, hash } };
  });
}

const stream = () =>
  buildChain([
    { type: 'WebhookRegistered', data: { webhookId: 'w1', url: 'https://a.example.com/' } },
    { type: 'WebhookUpdated', data: { webhookId: 'w1', changes: { url: 'https://b.example.com/' } } },
    { type: 'WebhookPaused', data: { webhookId: 'w1' } },
    { type: 'WebhookResumed', data: { webhookId: 'w1' } },
  ]);

/** Re-numbers revisions 0..n-1 (what an attacker rewriting the table would do). */
const renumber = (events: readonly ChainedEvent[]) => events.map((e, i) => ({ ...e, revision: i }));

describe('hash chain', () => {
  it('given an untouched stream, when verified, then it has no break', () => {
    expect(verifyChain(stream())).toBeUndefined();
    expect(verifyChain([])).toBeUndefined();
  });

  it('hashes the same content the same whatever the key order and ignores the stored hash field', () => {
    const a = eventHash({ type: 'T', data: { x: 1, y: [1, { b: 2, a: 1 }] }, metadata: { previousHash: null } });
    const b = eventHash({ type: 'T', data: { y: [1, { a: 1, b: 2 }], x: 1 }, metadata: { previousHash: null, hash: 'whatever' } });
    expect(a).toBe(b);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(eventHash({ type: 'T', data: { x: 2 }, metadata: { previousHash: null } })).not.toBe(
      eventHash({ type: 'T', data: { x: 1 }, metadata: { previousHash: null } }),
    );
  });

  it('given one event whose data was altered, then the break is reported at that revision', () => {
    const events = stream();
    events[1] = { ...events[1]!, data: { webhookId: 'w1', changes: { url: 'https://evil.example.com/' } } };
    expect(verifyChain(events)).toEqual({ revision: 1, problem: 'hash-mismatch' });
  });

  it('given altered metadata (the actor), then the break is reported at that revision', () => {
    const events = stream();
    events[2] = { ...events[2]!, metadata: { ...events[2]!.metadata, actor: { clientId: 'mallory', subject: 's' } } };
    expect(verifyChain(events)).toEqual({ revision: 2, problem: 'hash-mismatch' });
  });

  it('given altered type, then the break is reported at that revision', () => {
    const events = stream();
    events[3] = { ...events[3]!, type: 'WebhookDeleted' };
    expect(verifyChain(events)).toEqual({ revision: 3, problem: 'hash-mismatch' });
  });

  it('given an altered event whose own hash was recomputed, then the next link breaks', () => {
    const events = stream();
    const altered = { ...events[1]!, data: { webhookId: 'w1', changes: { url: 'https://evil.example.com/' } } };
    events[1] = { ...altered, metadata: { ...altered.metadata, hash: eventHash(altered) } };
    expect(verifyChain(events)).toEqual({ revision: 2, problem: 'previous-hash-mismatch' });
  });

  it('given two events swapped, then the chain breaks at the first swapped position', () => {
    const events = stream();
    const swapped = [events[0]!, events[2]!, events[1]!, events[3]!];
    expect(verifyChain(swapped)).toEqual({ revision: 1, problem: 'revision-gap' });
    // even with the revisions rewritten to look contiguous
    expect(verifyChain(renumber(swapped))).toEqual({ revision: 1, problem: 'previous-hash-mismatch' });
  });

  it('given an event deleted from the middle, then the chain breaks there', () => {
    const events = stream();
    const deleted = [events[0]!, events[2]!, events[3]!];
    expect(verifyChain(deleted)).toEqual({ revision: 1, problem: 'revision-gap' });
    expect(verifyChain(renumber(deleted))).toEqual({ revision: 1, problem: 'previous-hash-mismatch' });
  });

  it('given the first event deleted, then the chain breaks at revision 0', () => {
    const events = stream();
    expect(verifyChain(renumber(events.slice(1)))).toEqual({ revision: 0, problem: 'previous-hash-mismatch' });
  });

  it('given a stored hash that was overwritten, then the break is reported at that revision', () => {
    const events = stream();
    events[0] = { ...events[0]!, metadata: { ...events[0]!.metadata, hash: 'f'.repeat(64) } };
    expect(verifyChain(events)).toEqual({ revision: 0, problem: 'hash-mismatch' });
  });
});

describe('sealEvent', () => {
  const cases = [
    {
      type: 'WebhookRegistered',
      data: { webhookId: 'w1', url: 'https://a.example.com/ü', events: ['kyc.*'], partnerIds: null, secret: { keyId: 'k', iv: 'i', ciphertext: 'c' } },
      metadata: { requestId: 'r', actor: { subject: 's', clientId: 'c' }, previousHash: null, idempotencyKeyHash: 'k'.repeat(64), occurredAt: '2026-01-01T00:00:00.000Z' },
    },
    { type: 'WebhookDeleted', data: {}, metadata: { previousHash: 'p'.repeat(64), note: '🦄 "q" \\', skipped: undefined } },
    { type: 'Odd "type"', data: [1, 'two', null], metadata: { previousHash: null } },
  ];

  it('gives the hash eventHash gives, and JSON text that parses to the event with that hash', () => {
    for (const c of cases) {
      const sealed = sealEvent(c.type, c.data, c.metadata);
      expect(sealed.hash).toBe(eventHash({ type: c.type, data: c.data, metadata: c.metadata }));
      expect(JSON.parse(sealed.data)).toEqual(c.data);
      const stored = JSON.parse(sealed.metadata) as Record<string, unknown>;
      expect(stored).toEqual(JSON.parse(JSON.stringify({ ...c.metadata, hash: sealed.hash })));
      // What the audit recomputes from the stored text is the same hash.
      expect(eventHash({ type: c.type, data: JSON.parse(sealed.data), metadata: stored as { previousHash: string | null } })).toBe(sealed.hash);
    }
  });

  it('stores data as the canonical text that was hashed', () => {
    expect(sealEvent('T', { b: 1, a: { d: 2, c: 3 } }, { previousHash: null }).data).toBe('{"a":{"c":3,"d":2},"b":1}');
  });
});
