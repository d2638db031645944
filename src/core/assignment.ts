/**
 * Handing a stream to a core (PROTOCOL §2 "Assignment" and "Resume"): leasing the next
 * stream among the core's candidate targets, taking over a lease with a resume token, and
 * loading what the assignment message carries (seed files overlaid by the latest
 * checkpoint's files, the target's options).
 *
 * Every MongoDB operation here is by `_id` (docs/architecture.md "Hot path"): the stream comes
 * from its manifest in Redis or by `_id` (a resume also raises the stream's fence in that
 * same update), seed files by their deterministic ids, the checkpoint by its partition id,
 * and targets from the per-process cache.
 */
import type { Db } from 'mongodb';
import { MessageError } from '../errors';
import { hashToken } from '../auth/tokens';
import type { Settings } from '../config/settings';
import type { FileStore } from '../store/files';
import type { Assigned, Leases, LeaseValue } from '../store/leases';
import { checkpointFiles } from '../store/partitions';
import type { AssignedStream, Streams } from '../store/streams';
import type { Metrics } from '../telemetry/metrics';
import type { LiveState } from '../store/live';
import type { CoreIdentity, StoredFile } from '../model';
import { RESUME_SECRET_BYTES } from './protocol';
import type { AssignmentFile } from './assignment-message';
import type { SeedCache } from './seed-cache';
import type { TargetCache } from './target-cache';
import { randomBase64url } from './random-pool';

export type { AssignedStream } from '../store/streams';

/** What assignment needs from the process. */
export interface AssignmentDeps {
  readonly settings: Settings;
  readonly nodeId: string;
  readonly db: Db;
  readonly files: FileStore;
  readonly leases: Leases;
  readonly streams: Streams;
  readonly targets: TargetCache;
  readonly metrics: Metrics;
  readonly live: LiveState;
  /** Seed files by content, shared by this process's assignments. */
  readonly seeds: SeedCache;
  /** Stops counting a stream kept for a resume against its core's caps (core/assignment-registry.ts): a refused resume gave it back. */
  unpark(streamId: string): void;
}

/** A stream leased for a session, with the resume token the core gets for it. */
export interface Leased {
  stream: AssignedStream;
  resumeToken: string;
  /** SHA-256 hex of the token's secret, as the lease records it. */
  resumeHash: string;
  /** When the assignment started (the live-view record's `started_at`). */
  startedAt: Date;
  /** Epoch ms of its last progress before a resume (core.maxIdleAssignmentS counts from it); the start otherwise. */
  progressAt?: number;
  /** Set when the lease script already wrote the live-view record: the committed frames it recorded. */
  recordedFrames?: number;
}

/** What the `assignment` message carries besides the stream's ids and frames. */
export interface AssignmentPayload {
  /** File name → its bytes, or its base64 when it came from the seed cache (the message carries base64). */
  files: Record<string, AssignmentFile>;
  options: Record<string, unknown>;
}

function newSecret(): string {
  return randomBase64url(RESUME_SECRET_BYTES);
}

function leaseFields(d: AssignmentDeps, who: CoreIdentity, session: string, resume: string): Omit<LeaseValue, 'stream' | 'target' | 'member'> {
  return { node: d.nodeId, session, engine: who.engine, ...(who.donor ? { donor: who.donor.name } : {}), resume };
}

/**
 * Leases the next stream for a core (optionally of one target). Streams stopped or deleted
 * after they were queued are released and the next one tried, up to core.assignAttempts;
 * then `no_streams_available`.
 */
