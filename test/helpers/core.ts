/**
 * Fixtures for core-protocol tests: an admin, a manager with a target and streams, an
 * engine key and a donor, made through the real admin API — of an in-process test server
 * ({@link coreFixture}) or of a server that runs elsewhere, e.g. a CLI child
 * ({@link remoteCoreFixture}).
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Db } from 'mongodb';
import { CoreClient, type CoreClientOptions } from '../../src/client';
import { initDatabase } from '../../src/store/init';
import { ApiClient, type Response } from '../../test-support/admin-api';
import { startCoreLoad, type LoadReport } from './load';
import { eventually, startTestServer, type Overrides, type TestServer } from './server';
import { stopStack } from './stack';

/** What {@link remoteCoreFixture} made. */
export interface RemoteCoreFixture {
  admin: string;
  manager: string;
  engineKey: string;
  donor: string;
  wsUrl: string;
  /** Calls the admin API; throws on a status other than `expect`. */
  api<T = Record<string, unknown>>(method: string, path: string, token: string | undefined, body?: unknown, expect?: number): Promise<T>;
  /** GET with the manager's token (or `token`), raw: any status, the body as bytes. */
  get(path: string, token?: string): Promise<Response>;
  /** Creates a target and returns its id. */
  target(body?: Record<string, unknown>, token?: string): Promise<string>;
  /** Creates a stream with one seed file and returns its id. */
  stream(targetId: string, seed?: Buffer, token?: string): Promise<string>;
  /** A connected client with the fixture's engine key and donor. */
  client(extra?: Partial<CoreClientOptions>): Promise<CoreClient>;
}

/** What {@link coreFixture} made: the fixture and its in-process server. */
export interface CoreFixture extends RemoteCoreFixture {
  ts: TestServer;
}

/** Options of {@link remoteCoreFixture}. */
export interface RemoteFixtureOptions {
  /** Options every {@link RemoteCoreFixture.client} gets, under the call's own. */
  clientDefaults?: Partial<CoreClientOptions>;
  /** Called with each new client before it connects (e.g. to attach an `error` listener). */
  beforeConnect?: (c: CoreClient) => void;
}

let managers = 0;

/**
 * Creates the fixture on the server at `url` (https, trusting `ca`) whose database is `db`:
 * the first admin (another one, forced, when the database has users), then a manager, an
 * engine key for `openmm` and a donor through the API.
 */
export async function remoteCoreFixture(url: string, ca: string, db: Db, opts: RemoteFixtureOptions = {}): Promise<RemoteCoreFixture> {
  const admin = (await db.collection('users').countDocuments()) === 0 ? (await initDatabase(db)).token : (await initDatabase(db, { force: true, adminName: `admin${++managers}` })).token;
  const http = new ApiClient(url, ca);
  const api = <T>(method: string, path: string, token: string | undefined, body?: unknown, expect?: number): Promise<T> => http.json<T>(method, path, token, body, expect);
  const mname = `mgr${++managers}`;
  const manager = (await api<{ token: string }>('POST', '/v1/users', admin, { name: mname, role: 'manager' }, 201)).token;
  const engineKey = (await api<{ key: string }>('POST', '/v1/engine-keys', admin, { engine: 'openmm', description: 'tests' }, 201)).key;
  const donor = (await api<{ token: string }>('POST', '/v1/donors', undefined, { name: `donor${managers}` }, 201)).token;
  const wsUrl = `${url.replace(/^http/, 'ws')}/core/v1`;
  return {
    admin,
    manager,
    engineKey,
    donor,
    wsUrl,
    api,
    get: (path, token = manager) => http.call('GET', path, { token }),
    target: async (body = {}, token = manager) => (await api<{ target_id: string }>('POST', '/v1/targets', token, { engines: ['openmm'], stage: 'public', ...body }, 201)).target_id,
    stream: async (targetId, seed = Buffer.from('seed state'), token = manager) =>
      (await api<{ stream_id: string }>('POST', `/v1/targets/${targetId}/streams`, token, { files: { 'state.xml': seed.toString('base64') } }, 201)).stream_id,
    client: async (extra = {}) => {
      const c = new CoreClient({ url: wsUrl, engineKey, donorToken: donor, ca, ...opts.clientDefaults, ...extra });
      opts.beforeConnect?.(c);
      await c.connect();
      return c;
    },
  };
}

