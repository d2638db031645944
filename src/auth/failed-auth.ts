/**
 * Failed-authentication budget per client address (IPv4, or IPv6 /64): each unknown token
 * or engine key costs database lookups from the pool commits use, so a client that keeps
 * presenting bad credentials is answered 429 `rate_limited` (with Retry-After) before any
 * lookup, on HTTP and on core upgrades alike (`auth.failuresPerMinute`).
 *
 * Counted per process, in memory: the point is to protect this process's lookups, and
 * counting in Redis would cost a Redis round trip per failure, which is exactly what an
 * attacker produces. With N processes an address gets at most N budgets (docs/security.md).
 */
import { AppError } from '../errors';
import { addressKey } from './address-key';

interface Bucket {
  tokens: number;
  at: number;
}

/** The per-address failure budget of one process. */
export class FailedAuth {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  /**
   * @param perMinute failures an address may have per minute (burst as large)
   * @param maxEntries addresses tracked; the least recently failing are forgotten first
   */
  constructor(private readonly perMinute: number, private readonly maxEntries = 100_000) {
    this.perMs = perMinute / 60_000;
  }

  /** Throws `rate_limited` when the address has no failures left. */
  check(address: string): void {
    const b = this.bucket(addressKey(address), false);
    if (!b || b.tokens >= 1) return;
    const retry = Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
    throw new AppError('rate_limited', `Too many failed authentications from this address; retry in ${retry} s`, { 'retry-after': String(retry) });
  }

  /** Records one failure. */
  fail(address: string): void {
    const b = this.bucket(addressKey(address), true)!;
    b.tokens -= 1;
  }

  /** Runs an authentication: refused at once when over budget; an `unauthorized` outcome counts as a failure. */
  async guard<T>(address: string, fn: () => Promise<T>): Promise<T> {
    this.check(address);
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AppError && err.code === 'unauthorized') this.fail(address);
      throw err;
    }
  }

  private bucket(key: string, create: boolean): Bucket | undefined {
    const now = Date.now();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
      // Recently failing addresses move to the back, so eviction forgets quiet ones first.
      this.buckets.delete(key);
      if (create || b.tokens < this.perMinute) this.buckets.set(key, b);
      return b;
    }
    if (!create) return undefined;
    if (this.buckets.size >= this.maxEntries) this.buckets.delete(this.buckets.keys().next().value!);
    b = { tokens: this.perMinute, at: now };
    this.buckets.set(key, b);
    return b;
  }
}
