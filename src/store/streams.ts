/**
 * The `streams` collection and everything a stream owns: creation with its seed and tag
 * files, deletion with all its data, the reads of the assignment path, the commit point,
 * the error count, and the stream's queue entry and manifest in Redis. No other module
 * names the collection.
 *
 * Hot-path rule (docs/architecture.md): assignment, resume and checkpoint read and write
 * documents only by `_id`. A stream's seed and tag files have deterministic ids
 * ({@link streamFileId}) built from names the stream document and its manifest carry.
 */
import { createHash } from 'node:crypto';
import type { Collection, Db, Filter } from 'mongodb';
import type { Bus } from './bus';
import type { Durability, FileStore } from './files';
import { readyMember, type Leases, type StreamManifest } from './leases';
import { COMMITTED_FIELDS, deletePages, listsOf } from './partition-pages';
import { newId, type CommittedPartition, type FileDoc, type PartitionDoc, type StreamChangeDoc, type StreamDoc, type StreamFileKind } from '../model';
import { appendStreamError, deleteStreamErrors, streamErrorLog } from './stream-errors';
import { fromMongo } from './outage';
import { beginChange, changeRecord, claimOwnCreation, endChange, endCreation, markCreated } from './stream-changes';
import { AppError } from '../errors';

const STREAMS = 'streams';

/** The `_id` of a stream's seed or tag file: `<stream>:<kind>:<name>` (so it is read by primary key). */
export function streamFileId(streamId: string, kind: StreamFileKind, name: string): string {
  return `${streamId}:${kind}:${name}`;
}

/** SHA-256 of a seed file, base64url (43 characters): {@link StreamDoc.seedDigests}. */
export function seedDigest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url');
}

function collection(db: Db): Collection<StreamDoc> {
  return db.collection<StreamDoc>(STREAMS);
}

/** The fields of a stream an assignment uses (from its manifest in Redis, or MongoDB). */
export interface AssignedStream {
  _id: string;
  targetId: string;
  owner: string;
  frames: number;
  /** Names of its seed files (files `<stream>:seed:<name>`). */
  seedFiles: string[];
  /** Their SHA-256 digests, in the same order, when recorded ({@link StreamDoc.seedDigests}). */
  seedDigests?: string[];
  lastPartitionId?: string;
  /** The fencing token its commits must carry ({@link StreamDoc.fence}; 0 when absent). */
  fence: number;
  /** Partitions its document lists itself ({@link StreamDoc.unpaged}; 0 when absent). */
  unpaged: number;
}

/**
 * What an assignment reads of its stream: not the partition lists, which grow by one entry
 * per checkpoint (a long stream's would be decoded on every assignment); `lastPartitionId`
 * names the checkpoint to hand out.
 */
const ASSIGN_PROJECTION = { partitions: 0, partitionIds: 0, frameIndex: 0, pageEnds: 0 } as const;

/** The fields of a stream its queue entry and manifest are made of (with `_id`). */
const QUEUED_FIELDS = ['targetId', 'frames', 'createdAt', 'seedFiles', 'seedDigests', 'lastPartitionId', 'fence', 'unpaged'] as const;
/** The fields of a stream its queue entry and manifest are made of ({@link QUEUED_FIELDS}). */
export type QueuedFields = Pick<StreamDoc, '_id' | (typeof QUEUED_FIELDS)[number]>;

/**
 * What a page of a target's streams and a stream's view read of each stream (with `_id`): a
 * stream's document carries three list entries per partition it lists (up to
 * storage.partitionsPerPage), and a view needs none of them (on the embedded store the
 * projection also spares decoding them, patch 10).
 */
export const LISTED_FIELDS = ['targetId', 'status', 'frames', 'errorCount', 'createdAt'] as const;
/** The fields of a stream a list page reads ({@link LISTED_FIELDS}). */
export type ListedStream = Pick<StreamDoc, '_id' | (typeof LISTED_FIELDS)[number]>;

/** An inclusion projection of `fields` (`_id` comes too). */
function only(fields: readonly string[]): Record<string, 1> {
  return Object.fromEntries(fields.map((f) => [f, 1 as const]));
}

