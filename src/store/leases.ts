/**
 * Ready queues and leases in Redis — the only shared state the assignment path touches.
 *
 * - `ready:<target>`: ZSET of streams that are `ok` and held by nobody; score = committed
 *   frames, member = `<createdAt ms, 13 digits>|<stream id>`, so ZPOPMIN yields the stream
 *   with the fewest frames, oldest first on ties (PROTOCOL §2 "Assignment").
 * - `lease:<stream>`: who holds a stream (JSON), with a TTL renewed in batches.
 * - `leases`: ZSET stream → lease expiry (ms), so expired leases (a dead node, a core that
 *   did not resume) can be found and their streams returned to the pool.
 *
 * Every change that must be atomic is one Lua script. In Redis Cluster, give
 * `redis.keyPrefix` a hash tag (e.g. `{sc}:`) so all these keys share a slot.
 * Redis holds nothing that MongoDB cannot rebuild: {@link Leases.rebuild} refills the queues.
 */
import type { RedisClient } from './redis';

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
}

/** A candidate target for one assignment, with the weights of the two-level choice. */
export interface Candidate {
  manager: string;
  managerWeight: number;
  target: string;
  targetWeight: number;
}

// Two-level weighted choice among candidate targets whose ready set is not empty, then
// ZPOPMIN and the lease, atomically. ARGV: prefix, leaseValueTemplate (JSON without stream,
// target, member), ttlMs, nowMs, r1, r2, then 4 per candidate: manager, mweight, target, tweight.
const ASSIGN = `
local prefix = ARGV[1]
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local r1 = tonumber(ARGV[5])
local r2 = tonumber(ARGV[6])
local managers = {}
local order = {}
for i = 7, #ARGV, 4 do
  local t = ARGV[i + 2]
  if redis.call('ZCARD', prefix .. 'ready:' .. t) > 0 then
    local m = ARGV[i]
    if not managers[m] then
      managers[m] = { weight = tonumber(ARGV[i + 1]), targets = {}, total = 0 }
      table.insert(order, m)
    end
    local w = tonumber(ARGV[i + 3])
    table.insert(managers[m].targets, { id = t, weight = w })
    managers[m].total = managers[m].total + w
  end
end
if #order == 0 then return nil end
local mtotal = 0
for _, m in ipairs(order) do mtotal = mtotal + managers[m].weight end
local pick = r1 * mtotal
local chosen = order[#order]
for _, m in ipairs(order) do
  pick = pick - managers[m].weight
  if pick < 0 then chosen = m break end
end
local ts = managers[chosen].targets
local tpick = r2 * managers[chosen].total
local target = ts[#ts].id
for _, t in ipairs(ts) do
  tpick = tpick - t.weight
  if tpick < 0 then target = t.id break end
end
local key = prefix .. 'ready:' .. target
while true do
  local popped = redis.call('ZPOPMIN', key)
  if #popped == 0 then return nil end
  local member = popped[1]
  local stream = string.sub(member, 15)
  local value = cjson.decode(ARGV[2])
  value.stream = stream
  value.target = target
  value.member = member
  if redis.call('SET', prefix .. 'lease:' .. stream, cjson.encode(value), 'PX', ttl, 'NX') then
    redis.call('ZADD', prefix .. 'leases', now + ttl, stream)
    return { target, stream, popped[2], redis.call('HGET', prefix .. 'manifest', stream) or '' }
  end
end
`;

// Releases a lease held by `session` and (when requested) puts the stream back in its ready
// set with its current frame count. ARGV: prefix, stream, session, requeue (0/1), frames.
const RELEASE = `
local prefix = ARGV[1]
local lkey = prefix .. 'lease:' .. ARGV[2]
local raw = redis.call('GET', lkey)
if not raw then return 0 end
local lease = cjson.decode(raw)
if lease.session ~= ARGV[3] then return 0 end
redis.call('DEL', lkey)
redis.call('ZREM', prefix .. 'leases', ARGV[2])
if ARGV[4] == '1' then
  redis.call('ZADD', prefix .. 'ready:' .. lease.target, tonumber(ARGV[5]), lease.member)
end
return 1
`;

// Renews the leases of one process's sessions; returns the streams whose lease is gone or
// held by someone else. ARGV: prefix, ttlMs, nowMs, then pairs stream, session.
const RENEW = `
local prefix = ARGV[1]
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 2 do
  local lkey = prefix .. 'lease:' .. ARGV[i]
  local raw = redis.call('GET', lkey)
  local ok = false
  if raw then
    local lease = cjson.decode(raw)
    if lease.session == ARGV[i + 1] and not lease.detached then
      redis.call('PEXPIRE', lkey, ttl)
      redis.call('ZADD', prefix .. 'leases', now + ttl, ARGV[i])
      ok = true
    end
  end
  if not ok then table.insert(lost, ARGV[i]) end
end
return lost
`;

