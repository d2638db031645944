/**
 * Partitions: one MongoDB document per checkpoint, `_id` `<stream>:<n>`, holding the
 * frame files buffered since the previous checkpoint and the checkpoint files, inline when
 * small (see files.ts). A partition is visible only once the stream's `partitions` list
 * names it — the conditional stream update is the commit point; anything else is a
 * leftover that readers ignore and the janitor removes.
 */
import type { Db } from 'mongodb';
import type { FileStore, StoredFile } from './files';

/** The kinds of files a partition holds. */
export type PartitionFileKind = 'frame' | 'checkpoint';

/** A partition document. */
export interface PartitionDoc {
  _id: string;
  streamId: string;
  /** The stream's total frame count once this partition is committed. */
  n: number;
  frames: StoredFile[];
  checkpoint: StoredFile[];
  /** Names and sizes without bytes, so listings and Content-Length need no file data. */
  index: Array<{ kind: PartitionFileKind; name: string; size: number }>;
  createdAt: Date;
}

/** A file to write: name and bytes. */
export interface NamedBytes {
  name: string;
  bytes: Buffer;
}

/** Id of partition `n` of a stream. */
export function partitionId(streamId: string, n: number): string {
  return `${streamId}:${n}`;
}

/**
 * Writes partition `n` (replacing an uncommitted leftover of the same number). This is step
 * one of a commit; it makes nothing visible.
 */
export async function writePartition(db: Db, store: FileStore, streamId: string, n: number, frames: NamedBytes[], checkpoint: NamedBytes[]): Promise<PartitionDoc> {
  const put = (kind: PartitionFileKind, f: NamedBytes) => store.put(f.name, f.bytes, { streamId, kind, partition: n });
  const doc: PartitionDoc = {
    _id: partitionId(streamId, n),
    streamId,
    n,
    frames: await Promise.all(frames.map((f) => put('frame', f))),
    checkpoint: await Promise.all(checkpoint.map((f) => put('checkpoint', f))),
    index: [...frames.map((f) => ({ kind: 'frame' as const, name: f.name, size: f.bytes.length })), ...checkpoint.map((f) => ({ kind: 'checkpoint' as const, name: f.name, size: f.bytes.length }))],
    createdAt: new Date(),
  };
  await db.collection<PartitionDoc>('partitions').replaceOne({ _id: doc._id }, doc, { upsert: true });
  return doc;
}

/** The index entries of committed partitions, in order (no file bytes are read). */
export async function committedIndex(db: Db, streamId: string, committed: number[]): Promise<Map<number, PartitionDoc['index']>> {
  const out = new Map<number, PartitionDoc['index']>();
  if (committed.length === 0) return out;
  const docs = await db
    .collection<PartitionDoc>('partitions')
    .find({ streamId, n: { $in: committed } }, { projection: { n: 1, index: 1 } })
    .toArray();
  for (const d of docs) out.set(d.n, d.index);
  return out;
}

/** One file of one committed partition, with its bytes reference. */
export async function partitionFile(db: Db, streamId: string, n: number, kind: PartitionFileKind, name: string): Promise<StoredFile | undefined> {
  const doc = await db.collection<PartitionDoc>('partitions').findOne({ _id: partitionId(streamId, n) });
  return (kind === 'frame' ? doc?.frames : doc?.checkpoint)?.find((f) => f.name === name);
}
