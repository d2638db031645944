/**
 * The domain: the documents the store keeps (one type per collection), the values they
 * take, and the ids that name them. Every other module takes these types from here.
 */
import crypto from 'node:crypto';
import type { Binary, ObjectId } from 'mongodb';
import { FILE_NAME_PATTERN, ID_PATTERN, STAGES } from './http/api-schemas';

/** A new random id. */
export function newId(): string {
  return crypto.randomBytes(16).toString('base64url');
}

// The id and file-name patterns (path parameters and messages are validated against them) and
// the stages (PROTOCOL §2 "Assignment") are defined with the API schemas, a module the browser
// UI can read too.
export { FILE_NAME_PATTERN, ID_PATTERN, STAGES };

/** A target's stage. */
export type Stage = (typeof STAGES)[number];

/** A target document. */
export interface TargetDoc {
  _id: string;
  owner: string;
  engines: string[];
  stage: Stage;
  weight: number;
  options: Record<string, unknown>;
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

/** A manager or admin (`users` collection); the token is kept only as its SHA-256 hash. */
export interface UserDoc {
  name: string;
  role: 'admin' | 'manager';
  weight: number;
  tokenHash: string;
  createdAt: Date;
}

/** A donor (`donors` collection) with its running totals, kept equal to the sum of its fragments. */
export interface DonorDoc {
  name: string;
  beta: boolean;
  tokenHash: string;
  frames: number;
  coreSeconds: number;
  createdAt: Date;
}

/** A donor's totals on one target (`donor_targets`, `_id` `<donor>:<target>`), upserted with each credited fragment. */
export interface DonorTargetDoc {
  _id: string;
  donor: string;
  targetId: string;
  frames: number;
  coreSeconds: number;
}

/** One error a core reported for a stream (`stop` with `error`), in its log `stream_errors`. */
export interface StreamErrorDoc {
  streamId: string;
  at: Date;
  /** The core's text, cut to core.maxErrorTextBytes. */
  message: string;
  engine: string;
  donor?: string;
}

/** What a block applies to. */
export type BlockKind = 'donor' | 'engine_key' | 'address';

/** An admin's block of a donor, engine key or address range (`blocks` collection). */
export interface BlockDoc {
  _id: string;
  kind: BlockKind;
  /** Donor name, engine-key id, or a CIDR range in canonical form (`10.0.0.0/8`, `2001:db8::/32`). */
  value: string;
  reason: string;
  createdAt: Date;
  createdBy: string;
}

/** An engine key document. */
export interface EngineKeyDoc {
  _id: string;
  engine: string;
  description: string;
  keyHash: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** Stream statuses. */
export type StreamStatus = 'ok' | 'stopped' | 'failed';

/** A stream document. */
export interface StreamDoc {
  _id: string;
  targetId: string;
  owner: string;
  status: StreamStatus;
  /** Committed frames: the commit point of every checkpoint. */
  frames: number;
  /**
   * The newest committed partition numbers, ascending: those not yet moved to a page
   * ({@link PartitionPageDoc}; older ones are listed there, so this list stays short and the
   * commit point's update costs the same however long the stream).
   */
  partitions: number[];
  /** The document id of each partition in `partitions`, in the same order. */
  partitionIds: string[];
  /**
   * Names and sizes of each listed partition's frame files, pushed with `partitions` (so
   * it lines up with their newest entries; streams older than this field lack the first
   * ones): whole-file downloads know their Content-Length without reading partitions.
   * (Each entry is a document, not a bare array: FerretDB rejects nested arrays.)
   */
  frameIndex?: Array<{ files: Array<{ name: string; size: number }> }>;
  /**
   * The last partition number of each page of this stream's committed partitions, ascending:
   * page `i` lists the partitions after `pageEnds[i - 1]` (0 for the first) up to
   * `pageEnds[i]` ({@link PartitionPageDoc}). Absent: no page yet.
   */
  pageEnds?: number[];
  /** The last entry of `pageEnds` (set with it): the condition of the update that adds a page. Absent = 0. */
  pagedUpTo?: number;
  /** How many entries `partitions` has (raised by each commit, set when a page is made): when to make the next page. Absent = 0. */
  unpaged?: number;
  /** The last committed partition's document id (set with each commit), so readers need not load the lists. */
  lastPartitionId?: string;
  /**
   * Fencing token of the stream's holder: raised by every resume, and part of the commit
   * point's filter, so a commit still in flight from the holder before the resume (a socket
   * that dropped mid-checkpoint, a node killed mid-commit) cannot land after it. Absent = 0.
   */
  fence?: number;
  errorCount: number;
  seedFiles: string[];
  /**
   * SHA-256 (base64url) of each seed file, in `seedFiles` order, computed when the stream was
   * created: assignments take shared seed content from the process's seed cache
   * (core/seed-cache.ts). Absent on streams created before it existed.
   */
  seedDigests?: string[];
  tagFiles: string[];
  frameFiles: string[];
  checkpointFiles: string[];
  createdAt: Date;
  updatedAt: Date;
}

/** Where a file's bytes live. Exactly one of `data` and `gridfsId` is set. */
export interface StoredFile {
  name: string;
  size: number;
  data?: Binary;
  gridfsId?: ObjectId;
}

/** File kinds stored in the `files` collection (frames and checkpoints live in partitions). */
export type StreamFileKind = 'seed' | 'tag';

/** A seed or tag file document (`files` collection). */
export interface FileDoc extends StoredFile {
  _id: string;
  streamId: string;
  kind: StreamFileKind;
  /** When written. */
  createdAt: Date;
}

/**
 * A stream creation or deletion under way (collection `stream_changes`, `_id` = the stream's
 * id): written before its first step and removed after its last, so a crash in between
 * leaves this small document for the janitor, which finishes the job (store/janitor.ts).
 */
export interface StreamChangeDoc {
  _id: string;
  op: 'create' | 'delete';
  /** When the change began, by the store's clock (`$currentDate`); the janitor waits storage.janitorLagS past it. */
  createdAt: Date;
  /**
   * Set by the janitor before it clears an unfinished creation's data: the creation, if it
   * is still under way, then can no longer stand (store/stream-changes.ts `markCreated`).
   */
  claimed?: true;
  /** Set by a creation once its stream document is written, before it is queued: the creation stands, and the janitor no longer claims it. */
  done?: true;
  /**
   * 2 on the records of releases from 2026-12-07, whose creations mark themselves {@link done}.
   * Absent on older ones: a creation of theirs whose stream exists may have been answered as
   * created without removing its record, so the janitor keeps such a stream.
   */
  v?: 2;
  /** How many lags the janitor has kept a claimed creation's record after clearing its data (a stalled stream document may still land). */
  rounds?: number;
  /** A creation's stream's queue entry (its target and ready-set member), which an abandoned creation's clean-up removes. */
  queue?: { target: string; member: string };
}

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

/**
 * The version of the stored documents' shapes this release reads and writes: 2 since a
 * stream's committed partitions may be listed in pages ({@link PartitionPageDoc}), which
 * releases before (1) do not read: their janitor would take a paged partition for a leftover.
 * So a process moves partitions to pages only while every live process reports this version
 * or a later one in the node registry (store/live.ts).
 */
export const STORE_SCHEMA = 2;

/** One committed partition as a stream's lists name it. */
export interface CommittedPartition {
  /** The partition number: the stream's frame count once it was committed. */
  n: number;
  /** Its {@link PartitionDoc} `_id`. */
  id: string;
  /** Names and sizes of its frame files; absent for partitions committed before streams recorded them. */
  files?: Array<{ name: string; size: number }>;
}

/**
 * A page of a stream's committed partitions (`partition_pages`, `_id`
 * `<stream>:p<start>-<end>`: the partitions after `start` up to `end`), written before the
 * stream update that names it. Committed partitions never change, so the id fixes the
 * entries: a page written again (a retried or raced move) is the same page.
 */
export interface PartitionPageDoc {
  _id: string;
  streamId: string;
  /** The partition numbers, ascending. */
  partitions: number[];
  /** The document id of each, in the same order. */
  partitionIds: string[];
  /**
   * The frame files of each, in the same order: JSON text of `[{name, size}]`, or '' when not
   * recorded (see {@link CommittedPartition}). Text, because the embedded store decodes an
   * array of 64 nested documents at about 3 ms and 64 strings at under 1 ms.
   */
  frameFiles: string[];
  createdAt: Date;
}

/**
 * Who is on the other end of a core socket, fixed at upgrade: the engine its key proves,
 * that key's id, the donor its token names (if any) and the client address.
 */
export interface CoreIdentity {
  engine: string;
  keyId: string;
  /** `id`: the donor document's `_id`, so its totals are credited by primary key. */
  donor?: { name: string; beta: boolean; id?: ObjectId };
  remote: string;
}
