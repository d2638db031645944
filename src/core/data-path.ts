/**
 * The data path of a held assignment (PROTOCOL §2 "Frames" and "Checkpoint"): a frame
 * message is checked against the buffer's bounds and buffered (memory, then spill files); a
 * checkpoint drains the buffer and commits it with the checkpoint's files at the commit point
 * (store/commit.ts), within this process's share of core.maxConcurrentCommits and the memory
 * budget. The session (session.ts) has already checked the order of `seq`; it sends the
 * replies these functions return, so a reader follows a frame from socket to commit point as
 * transport → session → here → store.
 */
import crypto from 'node:crypto';
import { MessageError } from '../errors';
import { commitCheckpoint, landedResult, pagePartitions, unsettledLanded, type CommitResult } from '../store/commit';
import { commitWindowMs } from '../store/abandoned';
import type { FileNameCache } from '../store/name-budget';
import type { NamedBytes } from '../store/partitions';
import type { ProgressCounters } from '../store/progress';
import type { Logger } from '../telemetry/log';
import type { AssignmentDeps } from './assignment';
import { FILE_OVERHEAD_BYTES, FrameBuffer, SpillBudgetExceeded } from './frame-buffer';
import { bufferedFrames, type HeldAssignment, type Unsettled } from './held-assignment';
import type { Limiter } from './limiter';
import type { MemoryBudget } from './memory-budget';
import type { DataMessage } from './messages';
import { sessionClock } from './session-clock';

/** What the data path needs from its process (the hub provides it). */
export interface DataPathHost extends Pick<AssignmentDeps, 'settings' | 'metrics' | 'db' | 'files' | 'streams' | 'live'> {
  readonly log: Logger;
  /** Directory of this process's spill files. */
  readonly spillDir: string;
  /** Commits run through this, bounded by this process's share of core.maxConcurrentCommits. */
  readonly commits: Limiter;
  /** The process's memory budget: queued messages, buffered frames and commits count against it. */
  readonly memory: MemoryBudget;
  /** Counts each commit's frames per target (the dashboard's rates). */
  readonly progress: Pick<ProgressCounters, 'count'>;
  /** The file names of recently committing streams (core.fileNameCacheNames). */
  readonly fileNames: FileNameCache;
}

/** A reply of the data path, as the session sends it. */
export type DataReply = Record<string, unknown>;

/**
 * Why a checkpoint did not commit: the stream was deleted, its fence moved (another holder),
 * or an earlier attempt of it landed unanswered and frames came after it ({@link checkpoint}).
 */
export type CheckpointOutcome = { ok: true; reply: DataReply } | { ok: false; reason: 'stream_gone' | 'conflict' | 'landed_earlier' };

/** The reply to a message whose `seq` was already handled (its reply was lost): sent again, nothing changes. */
export function replayReply(a: HeldAssignment, msg: DataMessage): DataReply {
  return msg.type === 'frame'
    ? { type: 'ack', id: msg.id, seq: msg.seq, buffered_frames: bufferedFrames(a) }
    : { type: 'committed', id: msg.id, seq: msg.seq, frames: a.committed, partition: a.committed };
}

/**
 * Buffers a frame message's files under the stream's bounds (core.maxBufferBytes,
 * core.maxFileNamesPerStream, the spill budget) and returns its `ack`. The buffer is made by
 * the first frame after a checkpoint, named after the session and stream.
 */
export async function bufferFrames(host: DataPathHost, sessionId: string, a: HeldAssignment, msg: DataMessage): Promise<DataReply> {
  const c = host.settings.core;
  const buffer = (a.buffer ??= new FrameBuffer(host.spillDir, c.memoryBufferBytes, `${sessionId}-${a.streamId}`, host.log, host.memory));
  if (buffer.held + msg.payloadBytes + msg.files.length * FILE_OVERHEAD_BYTES > c.maxBufferBytes) {
    throw new MessageError(msg.id, 'buffer_full', `Buffering ${msg.payloadBytes} more bytes in ${msg.files.length} files would exceed ${c.maxBufferBytes} (each file counts ${FILE_OVERHEAD_BYTES} bytes more); send a checkpoint first`);
  }
  // Checked again, with the stream's committed names, at the checkpoint.
  if (buffer.nameCount + buffer.newNames(msg.files) > c.maxFileNamesPerStream) {
    throw new MessageError(msg.id, 'too_large', `Buffering these files would make more than max_file_names_per_stream (${c.maxFileNamesPerStream}) distinct file names`);
  }
  try {
    await buffer.append(msg.files, msg.frames);
  } catch (err) {
    if (err instanceof SpillBudgetExceeded) throw new MessageError(msg.id, 'buffer_full', `${err.message}; checkpoint or retry later`, { retry_after_s: c.retryAfterS });
    throw err;
  }
  a.lastSeq = msg.seq;
  host.metrics.framesReceived.inc(msg.frames);
  return { type: 'ack', id: msg.id, seq: msg.seq, buffered_frames: buffer.frames };
}

