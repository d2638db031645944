/**
 * One real stack (certificates, Redis, MongoDB over TLS) per test file, in a fresh
 * temporary directory, torn down when the file's process exits — even if a test forgot
 * to, and independently of tap's teardown order.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { killAllChildrenSync } from '../../src/provision/exec';
import { startRedisCluster, type RedisCluster } from '../../src/provision/redis-cluster';
import { startStack, type Stack } from '../../src/provision/stack';

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
