/**
 * Shared live state in Redis, read by the admin API: which streams are active (filled by
 * the core sessions) and which coordinator processes are alive with their session counts.
 * Everything here can be rebuilt: a flushed Redis only empties these views until the next
 * heartbeat (nodes) or the next assignment (active streams).
 */
import os from 'node:os';
import { STORE_SCHEMA } from '../model';
import { VERSION } from '../version';
import { withTimeout } from './outage';
import type { RedisClient } from './redis';
import { targetKeys, targetsKey } from './target-keys';
import { SharedAnswer } from './shared-answer';
import { TurnBatch } from './turn-batch';

/** One active stream, as core sessions record it. */
export interface ActiveStream {
  stream_id: string;
  target_id: string;
  owner: string;
  engine: string;
  donor?: string;
  node: string;
  started_at: string;
  buffered_frames: number;
  frames: number;
}

/** One live coordinator process. */
export interface NodeInfo {
  node: string;
  host: string;
  pid: number;
  worker: number;
  url: string;
  started_at: string;
  seen_at: string;
  sessions: number;
  sessions_by_engine: Record<string, number>;
  /** The process's release (absent: a release before it was reported). */
  version?: string;
  /** The store shapes it reads and writes ({@link STORE_SCHEMA}; absent: 1). */
  store_schema?: number;
}

function groupBy<T>(items: Iterable<T>, key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = out.get(k);
    if (list) list.push(it);
    else out.set(k, [it]);
  }
  return out;
}

/** Targets whose active hashes one `allActive` reads at a time. */
const READ_BATCH = 100;

/**
 * Reader and writer of the live views.
 *
 * The active view is one hash per target, `<prefix>{t:<target>}:active` (stream → record
 * JSON), in the target's Redis Cluster slot beside its queue and leases: the assign script
 * writes the record in the same call that leases the stream (lease-scripts.ts ASSIGN), so an
 * assignment costs one Redis round trip, and the sweep of an expired lease removes it.
 */
export class LiveState {
  private readonly nodesKey: string;
  private timer: NodeJS.Timeout | undefined;
  /**
   * Whether every live process reported {@link STORE_SCHEMA} or later at this process's last
   * heartbeat: false until the first one, and while an older release runs beside this one.
   */
  storeSchemaAgreed = false;
  /** The store schema of each live process seen so far: fixed for a process's life, so each registry entry is read once. */
  private readonly schemas = new Map<string, number>();
  /** Records waiting for the next batched HSET, by stream. */
  private readonly batch = new TurnBatch<ActiveStream>((records) => this.writeActive(records.values()));

  private readonly cores: SharedAnswer<Record<string, number>>;
  private readonly allActiveShared: SharedAnswer<ActiveStream[]>;

