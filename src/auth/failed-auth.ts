/**
 * Failed-authentication budget per client address (IPv4, or IPv6 /64): each unknown token
 * or engine key costs database lookups from the pool commits use, so a client that keeps
 * presenting bad credentials is answered 429 `rate_limited` (with Retry-After) before any
 * lookup, on HTTP and on core upgrades alike (`auth.failuresPerMinute`).
 *
 * Counted per process, in memory: the point is to protect this process's lookups, and
 * counting in Redis would cost a Redis round trip per failure, which is exactly what an
 * attacker produces. With N processes an address gets at most N budgets (docs/security.md).
 *
 * A failure is known only when its lookup ends, so an address runs at most as many
 * authentications at once as it has failures left; the others wait their turn rather than be
 * refused (honest clients behind one NAT connecting at once only queue for a few lookups).
 * Without that, bad credentials sent at once would all pass the check while their lookups ran.
 */
import { AppError } from '../errors';
import { addressKey } from './address-key';

interface Bucket {
  tokens: number;
  at: number;
}

/** Authentications of one address running now, and those waiting for a turn. */
interface Running {
  count: number;
  waiting: Array<() => void>;
}

/** The per-address failure budget of one process. */
export class FailedAuth {
  private readonly buckets = new Map<string, Bucket>();
  /** Addresses with authentications running or waiting; an entry goes when both are none. */
  private readonly running = new Map<string, Running>();
  private readonly perMs: number;

  /**
   * @param perMinute failures an address may have per minute (burst as large)
   * @param maxEntries addresses tracked (auth.cacheMaxEntries); the least recently failing are forgotten first
   */
  constructor(private readonly perMinute: number, private readonly maxEntries: number) {
    this.perMs = perMinute / 60_000;
  }

  /** Throws `rate_limited` when the address has no failures left. */
  check(address: string): void {
    this.checkKey(addressKey(address));
  }

  private checkKey(key: string): void {
    const b = this.bucket(key, false);
    if (!b || b.tokens >= 1) return;
    const retry = Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
    throw new AppError('rate_limited', `Too many failed authentications from this address; retry in ${retry} s`, {}, retry);
  }

  /**
   * Records one failure. The budget owes at most one minute of failures: lookups that pass the
   * budget (credentials found valid minutes ago, then revoked) can fail many at once, and an
   * address shared by honest clients must not stay refused for longer than a minute.
   */
  fail(address: string): void {
    const b = this.bucket(addressKey(address), true)!;
    b.tokens = Math.max(-this.perMinute, b.tokens - 1);
  }

  /**
   * Runs an authentication: refused at once when over budget, else run when fewer of the
   * address's are running than it has failures left (see the module comment); an
   * `unauthorized` outcome counts as a failure.
   */
  async guard<T>(address: string, fn: () => Promise<T>): Promise<T> {
    const key = addressKey(address);
    this.checkKey(key);
    let r = this.running.get(key);
    if (!r) this.running.set(key, (r = { count: 0, waiting: [] }));
    const waits = r.count >= this.left(key);
    // A waiter is woken holding its turn (release hands it on).
    if (waits) await new Promise<void>((resolve) => r!.waiting.push(resolve));
    else r.count++;
    try {
      // The failures that ended while it waited may have spent the budget.
      if (waits) this.checkKey(key);
      return await this.counted(address, fn);
    } finally {
      this.release(key, r);
    }
  }

  /**
   * Runs an authentication outside the budget (a credential found valid minutes ago, which
   * only its holder can present); an `unauthorized` outcome still counts as a failure.
   */
  async counted<T>(address: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AppError && err.code === 'unauthorized') this.fail(address);
      throw err;
    }
  }

  /** Failures the address has left now, at least 1 (below 1 it is refused before it runs). */
  private left(key: string): number {
    return Math.max(1, Math.floor(this.bucket(key, false)?.tokens ?? this.perMinute));
  }

  /**
   * Ends a turn and hands turns on to waiters while the budget allows; a waiter the budget
   * then refuses ends its turn here too, so a spent budget refuses the whole queue.
   */
  private release(key: string, r: Running): void {
    r.count--;
    while (r.waiting.length > 0 && r.count < this.left(key)) {
      r.count++;
      r.waiting.shift()!();
    }
    if (r.count === 0) this.running.delete(key);
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
