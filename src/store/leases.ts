/**
 * Ready queues and leases in Redis — the only shared state the assignment path touches.
 *
 * Key layout (prefix = `redis.keyPrefix`, `{t:<target>}` is a Redis Cluster hash tag, so
 * everything of one target lives in one slot and targets spread over the cluster):
 *
 * - `<prefix>{t:<target>}:ready` ZSET of the target's streams that are `ok` and held by
 *   nobody; score = committed frames, member = `<createdAt ms, 13 digits>|<stream id>`, so
 *   ZPOPMIN yields the stream with the fewest frames, oldest first on ties.
 * - `<prefix>{t:<target>}:lease` HASH stream → lease (JSON).
 * - `<prefix>{t:<target>}:expiry` ZSET stream → lease expiry (ms, Redis clock): a lease is
 *   live while its expiry is in the future; expired ones are claimed by {@link Leases.sweep}
 *   and their streams returned to the pool.
 * - `<prefix>{t:<target>}:manifest` HASH stream → {@link StreamManifest}.
 * - `<prefix>{t:<target>}:active` HASH stream → active record (live.ts): written by the
 *   assign script with the lease, removed by the sweep of an expired lease.
 * - `<prefix>{t:<target>}:returning` ZSET stream → claim deadline (ms, Redis clock): streams
 *   a sweep took from expired leases and has not yet put back ({@link Leases.sweep}); a
 *   claim not settled by its deadline is taken again by a later sweep.
 * - `<prefix>st:<stream>` STRING → the stream's target (immutable; lets by-stream calls
 *   find the slot; cached in process).
 * - `<prefix>targets` SET of targets whose queues or leases may hold something (what the
 *   sweep walks); pruned by {@link Leases.pruneTarget} on target delete and by the sweep.
 * - `<prefix>pool:built` marker: its absence means Redis lost its data (or holds the older
 *   single-slot layout, whose marker was `ready:built`): the pool is rebuilt.
 *
 * Every atomic change is one Lua script over one target's keys, declared in KEYS
 * (lease-scripts.ts). The choice across targets is made in TypeScript (fair-share.ts).
 * Redis holds nothing that MongoDB cannot rebuild: the pool's rebuild refills the queues.
 */
import type { RedisClient } from './redis';
import type { ActiveStream } from './live';
import { ASSIGN, DETACH, ENQUEUE, GET, RELEASE, RENEW, RESUME, SETTLE, SWEEP, WITHDRAW } from './lease-scripts';
import { pickFairShare, type Candidate } from './fair-share';
import { targetKeys, targetsKey, type TargetKeys } from './target-keys';

export type { Candidate } from './fair-share';
export type { TargetKeys } from './target-keys';

/** What a lease records. */
export interface LeaseValue {
  stream: string;
  target: string;
  /** Ready-set member to use when the stream goes back to the pool. */
  member: string;
  node: string;
  session: string;
  engine: string;
  donor?: string;
  /** SHA-256 hex of the resume secret. */
  resume: string;
  /** Set while the socket is gone and the lease waits for a resume. */
  detached?: boolean;
  /**
   * Epoch ms of the assignment's last progress: its start (the assign script), a commit's
   * (written at the next renewal, so up to core.leaseRenewS old while held), or the
   * session's own at a detach.
   */
  progress?: number;
  /** Only in a resume's answer: the lease was still attached to a socket (its progress may be a renewal old). */
  held?: true;
}

/**
 * What an assignment needs of a stream beyond its queue entry, kept in Redis so that handing
 * out a stream needs no MongoDB read of the stream document: its committed frames when the
 * manifest was written (a manifest whose frames differ from the queue score is stale and
 * ignored), whether it has seed files and their names, and the id of its last committed partition.
 */
export interface StreamManifest {
  frames: number;
  seed: boolean;
  /**
   * Seed file names (their documents are read by `_id`). Absent in manifests written before
   * names were recorded: such an assignment reads the names from the stream document.
   */
  seedFiles?: string[];
  /** SHA-256 digests of the seed files, in `seedFiles` order, when the stream records them. */
  seedDigests?: string[];
  lastPartitionId?: string;
  /** The stream's fencing token ({@link StreamDoc.fence}); absent = 0. */
  fence?: number;
  /** Partitions the stream document lists itself ({@link StreamDoc.unpaged}); absent = 0. */
  unpaged?: number;
}

