/**
 * Downloads at scale: one stream of 1,000 committed partitions, each a frame file of
 * 64 KiB–1 MiB (random size, random bytes) and a 200 KiB checkpoint state (fixtures.ts RECIPE), written with the
 * commit path's own functions (writePartition, then the conditional stream update) into
 * the default stack (startStack: FerretDB on SQLite unless mongod is installed). Through the
 * admin API over HTTPS it reports the frames download in MB/s, the time to fetch partition
 * 1 and partition 1,000 (median of 5), and the time to delete the stream. 100 other streams
 * of 10 small partitions share the store, so lookups are not on a near-empty table. The
 * report goes to `bench/results/<stamp>-downloads-<partitions>.{json,md}` like the others.
 *
 * Usage: node dist/bench/downloads.js [--partitions=1000] [--results-dir=DIR]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/config/settings';
import { killAllChildrenSync } from '../src/provision/exec';
import { startStack, type Stack } from '../src/provision/stack';
import { startServer } from '../src/server';
import { FileStore } from '../src/store/files';
import { initDatabase } from '../src/store/init';
import { pagePartitions } from '../src/store/commit';
import { commitPartition, writePartition } from '../src/store/partitions';
import { checkpointFile, RECIPE, seedBody } from './lib/fixtures';
import { describeStore, machineOf, resultsDir, row, stampOf, writeResults, type RunResults } from './lib/report';

const KIB = 1024;
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const PARTITIONS = Number(args.partitions ?? 1000);
const RESULTS_DIR = resultsDir(args['results-dir']);
const log = (line: string): void => void process.stderr.write(`# ${new Date().toISOString().slice(11, 19)} ${line}\n`);

interface Got {
  status: number;
  bytes: number;
  body?: Buffer;
  ms: number;
}

function call(base: string, ca: string, method: string, p: string, token: string, json?: unknown, keep = true): Promise<Got> {
  const started = process.hrtime.bigint();
  const body = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${base}${p}`,
      { method, ca, servername: 'localhost', agent: false, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (keep) chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, body: keep ? Buffer.concat(chunks) : undefined, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  process.once('exit', killAllChildrenSync);
  const started = new Date();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sc-downloads-'));
  const stack = await startStack({ baseDir: dir, log });
  const settings = loadConfig({
    env: {},
    overrides: {
      env: 'test',
      dataDir: path.join(dir, 'data'),
      'server.host': '127.0.0.1',
      'server.port': 0,
      'tls.cert': stack.certs.cert,
      'tls.key': stack.certs.key,
      'tls.ca': stack.certs.chain,
      'mongodb.uri': stack.mongo.uri,
      'mongodb.tlsCAFile': stack.mongoCAFile,
      'mongodb.database': 'bench_downloads',
      'redis.url': stack.redis.url,
      'storage.janitorIntervalS': 3600,
      'log.level': 'error',
    },
  });
  const server = await startServer(settings, pino({ level: 'error' }) as never);
  const ca = fs.readFileSync(stack.certs.caCert, 'utf8');
  const base = server.url.replace('localhost', '127.0.0.1');
  const db = server.storage.mongo.db;
  const store = new FileStore(db, settings.storage.inlineMaxBytes);
  const results: Record<string, unknown> = { partitions: PARTITIONS, store: stack.mongoKind, inlineMaxBytes: settings.storage.inlineMaxBytes, loadAverage: os.loadavg() };
  try {
    const { token: root } = await initDatabase(db);
    const post = async (p: string, json: unknown, token: string): Promise<Record<string, string>> => {
      const r = await call(base, ca, 'POST', p, token, json);
      if (r.status !== 201) throw new Error(`${p}: ${r.status} ${r.body?.toString()}`);
      return JSON.parse(r.body!.toString());
    };
    // Targets belong to managers; the manager downloads and deletes its own stream.
    const admin = (await post('/v1/users', { name: 'bench-manager', role: 'manager' }, root)).token;
    const mk = (p: string, json: unknown) => post(p, json, admin);
    const target = (await mk('/v1/targets', { engines: ['openmm'], options: RECIPE.targetOptions })).target_id;
    // The recipe's data (bench/lib/fixtures.ts): seed state and system file, options, 200 KiB checkpoint states.
    const seed = seedBody(0);
    const commitAll = async (streamId: string, count: number, size: () => number): Promise<Buffer[]> => {
      const frames: Buffer[] = [];
      for (let n = 1; n <= count; n++) {
        const f = crypto.randomBytes(size());
        frames.push(f);
        const doc = await writePartition(db, store, streamId, n, [{ name: 'frames.xtc', bytes: f }], [checkpointFile(n)]);
        if (!(await commitPartition(db, streamId, n - 1, doc))) throw new Error(`partition ${n} did not commit`);
        // As the committing session does: every storage.partitionsPerPage commits, the oldest move to a page.
        const perPage = settings.storage.partitionsPerPage;
        if (n % perPage === 0 && (await pagePartitions(db, streamId, perPage)) !== 0) throw new Error(`partitions up to ${n} were not paged`);
      }
      return frames;
    };
    log('loading 100 neighbour streams of 10 partitions');
    for (let i = 0; i < 100; i++) await commitAll((await mk(`/v1/targets/${target}/streams`, seed)).stream_id, 10, () => 4 * KIB);
    const stream = (await mk(`/v1/targets/${target}/streams`, seed)).stream_id;
    log(`loading ${PARTITIONS} partitions of 64 KiB–1 MiB`);
    const t0 = Date.now();
    const frames = await commitAll(stream, PARTITIONS, () => 64 * KIB + crypto.randomInt(960 * KIB + 1));
    const total = frames.reduce((a, f) => a + f.length, 0);
    results.loadS = (Date.now() - t0) / 1000;
    results.frameBytes = total;
    log(`loaded ${(total / 1e6).toFixed(0)} MB in ${results.loadS} s; measuring`);

    const whole = await call(base, ca, 'GET', `/v1/streams/${stream}/frames/frames.xtc`, admin, undefined, false);
    if (whole.status !== 200 || whole.bytes !== total) throw new Error(`frames download: ${whole.status}, ${whole.bytes} of ${total} bytes`);
    results.framesDownload = { seconds: whole.ms / 1000, mbPerS: total / 1e6 / (whole.ms / 1000) };
    const fetchMs = async (n: number): Promise<number> => {
      const ms: number[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await call(base, ca, 'GET', `/v1/streams/${stream}/partitions/${n}/frames.xtc`, admin);
        if (r.status !== 200 || !r.body!.equals(frames[n - 1]!)) throw new Error(`partition ${n}: ${r.status}`);
        ms.push(r.ms);
      }
      return median(ms);
    };
    results.partition1Ms = await fetchMs(1);
    results[`partition${PARTITIONS}Ms`] = await fetchMs(PARTITIONS);
    const del = await call(base, ca, 'DELETE', `/v1/streams/${stream}`, admin);
    if (del.status !== 204) throw new Error(`delete: ${del.status}`);
    results.deleteS = del.ms / 1000;
  } catch (err) {
    results.error = (err as Error).stack ?? String(err);
    throw err;
  } finally {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    const files = writeResults(RESULTS_DIR, `${stampOf(started)}-downloads-${PARTITIONS}`, report(results, started, stack.mongoKind));
    log(`results: ${files.json}, ${files.md}`);
    await server.close();
    await stack.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** The figures as a report in the shape the other benchmarks write (one transport: uws). */
