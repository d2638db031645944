/**
 * The clock of what a held session keeps (its assignment's start and progress, its message
 * rate's last refill): ms since this module loaded. V8 keeps a small integer in the object's
 * own field, while an epoch-ms number (over 2^31) is a separate 16-byte heap number per field
 * per held session. The values stay small for the first 24 days of a process, and are still
 * right (only boxed) after that.
 */
const CLOCK_EPOCH = Date.now();

/** Below this a session-clock time is a small integer for V8 (2^31 ms, Node's x64 build). */
const SMALL = 2 ** 31;

/** An epoch-ms time (default now) on the session clock. */
export function sessionClock(epochMs: number = Date.now()): number {
  const ms = epochMs - CLOCK_EPOCH;
  // A difference of two doubles is a heap number even when whole; `| 0` makes it a small
  // integer, which only holds while it fits.
  return ms > -SMALL && ms < SMALL ? ms | 0 : ms;
}

/** A session-clock time as epoch ms. */
export function epochOf(clockMs: number): number {
  return clockMs + CLOCK_EPOCH;
}