const QUEUED_PROJECTION = only(QUEUED_FIELDS);

/** The manifest of an assigned stream (what {@link Leases.setManifest} records). */
export function manifestOf(s: Pick<AssignedStream, 'frames' | 'seedFiles' | 'seedDigests' | 'lastPartitionId'> & { fence?: number; unpaged?: number }): StreamManifest {
  return {
    frames: s.frames,
    seed: s.seedFiles.length > 0,
    seedFiles: s.seedFiles,
    // encodeManifest keeps them only when there is one per name.
    ...(s.seedDigests ? { seedDigests: s.seedDigests } : {}),
    ...(s.lastPartitionId ? { lastPartitionId: s.lastPartitionId } : {}),
    ...(s.fence ? { fence: s.fence } : {}),
    ...(s.unpaged ? { unpaged: s.unpaged } : {}),
  };
}

/** A condition on a counter that is absent until it first moves (`null` matches a missing field). */
function counterIs(field: 'fence' | 'pagedUpTo', value: number): Filter<StreamDoc> {
  // The driver's types do not allow `null` for a number field.
  return (value === 0 ? { [field]: { $in: [null, 0] } } : { [field]: value }) as unknown as Filter<StreamDoc>;
}

/**
 * A stream's ready-set entry and manifest. No manifest for a committed stream without
 * `lastPartitionId` (written before the field existed): its assignment reads MongoDB.
 */
export function queueEntry(s: QueuedFields): { target: string; frames: number; member: string; manifest?: StreamManifest } {
  const item = { target: s.targetId, frames: s.frames, member: readyMember(s.createdAt, s._id) };
  if (s.frames > 0 && !s.lastPartitionId) return item;
  return { ...item, manifest: manifestOf(s) };
}

/**
 * The queue fields of these streams when they are `ok` (by `_id`). An empty list sends no
 * query (here and in the other `$in` helpers; test/store-queries.test.ts): it saves a round
 * trip on every store, and on a FerretDB without patch 8 a full read of the collection.
 */
export async function queuedStreams(db: Db, ids: string[]): Promise<QueuedFields[]> {
  if (ids.length === 0) return [];
  return collection(db).find({ _id: { $in: ids }, status: 'ok' }, { projection: QUEUED_PROJECTION }).toArray();
}

/** Every `ok` stream's queue fields, in batches (the pool's rebuild; off the hot path). */
export function allQueuedStreams(db: Db): AsyncIterable<QueuedFields> {
  return collection(db).find({ status: 'ok' }, { projection: QUEUED_PROJECTION, batchSize: 2000 });
}

/** The commit point (frames) and committed lists of these streams (the janitor's check; streams that do not exist are absent). */
export async function commitPoints(db: Db, ids: string[]): Promise<Map<string, CommitPoint>> {
  if (ids.length === 0) return new Map();
  const docs = await collection(db).find({ _id: { $in: ids } }, { projection: COMMIT_POINT_PROJECTION }).toArray();
  return new Map(docs.map((s) => [s._id, s]));
}

/** A stream's commit point and the lists that name its committed partitions. */
export type CommitPoint = Pick<StreamDoc, '_id' | (typeof COMMIT_POINT_FIELDS)[number]>;
const COMMIT_POINT_FIELDS = [...COMMITTED_FIELDS, 'frames', 'pagedUpTo', 'fence'] as const;
const COMMIT_POINT_PROJECTION = only(COMMIT_POINT_FIELDS);

/** A stream's commit point and committed lists, by `_id` (null when gone), within `maxTimeMS` when given. */
export function commitPoint(db: Db, id: string, maxTimeMS?: number): Promise<CommitPoint | null> {
  return collection(db).findOne({ _id: id }, { projection: COMMIT_POINT_PROJECTION, ...(maxTimeMS ? { maxTimeMS } : {}) });
}

