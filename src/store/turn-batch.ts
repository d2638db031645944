/**
 * Writes made in one turn of the event loop, gathered by key and sent together on the next
 * (setImmediate): a burst of commits costs one Redis command per target, not one per commit.
 * Used by the live view (live.ts) and the progress counters (progress.ts).
 */
export class TurnBatch<V> {
  private pending = new Map<string, V>();
  private flushing: Promise<void> | undefined;

  /** @param write sends one turn's entries; a rejection reaches every caller of that turn */
  constructor(private readonly write: (entries: Map<string, V>) => Promise<void>) {}

  /**
   * Sets the entry of `key` to what `merge` makes of the one pending (undefined if none).
   * Resolves once the batch holding it is written.
   */
  put(key: string, merge: (pending: V | undefined) => V): Promise<void> {
    this.pending.set(key, merge(this.pending.get(key)));
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      const entries = this.pending;
      this.pending = new Map();
      this.flushing = undefined;
      if (entries.size > 0) await this.write(entries);
    });
    return this.flushing;
  }

  /** Drops the pending entry of `key`, if it has not gone out yet. */
  delete(key: string): void {
    this.pending.delete(key);
  }
}
