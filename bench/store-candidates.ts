/**
 * The embedded store at scale: FerretDB v1.24.2 on SQLite (our patched build) beside
 * FerretDB v1.24.2 on a private PostgreSQL cluster, loaded in the same run with the document
 * shapes the API writes (streams with seed and system files, committed partitions with a
 * frame file and a checkpoint file, donors) at 1k, 10k and 100k streams (10 partitions
 * each, so 1M partitions at 100k), measuring the store operations of the hot path and the
 * off-hot-path queries (a target's stream list, the janitor, the leaderboard).
 *
 * File bytes are small (seed 2 KiB, system 200 B, frame 1 KiB, checkpoint 256 B, all
 * inline) so that a million partitions load in minutes; the costs measured are per
 * document lookup, which file size changes only through the bytes read.
 *
 * Usage: node dist/bench/store-candidates.js [--sizes=1000,10000,100000] [--only=sqlite|postgresql] [--release]
 * (`--release` adds the unpatched v1.24.2 SQLite build, if cached, at sizes ≤ 10k).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import pino from 'pino';
import { Binary, MongoClient, type Db } from 'mongodb';
import { ensureDevCertificates } from '../src/provision/certs';
import { killAllChildrenSync, type RunningService } from '../src/provision/exec';
import { defaultFerretDBCacheDir, ensureFerretDB, FERRETDB_VERSION, startFerretDB } from '../src/provision/ferretdb';
import { startPostgres } from '../src/provision/postgres';
import { startRedis } from '../src/provision/redis';
import { ensureIndexes } from '../src/store/indexes';
import { commitPartition } from '../src/store/partitions';
import { FileStore } from '../src/store/files';
import { Leases } from '../src/store/leases';
import { Janitor } from '../src/store/janitor';
import { resultsDir, stampOf } from './lib/report';
import { latency, type Latency } from './lib/stats';
import type { DonorDoc, FileDoc, PartitionDoc, StreamDoc } from '../src/model';

const PARTS_PER_STREAM = 10;
const TARGETS_PER_1K = 1; // 1,000 streams per target
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? 'true']));
const SIZES = (args.sizes ?? '1000,10000,100000').split(',').map(Number);
const log = (line: string): void => void process.stderr.write(`# ${new Date().toISOString().slice(11, 19)} ${line}\n`);

const bytes = (n: number): Binary => new Binary(crypto.randomBytes(n));
const sid = (i: number): string => `s${String(i).padStart(21, '0')}`;
const tid = (i: number): string => `t${String(Math.floor(i / (1000 / TARGETS_PER_1K))).padStart(21, '0')}`;

/** Loads streams [from, to) with their files, partitions and every tenth a donor. */
async function load(db: Db, from: number, to: number): Promise<void> {
  const BATCH = 500;
  for (let a = from; a < to; a += BATCH) {
    const b = Math.min(to, a + BATCH);
    const streams: StreamDoc[] = [];
    const files: FileDoc[] = [];
    const parts: PartitionDoc[] = [];
    const donors: Array<DonorDoc & { _id: string }> = [];
    const at = new Date(Date.now() - 3600_000);
    for (let i = a; i < b; i++) {
      const id = sid(i);
      const partitionIds: string[] = [];
      const frameIndex: StreamDoc['frameIndex'] = [];
      for (let n = 1; n <= PARTS_PER_STREAM; n++) {
        const pid = `${id}:${n * 100}:${crypto.randomBytes(6).toString('base64url')}`;
        partitionIds.push(pid);
        frameIndex.push({ files: [{ name: 'frames.xtc', size: 1024 }] });
        parts.push({
          _id: pid,
          streamId: id,
          n: n * 100,
          frames: [{ name: 'frames.xtc', size: 1024, data: bytes(1024) }],
          checkpoint: [{ name: 'state.xml', size: 256, data: bytes(256) }],
          index: [
            { kind: 'frame', name: 'frames.xtc', size: 1024 },
            { kind: 'checkpoint', name: 'state.xml', size: 256 },
          ],
          createdAt: at,
        });
      }
      streams.push({
        _id: id,
        targetId: tid(i),
        owner: 'bench',
        status: 'ok',
        frames: PARTS_PER_STREAM * 100,
        partitions: Array.from({ length: PARTS_PER_STREAM }, (_, k) => (k + 1) * 100),
        partitionIds,
        frameIndex,
        lastPartitionId: partitionIds.at(-1),
        // Fewer than storage.partitionsPerPage: all listed by the stream itself, none in a page.
        unpaged: PARTS_PER_STREAM,
        errorCount: 0,
        seedFiles: ['state.xml', 'system.xml'],
        tagFiles: [],
        frameFiles: ['frames.xtc'],
        checkpointFiles: ['state.xml'],
        createdAt: at,
        updatedAt: at,
      });
      files.push({ _id: `${id}:seed:state.xml`, streamId: id, kind: 'seed', name: 'state.xml', size: 2048, data: bytes(2048), createdAt: at });
      files.push({ _id: `${id}:seed:system.xml`, streamId: id, kind: 'seed', name: 'system.xml', size: 200, data: bytes(200), createdAt: at });
      if (i % 10 === 0) donors.push({ _id: `d${i}`, name: `donor-${i}`, beta: false, tokenHash: crypto.randomBytes(32).toString('hex'), frames: crypto.randomInt(1e9), coreSeconds: 0, createdAt: at });
    }
    await db.collection<StreamDoc>('streams').insertMany(streams, { ordered: false });
    await db.collection<FileDoc>('files').insertMany(files, { ordered: false });
    await db.collection<PartitionDoc>('partitions').insertMany(parts, { ordered: false });
    if (donors.length) await db.collection('donors').insertMany(donors as never[], { ordered: false });
  }
}

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<Latency> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return latency(out);
}

