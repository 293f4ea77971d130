import { describe, expect, it } from 'vitest';
import { pooledRandomBytes } from '../../src/crypto/randomPool.ts';

describe('pooledRandomBytes', () => {
  it('serves every byte once, across refills of the pool', () => {
    // 2 000 draws of 32 and 12 bytes span many 4 KiB refills; a reused or
    // unadvanced slice would repeat a draw.
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      for (const size of [32, 12]) {
        const bytes = pooledRandomBytes(size);
        expect(bytes.length).toBe(size);
        const hex = bytes.toString('hex');
        expect(seen.has(hex)).toBe(false);
        seen.add(hex);
      }
    }
  });

  it('gives each caller its own copy, not a view of the pool', () => {
    const first = pooledRandomBytes(32);
    const copy = Buffer.from(first);
    for (let i = 0; i < 300; i++) pooledRandomBytes(32); // refills overwrite the pool
    expect(first.equals(copy)).toBe(true);
  });

  it('is not all zeros and serves large and empty requests', () => {
    expect(pooledRandomBytes(32).equals(Buffer.alloc(32))).toBe(false);
    expect(pooledRandomBytes(5000).length).toBe(5000);
    expect(pooledRandomBytes(0).length).toBe(0);
  });
});