/**
 * At most this many unanswered attempts of one checkpoint are kept to ask about. Each is a
 * commit point the store failed to answer, which a core cannot cause at will; forgetting the
 * oldest only turns a late landing of it into the `conflict` it was before.
 */
const MAX_UNSETTLED = 4;

/**
 * The commit point of an earlier attempt of this checkpoint that went unanswered (the store
 * failed during it, and the core sends the checkpoint again), when one landed after all: that
 * commit is this checkpoint's. If none did, their partitions are leftovers for the janitor and
 * the checkpoint commits anew; they stay asked about, since one may still land before the new
 * commit point (store/commit.ts `earlier`). By `_id`, and only after such a failure; a store
 * that cannot tell yet fails, and the question stays for the next attempt.
 */
async function settleUnsettled(host: DataPathHost, a: HeldAssignment): Promise<(CommitResult & { ok: true }) | undefined> {
  if (!a.unsettled) return undefined;
  const landed = await unsettledLanded(host.db, a.streamId, a.unsettled, host.files.durable);
  return landed && landedResult(landed);
}

/** SHA-256 over a checkpoint's files (names, sizes, bytes): taken only when its commit failed. */
function filesDigest(files: NamedBytes[]): string {
  const h = crypto.createHash('sha256');
  for (const f of files) h.update(`${f.name}\0${f.bytes.length}\0`).update(f.bytes);
  return h.digest('base64url');
}

/**
 * Counts a commit that landed in the assignment: its frames, the metrics, and (unless
 * `manifest` is false or the stream was resumed since: it may be someone else's by now) the
 * stream's manifest.
 */
function countCommit(host: DataPathHost, a: HeldAssignment, result: CommitResult & { ok: true }, manifest = true): void {
  const newFrames = result.frames - a.committed;
  a.framesThisActivation += newFrames;
  if (newFrames > 0) host.progress.count(a.targetId, a.owner, newFrames).catch(() => undefined);
  if (result.frames !== a.committed) a.progressAt = sessionClock();
  a.committed = result.frames;
  if (result.partitionId) {
    a.lastPartitionId = result.partitionId;
    a.unpaged++;
    // Issued before any release that requeues the stream (same connection, in order). If it
    // is lost, the manifest's frames no longer match the queue and assignments read MongoDB.
    if (manifest && !result.resumedSince) host.streams.setManifest({ _id: a.streamId, frames: a.committed, seedFiles: a.seedFiles, seedDigests: a.seedDigests, lastPartitionId: a.lastPartitionId, fence: a.fence, unpaged: a.unpaged }).catch(() => undefined);
  }
  host.metrics.framesCommitted.inc(newFrames);
}

/**
 * Commits the buffered frames with the checkpoint's files and returns the `committed` reply;
 * the assignment then counts the new frames and has an empty buffer. The buffer is read into
 * memory only once this commit's turn has come and the memory budget has room for it: waiting
 * commits hold nothing but their (mostly spilled) buffers. Not committed: the assignment is
 * unchanged and over (the session ends it). A store failure leaves the buffer as it was, and
 * a commit point sent meanwhile is settled by the next checkpoint. If that commit landed but
 * frames came after it, or the checkpoint sent again is not the same, the assignment counts
 * what landed and is over (`landed_earlier`): they cannot be told apart from what it holds.
 */