/** Starts a server (or uses `existing`) and creates the fixture on it. */
export async function coreFixture(overrides: Overrides = {}, existing?: TestServer): Promise<CoreFixture> {
  const ts = existing ?? (await startTestServer({ 'donors.registrationsPerHour': 1000, ...overrides }));
  return { ts, ...(await remoteCoreFixture(ts.url, ts.ca, ts.server.storage.mongo.db)) };
}

/** Two nodes on one Redis deployment: a core fixture and a second server sharing its database and Redis. */
export interface TwoNodes<R> {
  /** The Redis deployment, started in its own temporary directory. */
  redis: R;
  f: CoreFixture;
  other: TestServer;
  /** Stops both servers, the Redis deployment and the stack, and removes the directory. */
  stop(): Promise<void>;
}

/**
 * Starts a Redis deployment (`start`, in a fresh temporary directory named after `name`),
 * then a core fixture and a second node configured for it by `settingsOf` — the set-up of
 * the Redis Cluster and Sentinel suites.
 */
export async function twoNodesOn<R extends { stop(): Promise<void> }>(name: string, start: (dir: string) => Promise<R>, settingsOf: (redis: R) => Overrides): Promise<TwoNodes<R>> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `sc-${name}-`));
  let redis: R | undefined;
  let f: CoreFixture | undefined;
  let other: TestServer | undefined;
  const stop = async (): Promise<void> => {
    await other?.close();
    await f?.ts.close();
    await redis?.stop();
    await stopStack();
    await fsp.rm(dir, { recursive: true, force: true });
  };
  try {
    redis = await start(dir);
    const settings = settingsOf(redis);
    f = await coreFixture(settings);
    other = await startTestServer({ ...settings, 'mongodb.database': f.ts.settings.mongodb.database });
    return { redis, f, other, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** How {@link masterKillUnderLoad} kills a Redis master and sees its replica take over. */
export interface MasterKill {
  /** SIGKILLs the master. */
  kill(): void;
  /** Whether a replica has taken over (polled for up to 30 s after the kill). */
  promoted(): Promise<boolean>;
  /** Awaited after the promotion, before the load must go on (e.g. the cluster healthy again). */
  settled?(): Promise<void>;
}

/**
 * The master-kill check of the Redis Cluster and Sentinel suites: six cores, half on each
 * node, assign, send, checkpoint and stop in a loop; after 30 commits `m.kill()`, a replica
 * must take over within 30 s and the load commit 60 more within 120 s (margins for a loaded
 * machine). Asserts on `t`: no internal error (a failover is `unavailable`), no stream held
 * by two cores, every core back within 20 s, and each of `streams` stored at least the
 * frames acknowledged. Returns the load's report.
 */
export async function masterKillUnderLoad(t: tap.Test, nodes: Pick<TwoNodes<unknown>, 'f' | 'other'>, streams: readonly string[], m: MasterKill): Promise<LoadReport> {
  const { f, other } = nodes;
  const wsOther = `${other.url.replace(/^http/, 'ws')}/core/v1`;
  const load = startCoreLoad(6, (i) => f.client({ requestTimeoutMs: 15000, ...(i % 2 ? {} : { url: wsOther, ca: other.ca }) }));
  t.teardown(() => load.stop());
  const r = load.report;
  await eventually(async () => r.commits >= 30, 30000, 'load running');
  const before = r.commits;
  m.kill();
  const killedAt = Date.now();
  await eventually(() => m.promoted(), 30000, 'replica promoted');
  const failoverMs = Date.now() - killedAt;
  await m.settled?.();
  await eventually(async () => r.commits >= before + 60, 120000, 'load continues after the failover').catch((e: Error) => {
    throw new Error(`${e.message}; ${load.summary()}`);
  });
  await load.stop();

  t.comment(`failover ${failoverMs} ms; ${load.summary()}`);
  const internal = [...f.ts.logLines(), ...other.logLines()].filter((l) => l.msg === 'core message failed').map((l) => JSON.stringify(l.err).slice(0, 300));
  t.same(internal, [], 'no internal errors: a failover is `unavailable`');
  t.equal(r.doubles, 0, 'no stream held by two cores at once');
  t.ok(r.longestOutageMs < 20000, `cores recovered within ${r.longestOutageMs} ms`);
  for (const s of streams) {
    const committed = (await f.api<{ frames: number }>('GET', `/v1/streams/${s}`, f.manager)).frames;
    t.ok(committed >= (r.acked.get(s) ?? 0), `stream ${s}: ${committed} frames stored ≥ ${r.acked.get(s) ?? 0} acknowledged`);
  }
  return r;
}
