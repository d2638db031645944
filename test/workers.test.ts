import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort } from '../src/provision/exec';
import { eventually, request, runCli, stackOverrides, writeConfig } from './helpers/server';
import { getStack, stopStack } from '../test-support/stack';
import type { Settings } from '../src/config/settings';
import { JEMALLOC_CONF, JEMALLOC_PATHS } from '../src/malloc-library';

t.teardown(stopStack);

t.test('two workers share the port, metrics are summed, SIGTERM stops the group', async (t) => {
  const port = await freePort();
  const seedParent = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-workers-seeds-'));
  t.teardown(() => fs.rmSync(seedParent, { recursive: true, force: true }));
  const conf = writeConfig(await stackOverrides({ 'server.port': port, 'server.workers': 2, 'core.maxConcurrentCommits': 5, 'core.maxConcurrentAssignments': 16, 'core.seedCacheDir': seedParent }));
  const p = runCli(['serve', '--config', conf]);
  // Each worker's own "listening" line can reach the output after the primary's summary line.
  const listeningLines = (): number => p.output().split('"msg":"listening"').length - 1;
  await eventually(async () => /all workers listening/.test(p.output()) && listeningLines() === 2, 30000, `all workers listening in:\n${p.output()}`);
  // The store budgets are the server's: each worker takes its share (rounded up).
  const listening = p
    .output()
    .split('\n')
    .filter((l) => l.includes('"msg":"listening"'))
    .map((l) => (JSON.parse(l) as { slots: unknown }).slots);
  t.same(listening, [
    { commits: 3, assignments: 8 },
    { commits: 3, assignments: 8 },
  ], 'each worker runs its share of core.maxConcurrentCommits and core.maxConcurrentAssignments');
  const ca = fs.readFileSync((await getStack()).certs.caCert, 'utf8');

  const seen = new Map<number, number>();
  const pids = new Set<unknown>();
  const N = 60;
  for (let i = 0; i < N; i++) {
    const r = await request(`https://127.0.0.1:${port}/`, { ca });
    const body = r.json<{ worker: number; node: string }>();
    seen.set(body.worker, (seen.get(body.worker) ?? 0) + 1);
    pids.add(body.node);
  }
  t.same([...seen.keys()].sort(), [0, 1], `both workers served new connections: ${JSON.stringify([...seen])}`);
  t.equal(pids.size, 2, 'two processes');
  // server.mallocLibrary "auto" reaches the workers: jemalloc preloaded when it is installed,
  // else glibc with server.mallocMmapThresholdBytes (either is read once, at start).
  const jemalloc = JEMALLOC_PATHS.find((f) => fs.existsSync(f));
  const seedDirs = fs.readdirSync(seedParent);
  t.equal(seedDirs.length, 1, 'one seed directory for the group');
  t.match(seedDirs[0], new RegExp(`^stream-coordinator-seeds-${p.child.pid}-`), 'made by the primary');
  for (const node of pids) {
    const pid = String(node).split(':').pop();
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    if (jemalloc) {
      t.ok(environ.includes(`LD_PRELOAD=${jemalloc}`) && environ.includes(`MALLOC_CONF=${JEMALLOC_CONF}`), `worker ${String(node)} starts with jemalloc and its options`);
      t.ok(maps.includes(jemalloc), `worker ${String(node)} runs on ${jemalloc}`);
    } else {
      t.ok(environ.includes('MALLOC_MMAP_THRESHOLD_=131072'), `worker ${String(node)} starts with the fixed mmap threshold`);
      t.notMatch(maps, /libjemalloc/, `worker ${String(node)} runs on glibc`);
    }
    // Both index one seed directory, the primary's (core/seed-cache.ts).
    t.same(environ.filter((e) => e.startsWith('SC_WORKER_SEED_DIR=')), [`SC_WORKER_SEED_DIR=${path.join(seedParent, seedDirs[0]!)}`], `worker ${String(node)} shares the group's seed directory`);
    // server.maxSemiSpaceMiB reaches them too (V8 sizes its heap once, at start).
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    t.ok(argv.includes('--max-semi-space-size=1'), `worker ${String(node)} starts with a small young generation: ${argv.join(' ')}`);
  }
  if (jemalloc) t.equal(p.output().split('running on a preloaded malloc; malloc_trim is not needed').length - 1, 2, 'neither worker trims glibc\'s heaps');

  const metrics = (await request(`https://127.0.0.1:${port}/metrics`, { ca })).body.toString();
  const m = /coordinator_http_requests_total\{method="GET",route="\/",status="200",node="[^"]+"\} (\d+)/.exec(metrics);
  t.equal(Number(m?.[1]), N, 'the count of GET / is summed over both workers');

  p.child.kill('SIGTERM');
  const started = Date.now();
  const { code } = await p.exited;
  t.equal(code, 0, 'exit 0');
  t.ok(Date.now() - started < 10000, 'within the shutdown timeout');
  t.match(p.output(), /all workers stopped/);
  t.same(fs.readdirSync(seedParent), [], 'the primary removed the seed directory');
  await t.rejects(request(`https://127.0.0.1:${port}/healthz`, { ca }), 'nothing listens any more');
});

