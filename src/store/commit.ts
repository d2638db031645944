/**
 * The durable writes of the core protocol.
 *
 * A checkpoint commits in two steps (DESIGN "Data and the commit point"): (1) write
 * partition P = committed + buffered frames with its frame and checkpoint files; (2) a
 * conditional update of the stream `{_id, frames: committed}` → `{frames: P, ...}`. Step 2
 * is the commit point: until it lands, partition P is an invisible leftover, and if it
 * does not match (the stream was deleted, or someone else committed) nothing is visible.
 *
 * Every `storage.partitionsPerPage` commits, the oldest partitions the stream document lists
 * move to a page of their own ({@link pagePartitions}, store/partition-pages.ts), so the commit
 * point's update stays small however long the stream.
 *
 * The end of an activation (its fragment and the donor's credit) is store/credit.ts.
 */
import type { Db } from 'mongodb';
import type { Durability, FileStore } from './files';
import { deletePagesById, listedPartitions, pagesOf, writePage } from './partition-pages';
import { commitPartition, discardPartition, stampedAt, writePartition, type NamedBytes } from './partitions';
import { commitPoint, lastCommit, movePages, streamExists } from './streams';
import { AppError } from '../errors';
import { DeadlineError, fromMongo } from './outage';
import { checkFileNames, type FileNameCache } from './name-budget';

/** Outcome of a commit. */
/** What a commit did: the committed frames after it, and the partition it wrote (none when nothing was buffered). */
export type CommitResult = { ok: true; frames: number; partitionId?: string; resumedSince?: true } | { ok: false; reason: 'stream_gone' | 'conflict' };

/**
 * A commit point that was sent but never answered (the store failed during it): it may have
 * landed. Its partition document, the frame count it moves the stream to, and the fence it
 * was sent under.
 */
export interface UnsettledCommit {
  partitionId: string;
  frames: number;
  fence: number;
}

/**
 * One of the candidates that landed. `resumedSince`: the stream's fence has moved past the
 * one it was sent under (another session resumed the stream after it landed), so the stream's
 * manifest is that session's to write.
 */
export type LandedCommit = UnsettledCommit & { resumedSince?: true };

/** The commit result of a candidate found landed. */
export function landedResult(l: LandedCommit): CommitResult & { ok: true } {
  return { ok: true, frames: l.frames, partitionId: l.partitionId, ...(l.resumedSince ? { resumedSince: true } : {}) };
}

/**
 * Which of `candidates` landed after all, if one did: the stream's last commit names that very
 * partition document (a fresh id per attempt, so no other writer's commit can look like it),
 * as durably as a commit is acknowledged. With the default `majority` write concern that is
 * as a majority of a replica set holds it, so the answer never becomes false in a failover;
 * applied on the primary but not yet held by a majority, it is neither: `unavailable`, ask
 * again. One read by `_id`, and only after a commit point went unanswered or missed.
 *
 * The candidates are the attempts of one checkpoint, each conditional on the same frame
 * count, so at most one of them can ever land, and none once another commit has.
 */
export function unsettledLanded(db: Db, streamId: string, candidates: readonly UnsettledCommit[], durable: Durability = {}): Promise<LandedCommit | undefined> {
  return fromMongo(landed(db, streamId, candidates, durable));
}

async function landed(db: Db, streamId: string, candidates: readonly UnsettledCommit[], durable: Durability): Promise<LandedCommit | undefined> {
  const named = (s: Awaited<ReturnType<typeof lastCommit>>): UnsettledCommit | undefined =>
    candidates.find((u) => s?.lastPartitionId === u.partitionId && s.frames === u.frames);
  const majority = durable.writeConcern?.w === 'majority';
  const now = await lastCommit(db, streamId, majority, durable.maxTimeMS);
  const found = named(now);
  if (found) return (now?.fence ?? 0) === found.fence ? found : { ...found, resumedSince: true };
  if (majority && named(await lastCommit(db, streamId, false, durable.maxTimeMS))) {
    throw new AppError('unavailable', "The checkpoint's earlier attempt is not yet held by a majority of MongoDB's members; send it again");
  }
  return undefined;
}

/**
 * Commits buffered frames and checkpoint files as partition `committed + bufferedFrames`.
 * A checkpoint with nothing buffered changes nothing. `limits.names` bounds the stream's
 * distinct file names (`too_large` past `max`, nothing written; the names it has come from
 * `cache` when it holds them); `limits.fence` is the writer's fencing token (default 0: a
 * stream never resumed). `limits.sending` is told the commit point just before it is sent:
 * if the call then fails, the caller holds what to ask {@link unsettledLanded}.
 * `limits.earlier` are the unanswered attempts of this checkpoint that were not found to
 * have landed: one may land late, after that question and before this commit point, which
 * then misses. If one did, the result is that commit (its `partitionId` says which).
 */
export function commitCheckpoint(...args: Parameters<typeof commitOnce>): Promise<CommitResult> {
  // It talks to MongoDB alone, with large writes the driver may lose the connection under.
  return fromMongo(commitOnce(...args));
}