// Detaches a lease from its closed socket and keeps it for the resume grace period.
// ARGV: prefix, stream, session, graceMs, nowMs.
const DETACH = `
local prefix = ARGV[1]
local lkey = prefix .. 'lease:' .. ARGV[2]
local raw = redis.call('GET', lkey)
if not raw then return 0 end
local lease = cjson.decode(raw)
if lease.session ~= ARGV[3] then return 0 end
lease.detached = true
redis.call('SET', lkey, cjson.encode(lease), 'PX', tonumber(ARGV[4]))
redis.call('ZADD', prefix .. 'leases', tonumber(ARGV[5]) + tonumber(ARGV[4]), ARGV[2])
return 1
`;

// Takes over a detached (or same-node stale) lease with a resume secret hash.
// ARGV: prefix, stream, resumeHash, newLeaseJSONFields (node, session, engine, donor), ttlMs, nowMs.
const RESUME = `
local prefix = ARGV[1]
local lkey = prefix .. 'lease:' .. ARGV[2]
local raw = redis.call('GET', lkey)
if not raw then return nil end
local lease = cjson.decode(raw)
if lease.resume ~= ARGV[3] then return nil end
local fresh = cjson.decode(ARGV[4])
lease.node = fresh.node
lease.session = fresh.session
lease.engine = fresh.engine
lease.donor = fresh.donor
lease.resume = fresh.resume
lease.detached = nil
redis.call('SET', lkey, cjson.encode(lease), 'PX', tonumber(ARGV[5]))
redis.call('ZADD', prefix .. 'leases', tonumber(ARGV[6]) + tonumber(ARGV[5]), ARGV[2])
return cjson.encode(lease)
`;

// Claims expired entries of the leases ZSET whose lease key is gone; returns their stream ids.
// ARGV: prefix, nowMs, limit.
const SWEEP = `
local prefix = ARGV[1]
local expired = redis.call('ZRANGEBYSCORE', prefix .. 'leases', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local gone = {}
for _, s in ipairs(expired) do
  if redis.call('EXISTS', prefix .. 'lease:' .. s) == 0 then
    redis.call('ZREM', prefix .. 'leases', s)
    table.insert(gone, s)
  end
end
return gone
`;

// Adds streams to ready sets unless leased, and records their manifests (when given).
// ARGV: prefix, then quadruples target, score, member, manifest ('' for none).
const ENQUEUE = `
local prefix = ARGV[1]
local added = 0
for i = 2, #ARGV, 4 do
  local member = ARGV[i + 2]
  local stream = string.sub(member, 15)
  if ARGV[i + 3] ~= '' then redis.call('HSET', prefix .. 'manifest', stream, ARGV[i + 3]) end
  if redis.call('EXISTS', prefix .. 'lease:' .. stream) == 0 then
    added = added + redis.call('ZADD', prefix .. 'ready:' .. ARGV[i], tonumber(ARGV[i + 1]), member)
  end
end
return added
`;

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
  lastPartitionId?: string;
}

/**
 * Encodes a manifest: `frames|seed|lastPartitionId`, then `|name/name…` when seed names are
 * known and there are any (file names never contain `|` or `/`).
 */
export function encodeManifest(m: StreamManifest): string {
  const base = `${m.frames}|${m.seed ? 1 : 0}|${m.lastPartitionId ?? ''}`;
  return m.seed && m.seedFiles && m.seedFiles.length > 0 ? `${base}|${m.seedFiles.join('/')}` : base;
}

/** Decodes a manifest; undefined for an empty or malformed one. */
export function decodeManifest(raw: string): StreamManifest | undefined {
  const [frames, seed, last, names, extra] = raw.split('|');
  const n = Number(frames);
  if (!raw || last === undefined || extra !== undefined || !Number.isInteger(n) || n < 0 || (seed !== '0' && seed !== '1')) return undefined;
  // A seedless manifest names no files; a seeded one names them, or predates names (undefined).
  const seedFiles = seed === '0' ? [] : names ? names.split('/') : undefined;
  return { frames: n, seed: seed === '1', ...(seedFiles ? { seedFiles } : {}), ...(last ? { lastPartitionId: last } : {}) };
}

/** A leased stream as the assign script returns it. */
export interface Assigned {
  target: string;
  stream: string;
  /** The ready-set score: committed frames when the stream was queued. */
  frames: number;
  manifest?: StreamManifest;
}

/** The ready-set member of a stream: creation time (13-digit ms) then id. */
export function readyMember(createdAt: Date, streamId: string): string {
  return `${String(createdAt.getTime()).padStart(13, '0')}|${streamId}`;
}

type Scripted = RedisClient & Record<string, (...args: Array<string | number>) => Promise<unknown>>;

/** Ready queues and leases. */
export class Leases {
  private readonly r: Scripted;

