/**
 * One answer shared by every caller for a while: for reads that anyone (or any dashboard)
 * may repeat as fast as it likes and whose cost does not depend on who asks, so a flood of
 * requests costs the backend one read per interval, not one per request.
 */
export class SharedAnswer<T> {
  private current: { at: number; answer: Promise<T> } | undefined;

  /**
   * @param ttlMs milliseconds an answer (or the read in flight) is reused, from when it was asked for
   * @param compute the read
   */
  constructor(
    private readonly ttlMs: number,
    private readonly compute: () => Promise<T>,
  ) {}

  /** The answer asked for less than `ttlMs` ago, else a new one. A failed read is not reused. */
  get(): Promise<T> {
    const now = Date.now();
    if (this.current && now - this.current.at < this.ttlMs) return this.current.answer;
    const entry = { at: now, answer: this.compute() };
    this.current = entry;
    entry.answer.catch(() => this.forget(entry));
    return entry.answer;
  }

  /** Drops the answer (the data changed): the next {@link get} reads again. */
  invalidate(): void {
    this.current = undefined;
  }

  private forget(entry: SharedAnswer<T>['current']): void {
    if (this.current === entry) this.current = undefined;
  }
}
