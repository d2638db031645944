/**
 * The `stream_errors` collection: each stream's log of the errors its cores reported (`stop`
 * with `error`). Appended by store/streams.ts `recordStreamError` (which also counts the error
 * on the stream), read by the errors route, removed with the stream's data.
 */
import type { Collection, Db } from 'mongodb';
import type { StreamErrorDoc } from '../model';

function collection(db: Db): Collection<StreamErrorDoc> {
  return db.collection<StreamErrorDoc>('stream_errors');
}

/** Appends one error to its stream's log. */
export async function appendStreamError(db: Db, entry: StreamErrorDoc): Promise<void> {
  await collection(db).insertOne(entry);
}

/** A stream's error log, newest first, at most `limit` (off the hot path: a scan by `streamId`). */
export function streamErrorLog(db: Db, streamId: string, limit: number): Promise<Array<Omit<StreamErrorDoc, 'streamId'>>> {
  return collection(db).find({ streamId }, { sort: { at: -1 }, limit, projection: { _id: 0, streamId: 0 } }).toArray();
}

/** Removes a stream's log (its deletion). */
export async function deleteStreamErrors(db: Db, streamId: string): Promise<void> {
  await collection(db).deleteMany({ streamId });
}
