/**
 * Seed file bytes by content, shared by the assignments of one process.
 *
 * A target's streams often start from the same files: many simulations of one starting
 * structure (Folding@home's clones of a run) differ only in what the core randomises. Every
 * stream still stores its own copy (its files are its own to download and delete), but the
 * stream records each seed file's SHA-256 (`seedDigest` in store/streams.ts, computed by the
 * server when the stream is created), so an assignment whose seed file another assignment of
 * this process has just read takes the bytes from here instead of reading 200 KiB from the
 * store.
 *
 * Content is kept as the base64 an assignment carries ({@link Base64File}), 4/3 of its size:
 * an assignment then copies it into the message whole, where raw bytes would be encoded again
 * for every set-up, through hundreds of KiB of short-lived strings.
 *
 * Entries are immutable (a digest names one content), so nothing needs invalidating. The
 * cache admits a digest only the second time it is asked for within the last
 * {@link DOORKEEPER_SIZE} misses: when every stream's seeds differ, nothing is copied in and
 * nothing is held. Least recently used entries go first once `core.seedCacheBytes` is full.
 */
import { base64Length, toBase64File, type Base64File } from './assignment-message';

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
  private readonly entries = new Map<string, Base64File>();
  private readonly seen = new Set<string>();
  private held = 0;

  /**
   * @param budgetBytes most bytes held, counted in base64 (core.seedCacheBytes); 0 turns the
   *   cache off. A file whose base64 is over a quarter of it is never held, so one file cannot
   *   empty the cache.
   */
  constructor(
    private readonly budgetBytes: number,
    private readonly counters?: SeedCacheCounters,
  ) {}

  /** Bytes held now (base64). */
  get size(): number {
    return this.held;
  }

  /** This content in base64, or undefined (then read the file and {@link offer} its bytes). */
  get(digest: string): Base64File | undefined {
    if (this.budgetBytes === 0) return undefined;
    const file = this.entries.get(digest);
    if (file === undefined) {
      this.counters?.miss();
      return undefined;
    }
    this.entries.delete(digest);
    this.entries.set(digest, file);
    this.counters?.hit();
    return file;
  }

  /**
   * Bytes just read for `digest` after a miss. Kept from the second miss on, in base64 (a
   * buffer of its own, so the store reply they may be a view of is not held).
   */
  offer(digest: string, bytes: Uint8Array): void {
    const size = base64Length(bytes.byteLength);
    if (this.budgetBytes === 0 || size * 4 > this.budgetBytes || this.entries.has(digest)) return;
    if (!this.seen.has(digest)) {
      if (this.seen.size >= DOORKEEPER_SIZE) this.seen.clear();
      this.seen.add(digest);
      return;
    }
    this.seen.delete(digest);
    this.entries.set(digest, toBase64File(bytes));
    this.held += size;
    for (const [d, f] of this.entries) {
      if (this.held <= this.budgetBytes) break;
      this.entries.delete(d);
      this.held -= f.ascii.length;
    }
    this.counters?.bytes(this.held);
  }
}
