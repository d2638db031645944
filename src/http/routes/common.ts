/**
 * What the admin routes share: their dependencies, the common schemas, ownership checks
 * and the mapping of duplicate-key errors to 409.
 */
import type { SharedAnswer } from '../../store/shared-answer';
import type { Donor } from '../api-schemas';
import type { Db } from 'mongodb';
import type { Auth, Principal } from '../../auth/principals';
import type { Bus } from '../../store/bus';
import type { Settings } from '../../config/settings';
import { AppError } from '../../errors';
import type { FileStore } from '../../store/files';
import type { Logger } from '../../telemetry/log';
import type { RedisClient } from '../../store/redis';
import { object, routeFor } from '../declared-routes';
import { ID, NAME } from '../api-schemas';
import type { LiveState } from '../../store/live';
import type { ProgressCounters } from '../../store/progress';
import type { Streams } from '../../store/streams';
import type { Leases } from '../../store/leases';
import type { TargetAnswers } from '../target-answers';
import type { TargetDoc } from '../../model';

/** A GET /v1/targets/:id answer: the target (to check who may see it) and the body. */
export interface TargetView {
  target: TargetDoc;
  body: Record<string, unknown>;
}

/**
 * What the admin route handlers use at run time, handed to each call. Declarations need
 * only the settings, so the OpenAPI document is built without any of this.
 */
export interface ApiDeps {
  settings: Settings;
  db: Db;
  redis: RedisClient;
  bus: Bus;
  auth: Auth;
  files: FileStore;
  live: LiveState;
  /** Committed frames and commits per target (the dashboard's rates). */
  progress: ProgressCounters;
  streams: Streams;
  /** Ready queues and leases (target delete prunes the pool's target set). */
  leases: Leases;
  log: Logger;
  /** GET /v1/targets/:id answers, kept for http.targetCacheMs. */
  targetViews: TargetAnswers<TargetView>;
  /** The stream list's `total` (all of a target's streams), kept for http.streamTotalCacheMs. */
  streamTotals: TargetAnswers<number>;
  /** The anonymous GET /v1/targets answer as JSON bytes, kept for http.publicTargetsCacheMs and dropped on any target change. */
  publicTargets: SharedAnswer<Buffer>;
  /** The top donors.leaderboardMax donors, kept for http.leaderboardCacheMs; each leaderboard answer is a prefix. */
  leaderboard: SharedAnswer<Donor[]>;
}

/** Declares an admin route; the handler's context is typed from its schemas and access. */
export const route = routeFor<ApiDeps>();

// Field formats (names, ids, engines, times...) are shared with the clients: api-schemas.ts.
export { ENGINE, FILE_NAME, ID, NAME, TIME, WEIGHT } from '../api-schemas';

/** `{id}` path parameters. */
export const ID_PARAMS = object({ id: ID });
/** `{name}` path parameters. */
export const NAME_PARAMS = object({ name: NAME });

/** Runs an insert/update and turns a duplicate key into 409 `conflict`. */
export async function unique<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if ((err as { code?: number }).code === 11000) throw new AppError('conflict', `${what} already exists`);
    throw err;
  }
}

/** Whether the principal may act as owner of something owned by `owner` (its owner, or an admin). */
export function mayOwn(principal: Principal | undefined, owner: string): boolean {
  return principal !== undefined && (principal.role === 'admin' || (principal.role === 'manager' && principal.name === owner));
}

/** Throws 403 unless the principal owns it (or is an admin). */
export function requireOwner(principal: Principal | undefined, owner: string, what: string): void {
  if (!mayOwn(principal, owner)) throw new AppError('forbidden', `Only the owner of this ${what} (or an admin) may do this`);
}

/** ISO-8601 UTC string of a date (or undefined). */
export function iso(d: Date | undefined | null): string | undefined {
  return d ? new Date(d).toISOString() : undefined;
}

/**
 * How many streams the target has (the stream list's `total`, the target view's base for
 * its `ok` count), kept per process for http.streamTotalCacheMs (creations and deletions
 * drop it at once through the bus), since counting reads every index entry of the target
 * and a manager pages through the list.
 */
export function streamTotal(d: ApiDeps, targetId: string): Promise<number> {
  return d.streamTotals.answer(targetId, () => d.streams.countByTarget(targetId));
}
