/**
 * Bulk loading of benchmark streams, with the documents the product writes: a stream as
 * `POST /v1/targets/:id/streams` creates it (Streams.create: seed files in `files` with ids
 * from `streamFileId`, bytes placed inline or in GridFS by the product's FileStore), then,
 * per committed partition, a `partitions` document as writePartition builds it and the
 * stream fields advanceCommitPoint sets (`frames`, `lastPartitionId`, `partitions`,
 * `partitionIds`, `frameIndex`, `frameFiles`, `checkpointFiles`, `unpaged`), with the
 * oldest partitions moved to `partition_pages` as the committing session moves them every
 * storage.partitionsPerPage commits (`pageEnds`, `pagedUpTo`). {@link checkShapes} proves the
 * equality against the product's own functions before a load.
 *
 * Loads are resumable: stream ids and partition ids are derived from (`space`, index), the
 * stream documents of a batch are written last, and duplicates of a repeated batch are
 * ignored, so loading [from, to) again after an interruption completes it.
 */
import crypto from 'node:crypto';
import Redis from 'ioredis';
import { ObjectId, type Db } from 'mongodb';
import pino from 'pino';
import { hashToken } from '../../src/auth/tokens';
import { Bus } from '../../src/store/bus';
import { pagePartitions } from '../../src/store/commit';
import { FileStore } from '../../src/store/files';
import { Leases } from '../../src/store/leases';
import { listedPartitions, listsOf, pageEnd, pagesOf } from '../../src/store/partition-pages';
import { commitPartition, writePartition } from '../../src/store/partitions';
import { seedDigest, streamFileId, Streams } from '../../src/store/streams';
import type { DonorDoc, FileDoc, PartitionDoc, PartitionPageDoc, StreamDoc } from '../../src/model';
import { checkpointFile, PREFIX, RECIPE, seedFiles, type RecipeFile } from './fixtures';
import { noise } from './noise';

/** storage.inlineMaxBytes and storage.maxInlineBytesPerDocument (the defaults): the product's inline/GridFS rule. */
export const INLINE_MAX = 1024 * 1024;
const DOC_INLINE_MAX = 8 * 1024 * 1024;
/**
 * The shapes of the documents the loader writes: part of the key of the scale benchmark's
 * cached store, so a store loaded with older shapes is not measured as today's. Bump it
 * whenever {@link checkShapes} needed a change to pass. (s2 and s3: partitions moved to pages; s4: seed digests.)
 */
export const SHAPES_VERSION = 's4';

const digests = new WeakMap<Buffer, string>();
/** The product's digest of a seed file, computed once per distinct content (the recipe reuses them). */
function digestOf(bytes: Buffer): string {
  let d = digests.get(bytes);
  if (d === undefined) digests.set(bytes, (d = seedDigest(bytes)));
  return d;
}

/** storage.partitionsPerPage (the default): committed partitions per page. */
export const PARTITIONS_PER_PAGE = 64;
/** Creation time of stream 0; stream i is i ms later, so the assignment order is fixed. */
const BASE_TIME = Date.UTC(2024, 0, 1);

/** The committed history bulk streams get. */
export interface History {
  /** Committed partitions per stream (0: a new stream, seed files only). */
  partitions: number;
  /** Frames per partition (partition n is frame count n × this). */
  framesPerPartition: number;
  /** Bytes of each partition's frame file (the loader's compromise: see bench/README.md). */
  frameBytes: number;
  /** Bytes of each partition's checkpoint file. */
  checkpointBytes: number;
}

/** A new stream: seed files only. */
export const NEW_STREAM: History = { partitions: 0, framesPerPartition: 0, frameBytes: 0, checkpointBytes: 0 };

/** What a load wrote. */
export interface LoadCounts {
  streams: number;
  partitions: number;
  /** File bytes written (seed, frame and checkpoint files). */
  bytes: number;
  seconds: number;
}

/** A stream id (22 base64url characters, like newId()) fixed by the id space and the index. */
export function streamIdOf(space: string, i: number): string {
  return crypto.createHash('sha256').update(`${space}:${i}`).digest('base64url').slice(0, 22);
}

