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
  await changes(db).updateOne({ _id: id }, { $set: { op, v: 2 }, $unset: { claimed: '', done: '' }, $currentDate: { createdAt: true } }, { upsert: true });
}

/** Removes the record of a finished change. */
export async function endChange(db: Db, id: string): Promise<void> {
  await changes(db).deleteOne({ _id: id });
}

/**
 * Marks a creation whose stream document is written as standing, unless the janitor claimed
 * its record first (or a deletion replaced it). False then: the janitor is clearing, or has
 * cleared, the creation's files, and the creation must undo itself. Sent again on a store
 * error (it is idempotent), up to three times; still unanswered, it throws.
 */
export async function markCreated(db: Db, id: string): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await changes(db).updateOne({ _id: id, op: 'create', claimed: { $exists: false } }, { $set: { done: true } })).matchedCount === 1;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

/**
 * The janitor's claim on the record it examined before it clears an unfinished creation's
 * data: from here that creation cannot stand ({@link markCreated}). False when the record has
 * changed or gone since it was read (the creation stood, ended, or a newer change began).
 */
export async function claimChange(db: Db, c: Pick<StreamChangeDoc, '_id' | 'createdAt'>): Promise<boolean> {
  return (await changes(db).updateOne({ _id: c._id, createdAt: c.createdAt, done: { $exists: false } }, { $set: { claimed: true } })).matchedCount === 1;
}

/** Removes the record the janitor examined, not a newer change of the same stream; returns whether it did. */
export async function endExaminedChange(db: Db, c: Pick<StreamChangeDoc, '_id' | 'createdAt'>): Promise<boolean> {
  return (await changes(db).deleteOne({ _id: c._id, createdAt: c.createdAt })).deletedCount === 1;
}

/** The janitor's page of at most `limit` change records in `range` (store/created-order.ts). */
export function changesCreated(db: Db, range: CreatedRange, limit: number): Promise<StreamChangeDoc[]> {
  const { filter, sort } = createdQuery(range);
  return changes(db)
    .find(filter as Filter<StreamChangeDoc>, { projection: { _id: 1, op: 1, createdAt: 1, claimed: 1, done: 1, v: 1 }, sort, limit })
    .toArray();
}
