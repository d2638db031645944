/**
 * Checkpoint commits on realistic data (bench/lib/fixtures.ts RECIPE): commits per second and
 * commit latency at 1, 20 and 200 concurrent streams, each core sending one frame (256 KiB,
 * inside the recipe's 64 KiB–1 MiB) and a checkpoint with a 200 KiB state back to back and
 * waiting for "committed"; and the frame path: 64 KiB frames with a checkpoint every 1,024
 * frames (64 MiB partitions, through the product's spill-to-disk buffer and GridFS).
 * Beside both, the store's own ceiling measured in the same run: the same partition write
 * and commit-point update through the mongodb driver alone — the product's own
 * commitCheckpoint, and its pagePartitions every storage.partitionsPerPage commits as a
 * session does — with the same bytes, at the same concurrency and with the same
 * connection pool size as a server process, on streams with the same seed files.
 */
import { MongoClient } from 'mongodb';
import { commitCheckpoint, pagePartitions } from '../src/store/commit';
import { FileStore } from '../src/store/files';
import { THROUGHPUT_OVERRIDES } from './frames';
import { freshDatabase, TRANSPORTS, withStreamsServer, type BenchContext } from './lib/context';
import { RECIPE } from './lib/fixtures';
import { closeLoadGens, sourceAddress, startLoadGens, type LoadGen } from './lib/loadgen-pool';
import type { CommitLevel, FramePath } from './lib/modes';
import { noise } from './lib/noise';
import { INLINE_MAX, insertStreams, PARTITIONS_PER_PAGE } from './lib/populate';
import { CpuWindow } from './lib/proc';
import { row, type BenchResult } from './lib/report';
import type { BenchServer, TransportName } from './lib/server';
import { latency, ratio, round } from './lib/stats';
import type { WorkResult } from './loadgen';

/** mongodb.maxPoolSize of a server process (the default), used by the ceiling loop too. */
const POOL = 20;

interface LevelFigures {
  streams: number;
  commits: number;
  /** Frame payload MB/s (10^6 bytes) acknowledged or written. */
  mbPerS?: number;
  /** Frame messages acknowledged per second (server runs). */
  framesPerS?: number;
  elapsedS: number;
  commitsPerS: number;
  latencyMs: ReturnType<typeof latency>;
  serverCpuMsPerCommit?: number;
  errors: Record<string, number>;
  timedOut: boolean;
}

/** What one server measurement sends: `streams` cores, each `framesPerCheckpoint` frames then a checkpoint. */
interface Load {
  streams: number;
  frameBytes: number;
  framesPerCheckpoint: number;
  framesPerCore: number;
  window: number;
}

const levelLoad = (c: BenchContext['settings']['commits'], level: CommitLevel): Load => ({ streams: level.streams, frameBytes: c.frameBytes, framesPerCheckpoint: 1, framesPerCore: Math.ceil(level.commits / level.streams), window: 2 });
const pathLoad = (p: FramePath): Load => ({ streams: p.cores, frameBytes: p.frameBytes, framesPerCheckpoint: p.framesPerCheckpoint, framesPerCore: Math.ceil(p.frames / p.cores / p.framesPerCheckpoint) * p.framesPerCheckpoint, window: p.window });

