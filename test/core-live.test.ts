/**
 * The live view of active streams (GET /v1/active-streams) follows a session: the record
 * appears at assignment, its buffered and committed counts are refreshed with the batched
 * lease renewal when they change, and it goes when the core stops. The record is written
 * by the assign script itself (one Redis round trip per assignment, in the target's slot),
 * and the sweep of an expired lease (a node that died) removes it.
 */
import { once } from 'node:events';
import t, { type Test } from 'tap';
import type Redis from 'ioredis';
import { Leases, readyMember } from '../src/store/leases';
import { LiveState } from '../src/store/live';
import { targetKeys, targetsKey } from '../src/store/target-keys';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { eventually } from './helpers/server';
import { stopStack } from '../test-support/stack';

/**
 * A Redis MONITOR connection, closed when `t` ends. ioredis takes a line for monitor data only
 * once MONITOR's answer has been handled (a turn later), and those that arrive before, in the
 * same read as the answer (Redis is busy: reliability counters, lease scripts), or as it
 * closes, it reports as an error ("Command queue state error"). They lie outside what a test
 * watches, so that error alone is ignored: `redis.monitor()` would reject on it.
 */
async function monitorOf(t: Test, redis: Redis): Promise<Redis> {
  const monitor = redis.duplicate({ monitor: true, lazyConnect: false });
  const failed = new Promise<never>((_, reject) =>
    monitor.on('error', (err: Error) => {
      if (!err.message.startsWith('Command queue state error')) reject(err);
    }),
  );
  failed.catch(() => undefined);
  t.teardown(() => monitor.disconnect());
  await Promise.race([once(monitor, 'monitoring'), failed]);
  return monitor;
}

const PREFIX = 'lv:';
let f: CoreFixture;
t.before(async () => {
  // Each check reads the live view afresh (the shared read is tested on its own below).
  f = await coreFixture({ 'core.leaseRenewS': 1, 'redis.keyPrefix': PREFIX, 'http.activeStreamsCacheMs': 1 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

interface Active {
  stream_id: string;
  buffered_frames: number;
  frames: number;
}

const record = async (target: string, stream: string): Promise<Active | undefined> => {
  const r = await f.api<{ targets: Record<string, Active[]> }>('GET', '/v1/active-streams', f.manager);
  return r.targets[target]?.find((a) => a.stream_id === stream);
};

t.test('buffered and committed counts reach the live view with the next renewal', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const core = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, donorToken: f.donor, ca: f.ts.ca });
  t.teardown(() => core.close());
  t.match(await core.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream });
  t.match(await record(target, stream), { buffered_frames: 0, frames: 0 }, 'recorded at assignment');

  t.match(await core.frame(1, { frames: 3 }), { type: 'ack', buffered_frames: 3 });
  t.ok(await eventually(async () => (await record(target, stream))?.buffered_frames === 3, 5000, 'buffered_frames 3'), 'buffered frames refreshed');

  t.match(await core.checkpoint(2), { type: 'committed', frames: 3 });
  t.match(await eventually(async () => {
    const a = await record(target, stream);
    return a?.frames === 3 && a.buffered_frames === 0 ? a : undefined;
  }, 5000, 'frames 3, buffered 0'), { frames: 3, buffered_frames: 0 }, 'commit recorded');

  t.match(await core.request({ type: 'stop' }), { type: 'stopped' });
  t.ok(await eventually(async () => (await record(target, stream)) === undefined, 5000, 'record removed'), 'gone after stop');
});

t.test('an assignment writes its live record in the lease script: no separate Redis command', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const redis = f.ts.server.storage.redis as Redis;
  // MONITOR on a connection of its own sees every command the server sends to Redis.
  const monitor = await monitorOf(t, redis);
  // Commands a script runs are reported too, with source 'lua': those are not round trips.
  const seen: string[][] = [];
  const inScripts: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[], source: string) => (source === 'lua' ? inScripts : seen).push(args));
  const core = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, donorToken: f.donor, ca: f.ts.ca });
  t.teardown(() => core.close());
  t.match(await core.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream, frames: 0 });
  // What MONITOR saw is known once a command issued after the assignment shows up.
  await redis.ping('after-assign');
  await eventually(async () => seen.some((a) => a[0]?.toLowerCase() === 'ping' && a[1] === 'after-assign'), 5000, 'the marker command');

  const active = targetKeys(PREFIX, target).active;
  const touching = seen.filter((a) => a.includes(active) || a.some((x) => x.startsWith(`${PREFIX}active`)));
  t.equal(touching.length, 1, `one command touched the live view: ${JSON.stringify(touching.map((a) => a.slice(0, 3)))}`);
  t.match(touching[0]?.[0]?.toLowerCase(), /^evalsha$|^eval$/, 'the assign script');
  t.ok(inScripts.some((a) => a[0]?.toLowerCase() === 'hset' && a[1] === active && a[2] === stream), 'the script wrote the record');
  t.notOk(seen.some((a) => a[0]?.toLowerCase() === 'zcard'), 'a single candidate is not counted first');
  const raw = await redis.hget(active, stream);
  t.ok(raw, 'the record is in the target hash');
  t.match(JSON.parse(raw!), { stream_id: stream, target_id: target, engine: 'openmm', node: String, started_at: /Z$/, frames: 0, buffered_frames: 0, owner: String });
  t.match(await record(target, stream), { stream_id: stream, frames: 0, buffered_frames: 0 }, 'served by /v1/active-streams');
});

