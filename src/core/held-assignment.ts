/**
 * What a session keeps while it holds a stream: the assignment's state (kept small: a
 * process holds one per held session, and idle ones are most of them), and the live-view
 * record the active-streams view shows of it (PROTOCOL §3, `GET /v1/active-streams`).
 */
import type { ActiveStream } from '../store/live';
import type { Fragment } from '../store/credit';
import type { UnsettledCommit } from '../store/commit';
import type { CoreIdentity } from '../model';
import type { Leased } from './assignment';
import type { FrameBuffer } from './frame-buffer';
import { epochOf, sessionClock } from './session-clock';

/** A session's current assignment. */
export interface HeldAssignment {
  streamId: string;
  targetId: string;
  owner: string;
  committed: number;
  lastSeq: number;
  /**
   * Frames sent since the last checkpoint; created by the first frame and dropped at each
   * checkpoint, so an idle session holds no buffer (≈ 150 bytes each).
   */
  buffer?: FrameBuffer;
  /** When the assignment started, on the {@link sessionClock} (not a Date: a Date costs ≈ 96 bytes per held session). */
  startedAt: number;
  /** The last commit that moved the count, or startedAt, on the {@link sessionClock} (core.maxIdleAssignmentS). */
  progressAt: number;
  framesThisActivation: number;
  /** The buffered and committed counts last written to the live view (-1: never). */
  publishedBuffered: number;
  publishedCommitted: number;
  /** For the stream's manifest after each commit. */
  seedFiles: string[];
  seedDigests?: string[];
  lastPartitionId?: string;
  /** The stream's fencing token when this session got it; every commit carries it. */
  fence: number;
  /** Partitions the stream document lists itself: at storage.partitionsPerPage they move to a page. */
  unpaged: number;
  /**
   * The commit points of a checkpoint's attempts that failed during them (the store went away
   * before it answered), oldest first: one may have landed, or may still land. The next
   * checkpoint, or the assignment's end, asks first (data-path.ts); an answered commit clears
   * them, since none can land after it.
   */
  unsettled?: Unsettled[];
}

/**
 * An unanswered commit point (store/commit.ts). `files`: a digest of that checkpoint's files,
 * taken when it failed, since only the same checkpoint sent again may be answered by it.
 */
export type Unsettled = UnsettledCommit & { files?: string };

/** The state a session keeps of a stream it was just assigned or has resumed. */
export function holdAssignment({ stream, startedAt, progressAt, recordedFrames }: Leased): HeldAssignment {
  return {
    streamId: stream._id,
    targetId: stream.targetId,
    owner: stream.owner,
    committed: stream.frames,
    lastSeq: 0,
    startedAt: sessionClock(startedAt.getTime()),
    progressAt: sessionClock(progressAt ?? startedAt.getTime()),
    framesThisActivation: 0,
    // The lease script recorded a fresh assignment with the queue's frame count; a resume has no record yet.
    publishedBuffered: recordedFrames === undefined ? -1 : 0,
    publishedCommitted: recordedFrames ?? -1,
    seedFiles: stream.seedFiles,
    ...(stream.seedDigests ? { seedDigests: stream.seedDigests } : {}),
    fence: stream.fence,
    unpaged: stream.unpaged,
    ...(stream.lastPartitionId ? { lastPartitionId: stream.lastPartitionId } : {}),
  };
}

/** The credit fragment of an activation of `a` by `who` that ends now (store/credit.ts). */
export function endedFragment(a: HeldAssignment, who: CoreIdentity): Fragment {
  return {
    streamId: a.streamId,
    targetId: a.targetId,
    engine: who.engine,
    ...(who.donor ? { donor: who.donor.name, ...(who.donor.id ? { donorId: who.donor.id } : {}) } : {}),
    start: new Date(epochOf(a.startedAt)),
    end: new Date(),
    frames: a.framesThisActivation,
  };
}

/** Frames buffered by an assignment and not yet committed. */
export function bufferedFrames(a: HeldAssignment): number {
  return a.buffer?.frames ?? 0;
}

/**
 * The live-view record of an assignment held by `who` on node `nodeId`, or undefined when
 * `onlyChanged` and its counts are already published. Its counts count as published from
 * here on.
 */
export function liveRecord(a: HeldAssignment, who: CoreIdentity, nodeId: string, onlyChanged: boolean): ActiveStream | undefined {
  const buffered = bufferedFrames(a);
  if (onlyChanged && buffered === a.publishedBuffered && a.committed === a.publishedCommitted) return undefined;
  a.publishedBuffered = buffered;
  a.publishedCommitted = a.committed;
  return {
    stream_id: a.streamId,
    target_id: a.targetId,
    owner: a.owner,
    engine: who.engine,
    ...(who.donor ? { donor: who.donor.name } : {}),
    node: nodeId,
    started_at: new Date(epochOf(a.startedAt)).toISOString(),
    buffered_frames: buffered,
    frames: a.committed,
  };
}
