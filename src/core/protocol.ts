/**
 * Constants of the core wire protocol (PROTOCOL §2) that are not settings: changing one
 * changes what every core may send, so they live here, each with its reason. Limits a
 * deployment may tune are config keys (core.*).
 */

/** The WebSocket subprotocol cores offer and the server echoes. */
export const SUBPROTOCOL = 'coordinator.core.v1';

/** The protocol version the welcome announces. */
export const PROTOCOL_VERSION = 1;

/**
 * Longest `target_id` an assign may carry, in characters. Ids are 22 characters
 * (model.ts ID_PATTERN); the bound only keeps an oversized string out of lookups and logs.
 */
export const MAX_TARGET_ID_CHARS = 64;

/**
 * Longest `resume_token` in characters. A token is `<stream id>.<secret>`: 22 + 1 + 32
 * (24 random bytes in base64url); the bound leaves room for longer ids without letting an
 * oversized string reach the hash and the lease lookup.
 */
export const MAX_RESUME_TOKEN_CHARS = 200;

/** Random bytes of a resume secret (base64url in the token). */
export const RESUME_SECRET_BYTES = 24;
