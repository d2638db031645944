/**
 * A lock for all nodes, in Redis: `SET key holder NX PX ttl` to take it, compare-and-delete
 * to let it go, so a holder whose lock expired never removes the next holder's. For rare
 * administrative changes whose check and write are separate store commands (the last-admin
 * rule); the lock expires on its own if its holder dies.
 */
import crypto from 'node:crypto';
import type { RedisClient } from './redis';

const UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/** How a {@link withLock} call waits and holds. */
export interface LockOptions {
  /** Longest the lock is held (ms) before it expires by itself. */
  ttlMs: number;
  /** Tries to take it before giving up, {@link LockOptions.retryMs} apart. */
  attempts: number;
  retryMs: number;
  /** The error thrown when the lock could not be taken. */
  busy: () => Error;
}

/** Runs `fn` holding the lock `key`; throws `opts.busy()` when another holder keeps it past the attempts. */
export async function withLock<T>(redis: RedisClient, key: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const holder = crypto.randomBytes(16).toString('base64url');
  for (let attempt = 1; !(await redis.set(key, holder, 'PX', opts.ttlMs, 'NX')); attempt++) {
    if (attempt >= opts.attempts) throw opts.busy();
    await new Promise((r) => setTimeout(r, opts.retryMs));
  }
  try {
    return await fn();
  } finally {
    await redis.eval(UNLOCK, 1, key, holder).catch(() => undefined);
  }
}
