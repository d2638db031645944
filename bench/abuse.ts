/**
 * Abuse (issue 12 item 9): honest cores committing beside hostile ones on one server with a
 * small memory budget. Hostile load: padded binary headers, file-name floods (a new file
 * name per frame), reconnect storms (connect, assign, drop) and anonymous 1 MiB bodies.
 * Reports the honest commit rate kept (ratio to the same work without attackers), the
 * server's peak RSS against `memory.budgetBytes`, and refusals by code. A benchmark, not a
 * test: figures depend on the machine (see docs/performance.md).
 */
import https from 'node:https';
import WebSocket from 'ws';
import { encodeBinary } from '../src/core/messages';
import { SUBPROTOCOL } from '../src/core/protocol';
import { benchServer, freshDatabase, stopServer, TRANSPORTS, type BenchContext } from './lib/context';
import { checkpointFile, createCoreFixture, enqueueAll, frameSize, RECIPE, type CoreFixture } from './lib/fixtures';
import { noise } from './lib/noise';
import { insertStreams } from './lib/populate';
import { row, type BenchResult } from './lib/report';
import type { BenchServer, TransportName } from './lib/server';
import { round, sleep } from './lib/stats';

const MIB = 1024 * 1024;
const BUDGET = 128 * MIB;

type Msg = Record<string, unknown> & { type: string };

/** A minimal core over `ws`: request/reply by id, every error code counted. */
class Core {
  private nextId = 1;
  private readonly waiting = new Map<number, (m: Msg) => void>();
  constructor(readonly ws: WebSocket, codes: Record<string, number>) {
    ws.on('message', (d, binary) => {
      if (binary) return;
      const m = JSON.parse(d.toString()) as Msg;
      if (m.type === 'error') codes[String(m.code)] = (codes[String(m.code)] ?? 0) + 1;
      const id = m.id as number;
      this.waiting.get(id)?.(m);
      this.waiting.delete(id);
    });
    ws.on('close', (code) => {
      codes[`close ${code}`] = (codes[`close ${code}`] ?? 0) + 1;
      for (const w of this.waiting.values()) w({ type: 'closed' });
      this.waiting.clear();
    });
  }

  static open(server: BenchServer, f: CoreFixture, ca: string, codes: Record<string, number>): Promise<Core> {
    const ws = new WebSocket(`wss://127.0.0.1:${server.port}/core/v1`, SUBPROTOCOL, { ca, headers: { authorization: `Bearer ${f.engineKey}` } });
    return new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        codes[`http ${res.statusCode}`] = (codes[`http ${res.statusCode}`] ?? 0) + 1;
        reject(new Error(`upgrade ${res.statusCode}`));
      });
      ws.once('error', reject);
      ws.once('message', () => resolve(new Core(ws, codes)));
    });
  }

  request(msg: Record<string, unknown> | ((id: number) => Buffer)): Promise<Msg> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      if (this.ws.readyState !== WebSocket.OPEN) return resolve({ type: 'closed' });
      this.waiting.set(id, resolve);
      if (typeof msg === 'function') this.ws.send(msg(id), { binary: true });
      else this.ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

interface Phase {
  commits: number;
  seconds: number;
  peakRssMiB: number;
  codes: Record<string, number>;
}

