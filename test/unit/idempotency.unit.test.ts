import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  IDEMPOTENCY_WINDOW_MS,
  idempotencyKeyHash,
  parseIdempotencyKey,
  canonicalRequest,
  RequestFingerprints,
  webhookIdFor,
} from '../../src/commands/idempotency.ts';
import { canonicalJson } from '../../src/domain/canonicalJson.ts';

/** An independent RFC 9562 §5.5 UUIDv5, checked below against the RFC's own test vector. */
function referenceUuidV5(namespace: string, name: string): string {
  const hash = createHash('sha1').update(Buffer.from(namespace.replace(/-/g, ''), 'hex')).update(name, 'utf8').digest();
  const b = Buffer.from(hash.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
}

describe('parseIdempotencyKey', () => {
  it.each([
    ['abc', 'abc'],
    ['  abc  ', 'abc'],
    ['"abc"', 'abc'],
    ['3c90c3cc-0d44-4b50-8888-8dd25736052a', '3c90c3cc-0d44-4b50-8888-8dd25736052a'],
    ['!~#$%&\'()*+,-./:;<=>?@[]^_`{|}', '!~#$%&\'()*+,-./:;<=>?@[]^_`{|}'],
    ['a'.repeat(255), 'a'.repeat(255)],
    [`"${'a'.repeat(255)}"`, 'a'.repeat(255)],
    ['x', 'x'],
    // not the structured-field form: taken literally (a quote is a visible character)
    ['"abc', '"abc'],
  ])('accepts %j as %j', (header, key) => {
    expect(parseIdempotencyKey(header)).toBe(key);
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['only spaces', '   '],
    ['quoted empty', '""'],
    ['256 characters', 'a'.repeat(256)],
    ['quoted 256 characters', `"${'a'.repeat(256)}"`],
    ['inner space', 'a b'],
    ['tab', 'a\tb'],
    ['control character', 'a\u0001b'],
    ['DEL', 'a\u007fb'],
    ['non-ASCII', 'clé'],
    ['quoted with inner quote', '"a"b"'],
    ['quoted with backslash', '"a\\b"'],
    ['repeated header', ['a', 'b']],
  ])('refuses %s', (_label, header) => {
    expect(parseIdempotencyKey(header)).toBeUndefined();
  });
});

describe('idempotencyKeyHash', () => {
  it('is scoped to the organization and deterministic', () => {
    expect(idempotencyKeyHash('acme', 'k')).toBe(idempotencyKeyHash('acme', 'k'));
    expect(idempotencyKeyHash('acme', 'k')).not.toBe(idempotencyKeyHash('globex', 'k'));
    expect(idempotencyKeyHash('acme', 'k')).not.toBe(idempotencyKeyHash('acme', 'k2'));
    expect(idempotencyKeyHash('acme', 'k')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('does not contain the key', () => {
    expect(idempotencyKeyHash('acme', 'my-secret-key')).not.toContain('my-secret-key');
  });
});

describe('RequestFingerprints', () => {
  const body = { url: 'https://hooks.example.com/a', events: ['kyc.*', 'compliance.case.opened'], partnerIds: ['p1'] };
  const k1 = { id: 'k1', key: Buffer.alloc(32, 1) };
  const k2 = { id: 'k2', key: Buffer.alloc(32, 2) };
  const fingerprints = new RequestFingerprints([k1]);
  const fp = (method: string, path: string, b: unknown): string => fingerprints.of(canonicalRequest(method, path, b));

  it('is canonical regardless of key order, at every depth', () => {
    const reordered = { partnerIds: ['p1'], events: ['kyc.*', 'compliance.case.opened'], url: 'https://hooks.example.com/a' };
    expect(fp('POST', '/v1/webhooks', reordered)).toBe(fp('POST', '/v1/webhooks', body));
    expect(fp('POST', '/p', { a: { y: 1, x: [{ d: 1, c: 2 }] } })).toBe(fp('POST', '/p', { a: { x: [{ c: 2, d: 1 }], y: 1 } }));
  });

  it('treats the method case-insensitively', () => {
    expect(fp('post', '/v1/webhooks', body)).toBe(fp('POST', '/v1/webhooks', body));
  });

  it('differs when the method, the path or any part of the body differs', () => {
    const base = fp('POST', '/v1/webhooks', body);
    expect(fp('PATCH', '/v1/webhooks', body)).not.toBe(base);
    expect(fp('POST', '/v1/webhooks/x', body)).not.toBe(base);
    expect(fp('POST', '/v1/webhooks', { ...body, url: 'https://hooks.example.com/b' })).not.toBe(base);
    // array order is part of the request
    expect(fp('POST', '/v1/webhooks', { ...body, events: ['compliance.case.opened', 'kyc.*'] })).not.toBe(base);
    expect(fp('POST', '/v1/webhooks', { ...body, secret: 'whsec_x' })).not.toBe(base);
  });

  it('leaves undefined fields out, as JSON would', () => {
    expect(fp('POST', '/p', { a: 1, b: undefined })).toBe(fp('POST', '/p', { a: 1 }));
  });

  it('is an HMAC naming its key: the unkeyed SHA-256 of a guessed body does not confirm it', () => {
    const request = canonicalRequest('POST', '/v1/webhooks', { ...body, secret: 'whsec_guess' });
    const stored = fingerprints.of(request);
    expect(stored).toMatch(/^hmac-sha256:k1:[0-9a-f]{64}$/);
    expect(stored).not.toContain(createHash('sha256').update(request).digest('hex'));
    // Another server key gives another fingerprint of the same request.
    expect(new RequestFingerprints([{ id: 'k1', key: Buffer.alloc(32, 9) }]).of(request)).not.toBe(stored);
  });

  it('checks a fingerprint with the key it names, so rotating keys keeps replays', () => {
    const request = canonicalRequest('PATCH', '/v1/webhooks/x', { url: 'https://hooks.example.com/a' });
    const underK1 = fingerprints.of(request);
    const rotated = new RequestFingerprints([k2, k1]);
    expect(rotated.of(request)).toMatch(/^hmac-sha256:k2:/);
    expect(rotated.matches(underK1, request)).toBe(true);
    expect(rotated.matches(underK1, canonicalRequest('PATCH', '/v1/webhooks/x', { url: 'https://hooks.example.com/b' }))).toBe(false);
    // A key no longer configured cannot vouch for anything.
    expect(new RequestFingerprints([k2]).matches(underK1, request)).toBe(false);
    expect(fingerprints.matches('hmac-sha256:k1:zz', request)).toBe(false);
    expect(fingerprints.matches(null, request)).toBe(false);
  });

  it('still recognises the unkeyed fingerprints written before keys were used', () => {
    const request = canonicalRequest('POST', '/v1/webhooks', body);
    const legacy = createHash('sha256').update(request).digest('hex');
    expect(fingerprints.matches(legacy, request)).toBe(true);
    expect(fingerprints.matches(legacy, canonicalRequest('POST', '/v1/webhooks', { ...body, partnerIds: [] }))).toBe(false);
  });
});

describe('canonicalJson', () => {
  it('sorts keys and drops whitespace', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1, y: 2 } })).toBe('{"a":[true,null,"x"],"b":1,"c":{"y":2,"z":1}}');
  });
});

