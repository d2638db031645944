/**
 * Session ids and resume secrets from a pooled buffer of CSPRNG bytes. Every new session
 * draws 12 + 24 random bytes; one `randomFillSync` per 4 KiB instead of two native calls
 * per session takes a visible share off the set-up CPU (docs/performance.md, set-up CPU).
 * Node pools the bytes of `crypto.randomUUID` the same way.
 */
import crypto from 'node:crypto';

/** Bytes drawn from the CSPRNG at a time. */
const POOL_BYTES = 4096;

const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let offset = POOL_BYTES;

/** `bytes` fresh random bytes (each handed out once) as base64url. */
export function randomBase64url(bytes: number): string {
  if (bytes > POOL_BYTES / 4) return crypto.randomBytes(bytes).toString('base64url');
  if (offset + bytes > POOL_BYTES) {
    crypto.randomFillSync(pool);
    offset = 0;
  }
  const out = pool.toString('base64url', offset, offset + bytes);
  offset += bytes;
  return out;
}