export async function leaseNext(d: AssignmentDeps, who: CoreIdentity, session: string, requestId: number, targetId?: string): Promise<Leased> {
  const candidates = await d.targets.candidates(who, targetId);
  const startedAt = new Date();
  // The live-view record rides in the lease script: one Redis round trip per assignment.
  const active = { engine: who.engine, ...(who.donor ? { donor: who.donor.name } : {}), node: d.nodeId, started_at: startedAt.toISOString() };
  for (let attempt = 0; attempt < d.settings.core.assignAttempts; attempt++) {
    const secret = newSecret();
    const resumeHash = hashToken(secret);
    // The assignment's start is its first progress (core.maxIdleAssignmentS); renewals write later ones.
    const got = await d.leases.assign(candidates, { ...leaseFields(d, who, session, resumeHash), progress: startedAt.getTime() }, active);
    if (!got) break;
    const stream = got.marked ? await checkMarked(d, got, session) : await assignedStream(d, got);
    if (!stream) {
      // Stopped or deleted after it was queued: drop the lease and its record, try the next one.
      await d.live.clearActive(got.stream, got.target).catch(() => undefined);
      await d.leases.release(got.stream, session, false, got.frames);
      continue;
    }
    return { stream, resumeToken: `${stream._id}.${secret}`, resumeHash, startedAt, recordedFrames: got.frames };
  }
  throw new MessageError(requestId, 'no_streams_available', 'No stream is ready for this core; retry later', { retry_after_s: d.settings.core.retryAfterS });
}

/**
 * What the assignment needs of the leased stream: from its manifest in Redis when that is
 * current (its frames match the queue score, and it names the seed files), else from
 * MongoDB by `_id`, repairing the manifest. Undefined when the stream is gone or not `ok`.
 */
async function assignedStream(d: AssignmentDeps, got: Assigned): Promise<AssignedStream | undefined> {
  const m = got.manifest;
  if (m && m.frames === got.frames && m.seedFiles !== undefined) {
    const owner = await d.targets.owner(got.target);
    if (owner !== undefined) {
      return {
        _id: got.stream,
        targetId: got.target,
        owner,
        frames: m.frames,
        seedFiles: m.seedFiles,
        ...(m.seedDigests ? { seedDigests: m.seedDigests } : {}),
        fence: m.fence ?? 0,
        unpaged: m.unpaged ?? 0,
        ...(m.lastPartitionId ? { lastPartitionId: m.lastPartitionId } : {}),
      };
    }
  }
  d.metrics.manifestMisses.inc();
  // Repairing is safe here: this session holds the lease, so nobody commits meanwhile.
  return d.streams.repairManifest(got.stream);
}

/**
 * A stream marked withdrawn yet queued (only a node of an earlier release, which knows no
 * marks, queues one): read from the primary, it is handed out, and its mark cleared, only if it
 * is `ok`. Should that fail, the lease goes back with the stream still marked, for the next
 * assignment to check again.
 */
async function checkMarked(d: AssignmentDeps, got: Assigned, session: string): Promise<AssignedStream | undefined> {
  d.metrics.manifestMisses.inc();
  try {
    const stream = await d.streams.repairManifest(got.stream, true);
    if (stream) await d.leases.unmark(got.target, got.stream);
    return stream;
  } catch (err) {
    await d.live.clearActive(got.stream, got.target).catch(() => undefined);
    await d.leases.release(got.stream, session, true, got.frames).catch(() => undefined);
    throw err;
  }
}

/**
 * Takes over the lease named by a resume token (`<stream>.<secret>`) with a fresh secret.
 * Throws `not_assigned` when the token is unknown, its grace period passed, or the stream
 * is no longer `ok`.
 */