describe('webhookIdFor', () => {
  it('the reference UUIDv5 implementation reproduces the RFC 9562 test vector', () => {
    // RFC 9562 Appendix A.4: UUIDv5 of "www.example.com" in the DNS namespace.
    expect(referenceUuidV5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'www.example.com')).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });

  it('is the UUIDv5 of "<organization>\\n<key>" in the product namespace (stable across releases)', () => {
    const namespace = '5b0e6b1e-8d7a-4d0c-9f3e-2a61c4b7d903';
    for (const [org, key] of [
      ['acme', 'k1'],
      ['globex', '3c90c3cc-0d44-4b50-8888-8dd25736052a'],
      ['acme', 'a'.repeat(255)],
    ] as const) {
      expect(webhookIdFor(org, key)).toBe(referenceUuidV5(namespace, `${org}\n${key}`));
    }
  });

  it('is deterministic, version 5 with the RFC variant, and scoped to the organization', () => {
    const id = webhookIdFor('acme', 'key-1');
    expect(webhookIdFor('acme', 'key-1')).toBe(id);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(webhookIdFor('globex', 'key-1')).not.toBe(id);
    expect(webhookIdFor('acme', 'key-2')).not.toBe(id);
    // the separator keeps (org, key) pairs apart
    expect(webhookIdFor('acme\nx', 'y')).toBe(webhookIdFor('acme', 'x\ny'));
  });

  it('keeps keys answerable for exactly 24 hours', () => {
    expect(IDEMPOTENCY_WINDOW_MS).toBe(24 * 60 * 60 * 1000);
  });
});
