/**
 * Coordinator servers as child processes, exactly as an operator runs them:
 * `node dist/src/cli/main.js serve --config <file>`, with a chosen transport and worker count.
 * Each server runs in its own process group so the whole group (primary and workers) can
 * be measured through /proc and stopped together.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, workerCount } from '../../src/config/settings';
import { freePort } from '../../src/provision/exec';
import { mallocEnv, workerExecArgv } from '../../src/workers';
import { ApiClient } from '../../test-support/admin-api';
import { CLI } from '../../test-support/cli';
import { writeConfigFile } from '../../test-support/config-file';
import { groups } from './groups';
import { processTree, sumRssKiB } from './proc';
import { seedCacheDirsIn, seedCacheParent } from '../../src/core/seed-cache';
import type { BenchStack } from './stack';
import { eventually } from '../../test-support/poll';
import { sleep } from './stats';


/** Transports compared by every benchmark. */
export type TransportName = 'uws' | 'node';

/** Options of {@link startServer}. */
export interface ServerOptions {
  stack: BenchStack;
  transport: TransportName;
  workers: number;
  database: string;
  /** Admin token of `database`, used to see every worker registered in /v1/nodes. */
  adminToken: string;
  /** Directory for the config file, data directory and output. */
  dir: string;
  /** Flat config overrides (`'core.messagesPerSecond': 1e6`). */
  overrides?: Record<string, unknown>;
  /** Write V8 CPU profiles (--cpu-prof) of every server process into this directory. */
  cpuProfDir?: string;
  /** Let SIGUSR2 write a V8 heap snapshot of the server process into this directory (one worker only). */
  heapSnapshotDir?: string;
}

/** A running server group. */
export interface BenchServer {
  port: number;
  /** https://127.0.0.1:port */
  url: string;
  /** Pid of the process we started (the primary when workers > 1). */
  pid: number;
  /** Pids of the whole group now (primary and workers). */
  pids(): number[];
  /**
   * The group's memory now, KiB: VmRSS summed over {@link pids}, plus what the group's seed
   * directory holds (core.seedCacheDir, tmpfs by default: its pages are the server's memory
   * but in no process's RSS, since the processes read the files rather than map them).
   */
  memoryKiB(): number;
  /** Tail of the group's output. */
  output(): string;
  /**
   * 'graceful': SIGTERM the group, SIGKILL whatever is left after the grace period;
   * 'kill': SIGKILL the group at once (nothing of a server's shutdown is measured, and a
   * graceful stop with many sessions spends its whole timeout recording fragments).
   */
  stop(how?: 'graceful' | 'kill'): Promise<void>;
}