function assignedFields(d: StreamDoc): AssignedStream {
  return {
    _id: d._id,
    targetId: d.targetId,
    owner: d.owner,
    frames: d.frames,
    seedFiles: d.seedFiles,
    ...(d.seedDigests?.length === d.seedFiles.length ? { seedDigests: d.seedDigests } : {}),
    fence: d.fence ?? 0,
    unpaged: d.unpaged ?? 0,
    ...(d.lastPartitionId ? { lastPartitionId: d.lastPartitionId } : {}),
  };
}

/**
 * The stream's committed frames, the partition document its last commit named and its fence, by `_id`
 * from the primary (null when gone): as a majority of a replica set holds them (`durable`:
 * what no failover rolls back), or as the primary has them now.
 */
export function lastCommit(db: Db, id: string, durable: boolean, maxTimeMS?: number): Promise<Pick<StreamDoc, '_id' | 'frames' | 'lastPartitionId' | 'fence'> | null> {
  return collection(db).findOne(
    { _id: id },
    { projection: { frames: 1, lastPartitionId: 1, fence: 1 }, readPreference: 'primary', readConcern: { level: durable ? 'majority' : 'local' }, ...(maxTimeMS ? { maxTimeMS } : {}) },
  );
}

/** Whether a stream exists. */
export async function streamExists(db: Db, id: string, maxTimeMS?: number): Promise<boolean> {
  return (await collection(db).countDocuments({ _id: id }, { limit: 1, ...(maxTimeMS ? { maxTimeMS } : {}) })) > 0;
}

/**
 * The commit point: the stream moves from `committed` frames to `doc.n` and names this
 * partition document, only if nobody committed in between and nobody resumed the stream
 * since this writer got it (its `fence`). Returns whether it landed.
 */
export async function advanceCommitPoint(db: Db, streamId: string, committed: number, doc: Omit<PartitionDoc, 'createdAt'>, durable: Durability = {}, fence = 0): Promise<boolean> {
  const res = await collection(db).updateOne(
    { _id: streamId, frames: committed, ...counterIs('fence', fence) },
    {
      $set: { frames: doc.n, lastPartitionId: doc._id, errorCount: 0, updatedAt: new Date() },
      $inc: { unpaged: 1 },
      // frameIndex: names and sizes of this partition's frame files, for whole-file downloads (downloads.ts).
      $push: { partitions: doc.n, partitionIds: doc._id, frameIndex: { files: doc.index.filter((e) => e.kind === 'frame').map(({ name, size }) => ({ name, size })) } },
      $addToSet: { frameFiles: { $each: doc.frames.map((f) => f.name) }, checkpointFiles: { $each: doc.checkpoint.map((f) => f.name) } },
    } as never,
    durable,
  );
  return res.matchedCount === 1;
}

/**
 * Raises the stream's fence if it still stands at `at` (its frames and fence), so that no
 * commit point sent under that fence can land any more: the janitor's step before removing a
 * partition above the commit point whose writer may still send one (store/abandoned.ts).
 * Returns whether it did; a miss means the stream moved (a commit, a resume) or is gone.
 */
export async function fenceOut(db: Db, streamId: string, at: Pick<CommitPoint, 'frames' | 'fence'>, durable: Durability = {}): Promise<boolean> {
  const res = await collection(db).updateOne({ _id: streamId, frames: at.frames, ...counterIs('fence', at.fence ?? 0) }, { $inc: { fence: 1 } }, durable);
  return res.matchedCount === 1;
}

/**
 * Moves the oldest partitions a stream lists into pages that end at `ends` (already written,
 * store/partition-pages.ts), leaving `rest` listed. Only if nothing committed and no other
 * move landed since the stream was read at `at`: each would change the lists this replaces.
 * Returns whether it landed.
 */
export async function movePages(db: Db, streamId: string, at: Pick<CommitPoint, 'frames' | 'pagedUpTo'>, ends: number[], rest: CommittedPartition[], durable: Durability = {}): Promise<boolean> {
  const res = await collection(db).updateOne(
    { _id: streamId, frames: at.frames, ...counterIs('pagedUpTo', at.pagedUpTo ?? 0) },
    { $set: { ...listsOf(rest), unpaged: rest.length, pagedUpTo: ends.at(-1)! }, $push: { pageEnds: { $each: ends } } },
    durable,
  );
  return res.matchedCount === 1;
}

