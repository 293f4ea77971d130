// Signing secrets at rest: AES-256-GCM with a key id beside each ciphertext
// (so keys can rotate) and the webhook id and organization as associated
// data (so a ciphertext copied onto another webhook does not decrypt).
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { EncryptionKey } from '../config.ts';
import type { EncryptedSecret } from '../domain/webhook.ts';
import { pooledRandomBytes } from './randomPool.ts';

const TAG_BYTES = 16;
/**
 * Decrypted secrets kept for dispatch lookups and replays (a GCM decipher
 * costs 5–20 µs; a lookup needs one per target). About 240 bytes each, so
 * the cache stays under ~19 MiB (measured: 23 MiB per 100 000 entries).
 *
 * Two generations of half the size each, not one Map evicting its oldest
 * entry: `map.keys().next()` walks over every entry deleted before it that
 * the Map has not compacted yet, so under lookups of more distinct secrets
 * than the cache holds each eviction got slower — at 1 000 000 webhooks a
 * decryption went from 8 µs to 62 µs per secret within 3 000 lookups. Here a
 * full young generation becomes the old one and the previous old one is
 * dropped whole; a hit in the old generation is moved back into the young.
 */
const PLAINTEXT_CACHE_SIZE = 80_000;
const GENERATION_SIZE = PLAINTEXT_CACHE_SIZE / 2;

export class SecretBox {
  private readonly byId: ReadonlyMap<string, Buffer>;
  private readonly current: EncryptionKey;
  /** Keyed by the whole box and its context, so a hit is exactly what decryption would return. */
  private young = new Map<string, string>();
  private old = new Map<string, string>();

  constructor(keys: readonly EncryptionKey[]) {
    const first = keys[0];
    if (!first) throw new Error('at least one secret encryption key is required');
    this.current = first;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  encrypt(secret: string, context: { webhookId: string; organizationId: string }): EncryptedSecret {
    const iv = pooledRandomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(associatedData(context));
    const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { keyId: this.current.id, iv: iv.toString('base64'), ciphertext: body.toString('base64') };
  }

  /**
   * `remember: false` for bulk reads (the dispatch snapshot reads every
   * secret once): a cached plaintext is used, but no new one is kept, so a
   * snapshot does not fill the cache with 80 000 entries the lookups may
   * never ask for (measured: the server's heap after a snapshot of 100 000
   * webhooks held ~40 MB more).
   */
  decrypt(box: EncryptedSecret, context: { webhookId: string; organizationId: string }, remember = true): string {
    // join() builds one flat string; a template literal would keep a rope of its parts alive in the cache.
    const cacheKey = [box.keyId, box.iv, box.ciphertext, context.organizationId, context.webhookId].join('\n');
    const cached = this.young.get(cacheKey);
    if (cached !== undefined) return cached;
    const older = this.old.get(cacheKey);
    if (older !== undefined) {
      if (remember) this.remember(cacheKey, older);
      return older;
    }
    const plaintext = this.decryptUncached(box, context);
    if (remember) this.remember(cacheKey, plaintext);
    return plaintext;
  }

  /** Plaintexts held now (both generations; an entry moved to the young one may be counted twice), for tests. */
  get cached(): number {
    return this.young.size + this.old.size;
  }

  private remember(cacheKey: string, plaintext: string): void {
    if (this.young.size >= GENERATION_SIZE) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(cacheKey, plaintext);
  }

  private decryptUncached(box: EncryptedSecret, context: { webhookId: string; organizationId: string }): string {
    const key = this.byId.get(box.keyId);
    if (!key) throw new Error(`secret encryption key "${box.keyId}" is not configured`);
    const body = Buffer.from(box.ciphertext, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(box.iv, 'base64'));
    decipher.setAAD(associatedData(context));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  }
}

function associatedData(context: { webhookId: string; organizationId: string }): Buffer {
  return Buffer.from(`webhook-secret\n${context.organizationId}\n${context.webhookId}`, 'utf8');
}
