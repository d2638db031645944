/**
 * bench:cluster — the same assignment and commit load against one node and against three
 * nodes, both behind nginx terminating TLS (so the only difference is the node count), on
 * one single Redis and the test store, reported side by side.
 *
 * Not a timed test, and not meaningful on a busy machine: run it alone.
 *   npm run bench:cluster -- [--cores=200] [--cycles=5] [--nodes=3]
 * On the 2-CPU development machine every node, nginx, Redis, the store and the load
 * generator share two CPUs: three nodes cannot be faster than one there; the run shows the
 * cost of the extra hop and processes, not the scale-out (see docs/performance.md).
 */
import crypto from 'node:crypto';
import os from 'node:os';
import { CoreError, type CoreClient } from '../src/client';
import { inBatches, percentile, startCluster, type Cluster } from '../test/helpers/nodes';
import { stopStack } from '../test/helpers/stack';

/** `--name=value` arguments. */
function arg(name: string, def: number): number {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.split('=')[1]) : def;
}

interface Result {
  label: string;
  cores: number;
  connectMs: number;
  assignsPerS: number;
  assignP50: number;
  assignP99: number;
  commitsPerS: number;
  commitP50: number;
  commitP99: number;
  errors: Record<string, number>;
}

/** One run: `cores` cores connect, all assign at once, then each does `cycles` frame+checkpoint rounds. */
async function run(label: string, c: Cluster, cores: number, cycles: number): Promise<Result> {
  const target = await c.target();
  await inBatches(Array.from({ length: cores }), 25, () => c.stream(target));
  const t0 = Date.now();
  const clients = await inBatches(Array.from({ length: cores }), 100, () => c.client({ requestTimeoutMs: 300_000 }));
  const connectMs = Date.now() - t0;
  const errors: Record<string, number> = {};
  const count = (err: unknown): void => {
    const k = err instanceof CoreError ? err.code : String(err);
    errors[k] = (errors[k] ?? 0) + 1;
  };

  const assignLat: number[] = [];
  const a0 = Date.now();
  await Promise.all(
    clients.map(async (x) => {
      const s = Date.now();
      await x.assign(target).then(() => assignLat.push(Date.now() - s), count);
    }),
  );
  const assignMs = Date.now() - a0;

  const commitLat: number[] = [];
  const c0 = Date.now();
  await Promise.all(
    clients.map(async (x: CoreClient) => {
      for (let i = 0; i < cycles && x.assignment; i++) {
        try {
          await x.sendFrames([{ name: 'frames.xtc', data: crypto.randomBytes(4096) }], 4);
          const s = Date.now();
          await x.checkpoint([{ name: 'state.xml', data: crypto.randomBytes(1024) }]);
          commitLat.push(Date.now() - s);
        } catch (err) {
          count(err);
          return;
        }
      }
    }),
  );
  const commitMs = Date.now() - c0;
  await Promise.allSettled(clients.map((x) => (x.assignment ? x.stop() : undefined)));
  await Promise.all(clients.map((x) => x.close()));
  return {
    label,
    cores,
    connectMs,
    assignsPerS: (assignLat.length / assignMs) * 1000,
    assignP50: percentile(assignLat, 50),
    assignP99: percentile(assignLat, 99),
    commitsPerS: (commitLat.length / commitMs) * 1000,
    commitP50: percentile(commitLat, 50),
    commitP99: percentile(commitLat, 99),
    errors,
  };
}

async function main(): Promise<void> {
  const cores = arg('cores', 200);
  const cycles = arg('cycles', 5);
  const many = arg('nodes', 3);
  const results: Result[] = [];
  for (const n of [1, many]) {
    const c = await startCluster({ nodes: n, workerConnections: Math.max(1024, cores * 2 + 256) });
    try {
      results.push(await run(`${n} node${n > 1 ? 's' : ''} + single Redis, behind nginx`, c, cores, cycles));
    } finally {
      await c.stop();
    }
  }
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 10 ? 1 : 0) : '–');
  const lines = [
    `# bench:cluster — ${cores} cores, ${cycles} commit cycles each (4 × 4 KiB frames + 1 KiB checkpoint); ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)} at the end`,
    '',
    `| metric | ${results.map((r) => r.label).join(' | ')} |`,
    `|---|${results.map(() => '---:').join('|')}|`,
    `| connect ${cores} cores (ms) | ${results.map((r) => f(r.connectMs)).join(' | ')} |`,
    `| assigns/s (all at once) | ${results.map((r) => f(r.assignsPerS)).join(' | ')} |`,
    `| assign latency p50 / p99 (ms) | ${results.map((r) => `${f(r.assignP50)} / ${f(r.assignP99)}`).join(' | ')} |`,
    `| commits/s | ${results.map((r) => f(r.commitsPerS)).join(' | ')} |`,
    `| commit latency p50 / p99 (ms) | ${results.map((r) => `${f(r.commitP50)} / ${f(r.commitP99)}`).join(' | ')} |`,
    `| errors | ${results.map((r) => JSON.stringify(r.errors)).join(' | ')} |`,
    '',
    'Redis: one standalone redis-server for both rows. All processes share this machine: with 2 CPUs,',
    'three nodes add processes and a proxy hop but no CPU, so they are not expected to beat one node here.',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopStack());