/**
 * Records a core-reported error: appends it to the stream's error log (`stream_errors`) and
 * counts one more consecutive error ({@link countStreamError}). Returns the status after.
 */
export async function recordStreamError(db: Db, streamId: string, message: string, engine: string, donor: string | undefined, maxErrors: number): Promise<StreamDoc['status'] | undefined> {
  await appendStreamError(db, { streamId, at: new Date(), message, engine, ...(donor ? { donor } : {}) });
  return countStreamError(db, streamId, maxErrors);
}

/** Counts one more consecutive error; at `maxErrors` an `ok` stream becomes `failed`. Returns the status after (undefined: no such stream). */
export async function countStreamError(db: Db, streamId: string, maxErrors: number): Promise<StreamDoc['status'] | undefined> {
  const streams = collection(db);
  const after = await streams.findOneAndUpdate({ _id: streamId }, { $inc: { errorCount: 1 }, $set: { updatedAt: new Date() } }, { returnDocument: 'after' });
  if (!after) return undefined;
  if (after.errorCount >= maxErrors && after.status === 'ok') {
    // Not over a start that reset the count meanwhile.
    const res = await streams.updateOne({ _id: streamId, status: 'ok', errorCount: { $gte: maxErrors } }, { $set: { status: 'failed' } });
    if (res.matchedCount === 1) return 'failed';
    // Missed: a start reset the count, a stop, another holder's failure, a deletion.
    return (await streams.findOne({ _id: streamId }, { projection: { status: 1 }, readPreference: 'primary' }))?.status;
  }
  return after.status;
}

/**
 * Clears a creation that can never stand (its record claimed: store/stream-changes.ts): its
 * stream document, should one have landed, its queue entry and manifest, and its files.
 * `queue` is the entry its record names (records of earlier releases name none: the
 * document's is used). Returns whether a stream document was there.
 */
export async function clearCreation(db: Db, store: FileStore, leases: Pick<Leases, 'withdraw' | 'forgetManifest'>, streamId: string, queue?: StreamChangeDoc['queue']): Promise<boolean> {
  // No projection: FerretDB does not implement one on findAndModify.
  const dropped = await collection(db).findOneAndDelete({ _id: streamId });
  const entry = queue ?? (dropped ? { target: dropped.targetId, member: readyMember(dropped.createdAt, streamId) } : undefined);
  if (entry) {
    await leases.withdraw(entry.target, entry.member, 'deleted');
    await leases.forgetManifest(streamId);
  }
  await purgeStreamData(db, store, streamId);
  return dropped !== null;
}

/**
 * Deletes everything a stream owns but its document: seed and tag files, partitions, GridFS
 * blobs and error log. Used by a deletion, and by the janitor to finish one a crash
 * interrupted (or to clear what a crashed creation wrote).
 */
export async function purgeStreamData(db: Db, store: FileStore, streamId: string): Promise<void> {
  await Promise.all([
    db.collection<FileDoc>('files').deleteMany({ streamId }),
    db.collection('partitions').deleteMany({ streamId }),
    deletePages(db, streamId),
    deleteStreamErrors(db, streamId),
    store.removeStreamBlobs(streamId),
  ]);
}

/** A file to store with a new stream. */
export interface NewFile {
  name: string;
  bytes: Buffer;
}

/** The streams of the service, with what they own. */
export class Streams {
  private readonly streams: Collection<StreamDoc>;
  private readonly files: Collection<FileDoc>;

  /**
   * @param createWindowMs how long a creation may take from its change record to its stream
   *   document (store/abandoned.ts `commitWindowMs`): past it the janitor may clear its files
   */
  constructor(
    private readonly db: Db,
    private readonly store: FileStore,
    private readonly leases: Leases,
    private readonly bus: Bus,
    private readonly createWindowMs: number,
  ) {
    this.streams = collection(db);
    this.files = db.collection<FileDoc>('files');
  }

