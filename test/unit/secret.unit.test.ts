import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isValidSecret, SECRET_PREFIX, secretFromBytes, secretKeyBytes } from '../../src/domain/secret.ts';

const b64 = (length: number) => randomBytes(length).toString('base64');

describe('Standard Webhooks secret format', () => {
  it.each([24, 25, 32, 48, 63, 64])('accepts whsec_ + base64 of %i bytes', (length) => {
    expect(isValidSecret(`whsec_${b64(length)}`)).toBe(true);
  });

  it.each([0, 1, 16, 23, 65, 128])('refuses whsec_ + base64 of %i bytes', (length) => {
    expect(isValidSecret(`whsec_${b64(length)}`)).toBe(false);
  });

  it('refuses a wrong or missing prefix', () => {
    const body = b64(32);
    expect(isValidSecret(body)).toBe(false);
    expect(isValidSecret(`sk_${body}`)).toBe(false);
    expect(isValidSecret(`WHSEC_${body}`)).toBe(false);
    expect(isValidSecret(`whsec${body}`)).toBe(false);
  });

  it('refuses bodies that are not standard base64', () => {
    expect(isValidSecret(`whsec_${'!'.repeat(44)}`)).toBe(false);
    // base64url alphabet
    expect(isValidSecret(`whsec_${'-_'.repeat(22)}`)).toBe(false);
    // missing padding / wrong length
    expect(isValidSecret(`whsec_${b64(32).replace(/=+$/, '')}`)).toBe(false);
    // whitespace inside or around
    const body = b64(32);
    expect(isValidSecret(`whsec_${body.slice(0, 10)} ${body.slice(10)}`)).toBe(false);
    expect(isValidSecret(`whsec_${body}\n`)).toBe(false);
    expect(isValidSecret(` whsec_${body}`)).toBe(false);
    // padding in the middle
    expect(isValidSecret(`whsec_${body.slice(0, 20)}==${body.slice(22)}`)).toBe(false);
  });

  it('round-trips bytes through secretFromBytes and secretKeyBytes', () => {
    const bytes = randomBytes(32);
    const secret = secretFromBytes(bytes);
    expect(secret.startsWith(SECRET_PREFIX)).toBe(true);
    expect(isValidSecret(secret)).toBe(true);
    expect(secretKeyBytes(secret).equals(bytes)).toBe(true);
  });
});
