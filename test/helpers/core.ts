/**
 * Fixtures for core-protocol tests: an admin, a manager with a target and streams, an
 * engine key and a donor, made through the real admin API — of an in-process test server
 * ({@link coreFixture}) or of a server that runs elsewhere, e.g. a CLI child
 * ({@link remoteCoreFixture}).
 */
import fsp from 'node:fs/promises';
import t, { type Test } from 'tap';
import os from 'node:os';
import path from 'node:path';
import { remoteCoreFixture, type RemoteCoreFixture } from '../../test-support/core-fixture';
import { startCoreLoad, type LoadReport } from './load';
import { eventually, startTestServer, type Overrides, type TestServer } from './server';
import { getStack, stopStack } from '../../test-support/stack';
import type { CommandStartedEvent, MongoClient } from 'mongodb';

export { remoteCoreFixture, type RemoteCoreFixture, type RemoteFixtureOptions } from '../../test-support/core-fixture';

/** What {@link coreFixture} made: the fixture and its in-process server. */
export interface CoreFixture extends RemoteCoreFixture {
  ts: TestServer;
}

/** Starts a server (or uses `existing`) and creates the fixture on it. */
export async function coreFixture(overrides: Overrides = {}, existing?: TestServer): Promise<CoreFixture> {
  const ts = existing ?? (await startTestServer({ 'donors.registrationsPerHour': 1000, ...overrides }));
  return { ts, ...(await remoteCoreFixture(ts.url, ts.ca, ts.server.storage.mongo.db)) };
}

/** {@link coreFixture} on a server whose MongoDB client reports each command it sends (driver command monitoring; see {@link commandsDuring}). */
export async function monitoredCoreFixture(overrides: Overrides = {}): Promise<CoreFixture> {
  const uri = new URL((await getStack()).mongo.uri);
  uri.searchParams.set('monitorCommands', 'true');
  return coreFixture({ 'mongodb.uri': uri.toString(), ...overrides });
}

/** The commands `client` (made with `monitorCommands`) sends while `fn` runs. */
export async function commandsDuring(client: MongoClient, fn: () => Promise<unknown>): Promise<CommandStartedEvent[]> {
  const events: CommandStartedEvent[] = [];
  const listen = (e: CommandStartedEvent): void => void events.push(e);
  client.on('commandStarted', listen);
  try {
    await fn();
  } finally {
    client.off('commandStarted', listen);
  }
  return events;
}

/** A core of {@link assignedCore} or {@link committedOnce}: the client, and the target and stream it holds. */
export interface CommittedCore {
  core: Awaited<ReturnType<RemoteCoreFixture['client']>>;
  target: string;
  stream: string;
}

/** A new target with one stream, and a core (no automatic reconnect, closed after `t`) that holds it. */
export async function assignedCore(t: Test, f: RemoteCoreFixture): Promise<CommittedCore> {
  const target = await f.target();
  const stream = await f.stream(target);
  const core = await f.client({ reconnect: false });
  t.teardown(() => core.close());
  t.equal((await core.assign(target)).streamId, stream);
  return { core, target, stream };
}

/**
 * {@link assignedCore}, whose core has committed one frame: file `frames.xtc` "a",
 * checkpoint `state.xml` "at 1".
 */
export async function committedOnce(t: Test, f: RemoteCoreFixture): Promise<CommittedCore> {
  const { core, target, stream } = await assignedCore(t, f);
  await core.sendFrames([{ name: 'frames.xtc', data: Buffer.from('a') }]);
  t.match(await core.checkpoint([{ name: 'state.xml', data: Buffer.from('at 1') }]), { frames: 1 });
  return { core, target, stream };
}

/**
 * One core fixture for a test file: started before its tests (monitored: see
 * {@link monitoredCoreFixture}), closed with the stack after them. Returns the getter.
 */
export function useCoreFixture(overrides: Overrides = {}, opts: { monitored?: boolean } = {}): () => CoreFixture {
  let f: CoreFixture | undefined;
  t.before(async () => {
    f = await (opts.monitored ? monitoredCoreFixture(overrides) : coreFixture(overrides));
  });
  t.teardown(async () => {
    await f?.ts.close();
    await stopStack();
  });
  return () => {
    if (!f) throw new Error('useCoreFixture: use the fixture inside a test, after t.before');
    return f;
  };
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
