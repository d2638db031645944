/**
 * The core protocol on Redis with Sentinel (a master, one replica, three sentinels on
 * loopback): the master SIGKILLed under load from two nodes, the sentinels promote the
 * replica, ioredis follows them, cores see at most a short `unavailable`, no stream is held
 * by two cores at once, and no acknowledged commit is lost.
 */
import t from 'tap';
import { startRedisSentinel, type RedisSentinelSet } from '../src/provision/redis-sentinel';
import { masterKillUnderLoad, twoNodesOn, type CoreFixture } from './helpers/core';
import type { TestServer } from './helpers/server';

let rs: RedisSentinelSet;
let f: CoreFixture;
let other: TestServer;
let stop: (() => Promise<void>) | undefined;

t.before(async () => {
  ({ redis: rs, f, other, stop } = await twoNodesOn('redis-sentinel', (dir) => startRedisSentinel({ dir }), (s) => ({ 'redis.sentinels': s.addresses, 'redis.sentinelName': s.name, 'redis.keyPrefix': 'rs:' })));
});
t.teardown(() => stop?.());

t.test('the master killed under load: the replica is promoted and the cores carry on', async (t) => {
  const targets = [await f.target(), await f.target(), await f.target()];
  const streams: string[] = [];
  for (const tg of targets) for (let i = 0; i < 4; i++) streams.push(await f.stream(tg));
  const first = await rs.currentMaster();
  t.equal(first, `${rs.master.host}:${rs.master.port}`, 'the sentinels start on the configured master');

  await masterKillUnderLoad(t, { f, other }, streams, {
    kill: () => process.kill(rs.master.pid, 'SIGKILL'),
    promoted: async () => (await rs.currentMaster()) === `${rs.replica.host}:${rs.replica.port}`,
  });
  const h = await f.api<Record<string, unknown>>('GET', '/readyz', undefined);
  t.match(h, { status: 'ready', checks: { redis: 'ok' } }, 'ready again on the new master');
});