  /** {@link getFields} from the primary whatever mongodb.readPreference says: what a stop or start just wrote, or another one since. */
  private readPrimary<K extends keyof StreamDoc>(id: string, fields: readonly K[], maxTimeMS?: number): Promise<Pick<StreamDoc, '_id' | K> | null> {
    return this.streams.findOne({ _id: id }, { projection: only(fields), readPreference: 'primary', ...(maxTimeMS ? { maxTimeMS } : {}) });
  }

  /**
   * A stream by `_id` with only `fields` (and `_id`): its lists grow with every committed
   * partition, and most readers need one of them or none.
   */
  getFields<K extends keyof StreamDoc>(id: string, fields: readonly K[]): Promise<Pick<StreamDoc, '_id' | K> | null> {
    return this.streams.findOne({ _id: id }, { projection: only(fields) });
  }

  /**
   * Creates a stream of a target with its seed and tag files and puts it in the pool.
   * A change record first, then the files and the stream document; then the record is
   * marked done, the stream queued, and the record removed. The mark is where the creation
   * stands: before it, a failure leaves the record, and the janitor removes the files of a
   * stream that never came to be, without reading any file back, having first claimed the
   * record so that a creation still under way (its stream document stalled in the store past
   * storage.janitorLagS) can no longer stand and undoes itself. Refused only while the stream
   * is not in the pool.
   */
  async create(target: { _id: string; owner: string }, seeds: NewFile[], tags: NewFile[]): Promise<StreamDoc> {
    // The MongoDB steps are wrapped apart from Redis's: their large writes may lose the connection.
    const doc = await fromMongo(this.writeNew(target, seeds, tags));
    const stands = await markCreated(this.db, doc._id, () => streamExists(this.db, doc._id)).catch(() => false);
    if (!stands) {
      // Claimed by the janitor, replaced by a deletion, or not known.
      if ((await this.undoCreation(doc)) === 'undone') throw new AppError('unavailable', 'The stream creation took too long and was abandoned; send it again');
    } else {
      try {
        // Not reinstated: a mark on a new stream is a stop or deletion since it was written.
        await this.leases.enqueue([queueEntry(doc)]);
      } catch (err) {
        // Refused, so the manager sends it again: undone, or the stream would exist twice,
        // once outside the pool.
        if ((await this.undoCreation(doc)) === 'undone') throw err;
      }
    }
    // Created and in the pool from here: answered as such. The janitor removes a done
    // record, and the views the bus refreshes expire on their own.
    await endCreation(this.db, doc._id).catch(() => undefined);
    await this.bus.publish('target.streams', { targetId: target._id }).catch(() => undefined);
    return doc;
  }

  /**
   * Undoes a creation that cannot stand. Its own record is claimed first, and stamped anew,
   * so the janitor finishes whatever fails here (store/stream-changes.ts `claimOwnCreation`).
   * Without that claim nothing is undone: the record is a deletion's (which owns the rest), or
   * gone, and then the creation stands if its stream exists (the janitor found the record
   * done, queued the stream and removed the record): `stands`. Best effort: a step that fails
   * leaves the rest to the janitor, which meets the claimed record again.
   */
  private async undoCreation(doc: StreamDoc): Promise<'undone' | 'stands'> {
    if (!(await claimOwnCreation(this.db, doc._id).catch(() => false))) {
      const record = await changeRecord(this.db, doc._id).catch(() => 'unknown' as const);
      return record === null && (await streamExists(this.db, doc._id).catch(() => false)) ? 'stands' : 'undone';
    }
    await clearCreation(this.db, this.store, this.leases, doc._id).catch(() => undefined);
    return 'undone';
  }

