/**
 * Lookups of credentials (user and donor tokens, engine keys) by their hash, shared by the
 * token and engine-key authenticators: answers, found or not, are reused for a short time
 * (auth.cacheTtlS, at most auth.cacheMaxEntries); concurrent lookups of one hash share one
 * query ({@link SingleFlight}); hashes found valid are remembered for minutes
 * ({@link RecentlyValid}, the failure budget's pass). Every invalidation bumps a generation,
 * so a lookup that raced one is answered but not cached: what it read may already be stale.
 */
import { RecentlyValid } from './recently-valid';
import { SingleFlight } from './single-flight';

/** What a credential cache needs to know. */
export interface CredentialCacheOptions<T, R> {
  /** Milliseconds an answer is reused (auth.cacheTtlS). */
  ttlMs: number;
  /** Most answers, and most hashes remembered as recently valid; the oldest go first (auth.cacheMaxEntries). */
  maxEntries: number;
  /** Reads the credential of a hash from the store; null when unknown or revoked. */
  load(hash: string): Promise<T | null>;
  /** What is remembered of a valid credential, for {@link CredentialCache.forgetWhere} (e.g. its key id). */
  remembered(value: T): R;
}

/** Cached lookups of one kind of credential. */
export class CredentialCache<T, R = true> {
  private readonly answers = new Map<string, { value: T | null; expires: number }>();
  private readonly recentlyValid: RecentlyValid<R>;
  private readonly loading = new SingleFlight<T | null>();
  private generation = 0;

  constructor(private readonly o: CredentialCacheOptions<T, R>) {
    this.recentlyValid = new RecentlyValid(o.maxEntries);
  }

  /** The credential of `hash` when cached as valid, without a lookup. */
  known(hash: string): T | undefined {
    const hit = this.answers.get(hash);
    return hit && hit.expires > Date.now() && hit.value !== null ? hit.value : undefined;
  }

  /**
   * What this process knows of `hash` without a lookup: the credential when cached as valid;
   * `'recently-valid'` when it was found valid in the last minutes and not forgotten since, so
   * its lookup is expected to succeed; undefined otherwise.
   */
  recall(hash: string): T | 'recently-valid' | undefined {
    return this.known(hash) ?? (this.recentlyValid.has(hash) ? 'recently-valid' : undefined);
  }

  /** The credential of `hash`, or null when unknown or revoked: from the cache, else one shared lookup. */
  lookup(hash: string): Promise<T | null> {
    const now = Date.now();
    const hit = this.answers.get(hash);
    if (hit && hit.expires > now) return Promise.resolve(hit.value);
    return this.loading.run(hash, () => this.load(hash, now));
  }

  /** Forgets one hash, or every one with `'*'` (an `auth.invalidate` announcement). */
  invalidate(hash: string): void {
    this.generation++;
    this.loading.clear();
    this.recentlyValid.forget(hash);
    if (hash === '*') this.answers.clear();
    else this.answers.delete(hash);
  }

  /** Forgets every credential whose remembered value matches (every hash of a revoked key id). */
  forgetWhere(matches: (remembered: R) => boolean): void {
    this.generation++;
    this.loading.clear();
    for (const [h, e] of this.answers) if (e.value !== null && matches(this.o.remembered(e.value))) this.answers.delete(h);
    this.recentlyValid.forgetWhere(matches);
  }

  private async load(hash: string, now: number): Promise<T | null> {
    const generation = this.generation;
    const value = await this.o.load(hash);
    if (generation !== this.generation) return value;
    if (value !== null) this.recentlyValid.remember(hash, this.o.remembered(value));
    else this.recentlyValid.forget(hash);
    this.answers.delete(hash);
    if (this.answers.size >= this.o.maxEntries) this.answers.delete(this.answers.keys().next().value!);
    this.answers.set(hash, { value, expires: now + this.o.ttlMs });
    return value;
  }
}
