/**
 * The scale benchmark: assignment latency and set-up rate as the store grows, on the stack
 * `npm run dev` starts (startStack: certificates, Redis, FerretDB on SQLite unless mongod is
 * installed). `node dist/bench/scale.js [--quick] [--levels=1000,10000,100000] [--skip-long]`.
 *
 * Each level is its own database holding that many streams of one public target, every one
 * with the recipe's seed files (bench/lib/fixtures.ts RECIPE); all but `newStreams` of them
 * carry a committed history (10 partitions, so 1M partitions at 100k; bench/lib/populate.ts).
 * New streams have the fewest frames, so they are the ones assigned: each assignment hands
 * out a 200 KiB seed state and a 2 KiB system file, read from a store of that size.
 *
 * Per level: (1) `probe.count` assignments one after the other on fresh sockets from this
 * process: assign → assignment latency with nothing else running; (2) on the same server,
 * once it and the store have gone idle, a manager's requests on the level's one big target
 * (stream list pages by id, by offset, by frames and by errors, the target view, a stream's
 * partitions), each timed six times in a row (the first, then the median of the other
 * five); (3) on a new
 * server, `rate.count` sessions (TLS + upgrade + welcome + assign → assignment) from a
 * forked load generator: sessions/s, set-up latency and the server's CPU per session. Redis
 * is flushed and the queues rebuilt with Pool.rebuild before each server, so both take new
 * streams.
 *
 * Then (unless `--skip-long`) a target of long streams in a database of its own
 * (`long.streams` streams of `long.partitions` partitions each): the same manager's
 * requests, whose cost follows a stream's length (its document carries three list entries
 * per committed partition) rather than the store's size.
 *
 * Loading is slow (hours for 100k), so the populated store is kept in
 * ~/.cache/stream-coordinator/bench-scale/<recipe>-<store>/ and reused by the next run
 * (`--reload` drops it; `--load-only` fills it without measuring); an interrupted load
 * resumes where it stopped.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cacheDir } from '../src/provision/exec';
import { findMongod } from '../src/provision/mongod';
import { ApiClient } from '../test-support/admin-api';
import { probeAssignments } from './lib/assign-probe';
import { benchServer, freshDatabase, stopServer, type BenchContext } from './lib/context';
import { createCoreFixture, RECIPE, resetQueues, type CoreFixture } from './lib/fixtures';
import { closeLoadGens, runSessions, sessionsTotals, startLoadGens, type LoadGen } from './lib/loadgen-pool';
import { MODES, type ScaleSettings } from './lib/modes';
import { checkShapes, insertDonors, populate, SHAPES_VERSION, type History } from './lib/populate';
import { CpuWindow, settle } from './lib/proc';
import { describeStore, machineOf, resultsDir, row, stampOf, writeResults, type BenchResult, type Row, type RunResults } from './lib/report';
import { startBenchStack } from './lib/stack';
import { latency, percentile, round } from './lib/stats';

/** What the cache remembers of one level's database. */
interface LevelState {
  fixture?: CoreFixture;
  /** Streams written (every stream below this index is complete). */
  loaded: number;
  /** Seconds spent loading, over all runs. */
  loadS: number;
  /** Donors registered (every donor below this index is written). */
  donors?: number;
}

interface LevelFigures {
  streams: number;
  partitions: number;
  newStreams: number;
  loadS: number;
  loadedThisRun: boolean;
  storeFileMiB?: number;
  probe: { n: number; assignMs: ReturnType<typeof latency>; messageKiB: number; firstFiles: Record<string, number>; failures: Record<string, number> };
  rate: { established: number; failed: number; reasons: Record<string, number>; ratePerS: number; setupMs: ReturnType<typeof latency>; serverCpuMsPerSession: number };
  /** Off-hot-path admin requests on this level's store. */
  queries: Timings;
  /** How long the server and the store took to go idle after the probe, before the requests were timed. */
  settled: { waitedMs: number; idle: boolean };
}

/** The long streams' target: its size, load and the manager's views of it. */
interface LongFigures {
  streams: number;
  partitionsPerStream: number;
  loadS: number;
  loadedThisRun: boolean;
  storeFileMiB?: number;
  queries: Timings;
  settled: { waitedMs: number; idle: boolean };
}

const SERVER_OVERRIDES = {
  // The janitor scans partitions by creation time; it is off the assignment path and would
  // compete with it for the store while the bulk load's documents are young.
  'storage.janitorIntervalS': 86_400,
};