/** Slices of one block of noise serve as the bulk frame and checkpoint bytes (distinct per partition, no per-partition generation). */
const BLOCK = noise(7, 8 * 1024 * 1024);
function slice(k: number, n: number): Buffer {
  const at = (k * 4099) % (BLOCK.length - n);
  return BLOCK.subarray(at, at + n);
}

/** The documents of stream number `i`: its seed files, its partitions, their pages and the stream itself. */
async function streamDocs(store: FileStore, target: { targetId: string; owner: string }, id: string, i: number, seeds: RecipeFile[], h: History, nonce: (n: number) => string, pageSize = PARTITIONS_PER_PAGE) {
  const at = new Date(BASE_TIME + i);
  const files: FileDoc[] = [];
  for (const f of seeds) files.push({ _id: streamFileId(id, 'seed', f.name), streamId: id, kind: 'seed', createdAt: at, ...(await store.put(f.name, f.bytes, { streamId: id, kind: 'seed', partition: 0 })) });
  const parts: PartitionDoc[] = [];
  for (let p = 1; p <= h.partitions; p++) {
    const n = p * h.framesPerPartition;
    const frame = { name: RECIPE.frame.name, bytes: slice(i * 64 + p, h.frameBytes) };
    const ckpt = { name: RECIPE.checkpoint.name, bytes: slice(i * 64 + p + 32, h.checkpointBytes) };
    const budget = store.budget();
    const stored = [await store.put(frame.name, frame.bytes, { streamId: id, kind: 'frame', partition: n }, budget), await store.put(ckpt.name, ckpt.bytes, { streamId: id, kind: 'checkpoint', partition: n }, budget)];
    parts.push({
      _id: `${id}:${n}:${nonce(n)}`,
      streamId: id,
      n,
      frames: [stored[0]!],
      checkpoint: [stored[1]!],
      index: [
        { kind: 'frame', name: frame.name, size: frame.bytes.length },
        { kind: 'checkpoint', name: ckpt.name, size: ckpt.bytes.length },
      ],
      createdAt: at,
    });
  }
  const committed = parts.length > 0;
  const all = parts.map((d) => ({ n: d.n, id: d._id, files: d.index.filter((e) => e.kind === 'frame').map(({ name, size }) => ({ name, size })) }));
  // Moved to pages by the product's own rule, as the committing session moves them.
  const split = pagesOf(id, 0, all, pageSize);
  const pages: PartitionPageDoc[] = split.pages.map((p) => ({ ...p, createdAt: at }));
  const listed = listsOf(split.rest);
  const stream: StreamDoc = {
    _id: id,
    targetId: target.targetId,
    owner: target.owner,
    status: 'ok',
    frames: parts.at(-1)?.n ?? 0,
    partitions: listed.partitions,
    partitionIds: listed.partitionIds,
    errorCount: 0,
    seedFiles: seeds.map((f) => f.name),
    seedDigests: seeds.map((f) => digestOf(f.bytes)),
    tagFiles: [],
    frameFiles: committed ? [RECIPE.frame.name] : [],
    checkpointFiles: committed ? [RECIPE.checkpoint.name] : [],
    createdAt: at,
    updatedAt: at,
    ...(committed ? { lastPartitionId: parts.at(-1)!._id, frameIndex: listed.frameIndex, unpaged: listed.partitions.length } : {}),
    ...(pages.length > 0 ? { pageEnds: pages.map(pageEnd), pagedUpTo: pageEnd(pages.at(-1)!) } : {}),
  };
  return { files, parts, pages, stream };
}

const isDuplicateOnly = (err: unknown): boolean => {
  const e = err as { code?: number; writeErrors?: Array<{ code?: number }> | { code?: number } };
  if (e.code === 11000) return true;
  const list = Array.isArray(e.writeErrors) ? e.writeErrors : e.writeErrors ? [e.writeErrors] : [];
  return list.length > 0 && list.every((w) => w.code === 11000);
};

async function insertAll<T extends { _id: string | ObjectId }>(db: Db, coll: string, docs: T[]): Promise<void> {
  if (docs.length === 0) return;
  try {
    await db.collection<T>(coll).insertMany(docs as never[], { ordered: false });
  } catch (err) {
    // A batch written again after an interruption: what exists is what we would write.
    if (!isDuplicateOnly(err)) throw err;
  }
}

