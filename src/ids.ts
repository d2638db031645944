/** Opaque ids for targets, streams and engine keys: 16 random bytes, base64url (22 characters). */
import crypto from 'node:crypto';

/** A new random id. */
export function newId(): string {
  return crypto.randomBytes(16).toString('base64url');
}

/** Pattern every id matches (path parameters are validated against it). */
export const ID_PATTERN = '^[A-Za-z0-9_-]{22}$';