async function serverLevel(ctx: BenchContext, server: BenchServer, engineKey: string, load: Load): Promise<LevelFigures> {
  const c = ctx.settings.commits;
  let gens: LoadGen[] = [];
  try {
    gens = await startLoadGens(1);
    const g = gens[0]!;
    g.send({
      cmd: 'work',
      url: `wss://127.0.0.1:${server.port}/core/v1`,
      key: engineKey,
      ca: ctx.stack.caPem,
      localAddress: sourceAddress(0),
      cores: load.streams,
      frameBytes: load.frameBytes,
      framesPerCheckpoint: load.framesPerCheckpoint,
      checkpointBytes: c.checkpointBytes,
      framesPerCore: load.framesPerCore,
      window: load.window,
      timeoutMs: 60_000,
      deadlineMs: c.deadlineS * 1000,
    });
    const ready = await g.next<{ cores: number; errors: Record<string, number> }>(['ready'], 120_000);
    if (ready.cores < load.streams) throw new Error(`only ${ready.cores} of ${load.streams} cores were assigned: ${JSON.stringify(ready.errors)}`);
    const cpu = new CpuWindow(() => server.pids());
    cpu.start();
    g.send({ cmd: 'go' });
    const r = await g.next<WorkResult>(['work'], c.deadlineS * 1000 + 90_000);
    const serverMs = cpu.stop();
    const s = r.elapsedMs / 1000;
    return {
      streams: load.streams,
      commits: r.commits,
      mbPerS: round(r.bytesAcked / s / 1e6, 1),
      framesPerS: round(r.frameAcks / s, 0),
      elapsedS: round(s, 2),
      commitsPerS: round(r.commits / s, 1),
      latencyMs: latency(r.commitLatenciesMs),
      serverCpuMsPerCommit: round(serverMs / Math.max(1, r.commits), 2),
      errors: r.errors,
      timedOut: r.timedOut,
    };
  } finally {
    await closeLoadGens(gens);
  }
}

/** The levels, then the frame path (last entry). */
async function runTransport(ctx: BenchContext, transport: TransportName): Promise<LevelFigures[]> {
  const c = ctx.settings.commits;
  const streams = c.levels.reduce((n, l) => n + l.streams, 0) + c.framePath.cores;
  return withStreamsServer(ctx, { tag: `commits-${transport}`, transport, overrides: THROUGHPUT_OVERRIDES, streams }, async (server, fx) => {
    const out: LevelFigures[] = [];
    for (const level of c.levels) {
      const r = await serverLevel(ctx, server, fx.engineKey, levelLoad(c, level));
      ctx.log(`commits ${transport} ×${level.streams}: ${JSON.stringify(r)}`);
      out.push(r);
    }
    const r = await serverLevel(ctx, server, fx.engineKey, pathLoad(c.framePath));
    ctx.log(`commits ${transport} frame path: ${JSON.stringify(r)}`);
    out.push(r);
    return out;
  });
}

/**
 * The store's ceiling: the same commits through the driver alone (the levels, then the frame
 * path as the last entry). The bytes are the load generator's: one frame and one checkpoint
 * per commit, and for the frame path the partition's frame file is its frames concatenated.
 */
