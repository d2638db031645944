/**
 * The JavaScript heap of a held session: one server worker (uws) holds `low` assigned
 * sessions, then `high`; a V8 heap snapshot is taken `settleS` after the last set-up of each,
 * and the difference of the two, divided by the sessions between them, is what one more held
 * session keeps in the heap, by kind of object. Unlike RSS per session (bench:sessions), which
 * moves by half a KiB between runs as the heap and malloc grow in steps, it is the same from
 * run to run, so it shows what a change to a session's state saves (docs/performance.md
 * "Where set-up time and idle-session memory go"). Sessions are the sessions benchmark's: TLS,
 * upgrade with the engine key, welcome, assign → assignment with the recipe's seed files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { benchServer, stopServer, type BenchContext } from './lib/context';
import { resetQueues } from './lib/fixtures';
import { perUnit, summarize, takeSnapshot } from './lib/heap-snapshot';
import { closeLoadGens, runSessions, sessionsTotals, startLoadGens, type LoadGen } from './lib/loadgen-pool';
import { row, type BenchResult } from './lib/report';
import type { BenchServer } from './lib/server';
import { round, sleep } from './lib/stats';
import { ApiClient } from '../test-support/admin-api';

/** Kinds listed in the notes: the largest per session. */
const LISTED = 14;

export async function heapBench(ctx: BenchContext): Promise<BenchResult> {
  const t0 = Date.now();
  const h = ctx.settings.heap;
  const pop = await ctx.population();
  const db = ctx.stack.db(pop.fixture.database);
  const ready = await resetQueues(ctx.stack, db);
  if (ready < h.high) throw new Error(`only ${ready} ready streams for ${h.high} sessions`);
  const dir = fs.mkdtempSync(path.join(ctx.workDir, 'heap-'));
  let server: BenchServer | undefined;
  let gens: LoadGen[] = [];
  try {
    server = await benchServer(ctx, { tag: 'heap', transport: 'uws', workers: 1, database: pop.fixture.database, adminToken: pop.fixture.admin, heapSnapshotDir: dir });
    const srv = server;
    const api = new ApiClient(srv.url, ctx.stack.caPem, { timeoutMs: 60_000 });
    const alive = (): Promise<unknown> => api.json('GET', '/v1/nodes', pop.fixture.admin, undefined, 200);
    gens = await startLoadGens(1, 'go');
    const hold = async (count: number): Promise<string> => {
      const results = await runSessions(gens, ctx.stack.caPem, { ...h, count, retries: 3 }, () => ({ url: `wss://127.0.0.1:${srv.port}/core/v1`, key: pop.fixture.engineKey, protocol: 'coordinator.core.v1', expect: 'assignment' }));
      const totals = sessionsTotals(results);
      if (totals.established !== count) throw new Error(`${totals.established} of ${count} sessions set up: ${JSON.stringify(totals.reasons)}`);
      await sleep(h.settleS * 1000);
      return takeSnapshot(srv.pid, dir, alive);
    };
    const low = await hold(h.low);
    ctx.log(`heap: snapshot at ${h.low} sessions`);
    const high = await hold(h.high - h.low);
    ctx.log(`heap: snapshot at ${h.high} sessions`);
    const per = perUnit(summarize(low), summarize(high), h.high - h.low);
    // Compiled code grows while the JIT warms up over the first set-ups: not a session's state.
    const code = per.kinds.find((k) => k.kind === 'code')?.bytes ?? 0;
    const bytes = (n: number): string => `${round(n, 1)} B`;
    return {
      name: 'heap',
      rows: [row('heap', 'JavaScript heap per held session (heap snapshots, compiled code left out)', 'B', round(per.total - code, 1), NaN, 'lower')],
      details: { low: h.low, high: h.high, settleS: h.settleS, perSession: per, codePerSession: code },
      notes: [
        `One uws worker; V8 heap snapshots at ${h.low} and ${h.high} held, assigned sessions (${h.settleS} s after the last set-up of each), their difference divided by the ${h.high - h.low} sessions between them.`,
        `Compiled code grew by ${bytes(code)} per session between the snapshots (the JIT still warming up), left out of the figure.`,
        `Largest kinds per session: ${per.kinds
          .filter((k) => k.kind !== 'code')
          .slice(0, LISTED)
          .map((k) => `${k.kind} ${bytes(k.bytes)} (${round(k.count, 2)})`)
          .join('; ')}.`,
      ],
      elapsedS: (Date.now() - t0) / 1000,
    };
  } finally {
    await closeLoadGens(gens);
    await stopServer(ctx, server);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
