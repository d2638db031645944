/**
 * Benchmark fixtures. Small things (a manager, an engine key, a public target, a few
 * streams) go through the real admin API; large stream populations are inserted straight
 * into MongoDB in bulk (documents shaped exactly as POST /v1/targets/:id/streams writes
 * them) and put in the ready queues with the product's own Pool.rebuild.
 */
import Redis from 'ioredis';
import { Binary, type Db } from 'mongodb';
import pino from 'pino';
import { initDatabase } from '../../src/store/init';
import { Leases } from '../../src/store/leases';
import { Pool } from '../../src/store/pool';
import { ApiClient } from '../../test-support/admin-api';
import type { BenchStack } from './stack';
import { newId, type FileDoc, type StreamDoc } from '../../src/model';

/** Redis key prefix of every benchmark server (the default). */
export const PREFIX = 'sc:';
/** Lease lifetime used when the bench fills the ready queues (only the queues are written). */
const LEASE_TTL_MS = 30_000;

/** What a core-protocol fixture holds. */
export interface CoreFixture {
  database: string;
  admin: string;
  manager: string;
  engine: string;
  engineKey: string;
  targetId: string;
}

/** Creates indexes and the first admin in a fresh database; returns the admin token. */
export async function prepareDatabase(stack: BenchStack, database: string): Promise<string> {
  const db = stack.db(database);
  await db.dropDatabase().catch(() => undefined);
  return (await initDatabase(db, { adminName: 'bench-admin' })).token;
}

/** Creates a manager, an engine key and a public target through the admin API of a running server. */
export async function createCoreFixture(base: string, ca: string, database: string, admin: string, engine = 'openmm', options: Record<string, unknown> = {}): Promise<CoreFixture> {
  const api = new ApiClient(base, ca, { timeoutMs: 30_000 });
  const manager = (await api.json<{ token: string }>('POST', '/v1/users', admin, { name: 'bench-manager', role: 'manager' }, 201)).token;
  const engineKey = (await api.json<{ key: string }>('POST', '/v1/engine-keys', admin, { engine, description: 'benchmark' }, 201)).key;
  const targetId = (await api.json<{ target_id: string }>('POST', '/v1/targets', manager, { engines: [engine], stage: 'public', options }, 201)).target_id;
  return { database, admin, manager, engine, engineKey, targetId };
}

/** Creates `count` streams through the API (each with one seed file), `concurrency` at a time. */
export async function createStreamsViaApi(base: string, ca: string, f: CoreFixture, count: number, seed: Buffer, concurrency = 8): Promise<string[]> {
  const api = new ApiClient(base, ca, { timeoutMs: 30_000 });
  const ids: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      const r = await api.json<{ stream_id: string }>('POST', `/v1/targets/${f.targetId}/streams`, f.manager, { files: { 'state.xml': seed.toString('base64') } }, 201);
      ids.push(r.stream_id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return ids;
}

/**
 * Inserts `count` ready streams of the fixture's target directly into MongoDB, in batches,
 * each with one seed file in `files` when `seed` is given, or none. Creation times increase
 * by 1 ms per stream, so the assignment order is fixed.
 */
export async function insertStreams(db: Db, f: Pick<CoreFixture, 'targetId'>, owner: string, count: number, seed: Buffer | undefined, batch = 5000): Promise<void> {
  const base = Date.UTC(2024, 0, 1);
  for (let start = 0; start < count; start += batch) {
    const streams: StreamDoc[] = [];
    const files: FileDoc[] = [];
    for (let i = start; i < Math.min(count, start + batch); i++) {
      const id = newId();
      const at = new Date(base + i);
      streams.push({
        _id: id,
        targetId: f.targetId,
        owner,
        status: 'ok',
        frames: 0,
        partitions: [],
        partitionIds: [],
        errorCount: 0,
        seedFiles: seed ? ['state.xml'] : [],
        tagFiles: [],
        frameFiles: [],
        checkpointFiles: [],
        createdAt: at,
        updatedAt: at,
      });
      if (seed) files.push({ _id: `${id}:seed:state.xml`, streamId: id, kind: 'seed', createdAt: at, name: 'state.xml', size: seed.length, data: new Binary(seed) });
    }
    // Files first, the stream documents last, as the API does.
    if (files.length > 0) await db.collection<FileDoc>('files').insertMany(files, { ordered: false });
    await db.collection<StreamDoc>('streams').insertMany(streams, { ordered: false });
  }
}

/** Empties Redis (between runs nothing in it must survive) and refills the ready queues from MongoDB. */
export async function resetQueues(stack: BenchStack, db: Db): Promise<number> {
  await stack.redis.flushdb();
  const redis = new Redis(stack.stack.redis.url, { maxRetriesPerRequest: 1 });
  try {
    const leases = new Leases(redis, PREFIX, LEASE_TTL_MS);
    const pool = new Pool(db, leases, pino({ level: 'silent' }));
    await pool.rebuild();
    let total = 0;
    for (const key of await redis.keys(`${PREFIX}{t:*}:ready`)) total += await redis.zcard(key);
    return total;
  } finally {
    redis.disconnect();
  }
}
