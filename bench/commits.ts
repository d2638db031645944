/**
 * Checkpoint commits: commits per second and commit latency at 1, 20 and 200 concurrent
 * streams, each core sending a 64 KiB frame and a checkpoint (one 1 KiB file) back to back
 * and waiting for "committed". Beside it, the store's own ceiling measured in the same run:
 * the same writes through the mongodb driver alone — the product's own commitCheckpoint
 * (partition document with the files inline, then the conditional stream update) — at the
 * same concurrency, with the same connection pool size as a server process.
 */
import { MongoClient } from 'mongodb';
import { commitCheckpoint } from '../src/store/commit';
import { FileStore } from '../src/store/files';
import { THROUGHPUT_OVERRIDES } from './frames';
import { freshDatabase, TRANSPORTS, withStreamsServer, type BenchContext } from './lib/context';
import { insertStreams } from './lib/fixtures';
import { closeLoadGens, sourceAddress, startLoadGens, type LoadGen } from './lib/loadgen-pool';
import type { CommitLevel } from './lib/modes';
import { CpuWindow } from './lib/proc';
import { row, type BenchResult } from './lib/report';
import type { BenchServer, TransportName } from './lib/server';
import { latency, ratio, round } from './lib/stats';
import type { WorkResult } from './loadgen';

/** mongodb.maxPoolSize of a server process (the default), used by the ceiling loop too. */
const POOL = 20;
/** storage.inlineMaxBytes (the default). */
const INLINE_MAX = 1024 * 1024;

interface LevelFigures {
  streams: number;
  commits: number;
  elapsedS: number;
  commitsPerS: number;
  latencyMs: ReturnType<typeof latency>;
  serverCpuMsPerCommit?: number;
  errors: Record<string, number>;
  timedOut: boolean;
}

async function serverLevel(ctx: BenchContext, server: BenchServer, engineKey: string, level: CommitLevel): Promise<LevelFigures> {
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
      cores: level.streams,
      frameBytes: c.frameBytes,
      framesPerCheckpoint: 1,
      checkpointBytes: c.checkpointBytes,
      framesPerCore: Math.ceil(level.commits / level.streams),
      window: 2,
      timeoutMs: 30_000,
      deadlineMs: c.deadlineS * 1000,
    });
    const ready = await g.next<{ cores: number; errors: Record<string, number> }>(['ready'], 120_000);
    if (ready.cores < level.streams) throw new Error(`only ${ready.cores} of ${level.streams} cores were assigned: ${JSON.stringify(ready.errors)}`);
    const cpu = new CpuWindow(() => server.pids());
    cpu.start();
    g.send({ cmd: 'go' });
    const r = await g.next<WorkResult>(['work'], c.deadlineS * 1000 + 60_000);
    const serverMs = cpu.stop();
    const s = r.elapsedMs / 1000;
    return {
      streams: level.streams,
      commits: r.commits,
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

async function runTransport(ctx: BenchContext, transport: TransportName): Promise<LevelFigures[]> {
  const c = ctx.settings.commits;
  const streams = c.levels.reduce((n, l) => n + l.streams, 0);
  return withStreamsServer(ctx, { tag: `commits-${transport}`, transport, overrides: THROUGHPUT_OVERRIDES, streams }, async (server, fx) => {
    const out: LevelFigures[] = [];
    for (const level of c.levels) {
      const r = await serverLevel(ctx, server, fx.engineKey, level);
      ctx.log(`commits ${transport} ×${level.streams}: ${JSON.stringify(r)}`);
      out.push(r);
    }
    return out;
  });
}

/** The store's ceiling: the same commits through the driver alone. */
async function storeCeiling(ctx: BenchContext): Promise<LevelFigures[]> {
  const c = ctx.settings.commits;
  const database = 'bench_commits_store';
  await freshDatabase(ctx, database);
  const client = new MongoClient(ctx.stack.stack.mongo.uri, { tls: true, tlsCAFile: ctx.stack.stack.mongoCAFile, maxPoolSize: POOL, appName: 'bench-ceiling' });
  await client.connect();
  try {
    const db = client.db(database);
    const files = new FileStore(db, INLINE_MAX);
    const total = c.levels.reduce((n, l) => n + l.streams, 0);
    await insertStreams(db, { targetId: 'bench-store-ceiling-00' }, 'bench-manager', total, Buffer.alloc(64, 0x41));
    const ids = (await db.collection('streams').find({}, { projection: { _id: 1 }, sort: { createdAt: 1 } }).toArray()).map((d) => String(d._id));
    const frame = Buffer.alloc(c.frameBytes);
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 31 + 7) & 0xff;
    const ckpt = Buffer.alloc(c.checkpointBytes, 0x5a);
    const out: LevelFigures[] = [];
    let next = 0;
    for (const level of c.levels) {
      const streams = ids.slice(next, next + level.streams);
      next += level.streams;
      const per = Math.ceil(level.commits / level.streams);
      const deadline = Date.now() + c.deadlineS * 1000;
      const lat: number[] = [];
      const errors: Record<string, number> = {};
      let commits = 0;
      let timedOut = false;
      const t0 = performance.now();
      await Promise.all(
        streams.map(async (id) => {
          let committed = 0;
          for (let k = 0; k < per; k++) {
            if (Date.now() > deadline) {
              timedOut = true;
              return;
            }
            const t = performance.now();
            const r = await commitCheckpoint(db, files, id, committed, 1, [{ name: 'frames.xtc', bytes: frame }], [{ name: 'state.xml', bytes: ckpt }]);
            if (!r.ok) {
              errors[r.reason] = (errors[r.reason] ?? 0) + 1;
              return;
            }
            lat.push(performance.now() - t);
            committed = r.frames;
            commits++;
          }
        }),
      );
      const s = (performance.now() - t0) / 1000;
      const fig: LevelFigures = { streams: level.streams, commits, elapsedS: round(s, 2), commitsPerS: round(commits / s, 1), latencyMs: latency(lat), errors, timedOut };
      ctx.log(`commits store ×${level.streams}: ${JSON.stringify(fig)}`);
      out.push(fig);
    }
    return out;
  } finally {
    await client.close();
  }
}

