/**
 * Tokens and keys: random, shown once, stored only as SHA-256 hashes. A lookup hashes the
 * presented secret and finds it by hash, so no stored value can be replayed.
 */
import crypto from 'node:crypto';

/** Bytes of randomness in every token and key (PROTOCOL §3: at least 32). */
export const TOKEN_BYTES = 32;

/** A new random token: 32 bytes, base64url (43 characters). */
export function newToken(): string {
  return crypto.randomBytes(TOKEN_BYTES).toString('base64url');
}

/** The at-rest form of a token: hex SHA-256 (one-shot `crypto.hash`: no Hash object per call; every core upgrade hashes its key). */
export function hashToken(token: string): string {
  return crypto.hash('sha256', token, 'hex');
}

/** Constant-time comparison of two secrets of any length. */
export function safeEqual(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb) && a.length === b.length;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer[ \t]+([A-Za-z0-9._~+/-]+=*)[ \t]*$/i.exec(header);
  return m?.[1];
}