  /**
   * @param heartbeatS seconds between node heartbeats; a node missing three is gone (server.nodeHeartbeatS)
   * @param coresCacheMs milliseconds {@link coresByEngine} reuses its answer (http.activeCoresCacheMs)
   * @param activeCacheMs milliseconds {@link sharedActive} reuses its answer (http.activeStreamsCacheMs)
   */
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly heartbeatS: number,
    coresCacheMs = 1000,
    activeCacheMs = 1000,
  ) {
    this.nodesKey = `${prefix}nodes`;
    this.cores = new SharedAnswer(coresCacheMs, () => this.sumCores());
    this.allActiveShared = new SharedAnswer(activeCacheMs, () => this.allActive());
  }

  /** The active-view hash of a target. */
  private activeKey(targetId: string): string {
    return targetKeys(this.prefix, targetId).active;
  }

  /** One HSET per target. */
  private async writeActive(records: Iterable<ActiveStream>): Promise<void> {
    await Promise.all(
      [...groupBy(records, (a) => a.target_id)].map(([target, list]) => this.redis.hset(this.activeKey(target), Object.fromEntries(list.map((a) => [a.stream_id, JSON.stringify(a)])))),
    );
  }

  /**
   * Records (or updates) an active stream. Records set in the same turn of the event loop
   * (a burst of commits) go out as one HSET per target; resolves once they are done.
   */
  setActive(a: ActiveStream): Promise<void> {
    return this.batch.put(a.stream_id, () => a);
  }

  /** Records many active streams, one command per target. */
  async setActiveMany(list: ActiveStream[]): Promise<void> {
    if (list.length === 0) return;
    await this.writeActive(list);
  }

  /** Removes a stream from the active view (also from a batch not yet sent). */
  async clearActive(streamId: string, targetId: string): Promise<void> {
    this.batch.delete(streamId);
    await this.redis.hdel(this.activeKey(targetId), streamId);
  }

  /** The active record of one stream of a target, or null. */
  async active(streamId: string, targetId: string): Promise<ActiveStream | null> {
    const v = await this.redis.hget(this.activeKey(targetId), streamId);
    return v ? (JSON.parse(v) as ActiveStream) : null;
  }

  /** The active records of several streams of one target (null where inactive), in order. */
  async activeMany(targetId: string, streamIds: string[]): Promise<Array<ActiveStream | null>> {
    if (streamIds.length === 0) return [];
    const values = await this.redis.hmget(this.activeKey(targetId), ...streamIds);
    return values.map((v) => (v ? (JSON.parse(v) as ActiveStream) : null));
  }

  /** The active streams of one target. */
  async activeOfTarget(targetId: string): Promise<ActiveStream[]> {
    const h = await this.redis.hgetall(this.activeKey(targetId));
    return Object.values(h).map((v) => JSON.parse(v) as ActiveStream);
  }

  /** Every active stream: the active hashes of every target the pool has seen. */
  async allActive(): Promise<ActiveStream[]> {
    const targets = await this.redis.smembers(targetsKey(this.prefix));
    const out: ActiveStream[] = [];
    for (let i = 0; i < targets.length; i += READ_BATCH) {
      for (const list of await Promise.all(targets.slice(i, i + READ_BATCH).map((t) => this.activeOfTarget(t)))) out.push(...list);
    }
    return out;
  }

  /** Processes that sent a heartbeat within three intervals. */
  async nodes(): Promise<NodeInfo[]> {
    return (await this.entries(await this.liveIds())).filter((n): n is NodeInfo => n !== undefined);
  }

  /** The registry entry of each of `ids`, in order; undefined where it has expired. */
  private async entries(ids: string[]): Promise<Array<NodeInfo | undefined>> {
    const values = await Promise.all(ids.map((id) => this.redis.get(this.nodeKey(id))));
    return values.map((v) => (v === null ? undefined : (JSON.parse(v) as NodeInfo)));
  }

  private nodeKey(id: string): string {
    return `${this.prefix}node:${id}`;
  }

  /** Ids of the processes that sent a heartbeat within three intervals (the others are dropped from the set). */
  private async liveIds(): Promise<string[]> {
    await this.redis.zremrangebyscore(this.nodesKey, '-inf', Date.now() - 3 * this.heartbeatS * 1000);
    return this.redis.zrange(this.nodesKey, '0', '-1');
  }

  /**
   * Whether every live process reads and writes {@link STORE_SCHEMA} or later. Reads the
   * registry entry of a process only the first time it is seen, so a heartbeat costs two
   * commands however many processes there are, not one per process.
   */
  private async schemasAgree(): Promise<boolean> {
    const ids = await this.liveIds();
    const live = new Set(ids);
    for (const id of this.schemas.keys()) if (!live.has(id)) this.schemas.delete(id);
    const unseen = ids.filter((id) => !this.schemas.has(id));
    const found = await this.entries(unseen);
    // An entry not there yet (or expired) is read again at the next heartbeat.
    unseen.forEach((id, i) => {
      const n = found[i];
      if (n) this.schemas.set(id, n.store_schema ?? 1);
    });
    for (const schema of this.schemas.values()) if (schema < STORE_SCHEMA) return false;
    return true;
  }

  /**
   * Open core sessions per engine, summed over live processes. Anyone may ask (GET
   * /v1/active-cores), and the sum reads every process's registry entry, so one answer (or
   * the read in flight) serves every request for `coresCacheMs`: a flood of anonymous
   * requests costs Redis a few commands per interval, not one per process per request.
   */
  coresByEngine(): Promise<Record<string, number>> {
    return this.cores.get();
  }

  /**
   * Every active stream ({@link allActive}), one read shared by all callers for
   * `activeCacheMs`: the read is one HGETALL per target in the pool, every record of every
   * open session, whoever asks and however few of them the caller may see.
   */
  sharedActive(): Promise<ActiveStream[]> {
    return this.allActiveShared.get();
  }

  private async sumCores(): Promise<Record<string, number>> {
    const total: Record<string, number> = {};
    for (const n of await this.nodes()) for (const [e, c] of Object.entries(n.sessions_by_engine)) total[e] = (total[e] ?? 0) + c;
    return total;
  }

  /**
   * Starts this process's heartbeat.
   * @param sessions current open sessions by engine
   */
  startHeartbeat(self: { node: string; worker: number; url: string }, sessions: () => Record<string, number>): void {
    const startedAt = new Date().toISOString();
    const beat = async (): Promise<void> => {
      const byEngine = sessions();
      const info: NodeInfo = {
        node: self.node,
        host: os.hostname(),
        pid: process.pid,
        worker: self.worker,
        url: self.url,
        started_at: startedAt,
        seen_at: new Date().toISOString(),
        sessions: Object.values(byEngine).reduce((a, b) => a + b, 0),
        sessions_by_engine: byEngine,
        version: VERSION,
        store_schema: STORE_SCHEMA,
      };
      await this.redis.set(this.nodeKey(self.node), JSON.stringify(info), 'EX', 3 * this.heartbeatS);
      await this.redis.zadd(this.nodesKey, String(Date.now()), self.node);
      this.storeSchemaAgreed = await this.schemasAgree();
    };
    const tick = (): void => {
      beat().catch(() => undefined); // Redis down: the node reappears with the next beat
    };
    tick();
    this.timer = setInterval(tick, this.heartbeatS * 1000);
    this.timer.unref();
  }

  /** Stops the heartbeat and removes this process from the registry. */
  async stopHeartbeat(node: string): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled([
      withTimeout(this.redis.zrem(this.nodesKey, node), 1000, 'redis'),
      withTimeout(this.redis.del(this.nodeKey(node)), 1000, 'redis'),
    ]);
  }
}
