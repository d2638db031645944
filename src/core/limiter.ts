/** Rate and concurrency limits of the core path: the commit and assignment semaphores and the per-socket message rate. */
import { sessionClock } from './session-clock';

/** A counting semaphore: at most `limit` tasks run at once, the rest wait in order. */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  /** @param limit tasks that run at once */
  constructor(readonly limit: number) {}

  /** Runs `task` when a slot is free. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finishing task hands its slot straight to the first waiter (the count stays): freed
    // and taken back later, the slot could go to a caller arriving in between, which would
    // jump the queue and run beside the waiter, one over the limit.
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** Tasks running now. */
  get active(): number {
    return this.running;
  }
}

/** What {@link MessageRate.take} decided about one message. */
export type RateVerdict = 'ok' | 'limited' | 'exceeded';

/**
 * One socket's message rate: a token bucket of `perSecond` tokens a second with a burst of
 * twice that. A refused message is `limited` (answered with rate_limited); a sender that
 * keeps going through more than a full burst of refusals in a row is `exceeded` (closed).
 */
export class MessageRate {
  private tokens: number;
  /** On the {@link sessionClock}: a held session keeps one of these. */
  private lastRefill = sessionClock();
  private strikes = 0;

  constructor(private readonly perSecond: number) {
    this.tokens = perSecond * 2;
  }

  /** Takes a token for one message (`now` on the {@link sessionClock}). */
  take(now = sessionClock()): RateVerdict {
    const burst = this.perSecond * 2;
    this.tokens = Math.min(burst, this.tokens + ((now - this.lastRefill) / 1000) * this.perSecond);
    this.lastRefill = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.strikes = 0;
      return 'ok';
    }
    return ++this.strikes > burst ? 'exceeded' : 'limited';
  }
}
