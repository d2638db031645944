/**
 * Partitions: one MongoDB document per checkpoint attempt, `_id` `<stream>:<n>:<nonce>`,
 * holding the frame files buffered since the previous checkpoint and the checkpoint files,
 * inline when small (see files.ts). A partition is visible only once the stream's
 * committed lists name that very document (store/partition-pages.ts) — the conditional stream update is the
 * commit point. Every attempt writes a new document, so a writer that loses the race (a
 * stale session, a late write from a dead node) can never overwrite committed bytes; its
 * document is a leftover that readers ignore and the janitor removes.
 */
import crypto from 'node:crypto';
import type { Db, Filter } from 'mongodb';
import { createdQuery, type CreatedRange } from './created-order';
import { storeClockOf } from './store-clock';
import type { Durability, FileStore } from './files';
import { advanceCommitPoint } from './streams';
import type { PartitionDoc, PartitionFileKind, StoredFile } from '../model';

/** A partition document as its writer holds it (the commit point needs no more of it). */
export type WrittenPartition = Omit<PartitionDoc, 'createdAt'>;

/** When (this process's monotonic clock, ms) each document was about to be written: the start of its commit window. */
const stamped = new WeakMap<WrittenPartition, number>();

/** The monotonic time `doc` was about to be written by {@link writePartition} (undefined for other documents). */
export function stampedAt(doc: WrittenPartition): number | undefined {
  return stamped.get(doc);
}

/** A file to write: name and bytes. */
export interface NamedBytes {
  name: string;
  bytes: Buffer;
}

/**
 * Writes a new document for partition `n`. Step one of a commit; it makes nothing visible.
 * Inline bytes are bounded per document (the rest goes to GridFS); when the document cannot
 * be written, the GridFS uploads made for it are removed again.
 *
 * Its `createdAt` is on MongoDB's clock (store/store-clock.ts), erring young: the janitor
 * judges a leftover's age by that clock (store/abandoned.ts), and a writer whose own clock is
 * behind must not make its partition look old enough to remove while its commit point may
 * still land.
 */
export async function writePartition(db: Db, store: FileStore, streamId: string, n: number, frames: NamedBytes[], checkpoint: NamedBytes[]): Promise<WrittenPartition> {
  const budget = store.budget();
  const put = (kind: PartitionFileKind, f: NamedBytes) => store.put(f.name, f.bytes, { streamId, kind, partition: n }, budget);
  const stored = await Promise.allSettled([...frames.map((f) => put('frame', f)), ...checkpoint.map((f) => put('checkpoint', f))]);
  const ok = stored.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = stored.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await store.removeBlobs(ok);
    throw failed.reason;
  }
  const doc: WrittenPartition = {
    _id: `${streamId}:${n}:${crypto.randomBytes(6).toString('base64url')}`,
    streamId,
    n,
    frames: ok.slice(0, frames.length),
    checkpoint: ok.slice(frames.length),
    index: [...frames.map((f) => ({ kind: 'frame' as const, name: f.name, size: f.bytes.length })), ...checkpoint.map((f) => ({ kind: 'checkpoint' as const, name: f.name, size: f.bytes.length }))],
  };
  stamped.set(doc, performance.now());
  try {
    await db.collection<PartitionDoc>('partitions').insertOne({ ...doc, createdAt: new Date(await storeClockOf(db).now()) }, store.durable);
  } catch (err) {
    await store.removeBlobs(ok);
    throw err;
  }
  return doc;
}

/**
 * Step two, the commit point (see {@link advanceCommitPoint}). Returns whether it landed.
 * `durable` (write concern, time limit) makes "landed" mean "survives a failover"; `fence`
 * is the writer's fencing token (StreamDoc.fence).
 */
export function commitPartition(db: Db, streamId: string, committed: number, doc: WrittenPartition, durable: Durability = {}, fence = 0): Promise<boolean> {
  return advanceCommitPoint(db, streamId, committed, doc, durable, fence);
}

/** One file of a committed partition document, with its bytes reference. */
export async function partitionFile(db: Db, partitionDocId: string, kind: PartitionFileKind, name: string): Promise<StoredFile | undefined> {
  const field = kind === 'frame' ? 'frames' : 'checkpoint';
  // By `_id` and projected to one kind: one document, whatever the stream's length.
  const doc = await db.collection<PartitionDoc>('partitions').findOne({ _id: partitionDocId }, { projection: { [field]: 1 } });
  return (doc?.[field] as StoredFile[] | undefined)?.find((f) => f.name === name);
}

/** The checkpoint files of a partition document, read by `_id` (empty when it is gone). */
export async function checkpointFiles(db: Db, partitionDocId: string): Promise<StoredFile[]> {
  const doc = await db.collection<PartitionDoc>('partitions').findOne({ _id: partitionDocId }, { projection: { checkpoint: 1 } });
  return doc?.checkpoint ?? [];
}

/** A partition's index of files (kind, name, size), read by `_id`; undefined when it is gone. */
export async function partitionIndex(db: Db, partitionDocId: string): Promise<PartitionDoc['index'] | undefined> {
  const doc = await db.collection<PartitionDoc>('partitions').findOne({ _id: partitionDocId }, { projection: { index: 1 } });
  return doc?.index;
}

/**
 * The janitor's page of at most `limit` partition documents in `range`
 * (store/created-order.ts), with only what it judges them by (`_id`, stream, number,
 * creation time).
 */
export function partitionHeadsCreated(db: Db, range: CreatedRange, limit: number): Promise<Array<Pick<PartitionDoc, '_id' | 'streamId' | 'n' | 'createdAt'>>> {
  const { filter, sort } = createdQuery(range);
  return db
    .collection<PartitionDoc>('partitions')
    .find(filter as Filter<PartitionDoc>, { projection: { _id: 1, streamId: 1, n: 1, createdAt: 1 }, sort, limit })
    .toArray();
}

/** Removes one partition document that is not committed, with its GridFS blobs; returns whether it was there. */
export async function discardPartition(db: Db, store: FileStore, partitionDocId: string): Promise<boolean> {
  const doc = await db.collection<PartitionDoc>('partitions').findOneAndDelete({ _id: partitionDocId });
  if (doc) await store.removeBlobs([...doc.frames, ...doc.checkpoint]);
  return doc !== null;
}
