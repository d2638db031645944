/**
 * Counts per client in hour-long windows, in Redis so every process of a deployment shares
 * them (donor registration: donors.registrationsPerHour and registrationsPerHourTotal). Keys
 * are `<prefix>rl:<name>:<who>:<hour>`. Each is created with its expiry in one command
 * (SET NX EX) before the increment, so a crash between the two can never leave a counter
 * without a TTL (which would lock its client out for good).
 */
import type { RedisClient } from './redis';

const HOUR_MS = 3_600_000;

/** The counters of one hour window, as they are while it lasts. */
export interface HourWindow {
  /** Seconds until the window ends (a refusal's retry delay). */
  readonly secondsLeft: number;
  /** Counts one for `who`; returns its count in this window. */
  count(who: string): Promise<number>;
  /** Takes one back from `who` (an attempt refused for a reason not its own). */
  giveBack(who: string): Promise<void>;
}

/** Hour-window counters named `name`. */
export class HourWindows {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly name: string,
  ) {}

  /** The window of this hour: every call on it counts in that hour, even past its end. */
  current(now = Date.now()): HourWindow {
    const hour = Math.floor(now / HOUR_MS);
    const key = (who: string): string => `${this.prefix}rl:${this.name}:${who}:${hour}`;
    return {
      secondsLeft: 3600 - Math.floor((now / 1000) % 3600),
      count: async (who) => {
        await this.redis.set(key(who), '0', 'EX', 3600, 'NX');
        return this.redis.incr(key(who));
      },
      giveBack: async (who) => {
        await this.redis.decr(key(who));
      },
    };
  }
}