/** The commits benchmark. */
export async function commitsBench(ctx: BenchContext): Promise<BenchResult> {
  const t0 = Date.now();
  const c = ctx.settings.commits;
  const runs: Partial<Record<TransportName | 'store', LevelFigures[]>> = {};
  for (const t of TRANSPORTS) runs[t] = await runTransport(ctx, t);
  runs.store = await storeCeiling(ctx);
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
  const notes = [
    `Levels: ${c.levels.map((l) => `${l.streams} stream(s), ${l.commits} commits`).join('; ')}; time limit ${c.deadlineS} s per level. Each commit: one ${c.frameBytes / 1024} KiB frame + a checkpoint with one ${c.checkpointBytes}-byte file (one partition document, inline) and the conditional stream update; 1 server process (mongodb.maxPoolSize ${POOL}, core.maxConcurrentCommits 64).`,
    `Store ceiling (driver alone, same process type of client, maxPoolSize ${POOL}, the product's commitCheckpoint on streams inserted like the API's): ${runs.store.map((x) => `×${x.streams}: ${x.commitsPerS}/s, p50/p99 ${x.latencyMs.p50}/${x.latencyMs.p99} ms`).join('; ')}.`,
    `Server CPU per commit (ms, incl. receiving the 64 KiB frame): uws ${runs.uws!.map((x) => x.serverCpuMsPerCommit).join(' / ')}, node ${runs.node!.map((x) => x.serverCpuMsPerCommit).join(' / ')} (levels in order).`,
    `Latency: coordinator figures are from sending the checkpoint to "committed" at the core; store figures are one commitCheckpoint call.`,
    ...(['uws', 'node', 'store'] as const).flatMap((t) => runs[t]!.filter((x) => x.timedOut || Object.keys(x.errors).length).map((x) => `${t} ×${x.streams}: ${x.timedOut ? 'hit the time limit; ' : ''}errors ${JSON.stringify(x.errors)}`)),
  ];
  return { name: B, rows, details: { settings: c, runs }, notes, elapsedS: (Date.now() - t0) / 1000 };
}