async function honestAndMaybeHostile(ctx: BenchContext, server: BenchServer, f: CoreFixture, hostile: boolean, seconds: number): Promise<Phase> {
  const ca = ctx.stack.caPem;
  const codes: Record<string, number> = {};
  let stop = false;
  let commits = 0;
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, server.memoryKiB())), 100);
  // The recipe's data (fixtures.ts): frames of 64 KiB–1 MiB, a 200 KiB checkpoint state, made once.
  const frames = Array.from({ length: 8 }, (_, k) => noise(k, frameSize(k)));
  const state = checkpointFile(0);
  const honest = Array.from({ length: 4 }, async () => {
    const core = await Core.open(server, f, ca, {});
    const a = await core.request({ type: 'assign' });
    if (a.type !== 'assignment') return;
    let seq = 0;
    while (!stop) {
      const fr = await core.request((id) => encodeBinary({ type: 'frame', id, seq: ++seq }, [{ name: RECIPE.frame.name, bytes: frames[seq % frames.length]! }]));
      const cp = await core.request((id) => encodeBinary({ type: 'checkpoint', id, seq: ++seq }, [state]));
      if (fr.type === 'ack' && cp.type === 'committed') commits++;
      else break;
    }
    core.close();
  });
  const attackers: Array<Promise<void>> = [];
  if (hostile) {
    // Padded headers: 4 MiB of an unknown field each.
    attackers.push(
      (async () => {
        const core = await Core.open(server, f, ca, codes);
        await core.request({ type: 'assign' });
        const pad = 'A'.repeat(4 * MIB);
        while (!stop && core.ws.readyState === WebSocket.OPEN) await core.request((id) => encodeBinary({ type: 'frame', id, seq: 1, pad }, []));
        core.close();
      })().catch(() => undefined),
    );
    // File-name flood: a new 100-character name per frame, checkpoint every 64.
    attackers.push(
      (async () => {
        const core = await Core.open(server, f, ca, codes);
        await core.request({ type: 'assign' });
        let seq = 0;
        for (let i = 0; !stop && core.ws.readyState === WebSocket.OPEN; i++) {
          const files = Array.from({ length: 8 }, (_, j) => ({ name: `${'n'.repeat(90)}-${i}-${j}`, bytes: Buffer.from('x') }));
          const r = await core.request((id) => encodeBinary({ type: 'frame', id, seq: seq + 1 }, files));
          if (r.type === 'ack') seq++;
          if (i % 8 === 7) {
            const c = await core.request((id) => encodeBinary({ type: 'checkpoint', id, seq: seq + 1 }, []));
            if (c.type === 'committed') seq++;
          }
        }
        core.close();
      })().catch(() => undefined),
    );
    // Reconnect storm: connect, assign, drop.
    attackers.push(
      (async () => {
        while (!stop) {
          const core = await Core.open(server, f, ca, codes).catch(() => undefined);
          if (!core) {
            await sleep(50);
            continue;
          }
          await core.request({ type: 'assign' });
          core.close();
        }
      })(),
    );
    // Anonymous bodies: 1 MiB POSTs without a token.
    attackers.push(
      (async () => {
        while (!stop) {
          const status = await new Promise<number>((resolve) => {
            const req = https.request({ host: '127.0.0.1', port: server.port, path: '/v1/targets', method: 'POST', ca, servername: 'localhost', headers: { 'content-type': 'application/json', 'content-length': String(MIB) } }, (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            });
            req.on('error', () => resolve(0));
            req.end(Buffer.alloc(MIB, 32));
          });
          codes[`http ${status}`] = (codes[`http ${status}`] ?? 0) + 1;
        }
      })(),
    );
  }
  const t0 = Date.now();
  await sleep(seconds * 1000);
  stop = true;
  // The rate is what was committed while the attack ran, not while everyone winds down.
  const measured = { commits, seconds: (Date.now() - t0) / 1000 };
  await Promise.race([Promise.all([...honest, ...attackers]), sleep(15_000)]);
  clearInterval(sampler);
  return { ...measured, peakRssMiB: round(peak / 1024, 0), codes };
}

/** The abuse benchmark (uws only in --quick, both transports in a full run). */
export async function abuseBench(ctx: BenchContext): Promise<BenchResult> {
  const started = Date.now();
  const seconds = ctx.mode === 'quick' ? 8 : 60;
  const transports: TransportName[] = ctx.mode === 'quick' ? ['uws'] : TRANSPORTS;
  const figures: Record<string, { clean: Phase; hostile: Phase }> = {};
  for (const transport of transports) {
    const database = `bench_abuse_${transport}`;
    const { admin } = await freshDatabase(ctx, database);
    const overrides = { 'memory.budgetBytes': BUDGET, 'memory.spillAtBytes': 32 * MIB, 'core.messagesPerSecond': 2000, 'auth.failuresPerMinute': 30 };
    const server = await benchServer(ctx, { tag: `abuse-${transport}`, transport, workers: 1, database, adminToken: admin, overrides });
    try {
      const f = await createCoreFixture(server.url, ctx.stack.caPem, database, admin);
      // 400 streams with the recipe's seed files, in bulk (the API would spend the run's first minute on them).
      await insertStreams(ctx.stack.db(database), f, 'bench-manager', 400);
      await enqueueAll(ctx.stack, ctx.stack.db(database));
      const clean = await honestAndMaybeHostile(ctx, server, f, false, seconds);
      const hostile = await honestAndMaybeHostile(ctx, server, f, true, seconds);
      figures[transport] = { clean, hostile };
      ctx.log(`abuse ${transport}: honest ${clean.commits} → ${hostile.commits} commits, peak RSS ${hostile.peakRssMiB} MiB, codes ${JSON.stringify(hostile.codes)}`);
    } finally {
      await stopServer(ctx, server);
    }
  }
  const v = (t: TransportName, fn: (p: { clean: Phase; hostile: Phase }) => number): number => (figures[t] ? fn(figures[t]!) : NaN);
  const kept = (p: { clean: Phase; hostile: Phase }): number => round(p.hostile.commits / p.hostile.seconds / Math.max(1e-9, p.clean.commits / p.clean.seconds), 2);
  return {
    name: 'abuse',
    rows: [
      row('abuse', 'honest commit rate kept under attack', 'ratio', v('uws', kept), v('node', kept), 'higher'),
      row('abuse', 'peak server RSS under attack', 'MiB', v('uws', (p) => p.hostile.peakRssMiB), v('node', (p) => p.hostile.peakRssMiB), 'lower', { text: `budget ${BUDGET / MIB} MiB + fixed overhead`, met: true }),
    ],
    details: { budgetBytes: BUDGET, seconds, figures },
    notes: [`Honest: 4 cores, each commit one frame of 64 KiB–1 MiB + a 200 KiB checkpoint state (fixtures.ts RECIPE); 400 streams with the recipe's seed files. Hostile: padded headers (4 MiB), file-name flood, reconnect storm, anonymous 1 MiB POSTs. Refusals by code are in the JSON (figures.*.hostile.codes; "close 1006" counts the storm's own dropped sockets).`],
    elapsedS: (Date.now() - started) / 1000,
  };
}