function cacheDirOf(s: ScaleSettings): string {
  const store = findMongod() ? 'mongod' : `ferretdb-${process.env.SC_STORE_BACKEND === 'postgresql' ? 'postgresql' : 'sqlite'}`;
  const h = s.history;
  const key = `${RECIPE.version}${SHAPES_VERSION}-${s.newStreams}new-${h.partitions}x${h.frameBytes}+${h.checkpointBytes}-${store}`;
  return cacheDir('bench-scale', key);
}

/** Refuses to share the cache with another running scale benchmark. */
function lockCache(dir: string): () => void {
  const lock = path.join(dir, 'lock');
  try {
    const pid = Number(fs.readFileSync(lock, 'utf8'));
    if (pid && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        throw new Error(`the scale cache ${dir} is in use by process ${pid}`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.writeFileSync(lock, String(process.pid));
  return () => fs.rmSync(lock, { force: true });
}

/** How many times each admin request is timed: the first (cold caches, a new connection) is reported apart from the median of the rest. */
const QUERY_REPEATS = 6;

/** Admin request timings, in ms: the first of each, and the median of the repeats after it. */
type Timings = Record<string, { first: number; median: number }>;

/** Times a manager's GET of `path` (expecting 200) under `label` and returns its body. */
type TimedGet = <T>(label: string, path: string) => Promise<T>;
/** A list of timed requests, which may read what an earlier one returned. */
type Requests = (get: TimedGet) => Promise<void>;

/**
 * Times each request {@link QUERY_REPEATS} times in a row on one connection, as the fixture's
 * manager; the first is reported on its own, since it also pays for the connection and cold
 * caches. `requests` may read what an earlier request returned.
 */
async function timeRequests(url: string, ca: string, fx: CoreFixture, requests: Requests): Promise<Timings> {
  const api = new ApiClient(url, ca, { timeoutMs: 600_000 });
  const out: Timings = {};
  await requests(async <T>(label: string, path: string): Promise<T> => {
    const ms: number[] = [];
    let body: T | undefined;
    for (let i = 0; i < QUERY_REPEATS; i++) {
      const t0 = performance.now();
      body = await api.json<T>('GET', path, fx.manager, undefined, 200);
      ms.push(performance.now() - t0);
    }
    out[label] = { first: round(ms[0]!, 1), median: round(percentile(ms.slice(1), 50), 1) };
    return body!;
  });
  return out;
}

/**
 * A manager's view of a level's one big target: the stream list's first page (with its
 * total), the next page by id, a page at half the target by offset, the first page by each
 * other sort (frames, error count, status, creation time), the target view (counts by status,
 * frames summed), the donors' leaderboard (as many donors as streams; top 100 and 1,000), and
 * one stream's partitions.
 */
function levelRequests(fx: CoreFixture, level: number): Requests {
  return async (get) => {
    const list = `/v1/targets/${fx.targetId}/streams`;
    const first = await get<{ streams: Array<{ id: string; frames: number }> }>('stream list, first page of 100 with the total', `${list}?limit=100`);
    await get('stream list, next page (after the last id)', `${list}?limit=100&after=${first.streams.at(-1)!.id}`);
    await get(`stream list, page at offset ${level / 2}`, `${list}?limit=100&offset=${level / 2}`);
    await get('stream list sorted by frames, descending', `${list}?limit=100&sort=-frames`);
    await get('stream list sorted by error count, descending', `${list}?limit=100&sort=-error_count`);
    await get('stream list sorted by status', `${list}?limit=100&sort=status`);
    await get('stream list sorted by creation time, newest first', `${list}?limit=100&sort=-created_at`);
    await get('target view (counts by status, frames summed)', `/v1/targets/${fx.targetId}`);
    await get(`leaderboard, top 100 of ${level} donors`, '/v1/donors?top=100');
    await get(`leaderboard, top 1,000 of ${level} donors`, '/v1/donors?top=1000');
    const withHistory = first.streams.find((st) => st.frames > 0) ?? first.streams[0]!;
    await get("one stream's partitions", `/v1/streams/${withHistory.id}/partitions`);
  };
}

/** The views of a target of long streams: the list in id order, by frames and by creation time, the target view, one stream, its partitions. */
function longRequests(fx: CoreFixture): Requests {
  return async (get) => {
    const list = `/v1/targets/${fx.targetId}/streams`;
    const first = await get<{ streams: Array<{ id: string }> }>('stream list, first page of 100 with the total', `${list}?limit=100`);
    await get('stream list sorted by frames, descending', `${list}?limit=100&sort=-frames`);
    await get('stream list sorted by creation time, newest first', `${list}?limit=100&sort=-created_at`);
    await get('target view (counts by status, frames summed)', `/v1/targets/${fx.targetId}`);
    await get('one stream', `/v1/streams/${first.streams[0]!.id}`);
    await get("one stream's partitions", `/v1/streams/${first.streams[0]!.id}/partitions`);
  };
}

async function measure(ctx: BenchContext, level: number, fx: CoreFixture): Promise<Pick<LevelFigures, 'probe' | 'rate' | 'queries' | 'settled'>> {
  const s = ctx.settings.scale;
  const db = ctx.stack.db(fx.database);
  const start = async (tag: string) => {
    const ready = await resetQueues(ctx.stack, db);
    if (ready < level) throw new Error(`only ${ready} of ${level} streams are queued`);
    return benchServer(ctx, { tag: `scale-${level}-${tag}`, transport: 'uws', workers: 1, database: fx.database, adminToken: fx.admin, overrides: SERVER_OVERRIDES });
  };
  let server = await start('probe');
  let probe;
  let queries: Timings;
  let settled: { waitedMs: number; idle: boolean };
  try {
    probe = await probeAssignments(`wss://127.0.0.1:${server.port}/core/v1`, fx.engineKey, ctx.stack.caPem, s.probe.count);
    // The probe's sessions are still being closed and their leases returned: a request timed
    // now measured that (about 0.4 s on the first one), not the query.
    const srv = server;
    settled = await settle(() => [...srv.pids(), ctx.stack.stack.mongo.pid]);
    queries = await timeRequests(server.url, ctx.stack.caPem, fx, levelRequests(fx, level));
  } finally {
    await stopServer(ctx, server);
  }
  server = await start('rate');
  let gens: LoadGen[] = [];
  try {
    gens = await startLoadGens(s.rate.loadgens);
    const srv = server;
    const cpu = new CpuWindow(() => srv.pids());
    cpu.start();
    const results = await runSessions(gens, ctx.stack.caPem, s.rate, () => ({ url: `wss://127.0.0.1:${srv.port}/core/v1`, key: fx.engineKey, protocol: 'coordinator.core.v1', expect: 'assignment' }));
    const serverMs = cpu.stop();
    const { established, failed, notAttempted, reasons, spanS } = sessionsTotals(results);
    return {
      probe: {
        n: probe.assignMs.length,
        assignMs: latency(probe.assignMs),
        messageKiB: round(probe.messageBytes.reduce((a, b) => a + b, 0) / Math.max(1, probe.messageBytes.length) / 1024, 1),
        firstFiles: probe.firstFiles,
        failures: probe.failures,
      },
      rate: {
        established,
        failed: failed + notAttempted,
        reasons,
        ratePerS: round(established / spanS, 1),
        setupMs: latency(results.flatMap((r) => r.latenciesMs)),
        serverCpuMsPerSession: round(serverMs / Math.max(1, established), 3),
      },
      queries,
      settled,
    };
  } finally {
    await closeLoadGens(gens);
    await stopServer(ctx, server);
  }
}

/** The manager's views of the long streams' target, on a server of its own once it and the store have gone idle. */
async function measureLong(ctx: BenchContext, fx: CoreFixture): Promise<Pick<LongFigures, 'queries' | 'settled'>> {
  await resetQueues(ctx.stack, ctx.stack.db(fx.database));
  const server = await benchServer(ctx, { tag: 'scale-long', transport: 'uws', workers: 1, database: fx.database, adminToken: fx.admin, overrides: SERVER_OVERRIDES });
  try {
    const settled = await settle(() => [...server.pids(), ctx.stack.stack.mongo.pid]);
    return { settled, queries: await timeRequests(server.url, ctx.stack.caPem, fx, longRequests(fx)) };
  } finally {
    await stopServer(ctx, server);
  }
}

/** One database the benchmark loads and caches: `streams` streams of one target, the first `newStreams` of them without history. */
interface LoadPlan {
  database: string;
  streams: number;
  newStreams: number;
  history: History;
  /** Streams per insert round trip (fewer for long streams: each carries its partitions). */
  batch?: number;
  /** Donors registered beside the streams (the leaderboard's). */
  donors: number;
}

/** The plan of one level: `level` streams, the settings' new streams and history. */
function levelPlan(s: ScaleSettings, level: number): LoadPlan {
  return { database: `bench_scale_${level}`, streams: level, newStreams: s.newStreams, history: s.history, donors: level };
}

/** The plan of the long streams' target: every stream with `long.partitions` partitions of the history's sizes. */
function longPlan(s: ScaleSettings): LoadPlan {
  return { database: `bench_scale_long_${s.long.streams}x${s.long.partitions}`, streams: s.long.streams, newStreams: 0, history: { ...s.history, partitions: s.long.partitions }, batch: 2, donors: 0 };
}

/** Brings a database to its plan's streams (resuming a cached load) and returns its fixture and load figures. */
async function prepareDatabase(ctx: BenchContext, cacheDir: string, plan: LoadPlan): Promise<{ fx: CoreFixture; loadS: number; loadedThisRun: boolean }> {
  const { database, streams: level } = plan;
  const stateFile = path.join(cacheDir, `${database}.json`);
  const state: LevelState = fs.existsSync(stateFile) ? (JSON.parse(fs.readFileSync(stateFile, 'utf8')) as LevelState) : { loaded: 0, loadS: 0 };
  const save = (): void => fs.writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  if (!state.fixture) {
    const { admin } = await freshDatabase(ctx, database);
    const setup = await benchServer(ctx, { tag: `${database}-setup`, transport: 'uws', workers: 1, database, adminToken: admin });
    try {
      state.fixture = await createCoreFixture(setup.url, ctx.stack.caPem, database, admin);
    } finally {
      await stopServer(ctx, setup);
    }
    state.loaded = 0;
    save();
  }
  const fx = state.fixture;
  if ((state.donors ?? 0) < plan.donors) {
    const t0 = Date.now();
    await insertDonors(ctx.stack.db(database), state.donors ?? 0, plan.donors);
    ctx.log(`scale: ${database}: donors ${state.donors ?? 0} to ${plan.donors} registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    state.donors = plan.donors;
    save();
  }
  if (state.loaded >= level) return { fx, loadS: state.loadS, loadedThisRun: false };
  ctx.log(`scale: loading ${database} from ${state.loaded} to ${level} streams`);
  const started = state.loaded;
  const t0 = Date.now();
  const loadS0 = state.loadS;
  const counts = await populate(
    ctx.stack.db(database),
    { targetId: fx.targetId, owner: 'bench-manager' },
    { space: `${database}:${fx.targetId}`, from: state.loaded, to: level, newStreams: plan.newStreams },
    plan.history,
    {
      ...(plan.batch ? { batch: plan.batch } : {}),
      log: ctx.log,
      progress: (done) => {
        state.loaded = done;
        state.loadS = loadS0 + (Date.now() - t0) / 1000;
        save();
      },
    },
  );
  state.loaded = level;
  state.loadS = loadS0 + counts.seconds;
  save();
  ctx.log(`scale: ${database}: ${level - started} streams, ${counts.partitions} partitions, ${(counts.bytes / 2 ** 20).toFixed(0)} MiB of files in ${counts.seconds.toFixed(0)} s`);
  return { fx, loadS: state.loadS, loadedThisRun: true };
}

function fileMiB(cacheDir: string, database: string): number | undefined {
  const f = path.join(cacheDir, 'mongo', `${database}.sqlite`);
  if (!fs.existsSync(f)) return undefined;
  const walSize = fs.existsSync(`${f}-wal`) ? fs.statSync(`${f}-wal`).size : 0;
  return round((fs.statSync(f).size + walSize) / 2 ** 20, 0);
}

function rowsOf(levels: LevelFigures[]): Row[] {
  const B = 'scale';
  const nan = NaN;
  return levels.flatMap((l) => {
    const at = `${l.streams.toLocaleString('en-US')} streams`;
    const goal = l.streams >= 100_000 ? { text: '≤ 50 ms', met: l.probe.assignMs.p99 <= 50 } : undefined;
    return [
      row(B, `${at}: assignment latency p50 (assign → assignment, one at a time)`, 'ms', l.probe.assignMs.p50, nan, 'lower'),
      row(B, `${at}: assignment latency p99`, 'ms', l.probe.assignMs.p99, nan, 'lower', goal),
      row(B, `${at}: sessions set up per second (assigned)`, '/s', l.rate.ratePerS, nan, 'higher'),
      row(B, `${at}: set-up latency p50 under load`, 'ms', l.rate.setupMs.p50, nan, 'lower'),
      row(B, `${at}: set-up latency p99 under load`, 'ms', l.rate.setupMs.p99, nan, 'lower'),
      row(B, `${at}: server CPU per assigned session`, 'ms', l.rate.serverCpuMsPerSession, nan, 'lower'),
      row(B, `${at}: failed set-ups`, 'count', l.rate.failed + Object.values(l.probe.failures).reduce((a, b) => a + b, 0), nan, 'lower'),
      ...Object.entries(l.queries).flatMap(([label, ms]) => [
        row(B, `${at}: ${label}, median of ${QUERY_REPEATS - 1} repeats`, 'ms', ms.median, nan, 'lower'),
        row(B, `${at}: ${label}, first request`, 'ms', ms.first, nan, 'lower'),
      ]),
    ];
  });
}

function longRows(l: LongFigures): Row[] {
  const at = `${l.streams} streams of ${l.partitionsPerStream.toLocaleString('en-US')} partitions`;
  return Object.entries(l.queries).flatMap(([label, ms]) => [
    row('scale', `${at}: ${label}, median of ${QUERY_REPEATS - 1} repeats`, 'ms', ms.median, NaN, 'lower'),
    row('scale', `${at}: ${label}, first request`, 'ms', ms.first, NaN, 'lower'),
  ]);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, levels: { type: 'string' }, 'skip-long': { type: 'boolean', default: false }, reload: { type: 'boolean', default: false }, 'load-only': { type: 'boolean', default: false }, 'results-dir': { type: 'string' } } });
  const mode = values.quick ? 'quick' : 'full';
  const settings = structuredClone(MODES[mode]);
  if (values.levels) settings.scale.levels = values.levels.split(',').map(Number);
  for (const l of settings.scale.levels) if (!Number.isInteger(l) || l < settings.scale.newStreams) throw new Error(`--levels: each level must be an integer ≥ ${settings.scale.newStreams} (the new streams), got ${l}`);
  const started = new Date();
  const t0 = Date.now();
  const stamp = `${stampOf(started)}-${mode}-scale`;
  const outDir = resultsDir(values['results-dir']);
  const log = (line: string): void => void process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(7)} s] ${line}\n`);
  const cacheDir = cacheDirOf(settings.scale);
  if (values.reload) fs.rmSync(cacheDir, { recursive: true, force: true });
  fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const unlock = lockCache(cacheDir);
  log(`${mode} scale run, levels ${settings.scale.levels.join(', ')}; populated store cached in ${cacheDir}`);
  const stack = await startBenchStack((l) => log(`stack: ${l}`), { mongoDir: path.join(cacheDir, 'mongo') });
  const results: RunResults = {
    startedAt: started.toISOString(),
    mode,
    machine: { ...machineOf(), 'load average at start': os.loadavg().map((x) => x.toFixed(1)).join(' ') },
    store: { kind: describeStore(stack.stack.mongoKind), redis: 'redis-server (Debian)', cache: cacheDir },
    benches: [],
    intro: 'One transport (uws, the default) at every level; the node column is empty. Each level is a separate database of the given size on the same store.',
  };
  const ctx: BenchContext = { stack, mode, settings, workDir: fs.mkdtempSync(path.join(stack.baseDir, 'work-')), log, population: () => Promise.reject(new Error('the scale benchmark has no shared population')) };
  const levels: LevelFigures[] = [];
  let long: LongFigures | undefined;
  const bench: BenchResult = { name: 'scale', rows: [], details: { settings: settings.scale, recipe: RECIPE, levels }, notes: [], elapsedS: 0 };
  results.benches.push(bench);
  let exitCode = 0;
  try {
    await checkShapes(stack.db('bench_scale_shapes'), stack.stack.redis.url);
    await stack.db('bench_scale_shapes').dropDatabase();
    log('scale: the bulk documents have the product\'s shapes (checkShapes)');
    for (const level of settings.scale.levels) {
      const { fx, loadS, loadedThisRun } = await prepareDatabase(ctx, cacheDir, levelPlan(settings.scale, level));
      // --load-only fills the cache (e.g. under `nice` on a shared machine) and measures nothing.
      if (values['load-only']) continue;
      log(`scale: measuring at ${level} streams`);
      const m = await measure(ctx, level, fx);
      const fig: LevelFigures = { streams: level, partitions: (level - settings.scale.newStreams) * settings.scale.history.partitions, newStreams: settings.scale.newStreams, loadS: round(loadS, 0), loadedThisRun, storeFileMiB: fileMiB(cacheDir, fx.database), ...m };
      log(`scale ${level}: ${JSON.stringify(fig)}`);
      levels.push(fig);
      bench.rows = rowsOf(levels);
      bench.elapsedS = (Date.now() - t0) / 1000;
      writeResults(outDir, stamp, results);
    }
    if (!values['skip-long']) {
      const plan = longPlan(settings.scale);
      const { fx, loadS, loadedThisRun } = await prepareDatabase(ctx, cacheDir, plan);
      if (!values['load-only']) {
        log(`scale: measuring ${plan.streams} streams of ${settings.scale.long.partitions} partitions`);
        long = { streams: plan.streams, partitionsPerStream: settings.scale.long.partitions, loadS: round(loadS, 0), loadedThisRun, storeFileMiB: fileMiB(cacheDir, fx.database), ...(await measureLong(ctx, fx)) };
        log(`scale long: ${JSON.stringify(long)}`);
        bench.details.long = long;
        bench.rows = [...rowsOf(levels), ...longRows(long)];
        writeResults(outDir, stamp, results);
      }
    }
  } catch (err) {
    exitCode = 1;
    bench.error = (err as Error).stack ?? String(err);
    log(`scale failed: ${bench.error}`);
  } finally {
    await stack.stop();
    unlock();
  }
  if (values['load-only']) {
    log(`loaded; nothing measured (--load-only); du of the cache: ${execFileSync('du', ['-sh', cacheDir]).toString().trim()}`);
    process.exitCode = exitCode;
    return;
  }
  const h = settings.scale.history;
  bench.notes = [
    `Every stream has the recipe's seed files (${RECIPE.seed.map((f) => `${f.name} ${f.bytes / 1024} KiB`).join(', ')}; ${RECIPE.distinctSeeds} distinct contents of incompressible bytes, stored once per stream as the product stores them) and belongs to one public target with the recipe's options. Of each level's streams ${settings.scale.newStreams} are new (no partitions) and are the ones assigned (fewest frames first); the rest carry ${h.partitions} committed partitions each (${h.frameBytes / 1024} KiB frame file + ${h.checkpointBytes / 1024} KiB checkpoint file, ${h.framesPerPartition} frames per partition). Each level is its own database.`,
    `Assignment latency: ${settings.scale.probe.count} assignments one after the other, each on a fresh socket from the orchestrator, from sending assign to the assignment (a JSON message carrying the seed files in base64). Set-up rate: ${settings.scale.rate.count} sessions (TLS + upgrade + welcome + assign → assignment) from ${settings.scale.rate.loadgens} forked load generator(s), ${settings.scale.rate.concurrency} at a time; server CPU from /proc over that window. One server process (uws), storage.janitorIntervalS ${SERVER_OVERRIDES['storage.janitorIntervalS']}.`,
    ...levels.map((l) => `${l.streams.toLocaleString('en-US')} streams, ${l.partitions.toLocaleString('en-US')} partitions: load ${l.loadS} s in total${l.loadedThisRun ? ' (this run)' : ' (earlier run, from the cache)'}, store file ${l.storeFileMiB ?? '?'} MiB; assignment message ${l.probe.messageKiB} KiB, files ${JSON.stringify(l.probe.firstFiles)}; probe failures ${JSON.stringify(l.probe.failures)}, set-up failures ${JSON.stringify(l.rate.reasons)}; admin requests timed after ${l.settled.waitedMs} ms of waiting for the server and the store to go idle${l.settled.idle ? '' : ' (they had not)'}.`),
    ...(long ? [`Long streams: ${long.streams} streams of ${long.partitionsPerStream.toLocaleString('en-US')} committed partitions each (the history's file sizes and frames per partition) in one target, in a database of their own (load ${long.loadS} s in total${long.loadedThisRun ? ', this run' : ', earlier run, from the cache'}; store file ${long.storeFileMiB ?? '?'} MiB): the manager's views of a target whose streams have run for a long time, timed like the levels' on a server of its own after ${long.settled.waitedMs} ms of waiting for it and the store to go idle${long.settled.idle ? '' : ' (they had not)'}.`] : []),
    `Shared 2-CPU machine: the load generator, the server, FerretDB and Redis share both CPUs; load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}.`,
  ];
  bench.elapsedS = (Date.now() - t0) / 1000;
  results.finishedAt = new Date().toISOString();
  results.elapsedS = bench.elapsedS;
  const files = writeResults(outDir, stamp, results);
  process.stdout.write(fs.readFileSync(files.md, 'utf8'));
  log(`results: ${files.json}, ${files.md}; du of the cache: ${execFileSync('du', ['-sh', cacheDir]).toString().trim()}`);
  process.exitCode = exitCode;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
