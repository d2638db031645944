/**
 * The sessions benchmark's Centrifugo v5.4.9 run: the same number of sessions as each
 * transport, held idle as long, measured the same way (sum of VmRSS before the load and
 * after the hold, CPU while holding). Centrifugo is one process per 15,000 sessions, as the
 * coordinator runs one worker per 15,000 (the 20,000 open files of a process bind both);
 * nodes are independent (memory engine), load generator i connects to node i.
 */
import type { BenchContext } from './lib/context';
import { peerSessions, startPeer, stopPeers, type PeerServer } from './lib/centrifugo-peer';
import { closeLoadGens, runSessions, sessionsTotals, startLoadGens, type LoadGen } from './lib/loadgen-pool';
import { CpuWindow, holdIdle, settledRssKiB, sumRssKiB } from './lib/proc';
import { latency, round } from './lib/stats';

/** What the Centrifugo run measured. */
export interface PeerRunFigures {
  nodes: number;
  requested: number;
  established: number;
  failed: number;
  reasons: Record<string, number>;
  retried: number;
  retryReasons: Record<string, number>;
  droppedDuringHold: number;
  establishS: number;
  ratePerS: number;
  latencyMs: ReturnType<typeof latency>;
  serverRssBeforeMiB: number;
  serverRssAfterMiB: number;
  /** Server RSS growth per held idle session, KiB. */
  serverKiBPerSession: number;
  /** The same from the mean of the RSS read once a second during the hold. */
  serverKiBPerSessionHoldMean: number;
  idleCpuPct: number;
  /** Server CPU while the sessions were set up, per session, ms. */
  serverCpuMsPerSession: number;
  loadgenCpuMsPerSession: number;
}

/** Holds `ctx.settings.sessions.count` Centrifugo sessions idle and measures the nodes. */
export async function holdPeerSessions(ctx: BenchContext): Promise<PeerRunFigures> {
  const s = ctx.settings.sessions;
  const processes = Math.ceil(s.count / s.perProcess);
  const peers: PeerServer[] = [];
  let gens: LoadGen[] = [];
  const pids = (): number[] => peers.flatMap((p) => p.pids());
  try {
    for (let i = 0; i < processes; i++) peers.push(await startPeer(ctx, 'sessions-centrifugo'));
    gens = await startLoadGens(processes, ctx.sessionsLoadGen ?? 'go');
    const before = await settledRssKiB(() => sumRssKiB(pids()), s.settleS);
    const setupCpu = new CpuWindow(pids);
    setupCpu.start();
    const results = await runSessions(gens, ctx.stack.caPem, s, (i) => peerSessions(peers[i]!, i));
    const setupMs = setupCpu.stop();
    const { established, failed, notAttempted, reasons, retried, retryReasons, spanS: establishS } = sessionsTotals(results);
    const { idleCpuPct, rssAfterKiB: after, rssMeanKiB: holdMean } = await holdIdle(pids, s.holdS);
    const stats = await Promise.all(
      gens.map((g) => {
        g.send({ cmd: 'stats' });
        return g.next<{ open: number; dropped: number }>(['stats'], 30_000);
      }),
    );
    return {
      nodes: processes,
      requested: s.count,
      established,
      failed: failed + notAttempted,
      reasons,
      retried,
      retryReasons,
      droppedDuringHold: stats.reduce((n, x) => n + x.dropped, 0),
      establishS: round(establishS, 2),
      ratePerS: round(established / establishS, 1),
      latencyMs: latency(results.flatMap((r) => r.latenciesMs)),
      serverRssBeforeMiB: round(before / 1024, 1),
      serverRssAfterMiB: round(after / 1024, 1),
      serverKiBPerSession: round((after - before) / Math.max(1, established), 2),
      serverKiBPerSessionHoldMean: round((holdMean - before) / Math.max(1, established), 2),
      idleCpuPct: round(idleCpuPct, 1),
      serverCpuMsPerSession: round(setupMs / Math.max(1, established), 3),
      loadgenCpuMsPerSession: round(results.reduce((n, r) => n + r.cpuMs, 0) / Math.max(1, established), 3),
    };
  } finally {
    await closeLoadGens(gens);
    await stopPeers(peers);
  }
}
