/**
 * The Lua scripts behind {@link Leases} (see leases.ts for the key layout). Each script
 * touches the keys of ONE target only, all declared in KEYS and sharing the target's hash
 * tag, so on Redis Cluster it runs on the one master that owns that slot.
 *
 * A lease is live while its stream has a field in the target's lease hash AND an expiry in
 * the target's expiry ZSET later than Redis's clock (`TIME`, so nodes with skewed clocks
 * agree). Expired entries linger until a sweep claims them; every script treats them as gone.
 */

// Shared prelude: Redis time in ms and the live-lease test. KEYS[lk] = lease hash, KEYS[ek] = expiry ZSET.
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live(lk, ek, stream)
  local exp = redis.call('ZSCORE', ek, stream)
  if not exp or tonumber(exp) <= now then return nil end
  return redis.call('HGET', lk, stream)
end
local function withdrawn(wk, stream)
  local ends = redis.call('ZSCORE', wk, stream)
  return ends and tonumber(ends) > now
end
`;

/**
 * Pops the target's ready stream with the fewest frames (oldest on ties) that nobody holds
 * and leases it; with an active template, also records the stream in the target's live view
 * (so an assignment is one round trip). A popped stream that is marked withdrawn (only a node
 * of an earlier release, which knows no marks, can have queued it) comes without its manifest
 * and flagged, so the caller reads it from MongoDB and clears the mark only if it is `ok`.
 * KEYS: ready, lease, expiry, manifest, active, withdrawn. ARGV:
 * lease template (JSON without stream, target, member), ttl ms, target id, active template
 * (JSON without stream_id, target_id, frames, buffered_frames; '' for none).
 * Returns {stream, score, manifest or '', marked 0/1} or nil.
 */
export const ASSIGN = `${PRELUDE}
local ttl = tonumber(ARGV[2])
while true do
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then return nil end
  local member = popped[1]
  local stream = string.sub(member, 15)
  if not live(KEYS[2], KEYS[3], stream) then
    local value = cjson.decode(ARGV[1])
    value.stream = stream
    value.target = ARGV[3]
    value.member = member
    redis.call('HSET', KEYS[2], stream, cjson.encode(value))
    redis.call('ZADD', KEYS[3], now + ttl, stream)
    if ARGV[4] ~= '' then
      local active = cjson.decode(ARGV[4])
      active.stream_id = stream
      active.target_id = ARGV[3]
      active.frames = tonumber(popped[2])
      active.buffered_frames = 0
      redis.call('HSET', KEYS[5], stream, cjson.encode(active))
    end
    if withdrawn(KEYS[6], stream) then return { stream, popped[2], '', 1 } end
    return { stream, popped[2], redis.call('HGET', KEYS[4], stream) or '', 0 }
  end
