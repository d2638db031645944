/**
 * The benchmark stack: the same provisioning the tests use (dev certificates, Redis and a
 * TLS-only MongoDB-compatible store, `startStack`) in a fresh temporary directory, plus
 * a MongoDB client and a Redis client for fixtures. Everything started here is stopped by
 * {@link BenchStack.stop}, and killed on exit or on a signal if the orchestrator dies.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { killAllChildrenSync } from '../../src/provision/exec';
import { startStack, type Stack } from '../../src/provision/stack';
import { killAllServersSync } from './groups';

/** A running benchmark stack. */
export interface BenchStack {
  stack: Stack;
  baseDir: string;
  mongo: MongoClient;
  redis: Redis;
  /** A database handle (created on first use by MongoDB). */
  db(name: string): Db;
  /** PEM of the dev root CA (what clients trust). */
  caPem: string;
  stop(): Promise<void>;
}

let cleanupInstalled = false;
let liveDir: string | undefined;

function cleanupSync(): void {
  killAllServersSync();
  killAllChildrenSync();
  if (liveDir) fs.rmSync(liveDir, { recursive: true, force: true });
  liveDir = undefined;
}

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.once('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanupSync();
      process.kill(process.pid, sig);
    });
  }
}

/**
 * Starts certificates, Redis and the store under a new temporary directory. With `mongoDir`
 * the store keeps its data there instead (a populated store cached between runs, see
 * bench/scale.ts); it is linked in, so stopping the stack leaves it in place.
 */
export async function startBenchStack(log: (line: string) => void, o: { mongoDir?: string } = {}): Promise<BenchStack> {
  installCleanup();
  const baseDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sc-bench-'));
  liveDir = baseDir;
  if (o.mongoDir) {
    await fsp.mkdir(o.mongoDir, { recursive: true, mode: 0o700 });
    // startStack keeps the store's data in <baseDir>/mongo; removing baseDir removes only the link.
    await fsp.symlink(path.resolve(o.mongoDir), path.join(baseDir, 'mongo'), 'dir');
  }
  const stack = await startStack({ baseDir, log });
  const mongo = new MongoClient(stack.mongo.uri, { tls: true, tlsCAFile: stack.mongoCAFile, maxPoolSize: 20, appName: 'bench' });
  await mongo.connect();
  const redis = new Redis(stack.redis.url, { maxRetriesPerRequest: 1, lazyConnect: false });
  let stopping: Promise<void> | undefined;
  return {
    stack,
    baseDir,
    mongo,
    redis,
    db: (name) => mongo.db(name),
    caPem: fs.readFileSync(stack.certs.caCert, 'utf8'),
    stop() {
      stopping ??= (async () => {
        killAllServersSync();
        await mongo.close().catch(() => undefined);
        redis.disconnect();
        await stack.stop();
        await fsp.rm(baseDir, { recursive: true, force: true });
        if (liveDir === baseDir) liveDir = undefined;
      })();
      return stopping;
    },
  };
}