  /** The MongoDB half of {@link create}: the change record, the files and the stream document. */
  private async writeNew(target: { _id: string; owner: string }, seeds: NewFile[], tags: NewFile[]): Promise<StreamDoc> {
    const id = newId();
    // Its time is chosen first: the record names the stream's queue entry, so the janitor can
    // remove that entry even once the stream document is gone.
    const now = new Date();
    await beginChange(this.db, id, 'create', { target: target._id, member: readyMember(now, id) });
    const started = performance.now();
    const put = async (kind: StreamFileKind, f: NewFile): Promise<FileDoc> => ({
      _id: streamFileId(id, kind, f.name),
      streamId: id,
      kind,
      createdAt: new Date(),
      ...(await this.store.put(f.name, f.bytes, { streamId: id, kind, partition: 0 })),
    });
    const docs: FileDoc[] = [];
    for (const f of seeds) docs.push(await put('seed', f));
    for (const f of tags) docs.push(await put('tag', f));
    if (docs.length > 0) await this.files.insertMany(docs);
    const doc: StreamDoc = {
      _id: id,
      targetId: target._id,
      owner: target.owner,
      status: 'ok',
      frames: 0,
      partitions: [],
      partitionIds: [],
      errorCount: 0,
      seedFiles: seeds.map((f) => f.name),
      seedDigests: seeds.map((f) => seedDigest(f.bytes)),
      tagFiles: tags.map((f) => f.name),
      frameFiles: [],
      checkpointFiles: [],
      createdAt: now,
      updatedAt: now,
    };
    // Past its window the janitor may have cleared the files: do not make a stream of them.
    if (performance.now() - started > this.createWindowMs) throw new AppError('unavailable', 'The stream creation took too long and was abandoned; send it again');
    await this.streams.insertOne(doc);
    return doc;
  }

  /**
   * Makes a stream assignable again (resets its error count). Undefined when it is gone. A
   * start and a stop or deletion at once each read the stream again from the primary after
   * their Redis step and redo it when the other landed in between, so the pool ends as the
   * document does whichever order their steps took.
   */
  async start(s: Pick<StreamDoc, '_id' | 'targetId'>): Promise<StreamDoc | undefined> {
    const after = await this.streams.findOneAndUpdate({ _id: s._id }, { $set: { status: 'ok', errorCount: 0, updatedAt: new Date() } }, { returnDocument: 'after' });
    if (!after) return undefined;
    await this.enqueue(after);
    await this.redoWithdrawal(after);
    await this.bus.publish('target.streams', { targetId: s.targetId });
    return after;
  }

  /** After a reinstating enqueue: a stop or deletion that landed before it withdrew first, so it is withdrawn again. */
  private async redoWithdrawal(s: Pick<StreamDoc, '_id' | 'targetId' | 'createdAt'>): Promise<void> {
    const now = await this.readPrimary(s._id, ['status']);
    if (now?.status === 'ok') return;
    await this.leases.withdraw(s.targetId, readyMember(s.createdAt, s._id), now ? 'stopped' : 'deleted');
    if (!now) await this.leases.forgetManifest(s._id);
  }

  /**
   * Whether MongoDB's primary says the stream is `ok` (a session told of a stop its lease does
   * not record, holding the lease meanwhile: within `maxTimeMS`, less than the lease's life).
   */
  async isOk(id: string, maxTimeMS: number): Promise<boolean> {
    return (await this.readPrimary(id, ['status'], maxTimeMS))?.status === 'ok';
  }

  /**
   * After a stream failed and its lease was withdrawn: a start that landed in between found
   * the lease unflagged and could not queue it, so, `ok` again, it is reinstated now (the lease
   * flagged, for its session's release to put it back).
   */
  async reinstateIfOk(id: string): Promise<void> {
    const now = await this.readPrimary(id, [...QUEUED_FIELDS, 'status']);
    if (now?.status !== 'ok') return;
    await this.enqueue(now);
    await this.redoWithdrawal(now);
  }

