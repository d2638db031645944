/**
 * Seed file bytes by content, shared by the assignments of one process.
 *
 * A target's streams often start from the same files: many simulations of one starting
 * structure (Folding@home's clones of a run) differ only in what the core randomises. Every
 * stream still stores its own copy (its files are its own to download and delete), but the
 * stream records each seed file's SHA-256 (`seedDigest` in store/streams.ts, computed by the
 * server when the stream is created), so an assignment whose seed file another assignment of this process
 * has just read takes the bytes from here instead of reading 200 KiB from the store.
 *
 * Entries are immutable (a digest names one content), so nothing needs invalidating. The
 * cache admits a digest only the second time it is asked for within the last
 * {@link DOORKEEPER_SIZE} misses: when every stream's seeds differ, nothing is copied in and
 * nothing is held. Least recently used entries go first once `core.seedCacheBytes` is full.
 */

/** Digests of recent misses remembered to decide admission (a Set cleared when full). */
export const DOORKEEPER_SIZE = 4096;

/** Counts the cache reports (the server's metrics). */
export interface SeedCacheCounters {
  hit(): void;
  miss(): void;
  bytes(held: number): void;
}

/** One process's seed files by digest (core.seedCacheBytes). */
export class SeedCache {
  /** Map order is use order: the first entry is the least recently used. */
  private readonly entries = new Map<string, Uint8Array>();
  private readonly seen = new Set<string>();
  private held = 0;

  /**
   * @param budgetBytes most bytes held (core.seedCacheBytes); 0 turns the cache off. A file
   *   larger than a quarter of it is never held, so one file cannot empty the cache.
   */
  constructor(
    private readonly budgetBytes: number,
    private readonly counters?: SeedCacheCounters,
  ) {}

  /** Bytes held now. */
  get size(): number {
    return this.held;
  }

  /** The bytes of this content, or undefined (then read the file and {@link offer} them). */
  get(digest: string): Uint8Array | undefined {
    if (this.budgetBytes === 0) return undefined;
    const bytes = this.entries.get(digest);
    if (bytes === undefined) {
      this.counters?.miss();
      return undefined;
    }
    this.entries.delete(digest);
    this.entries.set(digest, bytes);
    this.counters?.hit();
    return bytes;
  }

  /**
   * Bytes just read for `digest` after a miss. Kept (as a copy of their own, so the store
   * reply they may be a view of is not held) from the second miss on.
   */
  offer(digest: string, bytes: Uint8Array): void {
    if (this.budgetBytes === 0 || bytes.byteLength * 4 > this.budgetBytes || this.entries.has(digest)) return;
    if (!this.seen.has(digest)) {
      if (this.seen.size >= DOORKEEPER_SIZE) this.seen.clear();
      this.seen.add(digest);
      return;
    }
    this.seen.delete(digest);
    this.entries.set(digest, Buffer.from(bytes));
    this.held += bytes.byteLength;
    for (const [d, b] of this.entries) {
      if (this.held <= this.budgetBytes) break;
      this.entries.delete(d);
      this.held -= b.byteLength;
    }
    this.counters?.bytes(this.held);
  }
}
