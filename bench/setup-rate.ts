/**
 * Session set-up rate: new authenticated, assigned sessions per second (TLS handshake +
 * upgrade + engine-key check + welcome + assign → assignment), their latency, and the
 * server's CPU time per established session (utime + stime of every server process from
 * /proc, over the set-up window, divided by the sessions). Beside it, in the same run, the
 * same figure for bare TLS WebSocket echo servers (bench/echo-uws.ts: the floor, and
 * bench/echo-node.ts), driven by the same load generator doing the same exchange (echo-uws
 * a second time answering with as many bytes as an assignment: the floor of sending them), and for
 * the Centrifugo v5.4.9 peer (bench/lib/centrifugo-peer.ts: connect with a token, subscribe
 * to one channel), twice: with an empty subscribe reply, and with a reply that carries as
 * many bytes as the coordinator's assignment (a state channel's publication).
 */
import os from 'node:os';
import { benchServer, stopServer, TRANSPORTS, type BenchContext } from './lib/context';
import { PEER, PEER_PING_INTERVAL_S, peerSessions, publishStates, startPeer, type PeerServer } from './lib/centrifugo-peer';
import { RECIPE, resetQueues, seedBody } from './lib/fixtures';
import { closeLoadGens, runSessions, sessionsTotals, startLoadGens, type LoadGen } from './lib/loadgen-pool';
import { CpuWindow } from './lib/proc';
import { row, type BenchResult } from './lib/report';
import { startEcho, type BenchServer, type TransportName } from './lib/server';
import { latency, ratio, round, sleep } from './lib/stats';
import type { SessionsCommand } from './loadgen';

/** The uws run with the seed cache off. */
const UNCACHED = 'uws-seed-cache-off';
/** The echo-uws run whose replies are as large as an assignment. */
const SIZED_ECHO = 'echo-uws-assignment-bytes';

/** About the bytes of a recipe assignment: its seed files in base64 in JSON, the target's options, the other fields. */
function assignmentBytes(): number {
  return Buffer.byteLength(JSON.stringify({ type: 'assignment', id: 1, stream_id: 'x'.repeat(24), target_id: 'x'.repeat(24), options: RECIPE.targetOptions, frames: 0, ...seedBody(0) }));
}

interface SetupFigures {
  target: string;
  established: number;
  failed: number;
  reasons: Record<string, number>;
  wallS: number;
  ratePerS: number;
  latencyMs: ReturnType<typeof latency>;
  serverCpuMsPerSession: number;
  loadgenCpuMsPerSession: number;
  /** Server RSS growth per open session (before the load vs. all sessions open). */
  serverKiBPerSession: number;
}

async function drive(ctx: BenchContext, target: string, server: BenchServer, path: string, key: string | undefined, expect: 'assignment' | 'any', peer?: (loadgen: number) => Partial<SessionsCommand>): Promise<SetupFigures> {
  const s = ctx.settings.setup;
  let gens: LoadGen[] = [];
  try {
    gens = await startLoadGens(s.loadgens);
    await sleep(500);
    const rssBefore = server.memoryKiB();
    const cpu = new CpuWindow(() => server.pids());
    cpu.start();
    const results = await runSessions(gens, ctx.stack.caPem, s, (i) => ({
      url: `wss://127.0.0.1:${server.port}${path}`,
      ...(key ? { key } : {}),
      protocol: 'coordinator.core.v1',
      expect,
      ...peer?.(i),
    }));
    const serverMs = cpu.stop();
    const { established, failed, notAttempted, reasons, spanS: wallS } = sessionsTotals(results);
    const rssAfter = server.memoryKiB();
    return {
      target,
      established,
      failed: failed + notAttempted,
      reasons,
      wallS: round(wallS, 2),
      ratePerS: round(established / wallS, 1),
      latencyMs: latency(results.flatMap((r) => r.latenciesMs)),
      serverCpuMsPerSession: round(serverMs / Math.max(1, established), 3),
      loadgenCpuMsPerSession: round(results.reduce((n, r) => n + r.cpuMs, 0) / Math.max(1, established), 3),
      serverKiBPerSession: round((rssAfter - rssBefore) / Math.max(1, established), 2),
    };
  } finally {
    await closeLoadGens(gens);
  }
}

