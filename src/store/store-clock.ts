/**
 * MongoDB's clock as a writer can stamp it without asking each time. The janitor judges a
 * partition's age by the store's clock (store/abandoned.ts), so a partition carries a
 * `createdAt` on that clock, never on the writer's own wall clock, which may be behind.
 * Stamping it inside the write instead (`$currentDate`) would make the partition write an
 * update, which the embedded store runs under its collection lock, one at a time with every
 * other such write (and behind a long stream deletion); an insert takes no lock.
 */
import type { Db } from 'mongodb';
import { storeNow } from './abandoned';
import { withTimeout } from './outage';

/**
 * How often a clock reads the store's time again (ms). Between readings it runs on this
 * process's monotonic clock, which NTP may slew (chrony by up to about 8 %: 0.4 s in 5 s),
 * and a step of the store's clock reaches it only at the next reading.
 */
const REREAD_MS = 5_000;

/** How long a reading may take before it counts as failed (ms): MongoDB unreachable. */
const READ_MS = 10_000;

/** How old the last reading may grow, when later ones fail, before a write waits for a fresh one (ms). */
const STALE_MS = 6 * REREAD_MS;

/**
 * The store's time at a moment of this process's monotonic clock, kept up to date: read
 * once (a `hello`), then advanced by the monotonic clock, read again in the background every
 * {@link REREAD_MS}. Wall-clock steps of this machine do not move it. A background reading
 * that fails keeps the last one (and is tried again at the next write), for a while.
 */
export class StoreClock {
  private anchor: { storeMs: number; sentAt: number } | undefined;
  private reading: Promise<void> | undefined;

  constructor(private readonly db: Db) {}

  /**
   * The store's time now, in epoch ms, as an upper bound: the store read its clock after the
   * question was sent, so counting from the sending errs young (by up to one round trip,
   * and the millisecond `localTime` truncates), never old. A call waits for the store only
   * when there is no reading yet, or the last one is older than {@link STALE_MS} (the later
   * ones failed): then it fails with the store (a `DeadlineError` when it does not answer).
   */
  async now(): Promise<number> {
    const age = this.anchor ? performance.now() - this.anchor.sentAt : Infinity;
    if (age > STALE_MS) await this.read();
    else if (age > REREAD_MS) this.read().catch(() => undefined);
    const a = this.anchor!;
    return Math.ceil(a.storeMs + 1 + (performance.now() - a.sentAt));
  }

  /** One reading at a time, given up after {@link READ_MS} (a hung one does not hold the next). */
  private read(): Promise<void> {
    this.reading ??= (async () => {
      try {
        const sentAt = performance.now();
        const storeMs = await withTimeout(storeNow(this.db), READ_MS, 'mongodb', "MongoDB's clock (hello)");
        this.anchor = { storeMs, sentAt };
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }
}

const clocks = new WeakMap<Db, StoreClock>();

/** The {@link StoreClock} of a database handle (one per handle, made on first use). */
export function storeClockOf(db: Db): StoreClock {
  let c = clocks.get(db);
  if (!c) clocks.set(db, (c = new StoreClock(db)));
  return c;
}
