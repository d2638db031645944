/**
 * Redis through ioredis, in one of three modes chosen by config: a URL, Sentinel, or
 * Cluster. ioredis reconnects on its own; while Redis is down commands fail fast and
 * /readyz says so. Redis holds only state that can be rebuilt from MongoDB.
 */
import fs from 'node:fs';
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import type { Settings } from '../config/settings';
import { withTimeout } from './outage';

/** A Redis client in any mode. */
export type RedisClient = Redis | Cluster;

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

/** Options shared by every connection: bounded retries so callers see an outage quickly. */
function baseOptions(settings: Settings): RedisOptions {
  const r = settings.redis;
  const tls = r.tlsCAFile ? { tls: { ca: fs.readFileSync(r.tlsCAFile) } } : {};
  return {
    connectTimeout: r.connectTimeoutMs,
    commandTimeout: r.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    // Reconnect forever, backing off to 2 s: an outage must not need a restart.
    retryStrategy: (times: number) => Math.min(times * 100, 2000),
    lazyConnect: false,
    // Many sessions lease, renew and publish at once: one write per turn, not one per command.
    enableAutoPipelining: r.autoPipelining,
    ...tls,
  };
}

/**
 * Creates a Redis client for the configured mode.
 * @param name connection name shown by CLIENT LIST (one process may hold several: commands, subscriber)
 */
export function createRedis(settings: Settings, name = 'stream-coordinator'): RedisClient {
  const r = settings.redis;
  const base = { ...baseOptions(settings), connectionName: name };
  if (r.cluster.length > 0) {
    // No auto-pipelining on a cluster: ioredis sends each auto-pipeline to a node as a whole
    // and, while slots move in a failover, hands the MOVED replies to the callers instead of
    // following them (measured in test/redis-cluster.test.ts). Plain commands are redirected.
    return new Cluster(r.cluster.map(hostPort), {
      redisOptions: { ...base, enableAutoPipelining: false, ...(r.password ? { password: r.password } : {}) },
      clusterRetryStrategy: (times: number) => Math.min(times * 100, 2000),
      enableAutoPipelining: false,
    });
  }
  if (r.sentinels.length > 0) {
    return new Redis({
      ...base,
      sentinels: r.sentinels.map(hostPort),
      name: r.sentinelName,
      ...(r.password ? { password: r.password, sentinelPassword: r.password } : {}),
    });
  }
  return new Redis(r.url, base);
}

/** Round trip to Redis; rejects when it does not answer within `timeoutMs`. */
export async function pingRedis(redis: RedisClient, timeoutMs: number): Promise<void> {
  await withTimeout(redis.ping(), timeoutMs, 'redis');
}