async function storeCeiling(ctx: BenchContext, tag: string): Promise<LevelFigures[]> {
  const c = ctx.settings.commits;
  const database = `bench_commits_store_${tag}`;
  await freshDatabase(ctx, database);
  const client = new MongoClient(ctx.stack.stack.mongo.uri, { tls: true, tlsCAFile: ctx.stack.stack.mongoCAFile, maxPoolSize: POOL, appName: 'bench-ceiling' });
  await client.connect();
  try {
    const db = client.db(database);
    const files = new FileStore(db, INLINE_MAX);
    const total = c.levels.reduce((n, l) => n + l.streams, 0) + c.framePath.cores;
    // Streams with the recipe's seed files, as the server runs' streams have.
    const ids = await insertStreams(db, { targetId: 'bench-store-ceiling-00' }, 'bench-manager', total);
    // The same bytes as bench/loadgen.ts sends (noise seeds 1 and 2).
    const frame = noise(1, c.frameBytes);
    const ckpt = noise(2, c.checkpointBytes);
    const p = c.framePath;
    const pathFrame = Buffer.concat(Array.from({ length: p.framesPerCheckpoint }, () => noise(1, p.frameBytes)));
    const loads = [...c.levels.map((l) => ({ ...levelLoad(c, l), file: frame })), { ...pathLoad(p), file: pathFrame }];
    const out: LevelFigures[] = [];
    let next = 0;
    for (const load of loads) {
      const streams = ids.slice(next, next + load.streams);
      next += load.streams;
      const per = Math.ceil(load.framesPerCore / load.framesPerCheckpoint);
      const deadline = Date.now() + c.deadlineS * 1000;
      const lat: number[] = [];
      const errors: Record<string, number> = {};
      let commits = 0;
      let timedOut = false;
      const t0 = performance.now();
      await Promise.all(
        streams.map(async (id) => {
          let committed = 0;
          let listed = 0;
          for (let k = 0; k < per; k++) {
            if (Date.now() > deadline) {
              timedOut = true;
              return;
            }
            const t = performance.now();
            const r = await commitCheckpoint(db, files, id, committed, load.framesPerCheckpoint, [{ name: RECIPE.frame.name, bytes: load.file }], [{ name: RECIPE.checkpoint.name, bytes: ckpt }]);
            if (!r.ok) {
              errors[r.reason] = (errors[r.reason] ?? 0) + 1;
              return;
            }
            lat.push(performance.now() - t);
            committed = r.frames;
            commits++;
            // As the committing session does, after the reply (outside the latency).
            if (++listed >= PARTITIONS_PER_PAGE) listed = (await pagePartitions(db, id, PARTITIONS_PER_PAGE)) ?? listed;
          }
        }),
      );
      const s = (performance.now() - t0) / 1000;
      const fig: LevelFigures = { streams: load.streams, commits, mbPerS: round((commits * load.file.length) / s / 1e6, 1), elapsedS: round(s, 2), commitsPerS: round(commits / s, 1), latencyMs: latency(lat), errors, timedOut };
      ctx.log(`commits store (${tag}) ×${load.streams}${load.framesPerCheckpoint > 1 ? ' frame path' : ''}: ${JSON.stringify(fig)}`);
      out.push(fig);
    }
    return out;
  } finally {
    // Every commit's bytes stay in the store: drop them, or a full run outgrows the disk.
    await client.db(database).dropDatabase().catch(() => undefined);
    await client.close();
  }
}

