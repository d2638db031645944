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

/**
 * Records that a creation or deletion of stream `id` begins (a deletion replaces the record of
 * an unfinished creation). A creation names its stream's queue entry (`queue`).
 */
export async function beginChange(db: Db, id: string, op: StreamChangeDoc['op'], queue?: StreamChangeDoc['queue']): Promise<void> {
  const fresh = { claimed: '', done: '', rounds: '' } as const;
  const update = queue ? { $set: { op, v: 2 as const, queue }, $unset: fresh } : { $set: { op, v: 2 as const }, $unset: { ...fresh, queue: '' as const } };
  await changes(db).updateOne({ _id: id }, { ...update, $currentDate: { createdAt: true } }, { upsert: true });
}

/** Removes the record of a finished change. */
export async function endChange(db: Db, id: string): Promise<void> {
  await changes(db).deleteOne({ _id: id });
}

/** Removes the record of a creation that stood, not a deletion's that replaced it meanwhile. */
export async function endCreation(db: Db, id: string): Promise<void> {
  await changes(db).deleteOne({ _id: id, op: 'create', done: true });
}

/**
 * Marks a creation whose stream document is written as standing, unless the janitor claimed
 * its record first (or a deletion replaced it). Sent again on a store error, up to three
 * times; still unanswered, it throws. A miss is looked into, since an earlier attempt may have
 * landed unanswered: the record gone while `streamExists()` stands (the janitor found it
 * done, queued the stream and removed the record; a claimed record it keeps for several lags,
 * and drops the stream before removing it: a stream document stalled in the store longer than
 * that is the bound of this rule, docs/architecture.md). Otherwise false: the janitor is
 * clearing, or has cleared, the creation's files, and the creation must undo itself.
 */
export async function markCreated(db: Db, id: string, streamExists: () => Promise<boolean>): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      if ((await changes(db).updateOne({ _id: id, op: 'create', claimed: { $exists: false } }, { $set: { done: true } })).matchedCount === 1) return true;
      // A record still there missed as claimed or a deletion's.
      if (await changeRecord(db, id)) return false;
      return streamExists();
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

/** The change record of stream `id`, if any. */
export function changeRecord(db: Db, id: string): Promise<StreamChangeDoc | null> {
  return changes(db).findOne({ _id: id });
}

/**
 * A creation's claim on its own record before it undoes itself: claimed, and stamped anew so
 * the janitor's walk meets it again after the lag and finishes what the undo leaves (stream
 * document, queue entry, files). False when the record is gone or a deletion's.
 */
export async function claimOwnCreation(db: Db, id: string): Promise<boolean> {
  return (await changes(db).updateOne({ _id: id, op: 'create' }, { $set: { claimed: true }, $currentDate: { createdAt: true } })).matchedCount === 1;
}

/**
 * The janitor's claim on the record it examined before it clears an unfinished creation's
 * data: from here that creation cannot stand ({@link markCreated}). False when the record has
 * changed or gone since it was read (the creation stood, ended, or a newer change began).
 */
export async function claimChange(db: Db, c: Pick<StreamChangeDoc, '_id' | 'createdAt'>): Promise<boolean> {
  return (await changes(db).updateOne({ _id: c._id, createdAt: c.createdAt, done: { $exists: false } }, { $set: { claimed: true } })).matchedCount === 1;
}

/**
 * Keeps a claimed creation's record for another lag (stamped anew, its rounds counted): its
 * stream document, stalled in the store, may still land after the janitor cleared the rest.
 */
export async function keepClaimed(db: Db, c: Pick<StreamChangeDoc, '_id' | 'createdAt'>): Promise<void> {
  await changes(db).updateOne({ _id: c._id, createdAt: c.createdAt }, { $inc: { rounds: 1 }, $currentDate: { createdAt: true } });
}

/**
 * Marks, for the janitor, a creation that never stood but whose stream has committed frames
 * since (a pool rebuild queued it): kept rather than dropped with its data. False when the
 * record changed or was claimed meanwhile.
 */
export async function adoptCreation(db: Db, c: Pick<StreamChangeDoc, '_id' | 'createdAt'>): Promise<boolean> {
  return (await changes(db).updateOne({ _id: c._id, createdAt: c.createdAt, claimed: { $exists: false } }, { $set: { done: true } })).matchedCount === 1;
}

/** Removes the record the janitor examined, not a newer change of the same stream; returns whether it did. */
export async function endExaminedChange(db: Db, c: Pick<StreamChangeDoc, '_id' | 'createdAt'>): Promise<boolean> {
  return (await changes(db).deleteOne({ _id: c._id, createdAt: c.createdAt })).deletedCount === 1;
}

/** The janitor's page of at most `limit` change records in `range` (store/created-order.ts). */
export function changesCreated(db: Db, range: CreatedRange, limit: number): Promise<StreamChangeDoc[]> {
  const { filter, sort } = createdQuery(range);
  return changes(db)
    .find(filter as Filter<StreamChangeDoc>, { projection: { _id: 1, op: 1, createdAt: 1, claimed: 1, done: 1, v: 1, rounds: 1, queue: 1 }, sort, limit })
    .toArray();
}