/**
 * Encodes a manifest: `frames|seed|lastPartitionId`, then `|name/name…` when seed names are
 * known and there are any, then `|fence` when the fence is above 0, then `|unpaged` when
 * that is above 0, then `|digest/digest…` when the seed files' digests are known (file names
 * never contain `|` or `/`, base64url digests neither). Trailing empty fields are left out.
 * The digests come last so that a node older than them decodes such a manifest as malformed
 * and reads the stream from MongoDB, rather than misreading it.
 */
export function encodeManifest(m: StreamManifest): string {
  const base = `${m.frames}|${m.seed ? 1 : 0}|${m.lastPartitionId ?? ''}`;
  const names = m.seed && m.seedFiles && m.seedFiles.length > 0 ? m.seedFiles.join('/') : '';
  const digests = names && m.seedDigests?.length === m.seedFiles!.length ? m.seedDigests.join('/') : '';
  if (digests) return `${base}|${names}|${m.fence ?? 0}|${m.unpaged ?? 0}|${digests}`;
  if (m.unpaged) return `${base}|${names}|${m.fence ?? 0}|${m.unpaged}`;
  if (m.fence) return `${base}|${names}|${m.fence}`;
  return names ? `${base}|${names}` : base;
}

/** Distinct `/`-joined lists (seed names, seed digests) kept by {@link sharedList} before it starts over. */
const SHARED_LISTS_MAX = 1000;
const sharedLists = new Map<string, string[]>();
// Frozen: shared by every manifest that names them (typed string[] for the callers, which only read them).
const NO_SEED_FILES = Object.freeze([]) as unknown as string[];

/**
 * The items of `joined` (`a/b…`), one shared frozen array per distinct list: every held
 * session keeps its stream's seed names and digests, and streams of a target mostly share them.
 */
function sharedList(joined: string): string[] {
  let list = sharedLists.get(joined);
  if (!list) {
    if (sharedLists.size >= SHARED_LISTS_MAX) sharedLists.clear();
    list = Object.freeze(joined.split('/')) as string[];
    sharedLists.set(joined, list);
  }
  return list;
}

/** Decodes a manifest; undefined for an empty or malformed one. Its `seedFiles` and `seedDigests` must not be modified. */
export function decodeManifest(raw: string): StreamManifest | undefined {
  const [frames, seed, last, names, fence, unpaged, digests, extra] = raw.split('|');
  const n = Number(frames);
  const f = fence === undefined ? 0 : Number(fence);
  const u = unpaged === undefined ? 0 : Number(unpaged);
  const counts = [n, f, u].every((x) => Number.isInteger(x) && x >= 0);
  if (!raw || last === undefined || extra !== undefined || !counts || (seed !== '0' && seed !== '1')) return undefined;
  // A seedless manifest names no files; a seeded one names them, or predates names (undefined).
  const seedFiles = seed === '0' ? NO_SEED_FILES : names ? sharedList(names) : undefined;
  const seedDigests = seedFiles && digests ? sharedList(digests) : undefined;
  if (seedDigests && seedDigests.length !== seedFiles!.length) return undefined;
  return {
    frames: n,
    seed: seed === '1',
    ...(seedFiles ? { seedFiles } : {}),
    ...(seedDigests ? { seedDigests } : {}),
    ...(last ? { lastPartitionId: last } : {}),
    ...(f > 0 ? { fence: f } : {}),
    ...(u > 0 ? { unpaged: u } : {}),
  };
}

/**
 * What the assign script writes into a live-view record besides the stream, target, owner
 * (the chosen candidate's manager) and counts.
 */
export type ActiveTemplate = Omit<ActiveStream, 'stream_id' | 'target_id' | 'owner' | 'frames' | 'buffered_frames'>;

/** A leased stream as the assign script returns it. */
export interface Assigned {
  target: string;
  stream: string;
  /** The ready-set score: committed frames when the stream was queued. */
  frames: number;
  manifest?: StreamManifest;
  /**
   * The stream was marked withdrawn (queued by a node of an earlier release): it comes without
   * its manifest, so it is read from MongoDB; if it is `ok` there, {@link Leases.unmark} it.
   */
  marked?: true;
}

/** Why a stream left the pool ({@link Leases.withdraw}): what its holder is told. */
export type Withdrawal = 'stopped' | 'deleted';

/** What a renewal pass found ({@link Leases.renew}). */
export interface Renewed {
  /** Streams whose lease is gone, detached or another session's. */
  lost: string[];
  /** Leases renewed whose stream was stopped or deleted since they were taken. */
  withdrawn: Array<{ stream: string; why: Withdrawal }>;
}