/** One coordinator run; `overrides` are config keys on top of the benchmark's (the seed cache off, for one). */
async function coordinator(ctx: BenchContext, transport: TransportName, tag: string = transport, overrides: Record<string, unknown> = {}): Promise<SetupFigures> {
  const pop = await ctx.population();
  await resetQueues(ctx.stack, ctx.stack.db(pop.fixture.database));
  let server: BenchServer | undefined;
  try {
    server = await benchServer(ctx, {
      tag: `setup-${tag}`,
      transport,
      workers: 1,
      database: pop.fixture.database,
      adminToken: pop.fixture.admin,
      overrides: { 'server.maxConnections': ctx.settings.sessions.maxConnections, ...overrides },
    });
    return await drive(ctx, tag, server, '/core/v1', pop.fixture.engineKey, 'assignment');
  } finally {
    await stopServer(ctx, server);
  }
}

async function echo(ctx: BenchContext, kind: 'uws' | 'node', replyBytes?: number): Promise<SetupFigures> {
  const tag = replyBytes ? SIZED_ECHO : `echo-${kind}`;
  const server = await startEcho(ctx.stack, kind, ctx.cpuProfDir ? `${ctx.cpuProfDir}/setup-${tag}` : undefined, replyBytes);
  try {
    return await drive(ctx, tag, server, '/echo', undefined, 'any');
  } finally {
    await server.stop(ctx.cpuProfDir ? 'graceful' : 'kill');
  }
}

/**
 * The peer's sessions; with `withState`, each subscribe reply carries one of the recipe's
 * seed bodies (published before the measured window, which starts on a fresh process).
 */
async function centrifugo(ctx: BenchContext, withState: boolean): Promise<SetupFigures> {
  let peer: PeerServer | undefined;
  try {
    peer = await startPeer(ctx, withState ? 'setup-centrifugo-state' : 'setup-centrifugo');
    const p = peer;
    const channels = withState ? await publishStates(p.service, ctx.stack.caPem) : undefined;
    return await drive(ctx, withState ? 'centrifugo-state' : 'centrifugo', p, '/connection/websocket', undefined, 'any', (i) => peerSessions(p, i, channels));
  } finally {
    await peer?.stop();
  }
}

