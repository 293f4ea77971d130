// Random bytes for secrets and AES-GCM IVs, drawn from a pool. Each
// crypto.randomBytes call costs ~5 µs on this kind of host whatever its size
// (the per-call cost of the CSPRNG, not the bytes), and a registration needs
// two (32 for the secret, 12 for the IV), so the pool is filled 4 KiB at a
// time and handed out in slices — as Node's randomUUID does with its own
// cache. Every byte is handed out once: a slice is copied to the caller and
// zeroed in the pool, so a served secret does not linger there.
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES; // empty until the first draw

/** `size` fresh bytes from the operating system's CSPRNG, each byte served once. */
export function pooledRandomBytes(size: number): Buffer {
  if (!Number.isInteger(size) || size < 0) throw new RangeError(`bad random byte count: ${size}`);
  if (size > POOL_BYTES / 4) return randomFillSync(Buffer.alloc(size));
  if (offset + size > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.alloc(size); // its own memory, not a slab shared with other buffers
  pool.copy(out, 0, offset, offset + size);
  pool.fill(0, offset, offset + size);
  offset += size;
  return out;
}