/** Streams of one target a sweep claimed; settled with {@link Leases.settle} once back in the pool. */
export interface SweepClaim {
  target: string;
  /** The claim's deadline (ms, Redis clock): a later sweep takes the streams again after it. */
  deadline: number;
  streams: string[];
}

/** The ready-set member of a stream: creation time (13-digit ms) then id. */
export function readyMember(createdAt: Date, streamId: string): string {
  return `${String(createdAt.getTime()).padStart(13, '0')}|${streamId}`;
}

type Script = (...args: Array<string | number>) => Promise<unknown>;
type Scripted = RedisClient & Record<'scAssign' | 'scRelease' | 'scRenew' | 'scDetach' | 'scResume' | 'scGet' | 'scSweep' | 'scSettle' | 'scEnqueue' | 'scWithdraw', Script>;

/** Entries of the in-process stream → target cache before it is cleared (bounds memory to a few MB). */
const TARGET_CACHE_MAX = 200_000;

/** Items per script call of batch operations (keeps each script short: Redis runs one at a time). */
const BATCH = 500;

function groupPush<T>(groups: Map<string, T[]>, key: string, item: T): void {
  const list = groups.get(key);
  if (list) list.push(item);
  else groups.set(key, [item]);
}


/** Ready queues and leases. */
export class Leases {
  private readonly r: Scripted;
  /** stream → target; a stream never changes target, so entries never go stale. */
  private readonly targetOf = new Map<string, string>();

