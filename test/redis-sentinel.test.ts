/**
 * The core protocol on Redis with Sentinel (a master, one replica, three sentinels on
 * loopback): the master SIGKILLed under load from two nodes, the sentinels promote the
 * replica, ioredis follows them, cores see at most a short `unavailable`, no stream is held
 * by two cores at once, and no acknowledged commit is lost.
 */
import t from 'tap';
import { startRedisSentinel, type RedisSentinelSet } from '../src/provision/redis-sentinel';
import { twoNodesOn, type CoreFixture } from './helpers/core';
import { startCoreLoad } from './helpers/load';
import { eventually, type TestServer } from './helpers/server';

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

  const wsOther = `${other.url.replace(/^http/, 'ws')}/core/v1`;
  const load = startCoreLoad(6, (i) => f.client({ requestTimeoutMs: 15000, ...(i % 2 ? {} : { url: wsOther, ca: other.ca }) }));
  t.teardown(() => load.stop());
  const r = load.report;
  await eventually(async () => r.commits >= 30, 30000, 'load running');
  const before = r.commits;
  process.kill(rs.master.pid, 'SIGKILL');
  const killedAt = Date.now();
  await eventually(async () => (await rs.currentMaster()) === `${rs.replica.host}:${rs.replica.port}`, 30000, 'replica promoted');
  const failoverMs = Date.now() - killedAt;
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
  const h = await f.api<Record<string, unknown>>('GET', '/readyz', undefined);
  t.match(h, { status: 'ready', checks: { redis: 'ok' } }, 'ready again on the new master');
});