/** One measurement round at `size` loaded streams. */
async function measure(db: Db, redis: Redis, size: number): Promise<Record<string, Latency>> {
  const pick = (): number => crypto.randomInt(size);
  const streams = db.collection<StreamDoc>('streams');
  const files = new FileStore(db, 1 << 20);
  const quiet = pino({ level: 'silent' });
  const r: Record<string, Latency> = {};
  r['stream by _id'] = await timed(200, () => streams.findOne({ _id: sid(pick()) }, { projection: { partitions: 0, partitionIds: 0, frameIndex: 0 } }));
  r['seed file by _id'] = await timed(200, () => db.collection<FileDoc>('files').findOne({ _id: `${sid(pick())}:seed:state.xml` }));
  r['partition by _id'] = await timed(200, async () => {
    const s = await streams.findOne({ _id: sid(pick()) }, { projection: { partitionIds: 1 } });
    return db.collection<PartitionDoc>('partitions').findOne({ _id: s!.partitionIds[crypto.randomInt(PARTS_PER_STREAM)] }, { projection: { frames: 1 } });
  });
  r['conditional update by _id (commit point)'] = await timed(100, async () => {
    const s = await streams.findOne({ _id: sid(pick()) }, { projection: { frames: 1 } });
    const n = s!.frames + 100;
    const doc = { _id: `${s!._id}:${n}:x`, n, frames: [], checkpoint: [], index: [{ kind: 'frame', name: 'frames.xtc', size: 1024 }] } as unknown as PartitionDoc;
    if (!(await commitPartition(db, s!._id, s!.frames, doc))) throw new Error('commit did not land');
  });
  // Scans grow with the store: fewer samples at larger sizes keep a run within minutes.
  const few = size > 1000 ? 1 : 3;
  r["a target's streams, first page of 100"] = await timed(few * 2, () => streams.find({ targetId: tid(pick()) }, { sort: { _id: 1 }, limit: 100, projection: { partitions: 0, partitionIds: 0, frameIndex: 0 } }).toArray());
  r['leaderboard (top 100 donors by frames)'] = await timed(few, () => db.collection('donors').find({}, { sort: { frames: -1, name: 1 }, limit: 100, projection: { tokenHash: 0 } }).toArray());
  r['janitor pass (5,000 documents)'] = await timed(few, async () => {
    // Every pass from the beginning: the janitor's watermarks (src/store/janitor.ts: one per collection, and the single one of earlier releases) removed.
    await redis.del('bench:janitor:watermark:partitions', 'bench:janitor:watermark:stream_changes', 'bench:janitor:watermark');
    return new Janitor(db, files, redis, new Leases(redis as never, 'bench:', 30_000), 'bench:', quiet as never, 0).pass(5000);
  });
  return r;
}