/** Node flags for V8 CPU profiles and signal-triggered heap snapshots of a benchmark process. */
function diagnosticArgs(o: { cpuProfDir?: string; heapSnapshotDir?: string }): string[] {
  return [
    ...(o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : []),
    ...(o.heapSnapshotDir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${o.heapSnapshotDir}`] : []),
  ];
}

/** The settings every benchmark server shares; benchmarks add their own on top. */
export function baseOverrides(stack: BenchStack, o: { transport: TransportName; workers: number; database: string; port: number; dataDir: string }): Record<string, unknown> {
  const c = stack.stack.certs;
  return {
    env: 'test',
    dataDir: o.dataDir,
    'server.host': '127.0.0.1',
    'server.port': o.port,
    'server.transport': o.transport,
    'server.workers': o.workers,
    'server.shutdownTimeoutS': 10,
    'tls.cert': c.cert,
    'tls.key': c.key,
    'tls.ca': c.chain,
    'mongodb.uri': stack.stack.mongo.uri,
    'mongodb.tlsCAFile': stack.stack.mongoCAFile,
    'mongodb.database': o.database,
    'redis.url': stack.stack.redis.url,
    'log.level': 'warn',
    'preflight.mode': 'warn',
    // Each load generator stands for thousands of volunteers' machines but connects from one
    // loopback address: the per-address caps (docs/security.md) are sized for that network.
    'core.maxSocketsPerAddress': 20_000,
    'http.maxConnectionsPerAddress': 20_000,
    'core.maxAssignmentsPerDonor': 20_000,
  };
}

/**
 * Starts a server group and waits until every worker has registered itself (GET /v1/nodes
 * lists one node per process of the group).
 */
export async function startServer(o: ServerOptions): Promise<BenchServer> {
  fs.mkdirSync(o.dir, { recursive: true });
  const port = await freePort('127.0.0.1');
  const conf = path.join(o.dir, `server-${o.transport}-${port}.json`);
  writeConfigFile(conf, { ...baseOverrides(o.stack, { transport: o.transport, workers: o.workers, database: o.database, port, dataDir: path.join(o.dir, 'data') }), ...o.overrides });
  const nodeArgs = diagnosticArgs(o);
  // A single process is started as deploy/stream-coordinator.service starts one: it cannot
  // give itself the malloc and V8 settings the primary gives forked workers.
  const settings = loadConfig({ files: [conf], env: { ...process.env, NODE_ENV: 'test' } });
  const alone = workerCount(settings, os.availableParallelism()) === 1;
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, ...(alone ? workerExecArgv(settings) : []), CLI, 'serve', '--config', conf], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, NODE_ENV: 'test', ...(alone ? mallocEnv(settings) : {}) },
  });
  const pid = child.pid!;
  groups.add(pid);
  let out = '';
  const keep = (b: Buffer): void => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = child.exitCode !== null;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const url = `https://127.0.0.1:${port}`;

  const stop = async (how: 'graceful' | 'kill' = 'graceful'): Promise<void> => {
    if (!groups.has(pid)) return;
    const tree = processTree(pid);
    if (how === 'graceful') {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
      const grace = Number(o.overrides?.['server.shutdownTimeoutS'] ?? 10) * 1000 + 5000;
      await Promise.race([exit, sleep(grace)]);
    }
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
    // Workers outliving the primary would skew the next measurement: wait until all are gone.
    await eventually(() => tree.every((p) => !fs.existsSync(`/proc/${p}`)) || undefined, 10_000, 'server processes to exit').catch(() => undefined);
    groups.delete(pid);
  };

  try {
    await eventually(
      async () => {
        if (exited) throw Object.assign(new Error(`server exited during start-up:\n${out.slice(-4000)}`), { fatal: true });
        const pids = new Set(processTree(pid));
        const { nodes } = await new ApiClient(url, o.stack.caPem, { timeoutMs: 30_000 }).json<{ nodes: Array<{ pid: number }> }>('GET', '/v1/nodes', o.adminToken, undefined, 200);
        return nodes.filter((n) => pids.has(n.pid)).length >= o.workers;
      },
      60_000,
      `${o.workers} ${o.transport} worker(s) on port ${port} to register`,
      250,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const seedParent = seedCacheParent(settings.core.seedCacheDir);
  const memoryKiB = (): number => sumRssKiB(processTree(pid)) + seedDirKiB(seedParent, pid);
  return { port, url, pid, pids: () => processTree(pid), memoryKiB, output: () => out, stop };
}

/** KiB the seed directory a server process made holds on its file system. */
function seedDirKiB(parent: string, pid: number): number {
  let kib = 0;
  for (const { dir } of seedCacheDirsIn(parent).filter((d) => d.pid === pid)) {
    for (const f of fs.readdirSync(dir)) {
      try {
        kib += (fs.statSync(path.join(dir, f)).blocks * 512) / 1024;
      } catch {
        // Evicted meanwhile.
      }
    }
  }
  return kib;
}

/**
 * Starts bench/echo-uws.js or bench/echo-node.js on a free port with the stack's certificates;
 * with `replyBytes` (echo-uws only) each request is answered with a message of that size.
 */
export async function startEcho(stack: BenchStack, kind: 'uws' | 'node', cpuProfDir?: string, replyBytes?: number): Promise<BenchServer> {
  const port = await freePort('127.0.0.1');
  const script = path.resolve(__dirname, '..', `echo-${kind}.js`);
  const c = stack.stack.certs;
  const child = spawn(process.execPath, [...diagnosticArgs({ cpuProfDir }), script, '--port', String(port), '--cert', c.fullChain, '--key', c.key, ...(replyBytes ? ['--reply-bytes', String(replyBytes)] : [])], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pid = child.pid!;
  groups.add(pid);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const stop = async (how: 'graceful' | 'kill' = 'graceful'): Promise<void> => {
    if (!groups.has(pid)) return;
    try {
      process.kill(how === 'graceful' ? pid : -pid, how === 'graceful' ? 'SIGTERM' : 'SIGKILL');
    } catch {
      // gone
    }
    await Promise.race([exit, sleep(5000)]);
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
    groups.delete(pid);
  };
  try {
    await eventually(
      () => {
        if (exited) throw Object.assign(new Error(`echo-${kind} exited: ${out}`), { fatal: true });
        return /listening \d+/.test(out) || undefined;
      },
      15_000,
      `echo-${kind} to listen`,
      50,
    );
  } catch (err) {
    await stop('kill');
    throw err;
  }
  return { port, url: `https://127.0.0.1:${port}`, pid, pids: () => processTree(pid), memoryKiB: () => sumRssKiB(processTree(pid)), output: () => out, stop };
}