export async function resumeLease(d: AssignmentDeps, who: CoreIdentity, session: string, requestId: number, token: string): Promise<Leased> {
  const dot = token.lastIndexOf('.');
  const streamId = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  // A token that cannot be one is answered like an unknown one: the core assigns again (a
  // core's stored token may be damaged; that is no protocol error of its own).
  if (dot <= 0 || !secret) throw new MessageError(requestId, 'not_assigned', 'The resume token is unknown or its grace period has passed; assign again');
  const fresh = newSecret();
  const lease = await d.leases.resume(streamId, hashToken(secret), leaseFields(d, who, session, hashToken(fresh)));
  if (!lease) throw new MessageError(requestId, 'not_assigned', 'The resume token is unknown or its grace period has passed; assign again');
  // Raises the fence: a commit the previous holder still has in flight cannot land after this read.
  const stream = await d.streams.fenceForResume(streamId);
  if (!stream) {
    // Unparked only when this resume still held the lease: otherwise it expired meanwhile and
    // the stream may be another core's, parked here under its name.
    if (await d.leases.release(streamId, session, false, 0)) d.unpark(streamId);
    throw new MessageError(requestId, 'not_assigned', 'The stream is no longer available; assign again');
  }
  // The checks of an assignment, which may have changed since (the target disabled, made
  // beta, or its engines changed): a token is no way around them. Nor around
  // core.maxIdleAssignmentS, whose sweep sees only held streams: a core that resumes and hangs
  // up again at once would otherwise keep a stream parked without ever committing. The stream
  // goes back to the pool with its new fence.
  try {
    await d.targets.candidates(who, stream.targetId);
    // A held lease's progress is written at renewals: up to core.leaseRenewS old.
    const slackMs = lease.held ? d.settings.core.leaseRenewS * 1000 : 0;
    if (lease.progress !== undefined && Date.now() - lease.progress >= d.settings.core.maxIdleAssignmentS * 1000 + slackMs) {
      throw new MessageError(requestId, 'not_assigned', `The stream was held for core.maxIdleAssignmentS (${d.settings.core.maxIdleAssignmentS} s) without a commit and went back to the pool; assign again`);
    }
  } catch (err) {
    await d.streams.setManifest(stream).catch(() => undefined);
    // Back in the pool, it no longer waits for a resume: its place under the caps is free.
    if (await d.leases.release(streamId, session, true, stream.frames)) d.unpark(streamId);
    // The record of the session this resume took the lease from (its end, `lost`, leaves it).
    await d.live.clearActive(streamId, stream.targetId).catch(() => undefined);
    throw err;
  }
  return { stream, resumeToken: `${stream._id}.${fresh}`, resumeHash: hashToken(fresh), startedAt: new Date(), ...(lease.progress !== undefined ? { progressAt: lease.progress } : {}) };
}

/**
 * The files (seed files overlaid by the latest checkpoint's) and options of an assignment.
 * The checkpoint is read first, so a seed file it overwrites (typically the 200 KiB state)
 * is never read: a stream that has committed reads only the seed files its checkpoints do
 * not carry. A seed file whose content another assignment of this process read recently
 * comes from the seed cache ({@link SeedCache}), by the digest the stream records.
 */
export async function assignmentPayload(d: AssignmentDeps, stream: AssignedStream): Promise<AssignmentPayload> {
  const files: Record<string, AssignmentFile> = {};
  const add = async (f: StoredFile): Promise<Uint8Array> => {
    // An inline file is one chunk: the driver's bytes as they are, not copied.
    const chunks: Uint8Array[] = [];
    for await (const c of d.files.chunks(f)) chunks.push(c);
    return (files[f.name] = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
  };
  const last = stream.lastPartitionId ?? (stream.frames === 0 ? undefined : await d.streams.legacyLastPartitionId(stream._id));
  const checkpoint = last === undefined ? [] : await checkpointFiles(d.db, last);
  const overwritten = new Set(checkpoint.map((f) => f.name));
  const digests = new Map<string, string>();
  const toRead: string[] = [];
  stream.seedFiles.forEach((name, i) => {
    if (overwritten.has(name)) return;
    const digest = stream.seedDigests?.[i];
    const cached = digest === undefined ? undefined : d.seeds.get(digest);
    if (cached) files[name] = cached;
    else {
      toRead.push(name);
      if (digest !== undefined) digests.set(name, digest);
    }
  });
  for (const f of await d.streams.seedFiles(stream._id, toRead)) {
    const bytes = await add(f);
    const digest = digests.get(f.name);
    if (digest !== undefined) d.seeds.offer(digest, bytes);
  }
  for (const f of checkpoint) await add(f);
  return { files, options: await d.targets.options(stream.targetId) };
}
