/**
 * Concurrent calls for one key share one run. When a credential's cache entry expires, every
 * connection presenting it at that moment would otherwise look it up on its own: one shared
 * key, thousands of cores, as many store queries.
 */
export class SingleFlight<T> {
  /** Runs in progress by key; an entry lives only until its run settles. */
  private readonly running = new Map<string, Promise<T>>();

  /** The run in progress for `key`, or a new one of `fn`. */
  run(key: string, fn: () => Promise<T>): Promise<T> {
    const current = this.running.get(key);
    if (current) return current;
    const p: Promise<T> = fn().finally(() => {
      if (this.running.get(key) === p) this.running.delete(key);
    });
    this.running.set(key, p);
    return p;
  }

  /** Later calls start runs of their own: the ones in progress may have read what an invalidation changed. */
  clear(): void {
    this.running.clear();
  }
}