t.test('lease script with several candidates, and the sweep of an expired lease removes its record', async (t) => {
  const redis = f.ts.server.storage.redis;
  // A pool of its own under another prefix: no server session renews or sweeps these leases.
  const prefix = 'lvs:';
  const leases = new Leases(redis, prefix, 30_000);
  const live = new LiveState(redis, prefix, 5);
  const [full, empty] = ['tfull', 'tempty'];
  await leases.enqueue([{ target: full, frames: 7, member: readyMember(new Date(0), 'sx1') }]);
  await leases.enqueue([{ target: empty, frames: 0, member: readyMember(new Date(0), 'sx0') }]);
  await leases.withdraw(empty, readyMember(new Date(0), 'sx0'), 'stopped');
  const got = await leases.assign(
    [
      { manager: 'm-empty', managerWeight: 1, target: empty, targetWeight: 1 },
      { manager: 'm-full', managerWeight: 1, target: full, targetWeight: 1 },
    ],
    { node: 'n1', session: 's1', engine: 'openmm', resume: 'h' },
    { engine: 'openmm', node: 'n1', started_at: '2026-01-01T00:00:00.000Z' },
  );
  t.match(got, { target: full, stream: 'sx1', frames: 7 });
  t.same(await live.active('sx1', full), { engine: 'openmm', node: 'n1', started_at: '2026-01-01T00:00:00.000Z', owner: 'm-full', stream_id: 'sx1', target_id: full, frames: 7, buffered_frames: 0 });
  t.same((await live.allActive()).map((a) => a.stream_id), ['sx1'], 'allActive walks the targets the pool has seen');
  t.same(await live.activeMany(full, ['sx1', 'nope']), [await live.active('sx1', full), null]);

  // The node holding it died: its lease expires and the sweep claims it with its record.
  await redis.zadd(targetKeys(prefix, full).expiry, 1, 'sx1');
  t.same((await leases.sweep()).flatMap((c) => c.streams), ['sx1']);
  t.equal(await live.active('sx1', full), null, 'record removed by the sweep');
  t.same(await live.allActive(), []);
});

t.test('a flood of anonymous GET /v1/active-cores is answered from one read of the node registry (http.activeCoresCacheMs)', async (t) => {
  const prefix = 'lvc:';
  const g = await coreFixture({ 'redis.keyPrefix': prefix, 'http.activeCoresCacheMs': 60_000, 'server.nodeHeartbeatS': 1 });
  t.teardown(() => g.ts.close());
  const core = await g.client({ reconnect: false });
  t.teardown(() => core.close());
  // The heartbeat reports the core; /v1/nodes (admin) reads the registry afresh.
  await eventually(async () => (await g.api<{ nodes: Array<{ sessions: number }> }>('GET', '/v1/nodes', g.admin)).nodes.some((n) => n.sessions === 1), 10_000, 'the heartbeat with the core');
  const cores = (): Promise<{ engines: Record<string, number>; total: number }> => g.api('GET', '/v1/active-cores', undefined);
  t.same(await cores(), { engines: { openmm: 1 }, total: 1 }, 'the first request reads the registry');

  const redis = g.ts.server.storage.redis as Redis;
  const monitor = await monitorOf(t, redis);
  const reads: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args.some((a) => a.startsWith(`${prefix}node`))) reads.push(args);
  });
  const answers = await Promise.all(Array.from({ length: 100 }, cores));
  t.ok(answers.every((a) => a.total === 1), 'every answer counts the core');
  await redis.ping('after-flood');
  await new Promise((r) => setTimeout(r, 200));
  // The heartbeat writes its own entry meanwhile (SET, ZADD) and prunes (ZREMRANGEBYSCORE);
  // reads of entries (GET) would be the flood's.
  t.same(
    reads.filter((a) => a[0]?.toLowerCase() === 'get'),
    [],
    'no registry entry read for 100 requests',
  );
});