  /** Stops a stream; a core working on it is told to stop. Returns the stream after. */
  async stop(s: ListedStream): Promise<ListedStream> {
    const after = await this.streams.findOneAndUpdate({ _id: s._id, status: { $ne: 'stopped' } }, { $set: { status: 'stopped', updatedAt: new Date() } }, { returnDocument: 'after' });
    await this.leases.withdraw(s.targetId, readyMember(s.createdAt, s._id), 'stopped');
    const now = await this.readPrimary(s._id, [...QUEUED_FIELDS, 'status']);
    // A start between the two steps enqueued it before this withdrawal: back it goes, and its
    // core keeps it. Otherwise the core is told, by this stop sent again too (a core the first
    // did not reach; renewals tell it as well: the lease is withdrawn).
    if (now?.status === 'ok') await this.enqueue(now);
    else if (now) await this.bus.publish('stream.stop', { streamId: s._id, reason: 'stream_stopped' });
    await this.bus.publish('target.streams', { targetId: s.targetId });
    return after ?? s;
  }

  /**
   * Deletes a stream with all its data: a change record, the document (commits stop
   * landing), its queue entry and manifest, a stop to the core holding it, its files,
   * partitions, GridFS blobs and error log, and the record's removal. A failure after the
   * document is gone leaves the record, and the janitor finishes the deletion.
   */
  async remove(s: Pick<StreamDoc, '_id' | 'targetId' | 'createdAt'>): Promise<void> {
    await beginChange(this.db, s._id, 'delete');
    await this.streams.deleteOne({ _id: s._id });
    await this.leases.withdraw(s.targetId, readyMember(s.createdAt, s._id), 'deleted');
    await this.leases.forgetManifest(s._id);
    await this.bus.publish('stream.stop', { streamId: s._id, reason: 'stream_deleted' });
    await purgeStreamData(this.db, this.store, s._id);
    await endChange(this.db, s._id);
    await this.bus.publish('target.streams', { targetId: s.targetId });
  }

  /**
   * A page of a target's streams sorted by `field` (a document field; ties by `_id`), after
   * an id (id order only) or from an offset, with the fields of {@link ListedStream}. Off the
   * hot path: a scan by `targetId`.
   */
  listByTarget(targetId: string, page: { field: string; order: 1 | -1; after?: string; offset: number; limit: number }): Promise<ListedStream[]> {
    const { field, order, after } = page;
    const filter = { targetId, ...(after ? { _id: order < 0 ? { $lt: after } : { $gt: after } } : {}) };
    const sort = field === '_id' ? { _id: order } : { [field]: order, _id: order };
    return this.streams.find(filter, { sort, skip: page.offset, limit: page.limit, projection: only(LISTED_FIELDS) }).toArray();
  }

  /**
   * How many of a target's streams have this status (all when none is given), counting at
   * most `limit`. The `count` command rather than `countDocuments` (an aggregation): on the
   * embedded store an exact filter like this one is counted from the `target_status` index
   * without reading a document (docs/performance.md, patch 5).
   */
  async countByTarget(targetId: string, status?: StreamDoc['status'], limit?: number): Promise<number> {
    const r = await this.db.command({ count: STREAMS, query: { targetId, ...(status ? { status } : {}) }, ...(limit ? { limit } : {}) });
    return r.n as number;
  }

  /**
   * A target's streams counted by status and their committed frames summed from the
   * `target_frames_id` index (a covered plan on MongoDB; on the embedded store the index
   * alone, patch 6: 22 ms at 100,000 streams, against 4.1 s reading each stream). `total` is
   * the count of all of them (the stream list's, which the caller may have kept): `ok` is
   * what the total leaves after the stopped and failed ones, which are counted (the few, in a
   * working target) rather than the many. Off the hot path; the target view caches it for
   * `http.targetCacheMs`.
   */
  async statsByTarget(targetId: string, total: Promise<number>): Promise<{ byStatus: Record<StreamDoc['status'], number>; frames: number }> {
    const [all, stopped, failed, sums] = await Promise.all([
      total,
      this.countByTarget(targetId, 'stopped'),
      this.countByTarget(targetId, 'failed'),
      this.streams.aggregate<{ frames: number }>([{ $match: { targetId } }, { $group: { _id: null, frames: { $sum: '$frames' } } }]).toArray(),
    ]);
    // A stream created or deleted between the counts could take `ok` below zero for a moment.
    return { byStatus: { ok: Math.max(0, all - stopped - failed), stopped, failed }, frames: sums[0]?.frames ?? 0 };
  }