/** The commits benchmark. */
export async function commitsBench(ctx: BenchContext): Promise<BenchResult> {
  const t0 = Date.now();
  const c = ctx.settings.commits;
  const runs: Partial<Record<TransportName | 'store', LevelFigures[]>> = {};
  // The ceiling is measured before and after the server runs and the better of the two is
  // kept: on a shared machine the store's speed drifts, and the share must not flatter us.
  const before = await storeCeiling(ctx, 'before');
  for (const t of TRANSPORTS) runs[t] = await runTransport(ctx, t);
  const after = await storeCeiling(ctx, 'after');
  runs.store = before.map((b, i) => {
    const a = after[i]!;
    return (a.mbPerS ?? a.commitsPerS) > (b.mbPerS ?? b.commitsPerS) ? a : b;
  });
  const B = 'commits';
  const rows = [];
  for (let i = 0; i < c.levels.length; i++) {
    const u = runs.uws![i]!;
    const n = runs.node![i]!;
    const st = runs.store![i]!;
    const k = c.levels[i]!.streams;
    const uShare = ratio(u.commitsPerS, st.commitsPerS);
    const nShare = ratio(n.commitsPerS, st.commitsPerS);
    rows.push(
      row(B, `${k} stream(s): commits/s`, '/s', u.commitsPerS, n.commitsPerS, 'higher'),
      row(B, `${k} stream(s): share of the store ceiling (${st.commitsPerS}/s)`, '×', uShare, nShare, 'higher', { text: '≥ 0.8', met: uShare >= 0.8 }),
      row(B, `${k} stream(s): commit latency p50`, 'ms', u.latencyMs.p50, n.latencyMs.p50, 'lower'),
      row(B, `${k} stream(s): commit latency p99`, 'ms', u.latencyMs.p99, n.latencyMs.p99, 'lower'),
    );
  }
  const p = c.framePath;
  const k = c.levels.length;
  const [pu, pn, ps] = [runs.uws![k]!, runs.node![k]!, runs.store![k]!];
  const pathLabel = `frame path (${p.frameBytes / 1024} KiB frames, checkpoint every ${p.framesPerCheckpoint})`;
  const pathShare = ratio(pu.mbPerS!, ps.mbPerS!);
  rows.push(
    row(B, `${pathLabel}: frame messages/s acknowledged`, '/s', pu.framesPerS!, pn.framesPerS!, 'higher'),
    row(B, `${pathLabel}: payload MB/s`, 'MB/s', pu.mbPerS!, pn.mbPerS!, 'higher'),
    row(B, `${pathLabel}: share of the store ceiling (${ps.mbPerS} MB/s)`, '×', pathShare, ratio(pn.mbPerS!, ps.mbPerS!), 'higher'),
    row(B, `${pathLabel}: commit latency p50`, 'ms', pu.latencyMs.p50, pn.latencyMs.p50, 'lower'),
    row(B, `${pathLabel}: commit latency p99`, 'ms', pu.latencyMs.p99, pn.latencyMs.p99, 'lower'),
  );
  const notes = [
    `Levels: ${c.levels.map((l) => `${l.streams} stream(s), ${l.commits} commits`).join('; ')}; time limit ${c.deadlineS} s per level. Each commit: one ${c.frameBytes / 1024} KiB frame + a checkpoint with one ${c.checkpointBytes / 1024} KiB state file (incompressible bytes; one partition document, inline) and the conditional stream update; 1 server process (mongodb.maxPoolSize ${POOL}, core.maxConcurrentCommits 64). Streams created through the API with the recipe's seed files (${RECIPE.seed.map((f) => `${f.name} ${f.bytes / 1024} KiB`).join(', ')}).`,
    `Frame path: ${p.cores} cores × ${pathLoad(p).framesPerCore} frames of ${p.frameBytes / 1024} KiB, window ${p.window}, a checkpoint (${c.checkpointBytes / 1024} KiB state) every ${p.framesPerCheckpoint} frames: each partition's frame file is ${(p.frameBytes * p.framesPerCheckpoint) / 2 ** 20} MiB (over storage.inlineMaxBytes, so GridFS), buffered with the server's default core.memoryBufferBytes (spills to disk). Its ceiling: the same partitions (frame file + state) written by commitCheckpoint through the driver, ${p.cores} at once: ${ps.commits} commits, ${ps.mbPerS} MB/s, p50/p99 ${ps.latencyMs.p50}/${ps.latencyMs.p99} ms.`,
    `Store ceiling (driver alone, same process type of client, maxPoolSize ${POOL}, the product's commitCheckpoint on streams inserted like the API's, and its pagePartitions every ${PARTITIONS_PER_PAGE} commits of a stream as a session does, same bytes; the better of a run before and a run after the servers' runs, both in the JSON): ${runs.store.slice(0, k).map((x) => `×${x.streams}: ${x.commitsPerS}/s, p50/p99 ${x.latencyMs.p50}/${x.latencyMs.p99} ms`).join('; ')}.`,
    `Server CPU per commit (ms, incl. receiving the frame): uws ${runs.uws!.map((x) => x.serverCpuMsPerCommit).join(' / ')}, node ${runs.node!.map((x) => x.serverCpuMsPerCommit).join(' / ')} (levels in order, then the frame path).`,
    `Latency: coordinator figures are from sending the checkpoint to "committed" at the core; store figures are one commitCheckpoint call.`,
    ...(['uws', 'node', 'store'] as const).flatMap((t) => runs[t]!.filter((x) => x.timedOut || Object.keys(x.errors).length).map((x) => `${t} ×${x.streams}: ${x.timedOut ? 'hit the time limit; ' : ''}errors ${JSON.stringify(x.errors)}`)),
  ];
  return { name: B, rows, details: { settings: c, runs, ceilingRuns: { before, after } }, notes, elapsedS: (Date.now() - t0) / 1000 };
}
