/**
 * Pages of committed partitions (store/partition-pages.ts): a committing session moves the
 * oldest partitions its stream lists to a page every storage.partitionsPerPage commits, the
 * count carries over to the next session through the stream's manifest, and every reader
 * (the partition listing, single-partition and whole-file downloads, the janitor) sees the
 * same committed partitions as before. A move that a commit overtakes changes nothing.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import t from 'tap';
import { pagePartitions } from '../src/store/commit';
import { FileStore } from '../src/store/files';
import { Leases } from '../src/store/leases';
import { Janitor } from '../src/store/janitor';
import { pageOf, writePage } from '../src/store/partition-pages';
import { commitPartition, writePartition } from '../src/store/partitions';
import { commitPoint, movePages } from '../src/store/streams';
import { coreFixture, type CoreFixture } from './helpers/core';
import { eventually } from '../test-support/poll';
import { stopStack } from '../test-support/stack';

const PAGE = 3;

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'storage.partitionsPerPage': PAGE, 'storage.janitorIntervalS': 3600, 'server.nodeHeartbeatS': 1 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

interface Lists {
  frames: number;
  partitions: number[];
  partitionIds: string[];
  pageEnds?: number[];
  unpaged?: number;
  lastPartitionId?: string;
}

const streamDoc = (id: string): Promise<Lists | null> => f.ts.server.storage.mongo.db.collection<Lists & { _id: string }>('streams').findOne({ _id: id });

t.test('a session pages its commits; the next one carries on; every reader sees every partition', async (t) => {
  const db = f.ts.server.storage.mongo.db;
  const target = await f.target();
  const stream = await f.stream(target);
  const frames: Buffer[] = [];
  const states: Buffer[] = [];
  const commit = async (c: Awaited<ReturnType<CoreFixture['client']>>): Promise<void> => {
    frames.push(crypto.randomBytes(100 + frames.length));
    states.push(crypto.randomBytes(50));
    await c.sendFrames([{ name: 'frames.xtc', data: frames.at(-1)! }], 2);
    await c.checkpoint([{ name: 'state.xml', data: states.at(-1)! }]);
  };

  const first = await f.client();
  t.teardown(() => first.close());
  await first.assign(target);
  for (let i = 0; i < 10; i++) await commit(first);
  // Each move runs after its commit's reply, before the session's next message.
  const after10 = await eventually(async () => {
    const d = await streamDoc(stream);
    return d?.pageEnds?.length === 3 ? d : undefined;
  });
  t.same(after10.pageEnds, [6, 12, 18], 'partitions 2–18 moved to pages of three');
  t.same(after10.partitions, [20], 'the stream lists the newest partition itself');
  t.equal(after10.unpaged, 1, 'and counts it');
  t.equal(after10.partitionIds[0], after10.lastPartitionId);
  await first.stop();

  // The next session gets the count from the manifest: its second commit makes a page.
  const second = await f.client();
  t.teardown(() => second.close());
  t.match(await second.assign(target), { streamId: stream, frames: 20 });
  for (let i = 0; i < 2; i++) await commit(second);
  const after12 = await eventually(async () => {
    const d = await streamDoc(stream);
    return d?.pageEnds?.length === 4 ? d : undefined;
  });
  t.same(after12.pageEnds, [6, 12, 18, 24]);
  t.same(after12.partitions, [], 'nothing left to list');
  await second.stop();

  const all = Array.from({ length: 12 }, (_, i) => 2 * (i + 1));
  const listing = await f.get(`/v1/streams/${stream}/partitions`, f.manager);
  t.same(listing.json<{ partitions: number[] }>().partitions, all, 'the listing: every committed partition in order');
  const whole = await f.get(`/v1/streams/${stream}/frames/frames.xtc`, f.manager);
  t.equal(whole.status, 200);
  t.ok(whole.body.equals(Buffer.concat(frames)), 'the whole frame file, from the pages, byte-identical');
  for (const n of [2, 12, 24]) {
    const one = await f.get(`/v1/streams/${stream}/partitions/${n}/frames.xtc`, f.manager);
    t.ok(one.body.equals(frames[n / 2 - 1]!), `partition ${n}'s frame file`);
    const state = await f.get(`/v1/streams/${stream}/partitions/${n}/checkpoint/state.xml`, f.manager);
    t.ok(state.body.equals(states[n / 2 - 1]!), `partition ${n}'s checkpoint file`);
  }
  t.equal((await f.get(`/v1/streams/${stream}/partitions/7/frames.xtc`, f.manager)).status, 404, 'a number no partition has');

  // A late writer's leftover at a number a page lists: the janitor removes it, and only it.
  const files = new FileStore(db, f.ts.settings.storage.inlineMaxBytes);
  const leftover = await writePartition(db, files, stream, 4, [{ name: 'frames.xtc', bytes: Buffer.alloc(10) }], []);
  const lagMs = f.ts.settings.storage.janitorLagS * 1000;
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, new Leases(f.ts.server.storage.redis, f.ts.settings.redis.keyPrefix, 30_000), `jp${process.pid}:`, pino({ level: 'silent' }), lagMs);
  t.same(await janitor.pass(5000, Date.now() + lagMs + 1000), { partitions: 1, streams: 0 }, 'one leftover removed');
  const left = await db.collection('partitions').find({ streamId: stream }, { projection: { n: 1 } }).toArray();
  t.same(left.map((p) => p.n).sort((a, b) => a - b), all, 'every committed partition kept');
  t.equal(await db.collection('partitions').countDocuments({ _id: leftover._id as never }), 0, 'the leftover is gone');
});

t.test('a move overtaken by a commit changes nothing, and a page written twice is one page', async (t) => {
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, f.ts.settings.storage.inlineMaxBytes);
  const stream = await f.stream(await f.target());
  const commitN = async (from: number, n: number): Promise<void> => {
    const doc = await writePartition(db, files, stream, n, [{ name: 'frames.xtc', bytes: Buffer.from(`frames to ${n}`) }], []);
    t.ok(await commitPartition(db, stream, from, doc), `partition ${n} committed`);
  };
  for (let n = 1; n <= 4; n++) await commitN(n - 1, n);

  // The move reads the stream, writes its page; then a commit lands before its update.
  const read = (await commitPoint(db, stream))!;
  const entries = [1, 2, 3].map((n, i) => ({ n, id: read.partitionIds[i]! }));
  t.equal(await writePage(db, pageOf(stream, 0, entries)), 3);
  t.equal(await writePage(db, pageOf(stream, 0, entries)), 3, 'written again');
  t.equal(await db.collection('partition_pages').countDocuments({ streamId: stream }), 1, 'one page');
  await commitN(4, 5);
  t.notOk(await movePages(db, stream, read, [3], [{ n: 4, id: read.partitionIds[3]! }]), 'the overtaken move misses');
  const kept = (await streamDoc(stream))!;
  t.same(kept.partitions, [1, 2, 3, 4, 5], 'the stream still lists every partition, the new one too');
  t.equal(kept.pageEnds, undefined, 'and names no page');

  // The next try pages what is there now, reusing the page already written.
  t.equal(await pagePartitions(db, stream, PAGE), 2, 'two listed after the move');
  const moved = (await streamDoc(stream))!;
  t.same(moved.pageEnds, [3]);
  t.same(moved.partitions, [4, 5]);
  t.same(await db.collection('partition_pages').find({ streamId: stream }).map((p) => p._id).toArray(), [`${stream}:p0-3`], 'the same page');
  t.equal(await pagePartitions(db, stream, PAGE), 2, 'fewer than a page listed: nothing to move');
});

t.test('a stream deleted while its partitions move to a page keeps no page', async (t) => {
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, f.ts.settings.storage.inlineMaxBytes);
  const stream = await f.stream(await f.target());
  for (let n = 1; n <= 3; n++) {
    const doc = await writePartition(db, files, stream, n, [{ name: 'frames.xtc', bytes: Buffer.from(`frames to ${n}`) }], []);
    t.ok(await commitPartition(db, stream, n - 1, doc));
  }
  // The deletion lands between the page's write and the stream update naming it.
  const pages = db.collection('partition_pages');
  const racing = new Proxy(db, {
    get: (target, prop) => {
      if (prop !== 'collection') return Reflect.get(target, prop, target) as unknown;
      return (name: string) => {
        if (name !== 'partition_pages') return target.collection(name);
        return new Proxy(pages, {
          get: (c, p) => {
            if (p !== 'replaceOne') return Reflect.get(c, p, c) as unknown;
            return async (...args: Parameters<typeof pages.replaceOne>) => {
              const written = await c.replaceOne(...args);
              await target.collection('streams').deleteOne({ _id: stream as never });
              return written;
            };
          },
        });
      };
    },
  });
  t.equal(await pagePartitions(racing, stream, PAGE), undefined, 'the move misses');
  t.equal(await pages.countDocuments({ streamId: stream }), 0, 'and removes the page it wrote');
});

t.test('no page while a release that cannot read pages runs beside this one', async (t) => {
  const redis = f.ts.server.storage.redis;
  const prefix = f.ts.settings.redis.keyPrefix;
  const nodes = async () => (await f.api<{ nodes: Array<{ node: string; version?: string; store_schema?: number }> }>('GET', '/v1/nodes', f.admin, undefined, 200)).nodes;
  t.ok((await nodes()).every((n) => n.store_schema === 2 && typeof n.version === 'string'), 'this release reports its version and store shapes');
  // A process of an earlier release: its heartbeat has neither (scored ahead, so it stays listed).
  const now = new Date().toISOString();
  const old = { node: 'earlier-release', host: 'elsewhere', pid: 1, worker: 0, url: 'https://elsewhere', started_at: now, seen_at: now, sessions: 0, sessions_by_engine: {} };
  await redis.set(`${prefix}node:earlier-release`, JSON.stringify(old), 'EX', 60);
  await redis.zadd(`${prefix}nodes`, String(Date.now() + 60_000), 'earlier-release');
  t.teardown(async () => {
    await redis.del(`${prefix}node:earlier-release`);
    await redis.zrem(`${prefix}nodes`, 'earlier-release');
  });
  await new Promise((resolve) => setTimeout(resolve, 2500)); // two heartbeats of this server see it

  const target = await f.target();
  const stream = await f.stream(target);
  const c = await f.client();
  t.teardown(() => c.close());
  await c.assign(target);
  const commit = async (): Promise<void> => {
    await c.sendFrames([{ name: 'frames.xtc', data: crypto.randomBytes(64) }], 1);
    await c.checkpoint([{ name: 'state.xml', data: crypto.randomBytes(16) }]);
  };
  for (let i = 0; i < PAGE + 1; i++) await commit();
  await c.ping(); // the session's queue is drained: a move would have run before this reply
  const held = (await streamDoc(stream))!;
  t.same(held.partitions, [1, 2, 3, 4], 'the stream still lists every partition itself');
  t.equal(held.pageEnds, undefined, 'no page');

  await redis.del(`${prefix}node:earlier-release`);
  await redis.zrem(`${prefix}nodes`, 'earlier-release');
  await new Promise((resolve) => setTimeout(resolve, 2500));
  await commit();
  const paged = await eventually(async () => {
    const d = await streamDoc(stream);
    return d?.pageEnds ? d : undefined;
  });
  t.same(paged.pageEnds, [3], 'once it is gone, the next commit moves a page');
  t.same(paged.partitions, [4, 5]);
});
