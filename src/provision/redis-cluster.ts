/**
 * A real Redis Cluster on loopback for tests: Debian's `redis-server` started as
 * `masters` masters with one replica each (`--cluster-enabled yes`), joined with
 * `redis-cli --cluster create ... --cluster-replicas 1`, ready once every node reports
 * `cluster_state:ok`. Short node timeouts make a killed master fail over in seconds.
 */
import net from 'node:net';
import path from 'node:path';
import { delay, freePort, run, which, type LogFn } from './exec';
import { ensureRedisServer, startRedis, type RunningService } from './redis';

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /** Parent directory; each node gets `node-<port>/`. */
  dir: string;
  /** Masters (default 3); each gets one replica. */
  masters?: number;
  /** cluster-node-timeout in ms (default 2000): how long a master may be silent before its replica takes over. */
  nodeTimeoutMs?: number;
  /** Overall start-up timeout (default 60 s). */
  startTimeoutMs?: number;
  log?: LogFn;
}

/** One node of a running cluster. */
export interface ClusterNode extends RunningService {
  /** `host:port` */
  address: string;
}

/** A running cluster. */
export interface RedisCluster {
  nodes: ClusterNode[];
  /** Seed addresses (`host:port`) for `redis.cluster`. */
  seeds: string[];
  /** The nodes currently serving slots as masters, by `host:port`, as the cluster itself reports it. */
  masters(): Promise<string[]>;
  /** Resolves once every live node reports `cluster_state:ok`; rejects after `timeoutMs`. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every node; safe to call twice. */
  stop(): Promise<void>;
}

/** Runs redis-cli against one node and returns its stdout. */
export async function redisCli(port: number, args: readonly string[], host = '127.0.0.1'): Promise<string> {
  const cli = which('redis-cli') ?? '/usr/bin/redis-cli';
  return (await run(cli, ['-h', host, '-p', String(port), ...args], { timeoutMs: 10_000 })).stdout;
}

/** Redis Cluster nodes also listen on port + 10000 (the cluster bus). */
const BUS_OFFSET = 10_000;

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A free port whose cluster-bus port is free too. */
async function freeClusterPort(host: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await freePort(host);
    if (port + BUS_OFFSET <= 65535 && (await portFree(host, port + BUS_OFFSET))) return port;
  }
  throw new Error(`no free port pair (port, port + ${BUS_OFFSET}) on ${host}`);
}

async function clusterOk(node: ClusterNode): Promise<boolean> {
  try {
    return /cluster_state:ok/.test(await redisCli(node.port, ['cluster', 'info'], node.host));
  } catch {
    return false;
  }
}

/**
 * Starts the cluster. On failure every node already started is stopped before the error propagates.
 */
export async function startRedisCluster(opts: RedisClusterOptions): Promise<RedisCluster> {
  await ensureRedisServer({ log: opts.log });
  const count = (opts.masters ?? 3) * 2;
  const nodeTimeout = opts.nodeTimeoutMs ?? 2000;
  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  const started = await Promise.allSettled(
    Array.from({ length: count }, async (_, i) =>
      startRedis({
        dir: path.join(opts.dir, `node-${i}`),
        port: await freeClusterPort('127.0.0.1'),
        log: opts.log,
        extraArgs: [
          '--cluster-enabled', 'yes',
          '--cluster-config-file', 'nodes.conf',
          '--cluster-node-timeout', String(nodeTimeout),
          // A replica may always take over, however long its link was down: tests kill masters on purpose.
          '--cluster-replica-validity-factor', '0',
          // Slots of a dead master without replica stay down, but the others keep serving.
          '--cluster-require-full-coverage', 'no',
        ],
      }),
    ),
  );
  const nodes: ClusterNode[] = started.flatMap((r) => (r.status === 'fulfilled' ? [{ ...r.value, address: `${r.value.host}:${r.value.port}` }] : []));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= Promise.allSettled(nodes.map((n) => n.stop())).then(() => undefined));
  const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    await stop();
    throw failure.reason;
  }

  const waitHealthy = async (timeoutMs = 30_000): Promise<void> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const alive = nodes.filter((n) => isAlive(n.pid));
      const ok = await Promise.all(alive.map(clusterOk));
      if (ok.every(Boolean)) return;
      if (Date.now() > until) throw new Error(`Redis Cluster not ok within ${timeoutMs} ms`);
      await delay(200);
    }
  };

  try {
    const seeds = nodes.map((n) => n.address);
    // Masters are the first nodes given; replicas are assigned to them in order.
    await redisCli(nodes[0]!.port, ['--cluster', 'create', ...seeds, '--cluster-replicas', '1', '--cluster-yes'], nodes[0]!.host);
    await waitHealthy(Math.max(1000, deadline - Date.now()));
    opts.log?.(`Redis Cluster ok: ${seeds.join(' ')}`);
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    nodes,
    seeds: nodes.map((n) => n.address),
    async masters() {
      for (const n of nodes.filter((x) => isAlive(x.pid))) {
        try {
          const out = await redisCli(n.port, ['cluster', 'nodes'], n.host);
          // <id> <ip:port@cport> <flags> ... ; masters serving slots have slot ranges after field 8.
          return out
            .split('\n')
            .map((l) => l.trim().split(' '))
            .filter((f) => f.length > 8 && f[2]!.includes('master') && !f[2]!.includes('fail'))
            .map((f) => f[1]!.split('@')[0]!);
        } catch {
          // try the next node
        }
      }
      return [];
    },
    waitHealthy,
    stop,
  };
}

/** Whether a process exists (signal 0 probes without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