interface Candidate {
  name: string;
  start(dir: string, certs: { fullChain: string; key: string }): Promise<{ uri: string; services: RunningService[] }>;
  maxSize?: number;
}

async function main(): Promise<void> {
  process.once('exit', killAllChildrenSync);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sc-store-bench-'));
  const certs = await ensureDevCertificates(path.join(dir, 'certs'), { log });
  const redisSvc = await startRedis({ dir: path.join(dir, 'redis'), log });
  const redis = new Redis(redisSvc.url);
  const candidates: Candidate[] = [
    {
      name: `FerretDB ${FERRETDB_VERSION} + SQLite (patched build)`,
      start: async (d, c) => {
        const f = await startFerretDB({ dataDir: path.join(d, 'sqlite'), cert: c.fullChain, key: c.key, log });
        return { uri: f.uri, services: [f] };
      },
    },
    {
      name: `FerretDB ${FERRETDB_VERSION} + PostgreSQL (GIN twins)`,
      start: async (d, c) => {
        const pg = await startPostgres({ dir: path.join(d, 'pg'), log });
        const f = await startFerretDB({ dataDir: path.join(d, 'pgferret'), postgresqlUrl: pg.ferretdbUrl, cert: c.fullChain, key: c.key, log });
        return { uri: f.uri, services: [f, pg] };
      },
    },
  ];
  const releaseBin = path.join(path.dirname(defaultFerretDBCacheDir()), FERRETDB_VERSION, 'ferretdb');
  if (args.release && fs.existsSync(releaseBin)) {
    candidates.unshift({
      name: `FerretDB ${FERRETDB_VERSION} + SQLite (release build)`,
      maxSize: 10_000,
      start: async (d, c) => {
        const f = await startFerretDB({ dataDir: path.join(d, 'sqlite-release'), binary: releaseBin, cert: c.fullChain, key: c.key, log });
        return { uri: f.uri, services: [f] };
      },
    });
  }
  await ensureFerretDB({ log });
  const results: Array<{ candidate: string; size: number; partitions: number; loadS: number; ops: Record<string, Latency> }> = [];
  for (const cand of candidates.filter((c) => !args.only || c.name.toLowerCase().includes(String(args.only)))) {
    const { uri, services } = await cand.start(dir, certs);
    const client = new MongoClient(uri, { tls: true, tlsCAFile: certs.caCert, maxPoolSize: 10 });
    const db = client.db('bench_store');
    await ensureIndexes(db);
    let loaded = 0;
    let loadS = 0;
    try {
      for (const size of SIZES) {
        if (cand.maxSize && size > cand.maxSize) break;
        log(`${cand.name}: loading to ${size} streams`);
        const t = Date.now();
        await load(db, loaded, size);
        loadS += (Date.now() - t) / 1000;
        loaded = size;
        log(`${cand.name}: loaded ${size} streams, ${size * PARTS_PER_STREAM} partitions in ${loadS.toFixed(0)} s; measuring`);
        const ops = await measure(db, redis, size);
        results.push({ candidate: cand.name, size, partitions: size * PARTS_PER_STREAM, loadS: Math.round(loadS), ops });
        process.stdout.write(JSON.stringify(results.at(-1)) + '\n');
      }
    } finally {
      await client.close();
      for (const s of services) await s.stop();
    }
  }
  const outDir = resultsDir();
  await fsp.mkdir(outDir, { recursive: true });
  const out = path.join(outDir, `${stampOf(new Date())}-store-candidates.json`);
  await fsp.writeFile(out, JSON.stringify({ loadAverage: os.loadavg(), cpus: os.cpus().length, results }, null, 2));
  log(`wrote ${out}`);
  redis.disconnect();
  await redisSvc.stop();
  await fsp.rm(dir, { recursive: true, force: true });
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