  /**
   * @param prefix redis.keyPrefix (without braces, so the per-target hash tags take effect)
   * @param ttlMs lease lifetime without renewal
   * @param returnMs how long a sweep's claim on expired leases lasts before a later sweep may
   *   take it again (storage.poolReturnS)
   * @param withdrawnMs how long a stream taken out of the pool (stopped, deleted) is kept out
   *   against enqueues that read the store before (storage.janitorLagS: longer than the reads
   *   of the pool and the janitor take; {@link withdraw})
   */
  constructor(redis: RedisClient, private readonly prefix: string, readonly ttlMs: number, private readonly returnMs = 60_000, private readonly withdrawnMs = 120_000) {
    const scripts: Array<[string, number, string]> = [
      ['scAssign', 6, ASSIGN],
      ['scRelease', 3, RELEASE],
      ['scRenew', 2, RENEW],
      ['scDetach', 2, DETACH],
      ['scResume', 2, RESUME],
      ['scGet', 2, GET],
      ['scSweep', 5, SWEEP],
      ['scSettle', 1, SETTLE],
      ['scEnqueue', 5, ENQUEUE],
      ['scWithdraw', 4, WITHDRAW],
    ];
    for (const [name, numberOfKeys, lua] of scripts) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys, lua });
    }
    this.r = redis as Scripted;
  }

  /** The keys of a target (exported for tests and tools that inspect Redis). */
  keys(target: string): TargetKeys {
    return targetKeys(this.prefix, target);
  }

  private remember(stream: string, target: string): void {
    if (this.targetOf.size >= TARGET_CACHE_MAX) this.targetOf.clear();
    this.targetOf.set(stream, target);
  }

  /** The target of a stream the pool has seen, or undefined. */
  async targetOfStream(stream: string): Promise<string | undefined> {
    const known = this.targetOf.get(stream);
    if (known !== undefined) return known;
    const target = await this.r.get(`${this.prefix}st:${stream}`);
    if (target === null) return undefined;
    this.remember(stream, target);
    return target;
  }

  /**
   * Picks a stream by the two-level weighted choice among the candidates that have a ready
   * stream and leases it: one ZCARD per candidate (pipelined, each to its slot; skipped for a
   * single candidate, whose script finds its queue empty by itself), then one single-slot
   * script per attempt, dropping a target that emptied meanwhile. With `active`, the script
   * also writes the stream's live-view record (live.ts): owner = the candidate's manager,
   * frames = the queue score, nothing buffered.
   * Returns undefined when no candidate has a ready stream.
   */
  async assign(candidates: Candidate[], lease: Omit<LeaseValue, 'stream' | 'target' | 'member'>, active?: ActiveTemplate): Promise<Assigned | undefined> {
    if (candidates.length === 0) return undefined;
    let open = candidates;
    if (candidates.length > 1) {
      const sizes = await Promise.all(candidates.map((c) => this.r.zcard(this.keys(c.target).ready)));
      open = candidates.filter((_, i) => sizes[i]! > 0);
    }
    const template = JSON.stringify(lease);
    for (;;) {
      const c = pickFairShare(open);
      if (!c) return undefined;
      const k = this.keys(c.target);
      const activeTemplate = active ? JSON.stringify({ ...active, owner: c.manager }) : '';
      const res = (await this.r.scAssign(k.ready, k.lease, k.expiry, k.manifest, k.active, k.withdrawn, template, this.ttlMs, c.target, activeTemplate)) as [string, string, string, number] | null;
      if (res) {
        this.remember(res[0], c.target);
        const manifest = decodeManifest(res[2]);
        return { target: c.target, stream: res[0], frames: Number(res[1]), ...(manifest ? { manifest } : {}), ...(res[3] === 1 ? { marked: true as const } : {}) };
      }
      open = open.filter((x) => x !== c);
    }
  }

  /** Records a stream's manifest (after a commit). */
  async setManifest(stream: string, m: StreamManifest): Promise<void> {
    const target = await this.targetOfStream(stream);
    if (target !== undefined) await this.r.hset(this.keys(target).manifest, stream, encodeManifest(m));
  }

  /** Drops a live stream's manifest only: its next assignment reads the stream from MongoDB. */
  async dropManifest(stream: string): Promise<void> {
    const target = await this.targetOfStream(stream);
    if (target !== undefined) await this.r.hdel(this.keys(target).manifest, stream);
  }

  /** Forgets a stream's manifest and its target entry (deleted streams). */
  async forgetManifest(stream: string): Promise<void> {
    const target = await this.targetOfStream(stream);
    if (target === undefined) return;
    await Promise.all([this.r.hdel(this.keys(target).manifest, stream), this.r.del(`${this.prefix}st:${stream}`)]);
  }

  /**
   * Releases a lease this session holds; `requeue` puts the stream back with `frames` as its
   * score unless the lease was {@link withdraw}n; `'if_started'` (a session told its stream was
   * stopped) only if the stream was started again since; a lease reinstated by a start goes
   * back whatever `requeue` says. Returns whether the lease was this session's, or `'unflagged'`
   * for `'if_started'` on a lease no stop flagged (the stop was not this lease's): the lease is
   * then kept, for the caller to ask MongoDB and release again with `true` or `false`.
   */
  async release(stream: string, session: string, requeue: boolean | 'if_started', frames: number): Promise<boolean | 'unflagged'> {
    const target = await this.targetOfStream(stream);
    if (target === undefined) return false;
    const k = this.keys(target);
    const res = await this.r.scRelease(k.ready, k.lease, k.expiry, stream, session, requeue === 'if_started' ? 2 : requeue ? 1 : 0, frames);
    return res === 2 ? 'unflagged' : res === 1;
  }

  /**
   * Renews many leases, one script per target and 500 streams, writing `progressMs` (epoch
   * ms of the last progress) into those that carry it; returns the streams whose lease was
   * lost, and those renewed whose stream was stopped or deleted since (their holders are to stop).
   */
  async renew(held: Array<{ stream: string; session: string; progressMs?: number | undefined }>): Promise<Renewed> {
    const { results, unknown } = await this.perTarget(held, (k, batch) =>
      this.r.scRenew(k.lease, k.expiry, this.ttlMs, ...batch.flatMap((h) => [h.stream, h.session, h.progressMs === undefined ? '' : Math.round(h.progressMs)])),
    );
    const out: Renewed = { lost: [...unknown], withdrawn: [] };
    for (const [lost, gone] of results as Array<[string[], string[]]>) {
      out.lost.push(...lost);
      for (let i = 0; i < gone.length; i += 2) out.withdrawn.push({ stream: gone[i]!, why: gone[i + 1] === 'deleted' ? 'deleted' : 'stopped' });
    }
    return out;
  }

  /**
   * Runs `call` once per target and {@link BATCH} streams of `held`, at once, with the
   * target's keys. Streams whose target is unknown (deleted) are not called for: `unknown`.
   */
  private async perTarget<T extends { stream: string }>(held: T[], call: (k: TargetKeys, batch: T[]) => Promise<unknown>): Promise<{ results: unknown[]; unknown: string[] }> {
    const unknown: string[] = [];
    const byTarget = new Map<string, T[]>();
    const targets = await Promise.all(held.map((h) => this.targetOfStream(h.stream)));
    held.forEach((h, i) => {
      const t = targets[i];
      if (t === undefined) unknown.push(h.stream);
      else groupPush(byTarget, t, h);
    });
    const calls: Array<Promise<unknown>> = [];
    for (const [target, list] of byTarget) {
      const k = this.keys(target);
      for (let i = 0; i < list.length; i += BATCH) calls.push(call(k, list.slice(i, i + BATCH)));
    }
    return { results: await Promise.all(calls), unknown };
  }

  /** Keeps a closed socket's lease for `graceMs` so the core can resume. */
  /** @param progressMs epoch ms of the assignment's last progress, handed to the session that resumes it */
  async detach(stream: string, session: string, graceMs: number, progressMs?: number): Promise<boolean> {
    const target = await this.targetOfStream(stream);
    if (target === undefined) return false;
    const k = this.keys(target);
    const args: Array<string | number> = [k.lease, k.expiry, stream, session, graceMs];
    if (progressMs !== undefined) args.push(Math.round(progressMs));
    return (await this.r.scDetach(...args)) === 1;
  }

  /** Takes over a lease with its resume secret hash; returns the lease, or undefined when gone or wrong. */
  async resume(stream: string, resumeHash: string, fresh: Pick<LeaseValue, 'node' | 'session' | 'engine' | 'donor' | 'resume'>): Promise<LeaseValue | undefined> {
    const target = await this.targetOfStream(stream);
    if (target === undefined) return undefined;
    const k = this.keys(target);
    const raw = (await this.r.scResume(k.lease, k.expiry, stream, resumeHash, JSON.stringify(fresh), this.ttlMs)) as string | null;
    return raw ? (JSON.parse(raw) as LeaseValue) : undefined;
  }

  /** The current (live) lease of a stream. */
  async get(stream: string): Promise<LeaseValue | undefined> {
    const target = await this.targetOfStream(stream);
    if (target === undefined) return undefined;
    const k = this.keys(target);
    const raw = (await this.r.scGet(k.lease, k.expiry, stream)) as string | null;
    return raw ? (JSON.parse(raw) as LeaseValue) : undefined;
  }

  /**
   * Claims streams to return to the pool, up to `limit` per target, over every target in the
   * `targets` set (targets in parallel, each script in its own slot): expired leases, and
   * earlier claims not settled in time (a sweeper that died before putting them back). The
   * caller re-reads the streams, enqueues those still `ok`, then calls {@link settle}; until
   * then each claim keeps its streams in the target's returning set. Drops the targets it
   * finds empty ({@link pruneTarget}).
   */
  async sweep(limit = 1000): Promise<SweepClaim[]> {
    const targets = await this.r.smembers(targetsKey(this.prefix));
    const out: SweepClaim[] = [];
    for (let i = 0; i < targets.length; i += 100) {
      const res = await Promise.all(targets.slice(i, i + 100).map(async (target) => {
        const k = this.keys(target);
        const [empty, deadline, ...streams] = (await this.r.scSweep(k.lease, k.expiry, k.ready, k.active, k.returning, limit, this.returnMs)) as [number, number, ...string[]];
        // Only an emptied target costs more round trips. Streams just claimed go back
        // through enqueue, which re-adds the target if it was dropped meanwhile.
        if (empty === 1) await this.pruneTarget(target);
        return { target, deadline, streams };
      }));
      for (const c of res) if (c.streams.length > 0) out.push(c);
    }
    return out;
  }

  /** Ends sweep claims whose streams are back in the pool (or were found stopped or deleted). */
  async settle(claims: SweepClaim[]): Promise<void> {
    await Promise.all(claims.map((c) => this.r.scSettle(this.keys(c.target).returning, c.deadline, ...c.streams)));
  }

  /**
   * Drops a target from the sweep's `targets` set once there is nothing the sweep could ever
   * claim for it: its ready, lease, expiry and returning keys are all gone (Redis deletes an
   * emptied ZSET or HASH). Called on target delete and by every sweep; returns whether it was dropped.
   *
   * Why this rule and not "the target no longer exists in MongoDB": a deleted target can
   * still have leases held by sessions of its deleted streams; dropping it early would leave
   * their expired entries in Redis forever. Emptiness is the only safe test, and it is
   * enough: a lease only ever comes from a ready entry, and ready entries only from
   * {@link enqueue}, which adds the target back AFTER writing its queue entries. SREM and
   * the check run in different slots on Redis Cluster, so instead of one atomic script the
   * check is repeated after the SREM and the target re-added if something appeared: an
   * enqueue whose SADD came before our SREM wrote its entries before our second check and
   * is seen by it; one whose SADD came after our SREM re-added the target itself.
   */
  async pruneTarget(target: string): Promise<boolean> {
    const k = this.keys(target);
    const set = `${this.prefix}targets`;
    if ((await this.r.exists(k.ready, k.lease, k.expiry, k.returning)) > 0) return false;
    await this.r.srem(set, target);
    if ((await this.r.exists(k.ready, k.lease, k.expiry, k.returning)) === 0) return true;
    await this.r.sadd(set, target);
    return false;
  }

  /**
   * Adds streams to their ready sets unless leased or queued already (recording the manifests given of those it adds); returns how
   * many were added. A stream {@link withdraw}n lately is left out: the items come from a read
   * of the store that its stop or deletion may have overtaken. Unless `reinstate`: the enqueue
   * of a start, which clears the stream's mark, and the withdrawn flag of a lease holding it.
   */
  async enqueue(items: Array<{ target: string; frames: number; member: string; manifest?: StreamManifest }>, reinstate = false): Promise<number> {
    if (items.length === 0) return 0;
    const byTarget = new Map<string, typeof items>();
    const writes: Array<Promise<unknown>> = [];
    for (const it of items) {
      groupPush(byTarget, it.target, it);
      const stream = it.member.slice(14);
      this.remember(stream, it.target);
      // Before the queue entry: whoever pops the stream must be able to find its target.
      writes.push(this.r.set(`${this.prefix}st:${stream}`, it.target));
    }
    await Promise.all(writes);
    const calls: Array<Promise<unknown>> = [];
    for (const [target, list] of byTarget) {
      const k = this.keys(target);
      for (let i = 0; i < list.length; i += BATCH) {
        const args: Array<string | number> = [k.ready, k.lease, k.expiry, k.manifest, k.withdrawn, reinstate ? '1' : '0'];
        for (const it of list.slice(i, i + BATCH)) args.push(it.frames, it.member, it.manifest ? encodeManifest(it.manifest) : '');
        calls.push(this.r.scEnqueue(...args));
      }
    }
    let added = 0;
    for (const n of await Promise.all(calls)) added += n as number;
    // After the queue entries, never before: pruneTarget relies on this order (see there).
    await this.r.sadd(`${this.prefix}targets`, ...byTarget.keys());
    return added;
  }

  /**
   * Takes a stream out of its target's ready set (stopped, deleted, a creation undone) and
   * keeps it out: an {@link enqueue} working from an earlier read of the store (the pool's
   * rebuild or return of expired leases, the janitor) leaves it out for `withdrawnMs`, and the
   * lease that holds it, if any, is flagged so that its session's requeue at its end, however
   * late, leaves it out too. Only an enqueue that reinstates it (a start) undoes both, and
   * flags the lease so that its session, told of the stop, puts it back (`'if_started'`).
   */
  withdraw(target: string, member: string, why: Withdrawal): Promise<void> {
    return this.runWithdraw(target, member, member.slice(14), why);
  }

  /** {@link withdraw} of a stream a session of this process holds (its lease names its queue entry): a stream that failed. */
  async withdrawHeld(stream: string, why: Withdrawal): Promise<void> {
    const target = await this.targetOfStream(stream);
    if (target !== undefined) await this.runWithdraw(target, '', stream, why);
  }

  /** The WITHDRAW script; `member` '' for the live lease's. */
  private async runWithdraw(target: string, member: string, stream: string, why: Withdrawal): Promise<void> {
    const k = this.keys(target);
    await this.r.scWithdraw(k.ready, k.withdrawn, k.lease, k.expiry, member, stream, this.withdrawnMs, why);
  }

  /** Clears a stream's withdrawal mark: assigned while marked ({@link Assigned.marked}), MongoDB says it is `ok`. */
  async unmark(target: string, stream: string): Promise<void> {
    await this.r.zrem(this.keys(target).withdrawn, stream);
  }

  /** Ready-set size of a target. */
  async readyCount(target: string): Promise<number> {
    return this.r.zcard(this.keys(target).ready);
  }

  /** Marker set after a rebuild; its absence means Redis lost its data. */
  async rebuiltMarker(): Promise<boolean> {
    return (await this.r.exists(`${this.prefix}pool:built`)) === 1;
  }

  /** Sets the rebuild marker. */
  async markRebuilt(): Promise<void> {
    await this.r.set(`${this.prefix}pool:built`, new Date().toISOString());
  }
}
