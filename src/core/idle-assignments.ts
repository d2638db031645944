/**
 * Streams held without progress go back to the pool (core.maxIdleAssignmentS): a core that
 * takes a stream and never commits would otherwise keep it from every honest core for as
 * long as it keeps its socket alive. Progress is a commit that moves the committed count;
 * the session stamps the assignment's `progressAt` when one lands (a field, not a record kept
 * here per assignment: every held session would pay ≈ 90 bytes for it).
 */
import type { CoreSession } from './session';
import { sessionClock } from './session-clock';

/** What the sweep needs from the hub. */
export interface IdleSource {
  readonly byStream: ReadonlyMap<string, CoreSession>;
}

/** Releases idle assignments of one process. */
export class IdleAssignments {
  private timer: NodeJS.Timeout | undefined;

  /** @param maxIdleMs time an assignment may go without a commit */
  constructor(private readonly hub: IdleSource, private readonly maxIdleMs: number) {}

  /** Starts sweeping (a quarter of the idle time, at most once a minute). */
  start(): void {
    this.timer = setInterval(() => this.sweep(), Math.max(250, Math.min(60_000, this.maxIdleMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One pass; returns the streams it released. */
  sweep(now = Date.now()): string[] {
    const released: string[] = [];
    for (const [stream, session] of this.hub.byStream) {
      const a = session.assignment;
      if (a && sessionClock(now) - a.progressAt >= this.maxIdleMs) {
        released.push(stream);
        void session.serverStop('idle_timeout', stream);
      }
    }
    return released;
  }
}