function report(r: Record<string, unknown>, started: Date, storeKind: Stack['mongoKind']): RunResults {
  const num = (v: unknown): number => (typeof v === 'number' ? v : Number.NaN);
  const dl = (r.framesDownload ?? {}) as { seconds?: number; mbPerS?: number };
  const B = 'downloads';
  const rows = [
    row(B, `whole frames.xtc of ${PARTITIONS} partitions (${(num(r.frameBytes) / 1e6).toFixed(0)} MB)`, 'MB/s', num(dl.mbPerS), Number.NaN, 'higher'),
    row(B, 'whole frames.xtc: time to the last byte', 's', num(dl.seconds), Number.NaN, 'lower'),
    row(B, 'one partition\'s frame file, partition 1 (median of 5)', 'ms', num(r.partition1Ms), Number.NaN, 'lower'),
    row(B, `one partition's frame file, partition ${PARTITIONS} (median of 5)`, 'ms', num(r[`partition${PARTITIONS}Ms`]), Number.NaN, 'lower'),
    row(B, 'delete the stream (DELETE /v1/streams/:id)', 's', num(r.deleteS), Number.NaN, 'lower'),
    row(B, 'loading the partitions through the commit path', 's', num(r.loadS), Number.NaN, 'info'),
  ];
  const elapsedS = (Date.now() - started.getTime()) / 1000;
  return {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    mode: PARTITIONS >= 1000 ? 'full' : 'quick',
    elapsedS,
    machine: { ...machineOf(), 'load average at start': (r.loadAverage as number[]).map((x) => x.toFixed(1)).join(' ') },
    store: { kind: describeStore(storeKind), inlineMaxBytes: r.inlineMaxBytes },
    intro: 'One server process with the uws transport (the default); the node column is empty.',
    benches: [
      {
        name: B,
        rows,
        details: r,
        notes: [
          `One stream of ${PARTITIONS} committed partitions, each a frame file of 64 KiB–1 MiB (random size and bytes) and the recipe's ${RECIPE.checkpoint.bytes / 1024} KiB checkpoint state, written with the commit path's functions (writePartition, then the conditional stream update) beside 100 streams of 10 such partitions with 4 KiB frame files; downloaded over HTTPS by the stream's manager, one request at a time, bytes compared with what was written.`,
        ],
        elapsedS,
        ...(r.error ? { error: String(r.error) } : {}),
      },
    ],
  };
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