t.test('progress counts every commit of a target, streams that ended included, for its owner and admins only', async (t) => {
  const target = await f.target();
  const streams = [await f.stream(target), await f.stream(target)];
  type View = { progress: Record<string, { frames: number; commits: number }> };
  for (const [i, stream] of streams.entries()) {
    const core = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, donorToken: f.donor, ca: f.ts.ca });
    t.teardown(() => core.close());
    t.match(await core.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream });
    t.match(await core.frame(1, { frames: 3 + i }), { type: 'ack' });
    t.match(await core.checkpoint(2), { type: 'committed' });
    t.match(await core.frame(3, { frames: 2 }), { type: 'ack' });
    t.match(await core.checkpoint(4), { type: 'committed' });
    t.match(await core.request({ type: 'stop' }), { type: 'stopped' });
  }
  // 3 + 2 frames, then 4 + 2, in four commits; neither stream is active any more.
  const seen = await eventually(async () => {
    const p = (await f.api<View>('GET', '/v1/active-streams', f.manager)).progress[target];
    return p?.commits === 4 ? p : undefined;
  }, 5000, 'four commits counted');
  t.same(seen, { frames: 11, commits: 4 }, 'frames and commits of streams no longer active');
  // The pool's sweep drops a target from its set while nothing of it is queued: the counts stay.
  await f.ts.server.storage.redis.srem(targetsKey(PREFIX), target);
  await new Promise((r) => setTimeout(r, 10));
  const after = await f.api<View & { progress_at: string }>('GET', '/v1/active-streams', f.manager);
  t.same(after.progress[target], { frames: 11, commits: 4 }, 'still read once the pool has forgotten the target');
  t.ok(Math.abs(Date.parse(after.progress_at) - Date.now()) < 5000, 'with the time of the read');
  t.same((await f.api<View>('GET', '/v1/active-streams', f.admin)).progress[target], { frames: 11, commits: 4 }, 'an admin sees it');
  const other = await f.api<{ token: string }>('POST', '/v1/users', f.admin, { name: `p-other-${Date.now()}`, role: 'manager' }, 201);
  t.equal((await f.api<View>('GET', '/v1/active-streams', other.token)).progress[target], undefined, 'another manager does not');
  for (const stream of streams) await f.api('DELETE', `/v1/streams/${stream}`, f.manager, undefined, 204);
  await f.api('DELETE', `/v1/targets/${target}`, f.manager, undefined, 204);
  t.equal((await f.ts.server.storage.redis.exists(targetKeys(PREFIX, target).progress)), 0, 'deleting the target drops its counts');
});

t.test('polls of GET /v1/active-streams share one read of the active hashes (http.activeStreamsCacheMs), each caller seeing its own', async (t) => {
  const prefix = 'lvs:';
  const g = await coreFixture({ 'redis.keyPrefix': prefix, 'http.activeStreamsCacheMs': 60_000 });
  t.teardown(() => g.ts.close());
  const target = await g.target();
  const stream = await g.stream(target);
  const core = await g.client({ reconnect: false });
  t.teardown(() => core.close());
  await core.assign(target);
  const view = (token: string): Promise<{ targets: Record<string, Array<{ stream_id: string }>> }> => g.api('GET', '/v1/active-streams', token);
  t.same((await view(g.manager)).targets[target]?.map((a) => a.stream_id), [stream], 'the first poll reads Redis');

  const redis = g.ts.server.storage.redis as Redis;
  const monitor = await monitorOf(t, redis);
  const reads: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    // Reading this server's active hashes is the live view's walk (the lease sweep reads the
    // target set, and reliability records are read meanwhile too).
    const key = args[1] ?? '';
    if (args[0]?.toLowerCase() === 'hgetall' && key.startsWith(`${prefix}{t:`) && key.endsWith(':active')) reads.push(args);
  });
  const other = await g.api<{ token: string }>('POST', '/v1/users', g.admin, { name: `other-${Date.now()}`, role: 'manager' }, 201);
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => view(i % 2 ? g.manager : other.token)));
  t.ok(answers.every((a, i) => (i % 2 ? a.targets[target]?.length === 1 : Object.keys(a.targets).length === 0)), "the owner sees its stream, another manager nothing");
  await redis.ping('after-polls');
  await new Promise((r) => setTimeout(r, 200));
  t.same(reads, [], 'no active hash read for 50 polls');
});
