/**
 * The bus across a Redis outage: a process whose subscription failed (started or restarted
 * while Redis was down) subscribes once Redis is back and receives other processes'
 * announcements, and drops the caches an announcement it missed would have dropped; and a
 * process that finds a publisher's numbered messages skipping one (lost to it: a Redis Cluster
 * client moves its subscription between nodes without a word) drops them too.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import t from 'tap';
import { Bus, type BusEvents } from '../src/store/bus';
import { freePort } from '../src/provision/exec';
import { ensureRedisServer, startRedis } from '../src/provision/redis';
import { eventually, memoryLogger } from './helpers/server';

/** A client as the server makes one: commands fail fast while Redis is down, reconnects for ever. */
const client = (url: string): Redis => {
  const r = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 100, 300), connectTimeout: 500, commandTimeout: 500 });
  r.on('error', () => undefined);
  return r;
};

t.test('a process that subscribed while Redis was down hears the others once it is back', async (t) => {
  await ensureRedisServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-bus-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  // Redis is down when the first process starts.
  const deafRedis = client(url);
  const { log, lines } = memoryLogger();
  const deaf = new Bus(deafRedis, 'bus-test:', log);
  t.teardown(() => {
    deaf.close();
    deafRedis.disconnect();
  });
  const heard: Array<BusEvents['stream.stop']> = [];
  const dropped: string[] = [];
  deaf.on('stream.stop', (d) => heard.push(d));
  deaf.on('auth.invalidate', ({ tokenHash }) => dropped.push(`auth ${tokenHash}`));
  deaf.on('target.changed', ({ targetId }) => dropped.push(`target ${targetId}`));
  await eventually(() => lines().some((l) => l.msg === 'bus subscribe failed; retried when Redis is reachable again'), 5000, 'the failed subscription');

  const redis = await startRedis({ dir, port });
  t.teardown(() => redis.stop());
  const otherRedis = client(url);
  const other = new Bus(otherRedis, 'bus-test:', memoryLogger().log);
  t.teardown(() => {
    other.close();
    otherRedis.disconnect();
  });
  // Subscribed again on its own: the caches it may have missed announcements for are dropped.
  await eventually(() => dropped.includes('auth *') && dropped.includes('target *'), 10_000, 'caches dropped');
  t.pass('caches dropped once subscribed');
  await eventually(async () => {
    await other.publish('stream.stop', { streamId: 's1', reason: 'stream_stopped' });
    await new Promise((r) => setTimeout(r, 50));
    return heard.length > 0;
  }, 10_000, 'the announcement heard');
  t.same(heard[0], { streamId: 's1', reason: 'stream_stopped' }, "another process's announcement is heard");
});

t.test("a skipped number in another process's messages drops the caches", async (t) => {
  await ensureRedisServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-bus-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const redis = await startRedis({ dir, port: await freePort() });
  t.teardown(() => redis.stop());
  const r = client(redis.url);
  const bus = new Bus(r, 'bus-gap:', memoryLogger().log);
  t.teardown(() => {
    bus.close();
    r.disconnect();
  });
  const dropped: string[] = [];
  const heard: string[] = [];
  bus.on('auth.invalidate', ({ tokenHash }) => (tokenHash === '*' ? dropped.push(tokenHash) : heard.push(tokenHash)));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const from = (seq: number, tokenHash: string) => r.publish('bus-gap:bus', JSON.stringify({ origin: 'other', seq, event: 'auth.invalidate', data: { tokenHash } }));
  await from(1, 'a');
  await from(2, 'b');
  await eventually(() => heard.length === 2, 5000, 'two messages in order');
  t.same(dropped, [], 'numbers in order: nothing dropped');
  await from(4, 'd');
  await eventually(() => heard.length === 3, 5000, 'the message after the gap');
  t.same(dropped, ['*'], 'number 3 was lost: the caches are dropped once');
  // Two more gaps at once (a flapping connection): one more drop, once the interval has passed.
  await from(6, 'f');
  await from(8, 'h');
  await eventually(() => heard.length === 5, 5000, 'the messages after the gaps');
  t.same(dropped, ['*'], 'not again within the interval');
  await eventually(() => dropped.length === 2, 8000, 'the deferred drop');
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.same(dropped, ['*', '*'], 'the gaps within one interval cost one more drop');
});
