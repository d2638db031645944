/**
 * Frame throughput: K cores each send binary frame messages (1 KiB, 64 KiB, 1 MiB payloads)
 * with a checkpoint every m frames (m chosen per size so every partition holds 1 MiB of
 * frames, stored inline), keeping a window of messages unanswered. Reports acknowledged
 * frame messages per second, payload MB/s, checkpoint commit latency and the server's CPU
 * seconds per GB of payload.
 */
import { TRANSPORTS, withStreamsServer, type BenchContext } from './lib/context';
import { closeLoadGens, sourceAddress, startLoadGens, type LoadGen } from './lib/loadgen-pool';
import type { FrameSize } from './lib/modes';
import { CpuWindow } from './lib/proc';
import { row, type BenchResult } from './lib/report';
import type { BenchServer, TransportName } from './lib/server';
import { latency, round } from './lib/stats';
import type { WorkResult } from './loadgen';

interface SizeFigures {
  size: string;
  cores: number;
  frameAcks: number;
  commits: number;
  elapsedS: number;
  messagesPerS: number;
  mbPerS: number;
  commitLatencyMs: ReturnType<typeof latency>;
  serverCpuS: number;
  serverCpuSPerGB: number;
  loadgenCpuS: number;
  errors: Record<string, number>;
  timedOut: boolean;
}

/** Overrides of the frames and commits benchmarks: no per-core message rate limit in the way. */
export const THROUGHPUT_OVERRIDES = { 'core.messagesPerSecond': 1_000_000 };

/** One line of the frame-size description. */
function describe(s: FrameSize): string {
  return `${s.label}: ${s.frames} frames, ${s.framesPerCheckpoint ? `checkpoint every ${s.framesPerCheckpoint}` : 'one checkpoint after the last frame, rate read at the last frame ack'}, window ${s.window}`;
}

async function runSize(ctx: BenchContext, server: BenchServer, engineKey: string, size: FrameSize): Promise<SizeFigures> {
  const f = ctx.settings.frames;
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
      cores: f.cores,
      frameBytes: size.bytes,
      framesPerCheckpoint: size.framesPerCheckpoint,
      checkpointBytes: f.checkpointBytes,
      framesPerCore: Math.ceil(size.frames / f.cores),
      window: size.window,
      timeoutMs: 30_000,
      deadlineMs: f.deadlineS * 1000,
    });
    const ready = await g.next<{ cores: number; errors: Record<string, number> }>(['ready'], 60_000);
    if (ready.cores < f.cores) throw new Error(`only ${ready.cores} of ${f.cores} cores were assigned: ${JSON.stringify(ready.errors)}`);
    const cpu = new CpuWindow(() => server.pids());
    cpu.start();
    g.send({ cmd: 'go' });
    const r = await g.next<WorkResult>(['work'], f.deadlineS * 1000 + 60_000);
    const serverMs = cpu.stop();
    // The frame-path variant is read at the last frame ack: its one checkpoint (several MiB
    // through GridFS) is not part of the frame path.
    const s = (size.framesPerCheckpoint === 0 ? r.framesElapsedMs : r.elapsedMs) / 1000;
    return {
      size: size.label,
      cores: r.cores,
      frameAcks: r.frameAcks,
      commits: r.commits,
      elapsedS: round(s, 2),
      messagesPerS: round(r.frameAcks / s, 0),
      mbPerS: round(r.bytesAcked / s / 1e6, 1),
      commitLatencyMs: latency(r.commitLatenciesMs),
      serverCpuS: round(serverMs / 1000, 2),
      serverCpuSPerGB: round(serverMs / 1000 / (r.bytesAcked / 1e9), 2),
      loadgenCpuS: round(r.cpuMs / 1000, 2),
      errors: r.errors,
      timedOut: r.timedOut,
    };
  } finally {
    await closeLoadGens(gens);
  }
}

