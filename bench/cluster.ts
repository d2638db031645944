/**
 * bench:cluster — the same assignment and commit load against 1 node on a single Redis and
 * against N nodes (default 3) on a real Redis Cluster (3 masters, 3 replicas, started by
 * src/provision/redis-cluster.ts on loopback), every row behind nginx terminating TLS and on
 * the test store, reported side by side.
 *
 * Not a timed test, and not meaningful on a busy machine: run it alone.
 *   npm run bench:cluster -- [--cores=200] [--cycles=5] [--nodes=3] [--redis=cluster|single|both] [--results-dir=DIR]
 * Writes bench/results/<stamp>-cluster.{json,md} (the table, the settings, the machine).
 * --redis=cluster (default): 1 node + single Redis, N nodes + Redis Cluster.
 * --redis=single: both rows on the single Redis (the node count is the only difference).
 * --redis=both: 1 node + single Redis, N nodes + single Redis, N nodes + Redis Cluster.
 * On the 2-CPU development machine every node, nginx, the six redis-servers, the store and
 * the load generator share two CPUs: N nodes cannot be faster than one there; the run shows
 * the cost of the extra hop, processes and cluster, not the scale-out (docs/performance.md).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoreError, type CoreClient } from '../src/client';
import { redisCli, startRedisCluster, type RedisCluster } from '../src/provision/redis-cluster';
import { inBatches, percentile, startCluster, type Cluster } from '../test-support/nodes';
import { stopStack } from '../test-support/stack';
import { checkpointFile, frameSize, RECIPE, seedFiles } from './lib/fixtures';
import { noise } from './lib/noise';
import { machineOf, resultsDir, stampOf, writeResultFiles } from './lib/report';

/** `--name=value` arguments. */
function arg(name: string, def: number): number {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.split('=')[1]) : def;
}

/** Which Redis the rows run on (`--redis=`). */
type RedisMode = 'cluster' | 'single' | 'both';

function redisMode(): RedisMode {
  const v = process.argv.find((x) => x.startsWith('--redis='))?.slice('--redis='.length) ?? 'cluster';
  if (v !== 'cluster' && v !== 'single' && v !== 'both') throw new Error(`--redis=${v}: expected cluster, single or both`);
  return v;
}

/** One row: how many nodes, on which Redis. */
interface Row {
  nodes: number;
  cluster: boolean;
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
  // The recipe's data (bench/lib/fixtures.ts): target options, a 200 KiB seed state (the test
  // helper takes one seed file), frames of 64 KiB–1 MiB and 200 KiB checkpoint states.
  const target = await c.target({ options: RECIPE.targetOptions });
  await inBatches(Array.from({ length: cores }), 25, (_, i) => c.stream(target, seedFiles(i)[0]!.bytes));
  const frames = Array.from({ length: 8 }, (_, k) => noise(k, frameSize(k)));
  const state = checkpointFile(0).bytes;
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
          await x.sendFrames([{ name: RECIPE.frame.name, data: frames[i % frames.length]! }], 1);
          const s = Date.now();
          await x.checkpoint([{ name: RECIPE.checkpoint.name, data: state }]);
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
  const started = new Date();
  const dir = resultsDir(process.argv.find((x) => x.startsWith('--results-dir='))?.slice('--results-dir='.length));
  const cores = arg('cores', 200);
  const cycles = arg('cycles', 5);
  const many = arg('nodes', 3);
  const mode = redisMode();
  const rows: Row[] = [{ nodes: 1, cluster: false }];
  if (mode !== 'cluster') rows.push({ nodes: many, cluster: false });
  if (mode !== 'single') rows.push({ nodes: many, cluster: true });
  const results: Result[] = [];
  let rc: RedisCluster | undefined;
  let rcDir: string | undefined;
  try {
    for (const [i, row] of rows.entries()) {
      let overrides: Record<string, unknown> = {};
      if (row.cluster) {
        rcDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'sc-bench-cluster-'));
        rc ??= await startRedisCluster({ dir: rcDir });
        // A prefix per row, so rows never see each other's pool.
        overrides = { 'redis.cluster': rc.seeds, 'redis.keyPrefix': `bc${i}:` };
      } else {
        overrides = { 'redis.keyPrefix': `bc${i}:` };
      }
      const c = await startCluster({ nodes: row.nodes, overrides, workerConnections: Math.max(1024, cores * 2 + 256) });
      try {
        const label = `${row.nodes} node${row.nodes > 1 ? 's' : ''} + ${row.cluster ? 'Redis Cluster (3+3)' : 'single Redis'}, behind nginx`;
        results.push(await run(label, c, cores, cycles));
        if (rc && row.cluster) {
          // Proof that the nodes really ran on the cluster: their pool marker is there.
          const port = Number(rc.seeds[0]!.split(':')[1]);
          const found = (await redisCli(port, ['-c', 'EXISTS', `bc${i}:pool:built`])).trim();
          if (found !== '1') throw new Error(`the nodes left no pool marker on the Redis Cluster (EXISTS said ${found})`);
        }
      } finally {
        await c.stop();
      }
    }
  } finally {
    await rc?.stop();
    if (rcDir) fs.rmSync(rcDir, { recursive: true, force: true });
  }
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 10 ? 1 : 0) : '–');
  const lines = [
    `# bench:cluster — ${cores} cores, ${cycles} commit cycles each (one 64 KiB–1 MiB frame + a 200 KiB checkpoint state; 200 KiB seed states); ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)} at the end`,
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
    'Single Redis: one standalone redis-server. Redis Cluster: 3 masters + 3 replicas (redis-server --cluster-enabled yes)',
    `on loopback. All processes share this machine: with ${os.cpus().length} CPUs, more nodes and a cluster add processes`,
    'and a proxy hop but no CPU, so they are not expected to beat one node here.',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const machine = { ...machineOf(), 'load average at the end': os.loadavg().map((x) => x.toFixed(1)).join(' ') };
  const files = writeResultFiles(
    dir,
    `${stampOf(started)}-cluster`,
    { startedAt: started.toISOString(), finishedAt: new Date().toISOString(), machine, settings: { cores, cycles, nodes: many, redis: mode }, results },
    `${lines.join('\n')}\n\nMachine: ${Object.entries(machine).map(([k, v]) => `${k} ${String(v)}`).join(', ')}.\n`,
  );
  process.stderr.write(`results: ${files.json}, ${files.md}\n`);
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => stopStack());
