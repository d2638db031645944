/**
 * When an uncommitted partition is provably abandoned (issue 12 item 6), so the janitor can
 * remove it without racing a commit still in flight.
 *
 * The argument. A commit is: insert partition document D (its `createdAt` stamped just
 * before the insert is sent), then the conditional update of the stream
 * `{_id, frames: committed}` → `{frames: D.n}` (the commit point).
 * 1. D is committed when the stream lists it: never touched.
 * 2. The stream is gone, or D.n ≤ stream.frames while D is unlisted: the commit point's
 *    filter `frames: committed` (committed < D.n) can never match again, because a stream's
 *    frames only grow. Abandoned, whatever any clock says.
 * 3. D.n > stream.frames: its writer may still land it. The writer sends the commit update
 *    only within {@link commitWindowMs} of stamping D (measured on its monotonic clock, so
 *    wall-clock steps do not matter), and the update carries `maxTimeMS = mongodb.opTimeoutMs`,
 *    so the server gives up on it that long after it starts. The janitor judges age by the
 *    store's clock (MongoDB's `hello.localTime`, not its own) and only past
 *    `storage.janitorLagS` = window + 2 × opTimeoutMs: the second opTimeoutMs covers the
 *    request's transit and the writer's clock offset from the store when it stamped D
 *    (keep writers NTP-synchronised to well under `mongodb.opTimeoutMs`).
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

/** The store's clock: MongoDB's `localTime` (falls back to this process's clock if the server does not report it). */
export async function storeNow(db: Db): Promise<number> {
  const hello = await db.admin().command({ hello: 1 }).catch(() => undefined);
  const t = hello?.localTime;
  return t instanceof Date ? t.getTime() : Date.now();
}

/** Case 2 of the argument: provably abandoned by the stream's own fields. */
export function beyondCommitPoint(partitionN: number, stream: { frames: number } | undefined): boolean {
  return stream === undefined || partitionN <= stream.frames;
}