/** The set-up rate benchmark. */
export async function setupRateBench(ctx: BenchContext): Promise<BenchResult> {
  const t0 = Date.now();
  const s = ctx.settings.setup;
  const fig: Record<string, SetupFigures> = {};
  for (const t of TRANSPORTS) {
    ctx.log(`setup: ${t}, ${s.count} sessions`);
    fig[t] = await coordinator(ctx, t);
    ctx.log(`setup: ${t}: ${JSON.stringify(fig[t])}`);
  }
  // Every assignment reading its seed files from the store, as when no two streams share seed content.
  ctx.log(`setup: uws, seed cache off, ${s.count} sessions`);
  fig[UNCACHED] = await coordinator(ctx, 'uws', UNCACHED, { 'core.seedCacheBytes': 0 });
  ctx.log(`setup: ${UNCACHED}: ${JSON.stringify(fig[UNCACHED])}`);
  for (const k of ['uws', 'node'] as const) {
    ctx.log(`setup: echo-${k}`);
    fig[`echo-${k}`] = await echo(ctx, k);
    ctx.log(`setup: echo-${k}: ${JSON.stringify(fig[`echo-${k}`])}`);
  }
  const sized = assignmentBytes();
  ctx.log(`setup: echo-uws, replies of ${sized} bytes`);
  fig[SIZED_ECHO] = await echo(ctx, 'uws', sized);
  ctx.log(`setup: ${SIZED_ECHO}: ${JSON.stringify(fig[SIZED_ECHO])}`);
  ctx.log(`setup: ${PEER}`);
  // A peer that cannot be built or started must not cost the coordinator's figures.
  let peerError: string | undefined;
  try {
    fig.centrifugo = await centrifugo(ctx, false);
    ctx.log(`setup: centrifugo: ${JSON.stringify(fig.centrifugo)}`);
    ctx.log(`setup: ${PEER}, subscribe replies carrying the seed files`);
    fig['centrifugo-state'] = await centrifugo(ctx, true);
    ctx.log(`setup: centrifugo-state: ${JSON.stringify(fig['centrifugo-state'])}`);
  } catch (err) {
    peerError = `${PEER} peer: ${(err as Error).message}`;
    ctx.log(`setup: ${peerError}`);
  }
  const u = fig.uws!;
  const n = fig.node!;
  const c = fig.centrifugo;
  const cs = fig['centrifugo-state'];
  const uc = fig[UNCACHED]!;
  const eu = fig['echo-uws']!;
  const en = fig['echo-node']!;
  const es = fig[SIZED_ECHO]!;
  const B = 'setup';
  const overFloor = ratio(u.serverCpuMsPerSession, eu.serverCpuMsPerSession);
  const overSizedFloor = ratio(u.serverCpuMsPerSession, es.serverCpuMsPerSession);
  const rows = [
    row(B, 'sessions set up per second', '/s', u.ratePerS, n.ratePerS, 'higher'),
    row(B, 'set-up latency p50', 'ms', u.latencyMs.p50, n.latencyMs.p50, 'lower'),
    row(B, 'set-up latency p99', 'ms', u.latencyMs.p99, n.latencyMs.p99, 'lower'),
    row(B, 'server CPU per session', 'ms', u.serverCpuMsPerSession, n.serverCpuMsPerSession, 'lower', { text: 'uws ≤ 2 × echo-uws floor', met: overFloor <= 2 }),
    row(B, 'bare echo server CPU per session (floor: echo-uws; echo-node)', 'ms', eu.serverCpuMsPerSession, en.serverCpuMsPerSession, 'lower'),
    row(B, 'server CPU per session ÷ echo-uws floor', '×', overFloor, ratio(n.serverCpuMsPerSession, eu.serverCpuMsPerSession), 'lower'),
    row(B, 'server RSS per open session, just set up (not idle-settled)', 'KiB', u.serverKiBPerSession, n.serverKiBPerSession, 'lower'),
    row(B, 'bare echo server RSS per open session (echo-uws; echo-node)', 'KiB', eu.serverKiBPerSession, en.serverKiBPerSession, 'lower'),
    row(B, 'load generator CPU per session', 'ms', u.loadgenCpuMsPerSession, n.loadgenCpuMsPerSession, 'info'),
    row(B, 'failed set-ups', 'count', u.failed, n.failed, 'lower'),
  ];
  /**
   * Rows comparing the uws run with another run `o` of the same exchange: the "node" column
   * holds `o`'s figure and the ratio is uws/o; `columns` names the two in each label.
   */
  const besideRows = (label: string, columns: string, o: SetupFigures, cpu: string, cpuGoal?: { text: string; met: boolean }): ReturnType<typeof row>[] => [
    row(B, `${label}: sessions set up per second (${columns})`, '/s', u.ratePerS, o.ratePerS, 'higher'),
    row(B, `${label}: set-up latency p50 (${columns})`, 'ms', u.latencyMs.p50, o.latencyMs.p50, 'lower'),
    row(B, `${label}: set-up latency p99 (${columns})`, 'ms', u.latencyMs.p99, o.latencyMs.p99, 'lower'),
    row(B, `${label}: ${cpu} (${columns})`, 'ms', u.serverCpuMsPerSession, o.serverCpuMsPerSession, 'lower', cpuGoal),
    row(B, `${label}: server RSS per open session, just set up (${columns})`, 'KiB', u.serverKiBPerSession, o.serverKiBPerSession, 'lower'),
    row(B, `${label}: failed set-ups (${columns})`, 'count', u.failed, o.failed, 'lower'),
  ];
  // The seed cache's part: uws with it (the "uws" column) and without it (the "node" column).
  rows.push(...besideRows('seed cache on; off', 'uws; uws', uc, 'server CPU per session'));
  // The floor of sending what the coordinator sends: uws (its column) beside echo-uws sending as many bytes.
  rows.push(...besideRows('bare echo sending an assignment\'s bytes', 'uws; echo-uws', es, 'server CPU per session'));
  const notes = [
    `Streams: the recipe's (bench/lib/fixtures.ts), whose ${RECIPE.distinctSeeds} distinct seed contents repeat round-robin, as the clones of a run share their starting structure; each server process keeps seed content it has read twice in its seed cache (core.seedCacheBytes). "Seed cache off" is uws with core.seedCacheBytes 0: every assignment reads its seed files from the store, as when no two streams share seed content (a miss then costs the same plus one Set lookup). Centrifugo is compared with the cache on${cs ? `; with it off, uws/centrifugo CPU per session is ${ratio(uc.serverCpuMsPerSession, cs.serverCpuMsPerSession)} against the replies of an assignment's size` : ''}.`,
    `${s.count} sessions per server, ${s.loadgens} load generators × ${s.concurrency} set-ups in flight; coordinator with 1 process (server.workers 1); sessions stay open until the end of each run.`,
    `Echo servers (same load generator, same exchange: TLS + upgrade + first message + one request/reply): echo-uws ${eu.ratePerS}/s, p50/p99 ${eu.latencyMs.p50}/${eu.latencyMs.p99} ms, ${eu.serverCpuMsPerSession} CPU ms/session; echo-node ${en.ratePerS}/s, p50/p99 ${en.latencyMs.p50}/${en.latencyMs.p99} ms, ${en.serverCpuMsPerSession} CPU ms/session.`,
    `${SIZED_ECHO}: echo-uws answering each request with one ${sized}-byte text message made once at start (an assignment's bytes, sent the cheapest way): ${es.ratePerS}/s, p50/p99 ${es.latencyMs.p50}/${es.latencyMs.p99} ms, ${es.serverCpuMsPerSession} CPU ms/session; uws ÷ it ${overSizedFloor}.`,
    `Load generator CPU per session (client TLS handshake with chain verification, ws upgrade, two messages): ${u.loadgenCpuMsPerSession} ms (uws run), ${n.loadgenCpuMsPerSession} ms (node run), ${eu.loadgenCpuMsPerSession} ms (echo-uws). All processes share ${os.cpus().length} CPUs with the store and Redis, so the rate is bounded by the whole machine, not the server alone; CPU per session is read per process and is not.`,
    `Failure reasons: ${JSON.stringify(Object.fromEntries(Object.entries(fig).map(([k, v]) => [k, v.reasons])))}.`,
  ];
  /** The rows comparing uws with one Centrifugo run; the "node" column holds Centrifugo's figure, the ratio is uws/centrifugo. */
  const peerRows = (label: string, p: SetupFigures): ReturnType<typeof row>[] =>
    besideRows(label, 'uws; centrifugo', p, 'server CPU per new session', {
      text: 'uws/centrifugo ≤ 0.4 (≥ 2.5 × less)',
      met: u.serverCpuMsPerSession * 2.5 <= p.serverCpuMsPerSession,
    });
  /** One Centrifugo run's figures in a note. */
  const peerFigures = (p: SetupFigures): string =>
    `${p.ratePerS}/s, p50/p99 ${p.latencyMs.p50}/${p.latencyMs.p99} ms, ${p.serverCpuMsPerSession} CPU ms/session, ${p.serverKiBPerSession} KiB/session; uws/centrifugo CPU per session ${ratio(u.serverCpuMsPerSession, p.serverCpuMsPerSession)}. Load generator CPU per session: ${p.loadgenCpuMsPerSession} ms.`;
  // Peer notes go before the last note (failure reasons).
  if (c) {
    rows.push(...peerRows(`${PEER} peer`, c));
    notes.splice(
      notes.length - 1,
      0,
      `${PEER} peer (one process, Go on all ${os.cpus().length} CPUs by default; memory engine, TLS, HMAC connection tokens, ping every ${PEER_PING_INTERVAL_S} s; config in bench/README.md): each session is TLS + upgrade + connect with its own HS256 token + subscribe to a channel of its own, ${peerFigures(c)}`,
    );
  }
  if (cs) {
    // The same bytes per session: the subscribe reply carries a seed body, as an assignment does.
    const label = `${PEER} peer, replies of an assignment's size`;
    rows.push(...peerRows(label, cs));
    notes.splice(
      notes.length - 1,
      0,
      `${label}: the same exchange, but each session subscribes with recovery to one of ${RECIPE.distinctSeeds} channels of the state namespace, published before the window with the recipe's seed files as JSON ({files: {name: base64}}, the bytes of an assignment's files), and its subscribe reply carries that publication (the load generator counts a session only then). Centrifugo keeps them in memory; the coordinator reads each new stream's seed files from the store or, for content it has read before, its seed cache. ${peerFigures(cs)}`,
    );
  }
  return { name: B, rows, details: { settings: s, figures: fig }, notes, elapsedS: (Date.now() - t0) / 1000, ...(peerError ? { error: peerError } : {}) };
}