/**
 * Loads streams [from, to) of one target into `db`: streams below `newStreams` are new
 * (seed files only), the others carry `history`. `batch` streams per round trip set,
 * `parallel` batches in flight (the store is the bottleneck; two keep it busy).
 */
export async function populate(
  db: Db,
  target: { targetId: string; owner: string },
  range: { space: string; from: number; to: number; newStreams: number },
  history: History,
  o: { batch?: number; parallel?: number; log?: (line: string) => void; progress?: (doneBelow: number) => void } = {},
): Promise<LoadCounts> {
  const t0 = Date.now();
  const store = new FileStore(db, INLINE_MAX, DOC_INLINE_MAX);
  const batch = o.batch ?? 50;
  const counts: LoadCounts = { streams: 0, partitions: 0, bytes: 0, seconds: 0 };
  let next = range.from;
  let lastLog = Date.now();
  // Batch starts in flight: every stream below the smallest one is written (the resume point).
  const inFlight = new Set<number>();
  const worker = async (): Promise<void> => {
    while (next < range.to) {
      const a = next;
      const b = Math.min(range.to, a + batch);
      next = b;
      inFlight.add(a);
      const files: FileDoc[] = [];
      const parts: PartitionDoc[] = [];
      const pages: PartitionPageDoc[] = [];
      const streams: StreamDoc[] = [];
      for (let i = a; i < b; i++) {
        const id = streamIdOf(range.space, i);
        const nonce = (n: number): string => crypto.createHash('sha256').update(`${id}:${n}`).digest('base64url').slice(0, 8);
        const d = await streamDocs(store, target, id, i, seedFiles(i), i < range.newStreams ? NEW_STREAM : history, nonce);
        files.push(...d.files);
        parts.push(...d.parts);
        pages.push(...d.pages);
        streams.push(d.stream);
        counts.bytes += d.files.reduce((n, f) => n + f.size, 0) + d.parts.reduce((n, p) => n + p.index.reduce((m, e) => m + e.size, 0), 0);
      }
      // Files and partitions first, the stream documents last, as the API and the commit path do.
      await Promise.all([insertAll(db, 'files', files), insertAll(db, 'partitions', parts), insertAll(db, 'partition_pages', pages)]);
      await insertAll(db, 'streams', streams);
      counts.streams += streams.length;
      counts.partitions += parts.length;
      inFlight.delete(a);
      if (Date.now() - lastLog > 15_000) {
        lastLog = Date.now();
        o.progress?.(Math.min(next, ...inFlight));
        o.log?.(`populate ${db.databaseName}: ${a + streams.length - range.from} of ${range.to - range.from} streams (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      }
    }
  };
  await Promise.all(Array.from({ length: o.parallel ?? 2 }, worker));
  counts.seconds = (Date.now() - t0) / 1000;
  return counts;
}

/** Inserts `count` new streams (seed files only) of a target into a fresh database; returns their ids in creation order. */
export async function insertStreams(db: Db, target: { targetId: string }, owner: string, count: number): Promise<string[]> {
  const space = `${db.databaseName}:${target.targetId}`;
  await populate(db, { targetId: target.targetId, owner }, { space, from: 0, to: count, newStreams: count }, NEW_STREAM);
  return Array.from({ length: count }, (_, i) => streamIdOf(space, i));
}

/**
 * Registers donors [from, to) as `POST /v1/donors` does (name, token hash, zero counts,
 * creation time), with the frames and core-seconds of a credited history: donor i has
 * (i × 7919 mod 100,000) × 1,000 frames, so counts repeat (ties broken by name) and span five
 * orders of magnitude. Ids are ObjectIds, as the route's, and deterministic, so a load cut
 * short can be run again.
 */
export async function insertDonors(db: Db, from: number, to: number): Promise<void> {
  const batch = 1000;
  for (let i = from; i < to; i += batch) {
    const docs: Array<DonorDoc & { _id: ObjectId }> = [];
    for (let k = i; k < Math.min(to, i + batch); k++) {
      const frames = ((k * 7919) % 100_000) * 1000;
      docs.push({ _id: new ObjectId(k.toString(16).padStart(24, '0')), name: `donor-${k}`, beta: k % 50 === 0, tokenHash: hashToken(`bench-donor-token-${k}`), frames, coreSeconds: frames * 0.6, createdAt: new Date(Date.UTC(2026, 0, 1) + k * 1000) });
    }
    await insertAll(db, 'donors', docs);
  }
}

/** Field names and value kinds of a document, recursively ("a.b: number"), for {@link checkShapes}. */
function shape(v: unknown, at = ''): string[] {
  if (Array.isArray(v)) return v.length ? shape(v[0], `${at}[]`) : [`${at}: []`];
  if (v && typeof v === 'object' && v.constructor === Object) return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => shape(x, at ? `${at}.${k}` : k));
  return [`${at}: ${v instanceof Date ? 'date' : v === null ? 'null' : typeof v === 'object' ? (v as object).constructor.name : typeof v}`];
}

/**
 * Proves the loader writes what the product writes: creates a stream with Streams.create and
 * commits three partitions with writePartition + commitPartition, moving two of them to a
 * page with pagePartitions, loads the same stream with {@link populate}'s builder, and
 * compares the documents' fields and value kinds. Throws on any difference; removes both
 * streams again.
 */
export async function checkShapes(db: Db, redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const quiet = pino({ level: 'silent' });
  const bus = new Bus(redis as never, `${PREFIX}shape-check:`, quiet as never);
  const store = new FileStore(db, INLINE_MAX, DOC_INLINE_MAX);
  const streams = new Streams(db, store, new Leases(redis as never, `${PREFIX}shape-check:`, 30_000), bus, Infinity);
  const target = { _id: 'shape-check-target-000', owner: 'bench-manager' };
  const h: History = { partitions: 3, framesPerPartition: 10, frameBytes: 4096, checkpointBytes: 2048 };
  const pageSize = 2;
  try {
    const seeds = seedFiles(0);
    const made = await streams.create(target, seeds, []);
    let frames = 0;
    for (let p = 1; p <= h.partitions; p++) {
      const doc = await writePartition(db, store, made._id, frames + h.framesPerPartition, [{ name: RECIPE.frame.name, bytes: noise(p, h.frameBytes) }], [checkpointFile(p, h.checkpointBytes)]);
      if (!(await commitPartition(db, made._id, frames, doc))) throw new Error('shape check: the commit did not land');
      frames = doc.n;
      if ((await pagePartitions(db, made._id, pageSize)) === undefined) throw new Error('shape check: the move to a page did not land');
    }
    const id = streamIdOf('shape-check', 0);
    const built = await streamDocs(store, { targetId: target._id, owner: target.owner }, id, 0, seeds, h, () => 'nonce000', pageSize);
    const product = {
      stream: await db.collection<StreamDoc>('streams').findOne({ _id: made._id }),
      file: await db.collection<FileDoc>('files').findOne({ _id: streamFileId(made._id, 'seed', seeds[0]!.name) }),
      part: await db.collection<PartitionDoc>('partitions').findOne({ streamId: made._id }),
      page: await db.collection<PartitionPageDoc>('partition_pages').findOne({ streamId: made._id }),
    };
    await db.collection('streams').insertOne(built.stream as never);
    await db.collection('files').insertMany(built.files as never[]);
    await db.collection('partitions').insertMany(built.parts as never[]);
    await db.collection('partition_pages').insertMany(built.pages as never[]);
    const bulk = {
      stream: await db.collection<StreamDoc>('streams').findOne({ _id: id }),
      file: await db.collection<FileDoc>('files').findOne({ _id: built.files[0]!._id }),
      part: await db.collection<PartitionDoc>('partitions').findOne({ _id: built.parts[0]!._id }),
      page: await db.collection<PartitionPageDoc>('partition_pages').findOne({ _id: built.pages[0]!._id }),
    };
    if (!product.page || !bulk.page || listedPartitions(product.stream!).length !== listedPartitions(bulk.stream!).length) throw new Error('shape check: the bulk stream is paged unlike the product\'s');
    for (const k of ['stream', 'file', 'part', 'page'] as const) {
      const a = shape(product[k]).sort().join('\n');
      const b = shape(bulk[k]).sort().join('\n');
      if (a !== b) throw new Error(`shape check: the bulk ${k} document differs from the product's:\nproduct:\n${a}\nbulk:\n${b}`);
    }
    await streams.remove(made);
    await streams.remove(built.stream);
  } finally {
    bus.close();
    redis.disconnect();
  }
}
