/**
 * When an uncommitted partition is provably abandoned (issue 12 item 6), so the janitor can
 * remove it without racing a commit still in flight.
 *
 * The argument. A commit is: write partition document D (its `createdAt` on the store's
 * clock, erring young: store/store-clock.ts), then the conditional update of the stream
 * `{_id, frames: committed}` → `{frames: D.n}` (the commit point).
 * 1. D is committed when the stream lists it: never touched.
 * 2. The stream is gone, or D.n ≤ stream.frames while D is unlisted: the commit point's
 *    filter `frames: committed` (committed < D.n) can never match again, because a stream's
 *    frames only grow. Abandoned, whatever any clock says.
 * 3. D.n > stream.frames: its writer may still land it. Only D older than
 *    `storage.janitorLagS` by the store's clock (MongoDB's `hello.localTime`) is judged: the
 *    writer sends its commit point only within {@link commitWindowMs} of sending D (on its
 *    monotonic clock, started before D reached the store, so the store stamped D later), with
 *    `maxTimeMS = mongodb.opTimeoutMs`, and the lag is that window + 2 × opTimeoutMs
 *    (transit). No writer's wall clock takes part, so a writer whose clock is off cannot make
 *    D look older than it is. The store enforces that `maxTimeMS` (MongoDB does; the
 *    provisioned FerretDB since its patch 18, from the wait for its collection lock to the
 *    write: FerretDB v1.24.2 itself ignores it on updates). It counts from when the store
 *    starts on the command, so the time the command spends on its way is bounded by nothing
 *    but the lag's margin. "Sends within the window" holds for the driver's retry of a write
 *    after a lost connection too: the commit point carries a signal that aborts at the end of
 *    the window, which the driver checks before each attempt is written (store/commit.ts
 *    `withinWindow`). So, as a second guard, when nobody leases the stream, the janitor first raises its
 *    fence, only if the stream still stands where it read it (streams.ts `fenceOut`): a
 *    commit point carries its writer's fence, and fences only grow, so none sent under the
 *    old one can land after that. If the raise misses, the stream moved: it is read again
 *    and D judged anew. A leased stream is not fenced (its holder may carry D's writer's
 *    fence, and would lose its lease): there D goes by age alone, as argued above.
 */
import type { Db } from 'mongodb';
import type { Settings } from '../config/settings';

/**
 * How long after stamping its partition a writer may still send the commit point, ms:
 * `storage.janitorLagS` less twice `mongodb.opTimeoutMs` (at least 1 s).
 */
export function commitWindowMs(s: Settings): number {
  return Math.max(1000, s.storage.janitorLagS * 1000 - 2 * s.mongodb.opTimeoutMs);
}

/**
 * The store's clock: MongoDB's `localTime`. Fails when the server does not report it: judging
 * age by this process's clock instead is what the argument rules out.
 */
export async function storeNow(db: Db): Promise<number> {
  const t = (await db.admin().command({ hello: 1 })).localTime;
  if (!(t instanceof Date)) throw new Error("MongoDB's hello did not report localTime: the janitor judges age by the store's clock only");
  return t.getTime();
}

/** Case 2 of the argument: provably abandoned by the stream's own fields. */
export function beyondCommitPoint(partitionN: number, stream: { frames: number } | undefined): boolean {
  return stream === undefined || partitionN <= stream.frames;
}