  /** A stream's error log, newest first (off the hot path: a scan by `streamId`). */
  errors(streamId: string, limit: number): Promise<Array<{ at: Date; message: string; engine?: string; donor?: string }>> {
    return streamErrorLog(this.db, streamId, limit);
  }

  /** A seed or tag file of a stream by its deterministic id. */
  file(streamId: string, kind: StreamFileKind, name: string): Promise<FileDoc | null> {
    return this.files.findOne({ _id: streamFileId(streamId, kind, name) });
  }

  /**
   * Seed files by name, each read by `_id` (one equality lookup per file: every store answers
   * it from the `_id` index, where FerretDB's PostgreSQL backend scans for `$in`).
   */
  async seedFiles(streamId: string, names: string[]): Promise<FileDoc[]> {
    const docs = await Promise.all(names.map((n) => this.file(streamId, 'seed', n)));
    return docs.filter((d): d is FileDoc => d !== null);
  }

  /** What an assignment needs of an `ok` stream, read by `_id` (from the primary when asked); undefined when gone or not `ok`. */
  async forAssignment(id: string, fromPrimary = false): Promise<AssignedStream | undefined> {
    const d = await this.streams.findOne({ _id: id }, { projection: ASSIGN_PROJECTION, ...(fromPrimary ? { readPreference: 'primary' as const } : {}) });
    return d && d.status === 'ok' ? assignedFields(d) : undefined;
  }

  /**
   * What a resume needs of an `ok` stream, after raising its fence (both by `_id`): whatever
   * the previous holder still has in flight can no longer commit, so the frames read here stay
   * the stream's frames until the resumed session commits. Two operations because FerretDB
   * cannot project a findAndModify, and a long stream's partition lists should not be read.
   * Undefined when gone or not `ok`.
   */
  async fenceForResume(id: string): Promise<AssignedStream | undefined> {
    const raised = await this.streams.updateOne({ _id: id, status: 'ok' }, { $inc: { fence: 1 } });
    return raised.matchedCount === 1 ? this.forAssignment(id) : undefined;
  }

  /** The last committed partition of a stream committed before `lastPartitionId` existed (reads its list, by `_id`). */
  async legacyLastPartitionId(id: string): Promise<string | undefined> {
    const full = await this.streams.findOne({ _id: id }, { projection: { partitionIds: 1 } });
    return full?.partitionIds.at(-1);
  }

  /** Records an assigned stream's manifest (after a commit or a resume, or to repair a stale one). */
  setManifest(s: Pick<AssignedStream, '_id' | 'frames' | 'seedFiles' | 'seedDigests' | 'lastPartitionId' | 'fence' | 'unpaged'>): Promise<void> {
    return this.leases.setManifest(s._id, manifestOf(s));
  }

  /** Drops a live stream's manifest: its next assignment reads the stream from MongoDB (by `_id`). */
  dropManifest(id: string): Promise<void> {
    return this.leases.dropManifest(id);
  }

  /** Puts a stream just started in the pool if it is `ok` and nobody holds it, reinstated (an earlier stop's withdrawal undone). */
  private async enqueue(s: QueuedFields & Pick<StreamDoc, 'status'>): Promise<void> {
    if (s.status !== 'ok') return;
    await this.leases.enqueue([queueEntry(s)], true);
  }

  /**
   * Reads an `ok` stream by `_id` for an assignment and rewrites its manifest from it (after a
   * manifest miss or a commit conflict, both off the hot path); undefined when gone or not
   * `ok`. The write is not awaited and its failure is ignored: the next miss repairs again.
   * Like {@link queueEntry}, a committed stream without `lastPartitionId` gets no manifest.
   * `fromPrimary`: whatever mongodb.readPreference says (a stream marked withdrawn lately).
   */
  async repairManifest(id: string, fromPrimary = false): Promise<AssignedStream | undefined> {
    const s = await this.forAssignment(id, fromPrimary);
    if (s && (s.frames === 0 || s.lastPartitionId)) this.setManifest(s).catch(() => undefined);
    return s;
  }
}
