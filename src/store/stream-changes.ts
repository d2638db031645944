/**
 * The `stream_changes` collection: the small record a stream's creation or deletion leaves
 * while under way (model.ts StreamChangeDoc), so the janitor can finish one that was
 * interrupted without reading any file back. Stamped by the store's clock, by which the
 * janitor judges age: a node whose clock is behind would otherwise make a record look old
 * at once, and its stream's files be cleared under it.
 */
import type { Collection, Db, Filter } from 'mongodb';
import type { StreamChangeDoc } from '../model';
import { createdQuery, type CreatedRange } from './created-order';

function changes(db: Db): Collection<StreamChangeDoc> {
  return db.collection<StreamChangeDoc>('stream_changes');
}

/** Records that a creation or deletion of stream `id` begins (a deletion replaces the record of an unfinished creation). */
export async function beginChange(db: Db, id: string, op: StreamChangeDoc['op']): Promise<void> {
  await changes(db).updateOne({ _id: id }, { $set: { op }, $unset: { claimed: '' }, $currentDate: { createdAt: true } }, { upsert: true });
}

/** Removes the record of a finished change. */
export async function endChange(db: Db, id: string): Promise<void> {
  await changes(db).deleteOne({ _id: id });
}

/**
 * Ends a creation: removes its record unless the janitor claimed it. False when the record
 * was claimed (or replaced by a deletion's): the janitor is clearing, or has cleared, the
 * creation's files, and the creation must not answer as done.
 */
export async function endCreation(db: Db, id: string): Promise<boolean> {
  return (await changes(db).deleteOne({ _id: id, op: 'create', claimed: { $exists: false } })).deletedCount === 1;
}

/**
 * The janitor's claim on the record it examined before it clears an unfinished creation's
 * data: from here that creation cannot end ({@link endCreation}). False when the record has
 * changed or gone since it was read (the creation ended, or a newer change began).
 */
export async function claimChange(db: Db, c: Pick<StreamChangeDoc, '_id' | 'createdAt'>): Promise<boolean> {
  return (await changes(db).updateOne({ _id: c._id, createdAt: c.createdAt }, { $set: { claimed: true } })).matchedCount === 1;
}

/** Removes the record the janitor examined, not a newer change of the same stream; returns whether it did. */
export async function endExaminedChange(db: Db, c: Pick<StreamChangeDoc, '_id' | 'createdAt'>): Promise<boolean> {
  return (await changes(db).deleteOne({ _id: c._id, createdAt: c.createdAt })).deletedCount === 1;
}

/** The janitor's page of at most `limit` change records in `range` (store/created-order.ts). */
export function changesCreated(db: Db, range: CreatedRange, limit: number): Promise<StreamChangeDoc[]> {
  const { filter, sort } = createdQuery(range);
  return changes(db)
    .find(filter as Filter<StreamChangeDoc>, { projection: { _id: 1, op: 1, createdAt: 1, claimed: 1 }, sort, limit })
    .toArray();
}
