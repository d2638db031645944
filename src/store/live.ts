/**
 * Shared live state in Redis, read by the admin API: which streams are active (filled by
 * the core sessions) and which coordinator processes are alive with their session counts.
 * Everything here can be rebuilt: a flushed Redis only empties these views until the next
 * heartbeat.
 */
import os from 'node:os';
import { withTimeout } from './mongo';
import type { RedisClient } from './redis';

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
}

/**
 * Hashes the active view is split into. Every assignment and stop writes it, so on Redis
 * Cluster one hash would put that traffic on one master; 16 keys spread it over the slots.
 */
const ACTIVE_BUCKETS = 16;

/** FNV-1a of the stream id, modulo the bucket count. */
function bucketOf(streamId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < streamId.length; i++) h = Math.imul(h ^ streamId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % ACTIVE_BUCKETS;
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

/** Reader and writer of the live views. */
export class LiveState {
  private readonly nodesKey: string;
  private timer: NodeJS.Timeout | undefined;
  /** Records waiting for the next batched HSET, by stream. */
  private pending = new Map<string, string>();
  private flushing: Promise<void> | undefined;

  /** @param heartbeatS seconds between node heartbeats; a node missing three is gone (server.nodeHeartbeatS) */
  constructor(private readonly redis: RedisClient, private readonly prefix: string, private readonly heartbeatS: number) {
    this.nodesKey = `${prefix}nodes`;
  }

  /** The active-view hash holding a stream (`<prefix>active:<0-15>`). */
  private activeKey(streamId: string): string {
    return `${this.prefix}active:${bucketOf(streamId)}`;
  }

  /** One HSET per bucket. */
  private async writeActive(entries: Array<[string, string]>): Promise<void> {
    await Promise.all([...groupBy(entries, ([id]) => this.activeKey(id))].map(([key, list]) => this.redis.hset(key, Object.fromEntries(list))));
  }

  /**
   * Records (or updates) an active stream. Records set in the same turn of the event loop
   * (a burst of assignments) go out as one HSET per bucket; resolves once they are done.
   */
  setActive(a: ActiveStream): Promise<void> {
    this.pending.set(a.stream_id, JSON.stringify(a));
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      const batch = this.pending;
      this.pending = new Map();
      this.flushing = undefined;
      if (batch.size > 0) await this.writeActive([...batch]);
    });
    return this.flushing;
  }

  /** Records many active streams, one command per bucket. */
  async setActiveMany(list: ActiveStream[]): Promise<void> {
    if (list.length === 0) return;
    await this.writeActive(list.map((a) => [a.stream_id, JSON.stringify(a)]));
  }

  /** Removes a stream from the active view (also from a batch not yet sent). */
  async clearActive(streamId: string): Promise<void> {
    this.pending.delete(streamId);
    await this.redis.hdel(this.activeKey(streamId), streamId);
  }

  /** The active record of one stream, or null. */
  async active(streamId: string): Promise<ActiveStream | null> {
    const v = await this.redis.hget(this.activeKey(streamId), streamId);
    return v ? (JSON.parse(v) as ActiveStream) : null;
  }

  /** The active records of several streams (null where inactive), in order. */
  async activeMany(streamIds: string[]): Promise<Array<ActiveStream | null>> {
    if (streamIds.length === 0) return [];
    const found = new Map<string, string>();
    await Promise.all(
      [...groupBy(new Set(streamIds), (id) => this.activeKey(id))].map(async ([key, ids]) => {
        const values = await this.redis.hmget(key, ...ids);
        ids.forEach((id, i) => {
          const v = values[i];
          if (v) found.set(id, v);
        });
      }),
    );
    return streamIds.map((id) => {
      const v = found.get(id);
      return v ? (JSON.parse(v) as ActiveStream) : null;
    });
  }

  /** Every active stream. */
  async allActive(): Promise<ActiveStream[]> {
    const all = await Promise.all(Array.from({ length: ACTIVE_BUCKETS }, (_, b) => this.redis.hgetall(`${this.prefix}active:${b}`)));
    return all.flatMap((h) => Object.values(h).map((v) => JSON.parse(v) as ActiveStream));
  }

  /** Processes that sent a heartbeat within three intervals. */
  async nodes(): Promise<NodeInfo[]> {
    const now = Date.now();
    await this.redis.zremrangebyscore(this.nodesKey, '-inf', now - 3 * this.heartbeatS * 1000);
    const ids = await this.redis.zrange(this.nodesKey, '0', '-1');
    const values = await Promise.all(ids.map((id) => this.redis.get(`${this.prefix}node:${id}`)));
    return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as NodeInfo);
  }

  /** Open core sessions per engine, summed over live processes. */
  async coresByEngine(): Promise<Record<string, number>> {
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
      };
      await this.redis.set(`${this.prefix}node:${self.node}`, JSON.stringify(info), 'EX', 3 * this.heartbeatS);
      await this.redis.zadd(this.nodesKey, String(Date.now()), self.node);
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
      withTimeout(this.redis.zrem(this.nodesKey, node), 1000, 'Redis'),
      withTimeout(this.redis.del(`${this.prefix}node:${node}`), 1000, 'Redis'),
    ]);
  }
}
