/**
 * Benchmark fixtures, and the ONE recipe of benchmark data ({@link RECIPE}): what a stream's
 * seed files, a target's options, a checkpoint and a frame look like in every benchmark.
 *
 * Small things (a manager, an engine key, a public target, a few streams) go through the
 * real admin API; large stream populations are inserted in bulk by `populate.ts`, with the
 * document shapes the API and the commit path write, and queued with the product's own
 * Pool.rebuild.
 */
import Redis from 'ioredis';
import type { Db } from 'mongodb';
import pino from 'pino';
import { initDatabase } from '../../src/store/init';
import { Leases } from '../../src/store/leases';
import { Pool } from '../../src/store/pool';
import { ApiClient } from '../../test-support/admin-api';
import { noise } from './noise';
import type { BenchStack } from './stack';

/** Redis key prefix of every benchmark server (the default). */
export const PREFIX = 'sc:';
/** Lease lifetime used when the bench fills the ready queues (only the queues are written). */
const LEASE_TTL_MS = 30_000;

const KIB = 1024;
const MIB = 1024 * KIB;

/**
 * The data recipe. Sizes follow an OpenMM project: a serialized state of ≈ 200 KiB (positions
 * and velocities of a ≈ 10k-atom system), a small system file, a checkpoint that is a new
 * state, and trajectory frames of 64 KiB–1 MiB. Bytes are {@link noise}: incompressible
 * and deterministic. Bump `version` whenever anything here changes: it keys the populated
 * store cached by the scale benchmark.
 */
export const RECIPE = {
  version: 'r1',
  /** Seed files of every stream, in this order. */
  seed: [
    { name: 'state.xml', bytes: 200 * KIB },
    { name: 'system.xml', bytes: 2 * KIB },
  ],
  /**
   * Distinct seed contents, reused round-robin by stream index. The product stores every
   * stream's seed bytes in that stream's own documents (no deduplication), so reuse saves
   * generation time, not disk.
   */
  distinctSeeds: 32,
  /** The checkpoint file sent with each commit: a new state, as large as the seed state. */
  checkpoint: { name: 'state.xml', bytes: 200 * KIB },
  /** Frame files: one name, sizes between these bounds. */
  frame: { name: 'frames.xtc', minBytes: 64 * KIB, maxBytes: MIB },
  /** Options of every benchmark target (a few realistic keys, as a manager sets them). */
  targetOptions: { temperature_K: 300, timestep_fs: 2, steps_per_frame: 50_000, frames_per_checkpoint: 10, precision: 'mixed', platform: 'CUDA' },
} as const;

/** A file to store or send: name and bytes. */
export interface RecipeFile {
  name: string;
  bytes: Buffer;
}

const seedPool = new Map<number, RecipeFile[]>();

/** The seed files of stream number `i` (one of {@link RECIPE.distinctSeeds} contents). */
export function seedFiles(i: number): RecipeFile[] {
  const k = i % RECIPE.distinctSeeds;
  let files = seedPool.get(k);
  if (!files) {
    files = RECIPE.seed.map((f, j) => ({ name: f.name, bytes: noise(1_000 + k * 16 + j, f.bytes) }));
    seedPool.set(k, files);
  }
  return files;
}

/** The seed files as `POST /v1/targets/:id/streams` takes them (`{files: {name: base64}}`). */
export function seedBody(i: number): { files: Record<string, string> } {
  return { files: Object.fromEntries(seedFiles(i).map((f) => [f.name, f.bytes.toString('base64')])) };
}

/** A checkpoint file of {@link RECIPE.checkpoint}'s size (content fixed by `i`). */
export function checkpointFile(i: number, bytes: number = RECIPE.checkpoint.bytes): RecipeFile {
  return { name: RECIPE.checkpoint.name, bytes: noise(50_000 + i, bytes) };
}

/** The size of frame number `i`: spread evenly over the recipe's range on a log scale, fixed by `i`. */
export function frameSize(i: number): number {
  const { minBytes, maxBytes } = RECIPE.frame;
  // Golden-ratio steps cover the range evenly without a visible period.
  const u = (i * 0.6180339887498949) % 1;
  return Math.round(minBytes * (maxBytes / minBytes) ** u);
}

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

/** Creates a manager, an engine key and a public target (with the recipe's options) through the admin API of a running server. */
export async function createCoreFixture(base: string, ca: string, database: string, admin: string, engine = 'openmm', options: Record<string, unknown> = RECIPE.targetOptions): Promise<CoreFixture> {
  const api = new ApiClient(base, ca, { timeoutMs: 30_000 });
  const manager = (await api.json<{ token: string }>('POST', '/v1/users', admin, { name: 'bench-manager', role: 'manager' }, 201)).token;
  const engineKey = (await api.json<{ key: string }>('POST', '/v1/engine-keys', admin, { engine, description: 'benchmark' }, 201)).key;
  const targetId = (await api.json<{ target_id: string }>('POST', '/v1/targets', manager, { engines: [engine], stage: 'public', options }, 201)).target_id;
  return { database, admin, manager, engine, engineKey, targetId };
}

/** Creates `count` streams through the API, each with the recipe's seed files, `concurrency` at a time. */
export async function createStreamsViaApi(base: string, ca: string, f: CoreFixture, count: number, concurrency = 4): Promise<string[]> {
  const api = new ApiClient(base, ca, { timeoutMs: 60_000 });
  const ids: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const r = await api.json<{ stream_id: string }>('POST', `/v1/targets/${f.targetId}/streams`, f.manager, seedBody(i), 201);
      ids.push(r.stream_id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return ids;
}

/** Fills the ready queues from MongoDB with the product's Pool.rebuild (nothing is removed). */
export async function enqueueAll(stack: BenchStack, db: Db): Promise<void> {
  const redis = new Redis(stack.stack.redis.url, { maxRetriesPerRequest: 1 });
  try {
    await new Pool(db, new Leases(redis, PREFIX, LEASE_TTL_MS), pino({ level: 'silent' })).rebuild();
  } finally {
    redis.disconnect();
  }
}

/** Empties Redis (between runs nothing in it must survive) and refills the ready queues from MongoDB. */
export async function resetQueues(stack: BenchStack, db: Db): Promise<number> {
  await stack.redis.flushdb();
  await enqueueAll(stack, db);
  let total = 0;
  for (const key of await stack.redis.keys(`${PREFIX}{t:*}:ready`)) total += await stack.redis.zcard(key);
  return total;
}
