/**
 * The log lines clients cause: one per request, per core connection, assignment and refusal.
 * Anyone can cause them, anonymously, so a flood of requests would otherwise be a flood of
 * lines, pushing what an operator needs out of the journal's retention and costing a write
 * each. A process writes at most `log.clientLinesPerSecond` of them in each second; the rest are
 * counted by message, in the metric and in one summary line at the end of that second. HTTP
 * requests and cores have a budget each, so a flood of requests does not silence the lines
 * that say which cores connected and what they were given. Lines the server writes about
 * itself (start, storage, errors) go through the plain logger, unbounded.
 */
import type { Counter } from 'prom-client';
import type { Logger } from './log';

/** Fields of a line, as given to pino. */
type Fields = Record<string, unknown>;

/** The levels client-caused lines are written at; errors always go through the plain logger. */
type ClientLevel = 'info' | 'warn';

/** A window of one second: lines past the budget are not written. */
const WINDOW_MS = 1000;

/**
 * Which clients' lines a budget is for: HTTP requests; upgrades refused before a core is known
 * (anyone can cause them, without a key); or cores. A flood of one does not silence another.
 */
export type ClientKind = 'http' | 'upgrade' | 'core';

/** Writes client-caused lines within a per-second budget; see the module comment. */
export class ClientLog {
  private windowStart = Number.NEGATIVE_INFINITY;
  private left = 0;
  /** Lines not written in the current window, by message. */
  private readonly skipped = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private closed = false;

  /**
   * @param log the process logger the lines go to
   * @param perSecond lines written per second at most (log.clientLinesPerSecond)
   * @param skippedTotal counts the lines not written, by message (Metrics.logLinesSkipped)
   * @param kind whose lines these are, named in the summary line
   */
  constructor(
    readonly log: Logger,
    private readonly perSecond: number,
    private readonly skippedTotal: Counter<'msg'>,
    private readonly kind: ClientKind,
  ) {}

  /** An info line, if the budget allows. */
  info(fields: Fields, msg: string): void {
    this.write('info', fields, msg);
  }

  /** A warn line, if the budget allows. */
  warn(fields: Fields, msg: string): void {
    this.write('warn', fields, msg);
  }

  /** Writes the summary of the current window now (on shutdown); later skipped lines are only counted. */
  close(): void {
    this.closed = true;
    this.flush();
  }

  private write(level: ClientLevel, fields: Fields, msg: string): void {
    // A line the level filters out costs nothing and uses none of the budget.
    if (!this.log.isLevelEnabled(level)) return;
    // Monotonic: a wall clock stepped back would leave the window open, and lines skipped, for that long.
    const now = performance.now();
    if (now - this.windowStart >= WINDOW_MS) {
      this.flush();
      this.windowStart = now;
      this.left = this.perSecond;
    }
    if (this.left > 0) {
      this.left--;
      this.log[level](fields, msg);
      return;
    }
    this.skipped.set(msg, (this.skipped.get(msg) ?? 0) + 1);
    this.skippedTotal.inc({ msg });
    // The summary is due at the window's end even if no line comes after it.
    if (!this.closed) this.flushTimer ??= setTimeout(() => this.flush(), this.windowStart + WINDOW_MS - now).unref();
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.skipped.size === 0) return;
    const skipped = Object.fromEntries(this.skipped);
    this.skipped.clear();
    this.log.warn({ kind: this.kind, skipped, perSecond: this.perSecond }, 'client-caused log lines over log.clientLinesPerSecond not written');
  }
}