async function runTransport(ctx: BenchContext, transport: TransportName): Promise<SizeFigures[]> {
  const f = ctx.settings.frames;
  const overrides = { ...THROUGHPUT_OVERRIDES, 'core.memoryBufferBytes': f.memoryBufferBytes };
  // One fresh stream per core and size: sizes never share a stream.
  return withStreamsServer(ctx, { tag: `frames-${transport}`, transport, overrides, streams: f.cores * f.sizes.length }, async (server, fx) => {
    const out: SizeFigures[] = [];
    for (const size of f.sizes) {
      const r = await runSize(ctx, server, fx.engineKey, size);
      ctx.log(`frames ${transport} ${size.label}: ${JSON.stringify(r)}`);
      out.push(r);
    }
    return out;
  });
}

/** The frames benchmark. */
export async function framesBench(ctx: BenchContext): Promise<BenchResult> {
  const t0 = Date.now();
  const f = ctx.settings.frames;
  const runs: Partial<Record<TransportName, SizeFigures[]>> = {};
  for (const t of TRANSPORTS) runs[t] = await runTransport(ctx, t);
  const B = 'frames';
  const rows = [];
  for (let i = 0; i < f.sizes.length; i++) {
    const u = runs.uws![i]!;
    const n = runs.node![i]!;
    const size = f.sizes[i]!;
    const label = size.label;
    const goal = size.bytes === 1024 ? { text: '≥ 50,000/s', met: u.messagesPerS >= 50_000 } : undefined;
    rows.push(row(B, `${label}: frame messages/s acknowledged`, '/s', u.messagesPerS, n.messagesPerS, 'higher', goal), row(B, `${label}: payload MB/s`, 'MB/s', u.mbPerS, n.mbPerS, 'higher'));
    if (size.framesPerCheckpoint > 0) {
      rows.push(
        row(B, `${label}: commit latency p50`, 'ms', u.commitLatencyMs.p50, n.commitLatencyMs.p50, 'lower'),
        row(B, `${label}: commit latency p99`, 'ms', u.commitLatencyMs.p99, n.commitLatencyMs.p99, 'lower'),
      );
    }
    rows.push(row(B, `${label}: server CPU per GB`, 's/GB', u.serverCpuSPerGB, n.serverCpuSPerGB, 'lower'));
    const dropped = (x: SizeFigures): number => Object.entries(x.errors).reduce((k, [e, v]) => k + (e.startsWith('closed') ? v : 0), 0);
    if (size.window * size.bytes >= 1024 ** 2 || dropped(u) + dropped(n) > 0) {
      rows.push(row(B, `${label}: sockets dropped (of ${f.cores})`, 'count', dropped(u), dropped(n), 'lower'));
    }
  }
  const notes = [
    `${f.cores} cores from one load-generator process, 1 server process; ${f.sizes.map(describe).join('; ')}; each checkpoint carries one ${f.checkpointBytes}-byte file; core.messagesPerSecond raised to ${THROUGHPUT_OVERRIDES['core.messagesPerSecond']} so the per-core rate limit is not what is measured, core.memoryBufferBytes ${f.memoryBufferBytes / 2 ** 20} MiB so no buffer spills to disk; time limit ${f.deadlineS} s per size; one fresh stream per core and size.`,
    `Commit latency: from sending the checkpoint to its "committed" (the frames queued before it on the same socket are processed first). MB = 10^6 bytes of frame payload.`,
    ...TRANSPORTS.map((t) => `${t}: ${runs[t]!.map((x) => `${x.size}: ${x.frameAcks} acks + ${x.commits} commits in ${x.elapsedS} s, server ${x.serverCpuS} CPU s, load generator ${x.loadgenCpuS} CPU s${x.timedOut ? ' (hit the time limit)' : ''}${Object.keys(x.errors).length ? `, errors ${JSON.stringify(x.errors)}` : ''}`).join('; ')}.`),
  ];
  return { name: B, rows, details: { settings: f, runs }, notes, elapsedS: (Date.now() - t0) / 1000 };
}
