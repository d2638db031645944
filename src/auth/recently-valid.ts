/**
 * Credentials found valid in the last minutes, by hash. An address past its failure budget
 * (failed-auth.ts) may still have these looked up once their cache entries have expired: only
 * a client that already had a good token or key gets past the budget this way, so the failures
 * of others behind the same address (a NAT, a shared proxy) do not lock it out. Rotation,
 * removal and revocation forget them.
 */

/** How long a credential found valid is remembered as such (ms). */
export const RECENTLY_VALID_MS = 10 * 60_000;

/** Hashes of credentials found valid, each with a value (e.g. its key id) and when that ends. */
export class RecentlyValid<T> {
  private readonly entries = new Map<string, { value: T; until: number }>();

  /** @param maxEntries most hashes remembered; the oldest go first (auth.cacheMaxEntries) */
  constructor(private readonly maxEntries: number) {}

  /** Remembers `hash` as valid from now for {@link RECENTLY_VALID_MS}. */
  remember(hash: string, value: T): void {
    this.entries.delete(hash);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(hash, { value, until: Date.now() + RECENTLY_VALID_MS });
  }

  /** Whether `hash` was found valid within the last {@link RECENTLY_VALID_MS} and not forgotten since. */
  has(hash: string): boolean {
    const e = this.entries.get(hash);
    return e !== undefined && e.until > Date.now();
  }

  /** Forgets one hash, or every one with `'*'` (an `auth.invalidate` announcement). */
  forget(hash: string): void {
    if (hash === '*') this.entries.clear();
    else this.entries.delete(hash);
  }

  /** Forgets the hashes whose value matches (every key of a revoked engine key id). */
  forgetWhere(matches: (value: T) => boolean): void {
    for (const [h, e] of this.entries) if (matches(e.value)) this.entries.delete(h);
  }
}
