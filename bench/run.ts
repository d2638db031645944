/**
 * Benchmark orchestrator: `node dist/bench/run.js [--quick] [--only=sessions,setup,frames,commits,admin,abuse] [--sessions=N] [--per-process=N] [--transports=uws,node] [--loadgen=go|node] [--cpu-prof]`.
 * `--transports` limits the sessions benchmark to some transports (a 100,000-session run of
 * the node transport needs more memory than this machine has: docs/performance.md);
 * `--loadgen=node` runs the sessions benchmark with bench/loadgen.ts instead of bench/loadgen-go;
 * `--per-process=N` sets the sessions per server worker and load generator (so a quick run of
 * a few thousand sessions can still use as many processes as the 200,000 run).
 *
 * Starts its own stack (certificates, Redis, MongoDB-compatible store over TLS) in a
 * temporary directory, runs each selected benchmark with the uws and the node transport in
 * turn on identical work, and writes bench/results/<date>-<mode>.json and .md (rewritten
 * after every benchmark, so an interrupted run keeps what it measured). Everything it
 * started is stopped at the end, also on error or Ctrl-C.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { abuseBench } from './abuse';
import { adminBench } from './admin';
import { commitsBench } from './commits';
import { framesBench } from './frames';
import { buildPopulation, TRANSPORTS, type BenchContext, type Population } from './lib/context';
import type { LoadGenKind } from './lib/loadgen-pool';
import { MODES } from './lib/modes';
import { summarizeProfiles } from './lib/profile';
import { describeStore, machineOf, resultsDir, stampOf, writeResults, type BenchResult, type RunResults } from './lib/report';
import type { TransportName } from './lib/server';
import { startBenchStack } from './lib/stack';
import { setupRateBench } from './setup-rate';
import { sessionsBench } from './sessions';
import { heapBench } from './heap';

const BENCHES: Record<string, (ctx: BenchContext) => Promise<BenchResult>> = {
  sessions: sessionsBench,
  setup: setupRateBench,
  frames: framesBench,
  commits: commitsBench,
  admin: adminBench,
  abuse: abuseBench,
  heap: heapBench,
};


async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'results-dir': { type: 'string' },
      sessions: { type: 'string' },
      'per-process': { type: 'string' },
      transports: { type: 'string' },
      loadgen: { type: 'string' },
    },
  });
  const mode = values.quick ? 'quick' : 'full';
  const only = values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : Object.keys(BENCHES);
  for (const o of only) if (!BENCHES[o]) throw new Error(`unknown benchmark "${o}"; known: ${Object.keys(BENCHES).join(', ')}`);
  const started = new Date();
  const t0 = Date.now();
  const transports = values.transports ? values.transports.split(',').map((s) => s.trim()) : TRANSPORTS;
  for (const t of transports) if (!TRANSPORTS.includes(t as TransportName)) throw new Error(`unknown transport "${t}"; known: ${TRANSPORTS.join(', ')}`);
  if (values.loadgen && values.loadgen !== 'go' && values.loadgen !== 'node') throw new Error(`--loadgen wants go or node, got "${values.loadgen}"`);
  const stamp = `${stampOf(started)}-${mode}${values.only ? `-${only.join('+')}` : ''}${values.sessions ? `-${values.sessions}` : ''}${values['per-process'] ? `-per-${values['per-process']}` : ''}${values.transports ? `-${transports.join('+')}` : ''}${values.loadgen ? `-loadgen-${values.loadgen}` : ''}`;
  const outDir = resultsDir(values['results-dir']);
  const log = (line: string): void => {
    process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  };
  log(`${mode} run of ${only.join(', ')}`);

  const results: RunResults = {
    startedAt: started.toISOString(),
    mode,
    machine: { ...machineOf(), 'open files': 'soft/hard limit per process as inherited' },
    store: {},
    benches: [],
  };
  try {
    results.machine['open files'] = fs.readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)\s+(\d+)/)?.slice(1).join('/') ?? '?';
  } catch {
    // not Linux
  }

  const stack = await startBenchStack((l) => log(`stack: ${l}`));
  results.store = {
    kind: describeStore(stack.stack.mongoKind),
    '_id index': stack.stack.mongoKind === 'ferretdb' ? 'used by every _id lookup (patched build, src/provision/ferretdb.ts)' : 'native',
    redis: 'redis-server (Debian)',
  };
  log(`stack up: ${stack.stack.mongoKind} at ${stack.stack.mongo.uri}, redis at ${stack.stack.redis.url}`);
  const workDir = fs.mkdtempSync(path.join(stack.baseDir, 'work-'));
  const settings = structuredClone(MODES[mode]);
  if (values.sessions) {
    const n = Number(values.sessions);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--sessions wants a positive integer, got "${values.sessions}"`);
    // The deadline grows with the count, so a larger run is not cut short by the default one's.
    settings.sessions.deadlineS = Math.max(settings.sessions.deadlineS, Math.ceil((settings.sessions.deadlineS * n) / settings.sessions.count));
    settings.sessions.count = n;
  }
  if (values['per-process']) {
    const n = Number(values['per-process']);
    if (!Number.isInteger(n) || n < 1 || n > 18_000) throw new Error(`--per-process wants an integer from 1 to 18000, got "${values['per-process']}"`);
    settings.sessions.perProcess = n;
  }
  const cpuProfDir = values['cpu-prof'] ? path.join(outDir, `${stamp}-cpuprof`) : undefined;
  const populationSize = Math.max(only.includes('sessions') ? settings.sessions.count : 0, only.includes('setup') ? settings.setup.count : 0, only.includes('heap') ? settings.heap.high : 0);
  let population: Promise<Population> | undefined;
  if (values.transports && transports.length < TRANSPORTS.length) {
    results.intro = `Only ${transports.join(' and ')} ran in the sessions benchmark (--transports), beside its Centrifugo peer; the other transport's cells are "–" and, in the Centrifugo rows, the "node" column holds Centrifugo's figure.`;
  }
  const ctx: BenchContext = {
    stack,
    mode,
    settings,
    workDir,
    sessionTransports: transports as TransportName[],
    sessionsLoadGen: (values.loadgen ?? 'go') as LoadGenKind,
    ...(cpuProfDir ? { cpuProfDir } : {}),
    log,
    population: () => (population ??= buildPopulation(ctx, 'bench_population', populationSize)),
  };
  let exitCode = 0;
  try {
    for (const name of only) {
      const b0 = Date.now();
      log(`=== ${name}`);
      let r: BenchResult;
      try {
        r = await BENCHES[name]!(ctx);
      } catch (err) {
        exitCode = 1;
        log(`${name} failed: ${(err as Error).stack ?? String(err)}`);
        r = { name, rows: [], details: {}, notes: [], elapsedS: (Date.now() - b0) / 1000, error: (err as Error).message ?? String(err) };
      }
      results.benches.push(r);
      log(`=== ${name} done in ${r.elapsedS.toFixed(1)} s`);
      results.elapsedS = (Date.now() - t0) / 1000;
      writeResults(outDir, stamp, results);
    }
  } finally {
    log('stopping the stack');
    await stack.stop();
  }
  results.finishedAt = new Date().toISOString();
  results.elapsedS = (Date.now() - t0) / 1000;
  if (cpuProfDir && fs.existsSync(cpuProfDir)) {
    const summary = summarizeProfiles(cpuProfDir);
    fs.writeFileSync(path.join(cpuProfDir, 'summary.txt'), summary);
    log(`CPU profiles in ${cpuProfDir} (summary.txt)`);
  }
  const files = writeResults(outDir, stamp, results);
  process.stdout.write(fs.readFileSync(files.md, 'utf8'));
  log(`results: ${files.json}, ${files.md} (${results.elapsedS.toFixed(1)} s)`);
  process.exitCode = exitCode;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