end
`;

/**
 * Releases a lease held by a session and (when asked) puts the stream back in the ready set.
 * KEYS: ready, lease, expiry. ARGV: stream, session, requeue, frames. A lease flagged
 * `reinstated` (its stream stopped and started again while held: WITHDRAW, ENQUEUE) always
 * goes back: whatever its session was told, the start came last. Otherwise requeue '0':
 * never; '1': unless the lease was withdrawn (the stream stopped or deleted while held); '2'
 * (a session told its stream was stopped): never when withdrawn; when the lease carries no
 * flag at all (the stop was not this lease's: made through a node of an earlier release, or
 * one that reached a later lease of the stream), the lease is kept, flagged `asking` (a start
 * meanwhile reinstates it as it would a withdrawn one), and 2 returned, so that the caller
 * asks MongoDB and releases again with '1' or '0'. Returns 0 when the lease was
 * not this session's, else 1 (or 2).
 */
export const RELEASE = `${PRELUDE}
local raw = live(KEYS[2], KEYS[3], ARGV[1])
if not raw then return 0 end
local lease = cjson.decode(raw)
if lease.session ~= ARGV[2] then return 0 end
if ARGV[3] == '2' and not lease.withdrawn and not lease.reinstated then
  lease.asking = true
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(lease))
  return 2
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if lease.reinstated or (ARGV[3] == '1' and not lease.withdrawn) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[4]), lease.member)
end
return 1
`;

/**
 * Renews leases of one target and records the last progress of those that moved (a commit
 * that moved the count; the assignment's start is in the lease from ASSIGN), so that a resume
 * from another socket while the holder's is still open (no detach wrote it) keeps the
 * core.maxIdleAssignmentS clock. Returns {lost, withdrawn}: the streams whose lease is gone,
 * detached or held by another session (their progress is left alone: a detach writes its
 * own), and pairs stream, 'stopped'|'deleted' of leases renewed but withdrawn (WITHDRAW), so
 * that a holder the bus's stop did not reach is stopped all the same. KEYS: lease, expiry.
 * ARGV: ttl ms, then triples stream, session, progress epoch ms ('' when it did not move: the
 * lease is not rewritten).
 */
export const RENEW = `${PRELUDE}
local ttl = tonumber(ARGV[1])
local lost = {}
local gone = {}
for i = 2, #ARGV, 3 do
  local raw = live(KEYS[1], KEYS[2], ARGV[i])
  local ok = false
  if raw then
    local lease = cjson.decode(raw)
    if lease.session == ARGV[i + 1] and not lease.detached then
      redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
      if ARGV[i + 2] ~= '' then
        lease.progress = tonumber(ARGV[i + 2])
        redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(lease))
      end
      if lease.withdrawn then
        table.insert(gone, ARGV[i])
        table.insert(gone, lease.withdrawn)
      end
      ok = true
    end
  end
  if not ok then table.insert(lost, ARGV[i]) end
end
return { lost, gone }
`;

/**
 * Detaches a lease from its closed socket and keeps it for the resume grace period.
 * KEYS: lease, expiry. ARGV: stream, session, grace ms, and optionally the epoch ms of the
 * assignment's last progress (kept for the resume, so a reconnect does not restart the
 * core.maxIdleAssignmentS clock). Returns 1 or 0.
 */
export const DETACH = `${PRELUDE}
local raw = live(KEYS[1], KEYS[2], ARGV[1])
if not raw then return 0 end
local lease = cjson.decode(raw)
if lease.session ~= ARGV[2] then return 0 end
lease.detached = true
if ARGV[4] then lease.progress = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(lease))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
`;

/**
 * Takes over a lease with its resume secret hash. KEYS: lease, expiry. ARGV: stream,
 * resume hash, new holder (JSON: node, session, engine, donor, resume), ttl ms.
 * Returns the new lease JSON (with `held` when it was still attached to a socket) or nil.
 */
export const RESUME = `${PRELUDE}
local raw = live(KEYS[1], KEYS[2], ARGV[1])
if not raw then return nil end
local lease = cjson.decode(raw)
if lease.resume ~= ARGV[2] then return nil end
local fresh = cjson.decode(ARGV[3])
lease.node = fresh.node
lease.session = fresh.session
lease.engine = fresh.engine
lease.donor = fresh.donor
lease.resume = fresh.resume
local held = not lease.detached
lease.detached = nil
local out = cjson.encode(lease)
redis.call('HSET', KEYS[1], ARGV[1], out)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
if held then
  lease.held = true
  return cjson.encode(lease)
end
return out
`;

/** The live lease of a stream or nil. KEYS: lease, expiry. ARGV: stream. */
export const GET = `${PRELUDE}
return live(KEYS[1], KEYS[2], ARGV[1])
`;

/**
 * Claims up to ARGV[1] streams of one target for the sweeper to return to the pool: first
 * claims of earlier sweeps that were never settled (their sweeper died, or its store read
 * outlasted the claim), then expired leases, whose lease and live-view records go. Each
 * claimed stream is recorded in the returning ZSET until ARGV[2] ms from now, so a sweeper
 * that dies before putting its streams back leaves them for a later sweep instead of
 * stranding them neither leased nor ready. KEYS: lease, expiry, ready, active, returning.
 * Returns {empty, deadline, stream ids...}: deadline is the claim's (for SETTLE); empty is 1
 * when afterwards the target has no lease, expiry, ready or returning key left (a hint for
 * Leases.pruneTarget, which checks again), else 0.
 */
export const SWEEP = `${PRELUDE}
local limit = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local claimed = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, limit)
if #claimed < limit then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit - #claimed)
  for _, s in ipairs(expired) do
    redis.call('HDEL', KEYS[1], s)
    redis.call('ZREM', KEYS[2], s)
    redis.call('HDEL', KEYS[4], s)
    table.insert(claimed, s)
  end