/** Options of {@link commitCheckpoint}. */
export interface CommitLimits {
  names?: { max: number; cache: FileNameCache };
  commitWindowMs?: number;
  fence?: number;
  sending?: (u: UnsettledCommit) => void;
  earlier?: readonly UnsettledCommit[];
}

async function commitOnce(
  db: Db,
  files: FileStore,
  streamId: string,
  committed: number,
  bufferedFrames: number,
  frameFiles: NamedBytes[],
  checkpointFiles: NamedBytes[],
  limits: CommitLimits = {},
): Promise<CommitResult> {
  if (bufferedFrames === 0) return { ok: true, frames: committed };
  if (limits.names) await checkFileNames(db, limits.names.cache, streamId, [...frameFiles, ...checkpointFiles].map((f) => f.name), limits.names.max, files.durable.maxTimeMS);
  const doc = await writePartition(db, files, streamId, committed + bufferedFrames, frameFiles, checkpointFiles);
  // Past its window the janitor may judge this partition abandoned (store/abandoned.ts): do
  // not send a commit point that could land after the partition was removed.
  const started = stampedAt(doc);
  if (limits.commitWindowMs !== undefined && started !== undefined && performance.now() - started > limits.commitWindowMs) {
    // Never to be committed: removed now (best effort). Its createdAt was stamped before it
    // was sent, so a write that took this long may have landed behind the janitor's walk.
    await discardPartition(db, files, doc._id).catch(() => undefined);
    throw new AppError('unavailable', 'The commit took too long and was abandoned; retry the checkpoint');
  }
  const sent: UnsettledCommit = { partitionId: doc._id, frames: doc.n, fence: limits.fence ?? 0 };
  limits.sending?.(sent);
  const point = (signal?: AbortSignal): Promise<boolean> => commitPartition(db, streamId, committed, doc, { ...files.durable, ...(signal ? { signal } : {}) }, limits.fence ?? 0);
  const windowEnd = limits.commitWindowMs !== undefined && started !== undefined ? started + limits.commitWindowMs : undefined;
  if (await (windowEnd === undefined ? point() : withinWindow(windowEnd, point))) return { ok: true, frames: doc.n, partitionId: doc._id };
  // A miss: the stream is gone, someone else committed, this very update landed and the driver
  // sent it again after a lost connection (to a store that does not recognise the retry), or
  // an earlier attempt landed late. Then this partition is a leftover for the janitor.
  const own = await unsettledLanded(db, streamId, [...(limits.earlier ?? []), sent], files.durable);
  if (own) return landedResult(own);
  return { ok: false, reason: (await streamExists(db, streamId, files.durable.maxTimeMS)) ? 'conflict' : 'stream_gone' };
}

/**
 * Sends the commit point with a signal that aborts at the end of its window (performance.now()
 * ms): the driver checks it before it selects a server, checks out a connection and writes the
 * command, for the first attempt and for its retry after a lost connection (retryable writes),
 * so no attempt leaves after the window, which the janitor's judgement by age rests on
 * (store/abandoned.ts). An abort while the answer is awaited closes that connection (a new one
 * is opened for the next command: a store this slow costs a TLS handshake per late commit):
 * the attempt may still land, and the caller, told of it by `sending`, asks before the next.
 * The timer fires on this process's event loop: a loop blocked past the window lets a retry
 * go late by as long, which the lag's margin of twice `mongodb.opTimeoutMs` absorbs. Driver
 * 7.9 reads `signal` from any operation's options though it types it only on reads and
 * commands; test/commit-window.test.ts fails if a driver stops honouring it.
 */
async function withinWindow(windowEnd: number, point: (signal: AbortSignal) => Promise<boolean>): Promise<boolean> {
  const abort = new AbortController();
  const ms = Math.max(0, windowEnd - performance.now());
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    return await point(abort.signal);
  } catch (err) {
    if (abort.signal.aborted) throw new DeadlineError('mongodb', "MongoDB, asked for the commit point before its window's end,", Math.round(ms));
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Moves the oldest partitions a stream lists into pages of `pageSize` when it lists at least
 * that many: the pages first, then one conditional stream update that names them and drops
 * them from the lists (streams.ts `movePages`). A commit in between makes the update miss and
 * change nothing, and a later call tries again; the pages already written are the same pages
 * then. A stream deleted meanwhile gets its pages removed again (its deletion may have run
 * before they were written). Returns how many partitions the stream lists after, or undefined
 * when the move missed or the stream is gone. By `_id` only: the committing session calls it
 * after a commit.
 */
export async function pagePartitions(db: Db, streamId: string, pageSize: number, durable: Durability = {}): Promise<number | undefined> {
  const s = await commitPoint(db, streamId, durable.maxTimeMS);
  if (!s) return undefined;
  const { pages, rest } = pagesOf(streamId, s.pagedUpTo ?? 0, listedPartitions(s), pageSize);
  if (pages.length === 0) return rest.length;
  const ends: number[] = [];
  for (const page of pages) ends.push(await writePage(db, page, durable));
  if (await movePages(db, streamId, s, ends, rest, durable)) return rest.length;
  if (!(await streamExists(db, streamId, durable.maxTimeMS))) await deletePagesById(db, pages.map((p) => p._id));
  return undefined;
}
