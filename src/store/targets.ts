/**
 * The `targets` collection: a manager's projects (engines, stage, weight, options). No other
 * module names the collection: the API's routes (http/routes/targets.ts, users.ts), the
 * assignment's target cache (core/target-cache.ts) and the public list read and write it here.
 */
import type { Collection, Db, Filter } from 'mongodb';
import type { TargetDoc } from '../model';

const TARGETS = 'targets';

function collection(db: Db): Collection<TargetDoc> {
  return db.collection<TargetDoc>(TARGETS);
}

/** One target by `_id`, or null. */
export function targetById(db: Db, id: string): Promise<TargetDoc | null> {
  return collection(db).findOne({ _id: id });
}

/** The targets among `ids` that exist, by `_id` (one query). */
export function targetsByIds(db: Db, ids: string[]): Promise<TargetDoc[]> {
  return collection(db).find({ _id: { $in: ids } }).toArray();
}

/** Stage and owner of the targets among `ids` that exist (one query by `_id`). */
export function targetHeads(db: Db, ids: string[]): Promise<Array<Pick<TargetDoc, '_id' | 'stage' | 'owner'>>> {
  return collection(db).find({ _id: { $in: ids } }, { projection: { stage: 1, owner: 1 } }).toArray();
}

/** Targets oldest first, at most `limit`: all of them, or one owner's (`owner`), or those at one stage. */
export function listTargets(db: Db, by: { owner?: string; stage?: TargetDoc['stage'] }, limit: number): Promise<TargetDoc[]> {
  const filter: Filter<TargetDoc> = { ...(by.owner !== undefined ? { owner: by.owner } : {}), ...(by.stage !== undefined ? { stage: by.stage } : {}) };
  return collection(db).find(filter, { sort: { createdAt: 1 }, limit }).toArray();
}

/** Every target that is not disabled (the assignment's target cache loads them whole). */
export function enabledTargets(db: Db): Promise<TargetDoc[]> {
  return collection(db).find({ stage: { $ne: 'disabled' } }).toArray();
}

/** How many targets `owner` has, counting up to `limit` (limits.maxTargetsPerManager). */
export function countOwnedTargets(db: Db, owner: string, limit: number): Promise<number> {
  return collection(db).countDocuments({ owner }, { limit });
}

/** Stores a new target. */
export async function insertTarget(db: Db, t: TargetDoc): Promise<void> {
  await collection(db).insertOne(t);
}

/**
 * Sets fields of the target if it is still at `version`, and moves it to the next version
 * (optimistic concurrency: two changes of different option keys must both land). Returns the
 * target after, or null when it changed meanwhile (or is gone).
 */
export function updateTargetAt(db: Db, id: string, version: number, set: Partial<TargetDoc>): Promise<TargetDoc | null> {
  return collection(db).findOneAndUpdate({ _id: id, version }, { $set: set, $inc: { version: 1 } }, { returnDocument: 'after' });
}

/** Removes a target (the route has checked it has no streams). */
export async function deleteTarget(db: Db, id: string): Promise<void> {
  await collection(db).deleteOne({ _id: id });
}
