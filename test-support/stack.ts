/**
 * One real stack (certificates, Redis, MongoDB over TLS) per process — a test file, or a
 * benchmark that starts nodes the way the tests do — in a fresh temporary directory, torn
 * down when the process exits (even if a test forgot to, and independently of tap's
 * teardown order), and the settings of a server on it.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { killAllChildrenSync } from '../src/provision/exec';
import { startRedisCluster, type RedisCluster } from '../src/provision/redis-cluster';
import { startStack, type Stack } from '../src/provision/stack';
import { tempDir } from './temp';

let started: Promise<Stack> | undefined;
let baseDir: string | undefined;

/** Progress lines go to stderr only with STACK_LOG=1, except the slow first FerretDB build, which is always worth knowing about. */
function log(line: string): void {
  if (process.env.STACK_LOG || /FerretDB/.test(line)) process.stderr.write(`# stack: ${line}\n`);
}

function cleanupSync(): void {
  killAllChildrenSync();
  if (baseDir) fs.rmSync(baseDir, { recursive: true, force: true });
  baseDir = undefined;
}

/** Returns this test file's stack, starting it on first call. */
export function getStack(): Promise<Stack> {
  started ??= (async () => {
    baseDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'stream-coordinator-test-'));
    process.once('exit', cleanupSync);
    // Node skips 'exit' handlers when a signal kills it (tap's timeout sends SIGTERM),
    // so kill the servers on those signals too, then let the signal take its course.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        cleanupSync();
        process.kill(process.pid, sig);
      });
    }
    return startStack({ baseDir, log });
  })();
  return started;
}

let cluster: Promise<RedisCluster> | undefined;

/**
 * With `SC_TEST_REDIS_CLUSTER=1`, a Redis Cluster (3 masters, 3 replicas) in this file's
 * stack directory that test servers use instead of the single Redis, so any core suite
 * can run against a cluster; undefined otherwise.
 */
export async function getRedisCluster(): Promise<RedisCluster | undefined> {
  if (!process.env.SC_TEST_REDIS_CLUSTER) return undefined;
  await getStack();
  cluster ??= startRedisCluster({ dir: path.join(baseDir!, 'redis-cluster'), log });
  return cluster;
}

/**
 * Settings of a server whose test stops the store process (SIGSTOP) to make it slow. The
 * driver's monitor times out its hello after connectTimeoutMS (the server passes
 * mongodb.serverSelectionTimeoutMs, 3 s in tests), then clears the pool and fails the reads
 * in flight: a stop of 15–25 s, which a loaded machine can stretch a short one into, would
 * end the very reads the test holds. With 60 s it cannot within a test's time limits.
 */
export const STORE_STOP_TOLERANT = { 'mongodb.serverSelectionTimeoutMs': 60_000 } as const;

/** Stops the stack (if started) and removes its directory. */
export async function stopStack(): Promise<void> {
  if (cluster) {
    const c = cluster;
    cluster = undefined;
    await (await c.catch(() => undefined))?.stop();
  }
  if (!started) return;
  const pending = started;
  started = undefined;
  try {
    // A stack that failed to start has already stopped its servers.
    await (await pending.catch(() => undefined))?.stop();
  } finally {
    if (baseDir) await fsp.rm(baseDir, { recursive: true, force: true });
    baseDir = undefined;
  }
}

/** Flat config overrides (`'server.port': 0`). */
export type Overrides = Record<string, unknown>;

/** Settings for a server on this file's stack: TLS on, loopback, ephemeral port. */
export async function stackOverrides(extra: Overrides = {}): Promise<Overrides> {
  const stack = await getStack();
  const cluster = await getRedisCluster();
  const redisCluster = cluster ? { 'redis.cluster': cluster.seeds } : {};
  return {
    env: 'test',
    dataDir: tempDir('sc-data-'),
    'server.host': '127.0.0.1',
    'server.port': 0,
    'server.shutdownTimeoutS': 5,
    'tls.cert': stack.certs.cert,
    'tls.key': stack.certs.key,
    'tls.ca': stack.certs.chain,
    'mongodb.uri': stack.mongo.uri,
    'mongodb.tlsCAFile': stack.mongoCAFile,
    'mongodb.database': `test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`,
    'mongodb.serverSelectionTimeoutMs': 3000,
    'redis.url': stack.redis.url,
    ...redisCluster,
    // Test files run side by side on one Redis: each file's servers get keys and a bus of their own.
    'redis.keyPrefix': `t${process.pid}:`,
    'log.level': 'info',
    // Tests make many deliberate bad-token requests from one address; sec-http-auth.test.ts tests the budget.
    'auth.failuresPerMinute': 1_000_000,
    // Tests provoke protocol and stream errors from one address on purpose; sec-reliability.test.ts
    // tests the cooling-off with its own thresholds.
    'reliability.minSample': 1_000_000_000,
    ...extra,
  };
}
