/**
 * The core protocol on a real Redis Cluster (3 masters, 3 replicas on loopback): keys of
 * different targets spread over the masters, assignment, resume on another node, a stop
 * crossing nodes by pub/sub, the pool rebuilt after every master lost its data — and a
 * master SIGKILLed under load: its replica takes over, cores see at most a short
 * `unavailable`, no stream is held by two cores at once, and no acknowledged commit is lost.
 */
import t from 'tap';
import type { Cluster } from 'ioredis';
import { redisCli, startRedisCluster, type RedisCluster } from '../src/provision/redis-cluster';
import { masterKillUnderLoad, twoNodesOn, type CoreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { eventually, type TestServer } from './helpers/server';

const PREFIX = 'rc:';
let rc: RedisCluster;
let f: CoreFixture;
// A second node on the same cluster and database.
let other: TestServer;
let stop: (() => Promise<void>) | undefined;

t.before(async () => {
  ({ redis: rc, f, other, stop } = await twoNodesOn('redis-cluster', (dir) => startRedisCluster({ dir }), (c) => ({ 'redis.cluster': c.seeds, 'redis.keyPrefix': PREFIX, 'core.resumeGraceS': 30 })));
});
t.teardown(() => stop?.());

const redis = (): Cluster => f.ts.server.storage.redis as Cluster;
/** The master (`host:port`) that serves a key's slot, as the client's slot map has it. */
const ownerOf = async (key: string): Promise<string> => redis().slots[(await redis().cluster('KEYSLOT', key)) as number]![0]!;
const readyKey = (target: string): string => `${PREFIX}{t:${target}}:ready`;

t.test('targets spread over the masters; each target keeps its keys in one slot', async (t) => {
  const targets = await Promise.all(Array.from({ length: 12 }, () => f.target()));
  for (const tg of targets) await f.stream(tg);
  const owners = new Set(await Promise.all(targets.map((tg) => ownerOf(readyKey(tg)))));
  t.ok(owners.size >= 2, `12 targets on ${owners.size} masters`);
  const slots = await Promise.all(['ready', 'lease', 'expiry', 'manifest', 'active'].map((k) => redis().cluster('KEYSLOT', `${PREFIX}{t:${targets[0]}}:${k}`)));
  t.equal(new Set(slots).size, 1, 'ready, lease, expiry, manifest and active of one target share a slot');
  for (const tg of targets) t.equal(await redis().zcard(readyKey(tg)), 1, 'the stream is queued in its target slot');
});

t.test('assign, commit, requeue and resume on another node', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  const a = await c.request({ type: 'assign', target_id: target });
  t.match(a, { type: 'assignment', stream_id: stream, frames: 0 });
  t.match(await c.frame(1, { frames: 2 }), { type: 'ack', buffered_frames: 2 });
  t.match(await c.checkpoint(2), { type: 'committed', frames: 2 });
  c.ws.terminate();
  await c.closed;

  const wsOther = `${other.url.replace(/^http/, 'ws')}/core/v1`;
  const r = await RawCore.connect(wsOther, { engineKey: f.engineKey, ca: other.ca });
  t.teardown(() => r.close());
  await eventually(async () => {
    const m = await r.request({ type: 'resume', resume_token: a.resume_token });
    return m.type === 'assignment' ? m : false;
  }, 10000, 'resume on the other node').then((m) => t.match(m, { stream_id: stream, frames: 2 }, 'resumed with the committed frames'));
  t.match(await r.request({ type: 'stop' }), { type: 'stopped' });
  const again = await f.client();
  t.teardown(() => again.close());
  t.match(await again.assign(target), { streamId: stream, frames: 2 }, 'back in the pool after the stop');
  await again.stop();
});

t.test("a manager's stop sent to one node reaches the core held by the other", async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const wsOther = `${other.url.replace(/^http/, 'ws')}/core/v1`;
  const c = await f.client({ url: wsOther, ca: other.ca });
  t.teardown(() => c.close());
  await c.assign(target);
  const got = new Promise<{ reason: string }>((resolve) => c.once('stop', resolve));
  const since = Date.now();
  await f.api('POST', `/v1/streams/${stream}/stop`, f.manager, undefined, 200);
  t.equal((await got).reason, 'stream_stopped');
  t.ok(Date.now() - since < 5000, `stop arrived across nodes in ${Date.now() - since} ms`);
});

t.test('every master losing its data costs a rebuild, never a stream', async (t) => {
  const target = await f.target();
  const streams = [await f.stream(target), await f.stream(target)];
  for (const m of await rc.masters()) {
    const [host, port] = m.split(':');
    await redisCli(Number(port), ['flushall'], host);
  }
  t.equal(await redis().zcard(readyKey(target)), 0, 'queues gone');
  const cores = [await f.client(), await f.client()];
  t.teardown(() => Promise.all(cores.map((c) => c.close())));
  const got = new Set<string>();
  await eventually(async () => {
    for (const c of cores) {
      if (c.assignment) continue;
      try {
        got.add((await c.assign(target)).streamId);
      } catch {
        return false;
      }
    }
    return got.size === 2;
  }, 20000, 'streams assignable after the rebuild');
  t.same([...got].sort(), [...streams].sort());
  for (const c of cores) await c.stop();
});

t.test('a master killed under load: replica takes over, nothing assigned twice, nothing committed lost', async (t) => {
  const targets = await Promise.all(Array.from({ length: 6 }, () => f.target()));
  const streams: string[] = [];
  for (const tg of targets) streams.push(await f.stream(tg), await f.stream(tg));
  const victim = await ownerOf(readyKey(targets[0]!));
  const victimNode = rc.nodes.find((n) => n.address === victim)!;

  await masterKillUnderLoad(t, { f, other }, streams, {
    kill: () => process.kill(victimNode.pid, 'SIGKILL'),
    promoted: async () => !(await rc.masters()).includes(victim) && (await rc.masters()).length === 3,
    settled: () => rc.waitHealthy(30000),
  });
  t.equal((await rc.masters()).length, 3, 'three masters again (the replica took over)');

  // Pub/sub survives the failover too (a node's subscriber may have sat on the dead master).
  const target = await f.target();
  const stream = await f.stream(target);
  const wsOther = `${other.url.replace(/^http/, 'ws')}/core/v1`;
  const c = await f.client({ url: wsOther, ca: other.ca });
  t.teardown(() => c.close());
  await eventually(async () => (await c.assign(target).catch(() => undefined)) !== undefined, 20000, 'assignment after the failover');
  const got = new Promise<{ reason: string }>((resolve) => c.once('stop', resolve));
  await f.api('POST', `/v1/streams/${stream}/stop`, f.manager, undefined, 200);
  t.equal((await got).reason, 'stream_stopped', 'a stop still crosses nodes after the failover');
});