  /**
   * @param prefix redis.keyPrefix
   * @param ttlMs lease lifetime without renewal
   */
  constructor(redis: RedisClient, private readonly prefix: string, readonly ttlMs: number) {
    const scripts = { scAssign: ASSIGN, scRelease: RELEASE, scRenew: RENEW, scDetach: DETACH, scResume: RESUME, scSweep: SWEEP, scEnqueue: ENQUEUE };
    for (const [name, lua] of Object.entries(scripts)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 0, lua });
    }
    this.r = redis as Scripted;
  }

  /**
   * Picks a stream by the two-level weighted choice among the candidates and leases it.
   * Returns undefined when no candidate has a ready stream.
   */
  async assign(candidates: Candidate[], lease: Omit<LeaseValue, 'stream' | 'target' | 'member'>): Promise<Assigned | undefined> {
    if (candidates.length === 0) return undefined;
    const args: Array<string | number> = [this.prefix, JSON.stringify(lease), this.ttlMs, Date.now(), Math.random(), Math.random()];
    for (const c of candidates) args.push(c.manager, c.managerWeight, c.target, c.targetWeight);
    const res = (await this.r.scAssign(...args)) as [string, string, string, string] | null;
    if (!res) return undefined;
    const manifest = decodeManifest(res[3]);
    return { target: res[0], stream: res[1], frames: Number(res[2]), ...(manifest ? { manifest } : {}) };
  }

  /** Records a stream's manifest (after a commit). */
  async setManifest(stream: string, m: StreamManifest): Promise<void> {
    await this.r.hset(`${this.prefix}manifest`, stream, encodeManifest(m));
  }

  /** Forgets a stream's manifest (deleted streams). */
  async forgetManifest(stream: string): Promise<void> {
    await this.r.hdel(`${this.prefix}manifest`, stream);
  }

  /** Releases a lease this session holds; `requeue` puts the stream back with `frames` as its score. */
  async release(stream: string, session: string, requeue: boolean, frames: number): Promise<boolean> {
    return (await this.r.scRelease(this.prefix, stream, session, requeue ? 1 : 0, frames)) === 1;
  }

  /** Renews many leases in one round trip per 500; returns the streams whose lease was lost. */
  async renew(held: Array<{ stream: string; session: string }>): Promise<string[]> {
    const lost: string[] = [];
    for (let i = 0; i < held.length; i += 500) {
      const args: Array<string | number> = [this.prefix, this.ttlMs, Date.now()];
      for (const h of held.slice(i, i + 500)) args.push(h.stream, h.session);
      lost.push(...((await this.r.scRenew(...args)) as string[]));
    }
    return lost;
  }

  /** Keeps a closed socket's lease for `graceMs` so the core can resume. */
  async detach(stream: string, session: string, graceMs: number): Promise<boolean> {
    return (await this.r.scDetach(this.prefix, stream, session, graceMs, Date.now())) === 1;
  }

  /** Takes over a lease with its resume secret hash; returns the lease, or undefined when gone or wrong. */
  async resume(stream: string, resumeHash: string, fresh: Pick<LeaseValue, 'node' | 'session' | 'engine' | 'donor' | 'resume'>): Promise<LeaseValue | undefined> {
    const raw = (await this.r.scResume(this.prefix, stream, resumeHash, JSON.stringify(fresh), this.ttlMs, Date.now())) as string | null;
    return raw ? (JSON.parse(raw) as LeaseValue) : undefined;
  }

  /** The current lease of a stream. */
  async get(stream: string): Promise<LeaseValue | undefined> {
    const raw = await this.r.get(`${this.prefix}lease:${stream}`);
    return raw ? (JSON.parse(raw) as LeaseValue) : undefined;
  }

  /** Claims up to `limit` expired leases; the caller returns their streams to the pool. */
  async sweep(limit = 1000): Promise<string[]> {
    return (await this.r.scSweep(this.prefix, Date.now(), limit)) as string[];
  }

  /** Adds streams to their ready sets unless leased (recording manifests given); returns how many were added. */
  async enqueue(items: Array<{ target: string; frames: number; member: string; manifest?: StreamManifest }>): Promise<number> {
    let added = 0;
    for (let i = 0; i < items.length; i += 500) {
      const args: Array<string | number> = [this.prefix];
      for (const it of items.slice(i, i + 500)) args.push(it.target, it.frames, it.member, it.manifest ? encodeManifest(it.manifest) : '');
      added += (await this.r.scEnqueue(...args)) as number;
    }
    return added;
  }

  /** Removes a stream from its target's ready set (stopped, failed, deleted). */
  async dequeue(target: string, member: string): Promise<void> {
    await this.r.zrem(`${this.prefix}ready:${target}`, member);
  }

  /** Ready-set size of a target. */
  async readyCount(target: string): Promise<number> {
    return this.r.zcard(`${this.prefix}ready:${target}`);
  }

  /** Marker set after a rebuild; its absence means Redis lost its data. */
  async rebuiltMarker(): Promise<boolean> {
    return (await this.r.exists(`${this.prefix}ready:built`)) === 1;
  }

  /** Sets the rebuild marker. */
  async markRebuilt(): Promise<void> {
    await this.r.set(`${this.prefix}ready:built`, new Date().toISOString());
  }
}
