/**
 * The durable writes of the core protocol.
 *
 * A checkpoint commits in two steps (DESIGN "Data and the commit point"): (1) write
 * partition P = committed + buffered frames with its frame and checkpoint files; (2) a
 * conditional update of the stream `{_id, frames: committed}` → `{frames: P, ...}`. Step 2
 * is the commit point: until it lands, partition P is an invisible leftover, and if it
 * does not match (the stream was deleted, or someone else committed) nothing is visible.
 *
 * Fragments record one activation each; the donor's totals are `$inc`ed by the same
 * amounts, so they equal the sum of the donor's fragments.
 */
import type { Db } from 'mongodb';
import type { FileStore } from './files';
import { commitPartition, writePartition, type NamedBytes } from './partitions';
import type { StreamDoc } from '../model';
import { checkFileNames } from './name-budget';

/** Outcome of a commit. */
/** What a commit did: the committed frames after it, and the partition it wrote (none when nothing was buffered). */
export type CommitResult = { ok: true; frames: number; partitionId?: string } | { ok: false; reason: 'stream_gone' | 'conflict' };

/**
 * Commits buffered frames and checkpoint files as partition `committed + bufferedFrames`.
 * A checkpoint with nothing buffered changes nothing. `limits.maxFileNames` bounds the
 * stream's distinct file names (`too_large` past it, nothing written).
 */
export async function commitCheckpoint(
  db: Db,
  files: FileStore,
  streamId: string,
  committed: number,
  bufferedFrames: number,
  frameFiles: NamedBytes[],
  checkpointFiles: NamedBytes[],
  limits: { maxFileNames?: number } = {},
): Promise<CommitResult> {
  if (bufferedFrames === 0) return { ok: true, frames: committed };
  if (limits.maxFileNames !== undefined) await checkFileNames(db, streamId, [...frameFiles, ...checkpointFiles].map((f) => f.name), limits.maxFileNames, files.durable.maxTimeMS);
  const doc = await writePartition(db, files, streamId, committed + bufferedFrames, frameFiles, checkpointFiles);
  if (await commitPartition(db, streamId, committed, doc, files.durable)) return { ok: true, frames: doc.n, partitionId: doc._id };
  const exists = await db.collection<StreamDoc>('streams').countDocuments({ _id: streamId }, { limit: 1, ...(files.durable.maxTimeMS ? { maxTimeMS: files.durable.maxTimeMS } : {}) });
  return { ok: false, reason: exists ? 'conflict' : 'stream_gone' };
}

/** One activation of a stream by one core. */
export interface Fragment {
  streamId: string;
  targetId: string;
  engine: string;
  donor?: string;
  start: Date;
  end: Date;
  /** Frames committed during the activation. */
  frames: number;
}

/** Records a fragment and credits its donor (frames and core-seconds, in total and per target). */
export async function recordFragment(db: Db, f: Fragment): Promise<void> {
  const coreSeconds = Math.max(0, (f.end.getTime() - f.start.getTime()) / 1000);
  await db.collection('fragments').insertOne({ ...f, coreSeconds });
  if (!f.donor) return;
  const donor = f.donor;
  await Promise.all([
    db.collection('donors').updateOne({ name: donor }, { $inc: { frames: f.frames, coreSeconds } }),
    retryDuplicateKey(() =>
      db.collection('donor_targets').updateOne(
        { _id: `${donor}:${f.targetId}` as never },
        { $inc: { frames: f.frames, coreSeconds }, $setOnInsert: { donor, targetId: f.targetId } },
        { upsert: true },
      ),
    ),
  ]);
}

/**
 * Runs an upsert again when it lost an insert race: two upserts of the same new `_id` both
 * find nothing and both insert; the loser gets E11000 (FerretDB always, MongoDB in some
 * cases), and on the retry it finds the winner's document and updates it.
 */
async function retryDuplicateKey<T>(op: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await op();
    } catch (err) {
      if ((err as { code?: number }).code !== 11000 || i >= attempts) throw err;
    }
  }
}

/**
 * Records a core-reported error: appends it to the stream's error log and increments the
 * consecutive error count; at `maxErrors` the stream becomes `failed`. Returns the status after.
 */
export async function recordStreamError(db: Db, streamId: string, message: string, engine: string, donor: string | undefined, maxErrors: number): Promise<StreamDoc['status'] | undefined> {
  await db.collection('stream_errors').insertOne({ streamId, at: new Date(), message, engine, ...(donor ? { donor } : {}) });
  const after = await db.collection<StreamDoc>('streams').findOneAndUpdate({ _id: streamId }, { $inc: { errorCount: 1 }, $set: { updatedAt: new Date() } }, { returnDocument: 'after' });
  if (!after) return undefined;
  if (after.errorCount >= maxErrors && after.status === 'ok') {
    await db.collection<StreamDoc>('streams').updateOne({ _id: streamId, status: 'ok' }, { $set: { status: 'failed' } });
    return 'failed';
  }
  return after.status;
}
