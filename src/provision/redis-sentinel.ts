/**
 * Redis with Sentinel on loopback for tests: one master, one replica and three sentinels
 * (quorum 2), all Debian's `redis-server` (sentinels with `--sentinel` and a config file of
 * their own, which Sentinel rewrites as it learns the topology). Short timeouts make a
 * killed master fail over in a few seconds.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { delay, freePort, spawnService, type LogFn, type RunningService } from './exec';
import { ensureRedisServer, pingOnce, startRedis } from './redis';
import { redisCli } from './redis-cluster';

/** Options of {@link startRedisSentinel}. */
export interface RedisSentinelOptions {
  /** Parent directory of the servers' directories. */
  dir: string;
  /** Name of the monitored master (default `mymaster`, the default of `redis.sentinelName`). */
  name?: string;
  /** down-after-milliseconds (default 1000): silence before a sentinel deems the master down. */
  downAfterMs?: number;
  log?: LogFn;
}

/** A running master, replica and three sentinels. */
export interface RedisSentinelSet {
  master: RunningService;
  replica: RunningService;
  sentinels: RunningService[];
  /** Sentinel addresses (`host:port`) for `redis.sentinels`. */
  addresses: string[];
  name: string;
  /** `host:port` of the master as the sentinels currently see it. */
  currentMaster(): Promise<string>;
  /** Stops everything; safe to call twice. */
  stop(): Promise<void>;
}

async function startSentinel(dir: string, masterPort: number, name: string, downAfterMs: number, log?: LogFn): Promise<RunningService> {
  const bin = await ensureRedisServer({ log });
  const host = '127.0.0.1';
  const port = await freePort(host);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const conf = path.join(dir, 'sentinel.conf');
  await fsp.writeFile(
    conf,
    [
      `port ${port}`,
      `bind ${host}`,
      `dir ${dir}`,
      'daemonize no',
      'logfile ""',
      `sentinel monitor ${name} ${host} ${masterPort} 2`,
      `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
      `sentinel failover-timeout ${name} ${Math.max(5000, downAfterMs * 5)}`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return spawnService({
    name: 'redis-sentinel',
    cmd: bin,
    args: [conf, '--sentinel'],
    cwd: dir,
    host,
    port,
    url: `redis://${host}:${port}`,
    ready: async (signal) => {
      while (!signal.aborted && !(await pingOnce(host, port, 1000))) await delay(50);
    },
    log,
  });
}

/**
 * Starts master, replica and sentinels, and waits until every sentinel knows the replica
 * and the other two sentinels (only then can they agree on a failover).
 */
export async function startRedisSentinel(opts: RedisSentinelOptions): Promise<RedisSentinelSet> {
  const name = opts.name ?? 'mymaster';
  const downAfter = opts.downAfterMs ?? 1000;
  const started: RunningService[] = [];
  const stop = (): Promise<void> => Promise.allSettled(started.map((s) => s.stop())).then(() => undefined);
  try {
    const master = await startRedis({ dir: path.join(opts.dir, 'master'), log: opts.log });
    started.push(master);
    const replica = await startRedis({ dir: path.join(opts.dir, 'replica'), log: opts.log, extraArgs: ['--replicaof', master.host, String(master.port)] });
    started.push(replica);
    const sentinels: RunningService[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await startSentinel(path.join(opts.dir, `sentinel-${i}`), master.port, name, downAfter, opts.log);
      started.push(s);
      sentinels.push(s);
    }
    const until = Date.now() + 30_000;
    for (;;) {
      const views = await Promise.all(
        sentinels.map(async (s) => {
          try {
            const info = await redisCli(s.port, ['info', 'sentinel']);
            return /slaves=1,sentinels=3/.test(info);
          } catch {
            return false;
          }
        }),
      );
      if (views.every(Boolean)) break;
      if (Date.now() > until) throw new Error('sentinels did not discover the replica and each other within 30 s');
      await delay(200);
    }
    opts.log?.(`Redis Sentinel ready: master ${master.port}, replica ${replica.port}, sentinels ${sentinels.map((s) => s.port).join(' ')}`);
    let stopping: Promise<void> | undefined;
    return {
      master,
      replica,
      sentinels,
      addresses: sentinels.map((s) => `${s.host}:${s.port}`),
      name,
      async currentMaster() {
        for (const s of sentinels) {
          try {
            const [host, port] = (await redisCli(s.port, ['sentinel', 'get-master-addr-by-name', name])).trim().split('\n');
            if (host && port) return `${host}:${port}`;
          } catch {
            // ask the next one
          }
        }
        throw new Error('no sentinel answered');
      },
      stop: () => (stopping ??= stop()),
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
