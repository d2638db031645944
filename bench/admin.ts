/**
 * Admin API rate: autocannon (in a forked load generator) on a public GET
 * (`/v1/targets/:id` of a public target: any caller, no token) and on `/v1/active-cores`,
 * over TLS with keep-alive connections. Requests per second and latency p50/p99.
 */
import { benchServer, freshDatabase, stopServer, TRANSPORTS, type BenchContext } from './lib/context';
import { createCoreFixture, createStreamsViaApi, resetQueues } from './lib/fixtures';
import { closeLoadGens, startLoadGens, type LoadGen } from './lib/loadgen-pool';
import { CpuWindow } from './lib/proc';
import { row, type BenchResult } from './lib/report';
import type { BenchServer, TransportName } from './lib/server';
import { round } from './lib/stats';

interface HttpFigures {
  path: string;
  requestsPerSec: number;
  total: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  serverCpuMsPerRequest: number;
  loadgenCpuMs: number;
}

async function cannon(ctx: BenchContext, server: BenchServer, path: string, durationS: number): Promise<HttpFigures> {
  const a = ctx.settings.admin;
  let gens: LoadGen[] = [];
  try {
    gens = await startLoadGens(1);
    const cpu = new CpuWindow(() => server.pids());
    cpu.start();
    gens[0]!.send({ cmd: 'http', url: `${server.url}${path}`, ca: ctx.stack.caPem, connections: a.connections, durationS });
    const r = await gens[0]!.next<Record<string, number>>(['http'], durationS * 1000 + 60_000);
    const serverMs = cpu.stop();
    return {
      path,
      requestsPerSec: round(r.requestsPerSec!, 0),
      total: r.total!,
      p50: r.p50!,
      p99: r.p99!,
      non2xx: r.non2xx!,
      errors: r.errors!,
      serverCpuMsPerRequest: round(serverMs / Math.max(1, r.total!), 3),
      loadgenCpuMs: round(r.cpuMs!, 0),
    };
  } finally {
    await closeLoadGens(gens);
  }
}

async function runTransport(ctx: BenchContext, transport: TransportName): Promise<{ target: HttpFigures; cores: HttpFigures }> {
  const a = ctx.settings.admin;
  const database = `bench_admin_${transport}`;
  const { admin } = await freshDatabase(ctx, database);
  await resetQueues(ctx.stack, ctx.stack.db(database));
  let server: BenchServer | undefined;
  try {
    server = await benchServer(ctx, { tag: `admin-${transport}`, transport, workers: 1, database, adminToken: admin });
    const fx = await createCoreFixture(server.url, ctx.stack.caPem, database, admin);
    await createStreamsViaApi(server.url, ctx.stack.caPem, fx, a.streams);
    const targetPath = `/v1/targets/${fx.targetId}`;
    await cannon(ctx, server, targetPath, a.warmupS);
    const target = await cannon(ctx, server, targetPath, a.durationS);
    const cores = await cannon(ctx, server, '/v1/active-cores', a.durationS);
    ctx.log(`admin ${transport}: ${JSON.stringify({ target, cores })}`);
    return { target, cores };
  } finally {
    await stopServer(ctx, server);
  }
}

/** The admin API benchmark. */
export async function adminBench(ctx: BenchContext): Promise<BenchResult> {
  const t0 = Date.now();
  const a = ctx.settings.admin;
  const runs: Partial<Record<TransportName, { target: HttpFigures; cores: HttpFigures }>> = {};
  for (const t of TRANSPORTS) runs[t] = await runTransport(ctx, t);
  const u = runs.uws!;
  const n = runs.node!;
  const B = 'admin';
  const rows = [
    row(B, 'GET /v1/targets/:id (public): requests/s', '/s', u.target.requestsPerSec, n.target.requestsPerSec, 'higher', { text: 'uws/node ≥ 2', met: u.target.requestsPerSec >= 2 * n.target.requestsPerSec }),
    row(B, 'GET /v1/targets/:id: latency p50', 'ms', u.target.p50, n.target.p50, 'lower'),
    row(B, 'GET /v1/targets/:id: latency p99', 'ms', u.target.p99, n.target.p99, 'lower'),
    row(B, 'GET /v1/targets/:id: server CPU per request', 'ms', u.target.serverCpuMsPerRequest, n.target.serverCpuMsPerRequest, 'lower'),
    row(B, 'GET /v1/active-cores: requests/s', '/s', u.cores.requestsPerSec, n.cores.requestsPerSec, 'higher'),
    row(B, 'GET /v1/active-cores: latency p50', 'ms', u.cores.p50, n.cores.p50, 'lower'),
    row(B, 'GET /v1/active-cores: latency p99', 'ms', u.cores.p99, n.cores.p99, 'lower'),
    row(B, 'GET /v1/active-cores: server CPU per request', 'ms', u.cores.serverCpuMsPerRequest, n.cores.serverCpuMsPerRequest, 'lower'),
  ];
  // The version of the installed autocannon, read at run time (its package.json is not an ES module export).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const autocannonVersion = (require('autocannon/package.json') as { version: string }).version;
  const notes = [
    `autocannon ${autocannonVersion}, ${a.connections} keep-alive connections, pipelining 1, ${a.durationS} s per route after a ${a.warmupS} s warm-up, from a forked process; 1 server process; the target has ${a.streams} streams.`,
    `TLS: autocannon 8 always sets rejectUnauthorized: false on its sockets (it overrides tlsOptions), so the certificate is not verified (loopback only); the dev CA is passed in tlsOptions anyway and the servername is localhost.`,
    `Non-2xx / errors: uws target ${u.target.non2xx}/${u.target.errors}, cores ${u.cores.non2xx}/${u.cores.errors}; node target ${n.target.non2xx}/${n.target.errors}, cores ${n.cores.non2xx}/${n.cores.errors}.`,
  ];
  return { name: B, rows, details: { settings: a, runs }, notes, elapsedS: (Date.now() - t0) / 1000 };
}