end
for _, s in ipairs(claimed) do redis.call('ZADD', KEYS[5], deadline, s) end
local empty = 0
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[5]) == 0 then empty = 1 end
table.insert(claimed, 1, deadline)
table.insert(claimed, 1, empty)
return claimed
`;

/**
 * Settles a sweep's claim once its streams are back in the pool (or found stopped or
 * deleted): drops them from the returning ZSET unless a later sweep has claimed them again
 * since (their deadline changed). KEYS: returning. ARGV: deadline, stream ids...
 */
export const SETTLE = `
for i = 2, #ARGV do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]) or -1) == tonumber(ARGV[1]) then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 0
`;

/**
 * Adds streams of one target to its ready set unless leased, withdrawn or there already,
 * recording the manifests given of those it adds: a queued stream's entry and manifest were
 * written when it was released or queued, and a leased stream's are its holder's to write, so
 * a read made before that would put older ones back (a lower score, a stale fence). KEYS: ready, lease, expiry, manifest, withdrawn. ARGV: '1' to reinstate (the stream
 * was just started: its withdrawal mark goes, and a withdrawn lease that holds it is flagged
 * `reinstated` instead, so that its session, told of the stop, puts it back when it ends) or '0' (a read of the store that a stop or
 * deletion may have overtaken: a marked stream is left out, manifest included), then triples
 * score, member, manifest ('' for none). Returns how many were added.
 */
export const ENQUEUE = `${PRELUDE}
local reinstate = ARGV[1] == '1'
local added = 0
for i = 2, #ARGV, 3 do
  local member = ARGV[i + 1]
  local stream = string.sub(member, 15)
  if reinstate then
    redis.call('ZREM', KEYS[5], stream)
    local raw = live(KEYS[2], KEYS[3], stream)
    if raw then
      local lease = cjson.decode(raw)
      if lease.withdrawn or lease.asking then
        lease.withdrawn = nil
        lease.reinstated = true
        redis.call('HSET', KEYS[2], stream, cjson.encode(lease))
      end
    end
  end
  if not withdrawn(KEYS[5], stream) and not live(KEYS[2], KEYS[3], stream) and redis.call('ZADD', KEYS[1], 'NX', tonumber(ARGV[i]), member) == 1 then
    if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[4], stream, ARGV[i + 2]) end
    added = added + 1
  end
end
return added
`;

/**
 * Takes a stream out of its target's ready set (stopped, failed, deleted, a creation undone) and
 * marks it withdrawn for ARGV[3] ms, so that an enqueue working from an earlier read of the
 * store (the pool's, the janitor's) cannot put it back meanwhile; a lease that holds it is
 * flagged `withdrawn` with ARGV[4] ('stopped' or 'deleted'), so that the session's requeue at
 * its end, however late, does not either, and the renewal stops a holder the bus's stop did
 * not reach (RENEW). KEYS: ready, withdrawn, lease, expiry. ARGV: member ('' for the live
 * lease's), stream, mark lifetime ms, why. The marks of a target are one ZSET (stream → end of its mark) that drops
 * ended marks here and expires whole when its last mark ends.
 */
export const WITHDRAW = `${PRELUDE}
local raw = live(KEYS[3], KEYS[4], ARGV[2])
local lease = raw and cjson.decode(raw)
local member = ARGV[1]
if member == '' and lease then member = lease.member end
if member ~= '' then redis.call('ZREM', KEYS[1], member) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
if lease then
  lease.withdrawn = ARGV[4]
  lease.reinstated = nil
  redis.call('HSET', KEYS[3], ARGV[2], cjson.encode(lease))
end
return 1
`;