t.test('a worker that dies is restarted', async (t) => {
  const port = await freePort();
  const conf = writeConfig(await stackOverrides({ 'server.port': port, 'server.workers': 2 }));
  const p = runCli(['serve', '--config', conf]);
  await eventually(async () => /all workers listening/.test(p.output()), 30000, 'workers listening');
  const ca = fs.readFileSync((await getStack()).certs.caCert, 'utf8');
  const victim = Number(/:(\d+)$/.exec((await request(`https://127.0.0.1:${port}/`, { ca })).json<{ node: string }>().node)![1]);
  process.kill(victim, 'SIGKILL');
  await eventually(async () => /worker died; restarting it/.test(p.output()), 10000, 'restart log');
  const nodes = new Set<string>();
  await eventually(async () => {
    nodes.add((await request(`https://127.0.0.1:${port}/`, { ca })).json<{ node: string }>().node);
    return [...nodes].some((n) => !n.endsWith(`:${victim}`)) && nodes.size >= 2;
  }, 20000, 'a replacement worker serving');
  t.pass('replacement serves');
  p.child.kill('SIGINT');
  t.equal((await p.exited).code, 0);
});

t.test('the mmap threshold given to workers on glibc: the key, an operator\'s own value, or none', async (t) => {
  const { mallocEnv } = await import('../src/workers');
  const withKey = (bytes: number): Settings => ({ server: { mallocLibrary: 'glibc', mallocMmapThresholdBytes: bytes } }) as unknown as Settings;
  t.same(mallocEnv(withKey(131072), {}), { MALLOC_MMAP_THRESHOLD_: '131072' });
  t.same(mallocEnv(withKey(131072), { MALLOC_MMAP_THRESHOLD_: '65536' }), {}, 'the environment wins');
  t.same(mallocEnv(withKey(0), {}), {}, '0 keeps glibc\'s sliding threshold');
});

t.test('the young generation given to workers: the key, an operator\'s own flag, or none', async (t) => {
  const { workerExecArgv } = await import('../src/workers');
  const withKey = (mib: number): Settings => ({ server: { maxSemiSpaceMiB: mib } }) as unknown as Settings;
  t.same(workerExecArgv(withKey(1), [], {}), ['--max-semi-space-size=1']);
  t.same(workerExecArgv(withKey(1), ['--max-semi-space-size=8'], {}), [], 'the command line wins');
  t.same(workerExecArgv(withKey(1), [], { NODE_OPTIONS: '--max_semi_space_size=4' }), [], 'NODE_OPTIONS wins');
  t.same(workerExecArgv(withKey(0), [], {}), [], '0 keeps Node\'s default');
});
