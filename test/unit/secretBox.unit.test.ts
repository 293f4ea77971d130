// Signing secrets at rest: AES-256-GCM bound to the webhook and organization,
// with a plaintext cache that never answers for a context it did not authenticate.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/crypto/secretBox.ts';

const key = { id: 'k1', key: randomBytes(32) };
const here = { webhookId: 'w-1', organizationId: 'org-a' };

describe('SecretBox', () => {
  it('round-trips a secret, and again from its cache', () => {
    const box = new SecretBox([key]);
    const sealed = box.encrypt('whsec_one', here);
    expect(sealed.ciphertext).not.toContain('whsec');
    expect(box.decrypt(sealed, here)).toBe('whsec_one');
    expect(box.decrypt(sealed, here)).toBe('whsec_one');
    expect(new SecretBox([key]).decrypt(sealed, here)).toBe('whsec_one');
  });

  it('every encryption draws a fresh IV, so the same secret never repeats a box', () => {
    const box = new SecretBox([key]);
    const a = box.encrypt('whsec_same', here);
    const b = box.encrypt('whsec_same', here);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ciphertext).not.toBe(b.ciphertext);
  });

  it('a box copied onto another webhook or organization does not decrypt, even once cached for its own', () => {
    const box = new SecretBox([key]);
    const sealed = box.encrypt('whsec_mine', here);
    expect(box.decrypt(sealed, here)).toBe('whsec_mine');
    expect(() => box.decrypt(sealed, { ...here, webhookId: 'w-2' })).toThrow();
    expect(() => box.decrypt(sealed, { ...here, organizationId: 'org-b' })).toThrow();
  });

  it('a tampered ciphertext fails authentication even after the genuine box was cached', () => {
    const box = new SecretBox([key]);
    const sealed = box.encrypt('whsec_genuine', here);
    expect(box.decrypt(sealed, here)).toBe('whsec_genuine');
    const bytes = Buffer.from(sealed.ciphertext, 'base64');
    bytes[0] = bytes[0]! ^ 0xff;
    expect(() => box.decrypt({ ...sealed, ciphertext: bytes.toString('base64') }, here)).toThrow();
  });

  it('decrypts with an older key after rotation, and refuses an unknown key id', () => {
    const old = new SecretBox([key]).encrypt('whsec_old', here);
    const next = { id: 'k2', key: randomBytes(32) };
    const rotated = new SecretBox([next, key]);
    expect(rotated.encrypt('x', here).keyId).toBe('k2');
    expect(rotated.decrypt(old, here)).toBe('whsec_old');
    expect(() => new SecretBox([next]).decrypt(old, here)).toThrow(/k1/);
  });
  it('keeps its plaintext cache bounded under more distinct secrets than it holds, and answers right from either generation', () => {
    const box = new SecretBox([key]);
    const contexts = Array.from({ length: 3000 }, (_, i) => ({ webhookId: `w-${i}`, organizationId: 'org-a' }));
    const sealed = contexts.map((context, i) => box.encrypt(`whsec_${i}`, context));
    // A snapshot's bulk read remembers nothing.
    for (let i = 0; i < 100; i++) box.decrypt(sealed[i]!, contexts[i]!, false);
    expect(box.cached).toBe(0);
    // More distinct secrets than the cache holds.
    const many = Array.from({ length: 100_000 }, (_, i) => {
      const context = { webhookId: `m-${i}`, organizationId: 'org-b' };
      return { context, sealed: box.encrypt(`whsec_m${i}`, context) };
    });
    for (const { context, sealed: s } of many) box.decrypt(s, context);
    expect(box.cached).toBeGreaterThan(0);
    expect(box.cached).toBeLessThanOrEqual(80_000);
    // Entries from the old generation, the young one and evicted ones all decrypt to their own secret.
    for (const i of [0, 30_000, 59_999, 60_000, 99_999]) expect(box.decrypt(many[i]!.sealed, many[i]!.context)).toBe(`whsec_m${i}`);
    for (let i = 0; i < 3000; i += 299) expect(box.decrypt(sealed[i]!, contexts[i]!)).toBe(`whsec_${i}`);
    expect(box.cached).toBeLessThanOrEqual(80_000);
  });
});