export async function checkpoint(host: DataPathHost, a: HeldAssignment, msg: DataMessage): Promise<CheckpointOutcome> {
  const started = process.hrtime.bigint();
  const buffer = a.buffer;
  const buffered = buffer?.frames ?? 0;
  const committedBefore = a.committed;
  let attempt: Unsettled | undefined;
  const result = await host.commits.run(async () => {
    const earlier = await settleUnsettled(host, a);
    if (earlier) return earlier;
    const release = await host.memory.takeCommit(buffer && buffered > 0 ? buffer.bytes : 0);
    // The attempts asked about on a miss are exactly those kept with this one.
    const kept = a.unsettled?.slice(Math.max(0, a.unsettled.length - (MAX_UNSETTLED - 1)));
    try {
      const frameFiles = buffer && buffered > 0 ? await buffer.drain() : [];
      return await commitCheckpoint(host.db, host.files, a.streamId, a.committed, buffered, frameFiles, msg.files, {
        names: { max: host.settings.core.maxFileNamesPerStream, cache: host.fileNames },
        commitWindowMs: commitWindowMs(host.settings),
        fence: a.fence,
        ...(kept ? { earlier: kept } : {}),
        sending: (u) => {
          attempt = { ...u };
          a.unsettled = [...(kept ?? []), attempt];
        },
      });
    } catch (err) {
      if (attempt) attempt.files = filesDigest(msg.files);
      throw err;
    } finally {
      release();
    }
  });
  // Answered, so nothing is left to settle (a failure above keeps it for the next checkpoint).
  const attempts = a.unsettled;
  a.unsettled = undefined;
  if (!result.ok) {
    // A manifest with a stale fence (its write after a resume was lost) would make every
    // later assignment conflict like this one: rewrite it from MongoDB.
    if (result.reason === 'conflict') host.streams.repairManifest(a.streamId).catch(() => undefined);
    return result;
  }
  // This very commit, or nothing to commit; an earlier attempt that landed answers only the
  // same checkpoint sent again (its digest, taken when it failed, must match).
  const landedEarlier = result.partitionId !== undefined && result.partitionId !== attempt?.partitionId;
  const earlierFiles = landedEarlier ? attempts?.find((u) => u.partitionId === result.partitionId)?.files : undefined;
  const sameCheckpoint = !landedEarlier || (earlierFiles !== undefined && earlierFiles === filesDigest(msg.files));
  countCommit(host, a, result);
  if (result.frames !== committedBefore + buffered || !sameCheckpoint) return { ok: false, reason: 'landed_earlier' };
  a.lastSeq = msg.seq;
  a.buffer = undefined;
  await buffer?.clear();
  host.metrics.commitSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return { ok: true, reply: { type: 'committed', id: msg.id, seq: msg.seq, frames: result.frames, partition: result.frames } };
}

/**
 * Before an assignment ends with a commit point still unanswered: counts it if it landed, so
 * the donor is credited for it and a stream released to the pool (`releasing`) goes with the
 * frames it has. A stream kept for a resume or lost to another holder may be someone else's by
 * now (a resume raises its fence and writes its manifest): its manifest is not touched. If
 * MongoDB cannot tell now, nothing is credited, and a released stream's manifest is dropped:
 * its next assignment reads the stream from MongoDB rather than trust a count that may be old.
 */
export async function settleAtEnd(host: DataPathHost, a: HeldAssignment, releasing: boolean): Promise<void> {
  if (!a.unsettled) return;
  try {
    const landed = await settleUnsettled(host, a);
    a.unsettled = undefined;
    if (landed) countCommit(host, a, landed, releasing);
    // Not landed yet, but it may still land: the manifest's count cannot be trusted either.
    else if (releasing) await host.streams.dropManifest(a.streamId).catch(() => undefined);
  } catch {
    a.unsettled = undefined;
    if (releasing) await host.streams.dropManifest(a.streamId).catch(() => undefined);
  }
}

/**
 * Moves the stream's oldest listed partitions to a page (store/commit.ts) once
 * storage.partitionsPerPage are listed. The session calls it after the `committed` reply, so
 * no commit waits for it, and before its next message, so its next commit cannot make it
 * miss. Not while a release that cannot read pages runs beside this one (model.ts
 * STORE_SCHEMA). A miss or a failure changes nothing, and the next commit tries again.
 */
export async function pageIfDue(host: DataPathHost, a: HeldAssignment): Promise<void> {
  const perPage = host.settings.storage.partitionsPerPage;
  if (a.unpaged < perPage || !host.live.storeSchemaAgreed) return;
  try {
    const listed = await pagePartitions(host.db, a.streamId, perPage, host.files.durable);
    if (listed !== undefined) a.unpaged = listed;
  } catch (err) {
    host.log.warn({ err, stream: a.streamId }, 'moving committed partitions to a page failed; the next commit tries again');
  }
}
