import type { Collection, Db, FindCursor } from 'mongodb';
import pino from 'pino';
import t, { type Test } from 'tap';
import { commitCheckpoint } from '../src/store/commit';
import { FileStore } from '../src/store/files';
import { Janitor } from '../src/store/janitor';
import { Bus } from '../src/store/bus';
import { Leases, readyMember } from '../src/store/leases';
import { Streams } from '../src/store/streams';
import { commitPartition, writePartition } from '../src/store/partitions';
import { coreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';

/** `db`, whose `collection` is wrapped: `method`'s first call goes to `hook` (with the method, bound, and its arguments). */
function hookFirst(db: Db, collection: string, method: string, hook: (call: (...a: unknown[]) => unknown, args: unknown[]) => unknown): Db {
  let done = false;
  const hooked = (c: Collection): Collection =>
    new Proxy(c, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        const call = (value as (...a: unknown[]) => unknown).bind(target);
        if (prop !== method || done) return call;
        return (...args: unknown[]) => {
          done = true;
          return hook(call, args);
        };
      },
    });
  return new Proxy(db, {
    get: (target, prop) => {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop === 'collection') return (name: string) => (name === collection ? hooked(target.collection(name)) : target.collection(name));
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** `db`, whose first `find` on `collection` runs `then` after its answer came and before it is returned: a write landing just after a read. */
function afterFirstRead(db: Db, collection: string, then: () => Promise<void>): Db {
  return hookFirst(db, collection, 'find', (find, args) => {
    const cursor = find(...args) as FindCursor;
    const toArray = cursor.toArray.bind(cursor);
    cursor.toArray = async () => {
      const read = await toArray();
      await then();
      return read;
    };
    return cursor;
  });
}

/** `db`, whose first `insertOne` into `collection` runs `then` before it is sent: a write held up on its way. */
function beforeFirstInsert(db: Db, collection: string, then: (doc: Record<string, unknown>) => Promise<void>): Db {
  return hookFirst(db, collection, 'insertOne', async (insertOne, args) => {
    await then(args[0] as Record<string, unknown>);
    return insertOne(...args);
  });
}

let fixture: Awaited<ReturnType<typeof coreFixture>> | undefined;
t.teardown(async () => {
  await fixture?.ts.close();
  await stopStack();
});

t.test('the janitor removes uncommitted partitions and orphan files, never committed data', async (t) => {
  const f = (fixture = await coreFixture({ 'storage.inlineMaxBytes': 1024 }));
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1024);
  const target = await f.target();
  const stream = await f.stream(target);

  // Committed partition 3, then a leftover partition 5 (big enough for GridFS) never committed.
  const r = await commitCheckpoint(db, files, stream, 0, 3, [{ name: 'frames.xtc', bytes: Buffer.alloc(100, 1) }], []);
  t.match(r, { ok: true, frames: 3, partitionId: String });
  await writePartition(db, files, stream, 5, [{ name: 'frames.xtc', bytes: Buffer.alloc(5000, 2) }], []);
  // A creation that crashed after its seed file: the change record and the file, no stream.
  await db.collection('stream_changes').insertOne({ _id: 'ghost' as never, op: 'create', createdAt: new Date() });
  await db.collection('files').insertOne({ _id: 'ghost:seed:a' as never, streamId: 'ghost', kind: 'seed', name: 'a', size: 1, createdAt: new Date() });
  t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': stream }), 1, 'the leftover has a GridFS blob');

  const lagMs = f.ts.settings.storage.janitorLagS * 1000;
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leasesOf(f), `jt${process.pid}:`, pino({ level: 'silent' }), lagMs);
  t.same(await janitor.pass(5000, Date.now()), { partitions: 0, streams: 0 }, 'nothing younger than the lag is touched');
  const later = Date.now() + lagMs + 1000;
  t.same(await janitor.pass(5000, later), { partitions: 1, streams: 1 });
  const left = await db.collection('partitions').find({ streamId: stream }).toArray();
  t.same(left.map((p) => p.n), [3], 'committed partition kept, leftover removed');
  t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': stream }), 0, 'its GridFS blob too');
  t.equal(await db.collection('files').countDocuments({ streamId: 'ghost' }), 0, 'orphan file removed');
  t.equal(await db.collection('files').countDocuments({ streamId: stream }), 1, "the live stream's seed file kept");
  t.equal(await db.collection('stream_changes').countDocuments({ _id: 'ghost' as never }), 0, 'its change record removed');
  t.same(await janitor.pass(5000, later + 1000), { partitions: 0, streams: 0 }, 'watermark: nothing is examined twice');
});

/** The server's leases, as the janitor asks them whether a stream is leased. */
const leasesOf = (f: NonNullable<typeof fixture>): Leases => new Leases(f.ts.server.storage.redis, f.ts.settings.redis.keyPrefix, 30_000);

/** A new target and stream on the file's server, and a file store like the server's. */
async function newStream() {
  const f = fixture!;
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1024);
  const target = await f.target();
  return { f, db, files, target, stream: await f.stream(target), lagMs: f.ts.settings.storage.janitorLagS * 1000 };
}

/** {@link newStream}, with partition 2 committed. */
async function committedTwo(t: Test) {
  const { f, db, files, stream } = await newStream();
  t.match(await commitCheckpoint(db, files, stream, 0, 2, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 1) }], []), { ok: true, frames: 2 });
  return { f, db, files, stream, lagMs: f.ts.settings.storage.janitorLagS * 1000 };
}

t.test('a commit in flight: its partition survives passes by the store clock and lands; a late commit point is never sent', async (t) => {
  const { f, db, files, stream, lagMs } = await committedTwo(t);
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leasesOf(f), `jt${process.pid}-b:`, pino({ level: 'silent' }), lagMs);

  // Step one of a commit (partition 4 above the commit point at 2) done, step two not yet.
  const doc = await writePartition(db, files, stream, 4, [{ name: 'frames.xtc', bytes: Buffer.alloc(5000, 3) }], []);
  t.same(await janitor.pass(), { partitions: 0, streams: 0 }, 'by the store clock it is younger than the lag: kept');
  t.ok(await commitPartition(db, stream, 2, doc), 'the commit point lands');

  // A writer past its commit window gives up before sending the commit point.
  const late = await commitCheckpoint(db, files, stream, 4, 1, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 4) }], [], { commitWindowMs: -1 }).catch((e: unknown) => e);
  t.match(late, { code: 'unavailable', message: /took too long/ });
  t.equal((await db.collection('streams').findOne({ _id: stream as never }))?.frames, 4, 'nothing committed');
  t.equal(await db.collection('partitions').countDocuments({ streamId: stream, n: 5 }), 0, 'and the late writer removed its partition itself');

  // Once the lag has passed: the committed partitions stay.
  t.same(await janitor.pass(5000, Date.now() + lagMs + 1000), { partitions: 0, streams: 0 });
  const left = await db.collection('partitions').find({ streamId: stream }).toArray();
  t.same(left.map((p) => p.n).sort(), [2, 4], 'committed partitions kept');
  t.same((await db.collection('streams').findOne({ _id: stream as never }))?.partitions, [2, 4]);
});

t.test('a commit point arriving after the janitor removed its partition cannot land: the janitor fenced the stream first', async (t) => {
  const { f, db, files, stream, lagMs } = await committedTwo(t);
  const fenced: string[] = [];
  const leases = leasesOf(f);
  const recording = { get: (id: string) => leases.get(id), enqueue: leases.enqueue.bind(leases), withdraw: leases.withdraw.bind(leases), forgetManifest: leases.forgetManifest.bind(leases), dropManifest: async (id: string) => void fenced.push(id) };
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, recording, `jt${process.pid}-h:`, pino({ level: 'silent' }), lagMs);
  // Step one of a commit done; its commit point is held up (a slow store, a driver retry,
  // a writer whose clock is behind) past the lag.
  const doc = await writePartition(db, files, stream, 4, [{ name: 'frames.xtc', bytes: Buffer.alloc(5000, 3) }], []);
  t.same(await janitor.pass(5000, Date.now() + lagMs + 1000), { partitions: 1, streams: 0 }, 'removed once older than the lag');
  t.same(fenced, [stream], "the stream's manifest is dropped");
  t.notOk(await commitPartition(db, stream, 2, doc), 'the late commit point misses: it carries the old fence');
  const after = await db.collection('streams').findOne({ _id: stream as never });
  t.equal(after?.frames, 2, 'the stream still names only what exists');
  t.equal(after?.fence, 1);
  t.equal(await db.collection('partitions').countDocuments({ streamId: stream }), 1);
  // The stream goes on under its new fence.
  t.match(await commitCheckpoint(db, files, stream, 2, 1, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 5) }], [], { fence: 1 }), { ok: true, frames: 3 });
});

t.test('a leftover above the commit point of a leased stream: removed by age, without fencing out its holder', async (t) => {
  const { f, db, files, target, stream, lagMs } = await newStream();
  // A writer that went away mid-commit left partition 4; a new core holds the stream since,
  // under the same fence (a fresh assignment does not raise it), and commits later than the lag.
  await writePartition(db, files, stream, 4, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 1) }], []);
  const core = await f.client({ reconnect: false });
  t.teardown(() => core.close());
  t.equal((await core.assign(target)).streamId, stream);
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leasesOf(f), `jt${process.pid}-k:`, pino({ level: 'silent' }), lagMs);
  t.same(await janitor.pass(5000, Date.now() + lagMs + 1000), { partitions: 1, streams: 0 });
  t.equal((await db.collection('streams').findOne({ _id: stream as never }))?.fence, undefined, 'no fence raised');
  await core.sendFrames([{ name: 'frames.xtc', data: Buffer.from('x') }]);
  t.match(await core.checkpoint([]), { frames: 1 }, 'its holder commits');
});

t.test("a writer whose clock is behind the store's: its leftover is as old as the store's clock says", async (t) => {
  const { f, db, files, target, stream, lagMs } = await newStream();
  // Leased, so the janitor judges the leftover by its age alone.
  const core = await f.client({ reconnect: false });
  t.teardown(() => core.close());
  t.equal((await core.assign(target)).streamId, stream);
  // The writer's wall clock is an hour behind while it writes partition 1.
  const RealDate = Date;
  const behindMs = 3_600_000;
  class Behind extends RealDate {
    constructor(...args: unknown[]) {
      super(...((args.length > 0 ? args : [RealDate.now() - behindMs]) as [number]));
    }
    static override now(): number {
      return RealDate.now() - behindMs;
    }
  }
  globalThis.Date = Behind as DateConstructor;
  try {
    await writePartition(db, files, stream, 1, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 1) }], []);
  } finally {
    globalThis.Date = RealDate;
  }
  const stamped = (await db.collection('partitions').findOne({ streamId: stream, n: 1 }))?.createdAt as Date | undefined;
  t.ok(stamped && Math.abs(stamped.getTime() - Date.now()) < 60_000, `stamped by the store's clock: ${stamped?.toISOString()}`);
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leasesOf(f), `jt${process.pid}-w:`, pino({ level: 'silent' }), lagMs);
  t.same(await janitor.pass(), { partitions: 0, streams: 0 }, "by the store's clock it is younger than the lag: kept");
  t.same(await janitor.pass(5000, Date.now() + lagMs + 1000), { partitions: 1, streams: 0 }, 'once the lag has passed by that clock, removed');
});

t.test('a stream that moves while the janitor judges its leftover: read again, and the leftover judged anew', async (t) => {
  const f = fixture!;
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1024);
  const stream = await f.stream(await f.target());
  const lagMs = f.ts.settings.storage.janitorLagS * 1000;
  // A leftover partition 3 of a commit that never landed, then a commit to 5 that lands just
  // as the janitor reads the stream (frames 0): its fence raise misses, and on a second read
  // partition 3 is below the commit point and unlisted.
  await writePartition(db, files, stream, 3, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 1) }], []);
  // The janitor's first read of the streams collection answers, then the commit lands.
  const janitor = new Janitor(afterFirstRead(db, 'streams', async () => {
    t.match(await commitCheckpoint(db, files, stream, 0, 5, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 2) }], []), { ok: true, frames: 5 });
  }), files, f.ts.server.storage.redis, leasesOf(f), `jt${process.pid}-i:`, pino({ level: 'silent' }), lagMs);
  t.same(await janitor.pass(5000, Date.now() + lagMs + 1000), { partitions: 1, streams: 0 });
  const left = await db.collection('partitions').find({ streamId: stream }).toArray();
  t.same(left.map((p) => p.n), [5], 'the committed partition kept, the leftover removed');
  t.equal((await db.collection('streams').findOne({ _id: stream as never }))?.fence, undefined, 'no fence raised: the stream had moved');
});

/** What a test of stream creations needs: the file's server, its store and Redis, a bus of its own under `prefix`. */
function creations(t: Test, prefix: string) {
  const f = fixture!;
  const db = f.ts.server.storage.mongo.db;
  const redis = f.ts.server.storage.redis;
  const quiet = pino({ level: 'silent' });
  const bus = new Bus(redis, prefix, quiet);
  t.teardown(() => bus.close());
  return { f, db, redis, files: new FileStore(db, 1024), quiet, bus, lagMs: f.ts.settings.storage.janitorLagS * 1000 };
}

t.test('a creation past its window makes no stream, and the janitor clears its files', async (t) => {
  const prefix = `jt${process.pid}-j:`;
  const { f, db, redis, files, quiet, bus } = creations(t, prefix);
  // A window of 0: every creation takes longer, as one stalled past the janitor's lag would.
  const streams = new Streams(db, files, new Leases(redis, prefix, 30_000), bus, 0);
  const target = { _id: await f.target(), owner: 'janitor-test' };
  await t.rejects(streams.create(target, [{ name: 'state.xml', bytes: Buffer.alloc(5000, 1) }], []), { code: 'unavailable' });
  const change = await db.collection('stream_changes').findOne({ op: 'create' }, { sort: { createdAt: -1 } });
  const id = String(change?._id);
  t.notOk(await db.collection('streams').findOne({ _id: id as never }), 'no stream document');
  t.equal(await db.collection('files').countDocuments({ streamId: id }), 1, 'its seed file was written');
  const janitor = new Janitor(db, files, redis, leasesOf(f), prefix, quiet, f.ts.settings.storage.janitorLagS * 1000);
  t.match(await janitor.pass(5000, Date.now() + f.ts.settings.storage.janitorLagS * 1000 + 1000), { streams: 1 });
  t.equal(await db.collection('files').countDocuments({ streamId: id }), 0, 'and is cleared');
  t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': id }), 0, 'with its GridFS blob');
  t.match(await db.collection('stream_changes').findOne({ _id: id as never }), { claimed: true, rounds: 1 }, 'its record kept for a stream document still on its way');
  // Not left for the file's later cases to count.
  await db.collection('stream_changes').deleteOne({ _id: id as never });
});

t.test('a creation whose stream document lands after the janitor cleared its files undoes itself', async (t) => {
  const prefix = `jt${process.pid}-n:`;
  const { f, db, redis, files, quiet, bus, lagMs } = creations(t, prefix);
  const janitor = new Janitor(db, files, redis, leasesOf(f), prefix, quiet, lagMs);
  // Within its window when it sends the stream document (an infinite one), which then stalls
  // in the store while the janitor, past its lag, clears the creation's files.
  let id = '';
  let cleared: { streams: number } | undefined;
  const stalled = beforeFirstInsert(db, 'streams', async (doc) => {
    id = String(doc._id);
    cleared = await janitor.pass(5000, Date.now() + lagMs + 1000);
  });
  const leases = new Leases(redis, prefix, 30_000);
  const streams = new Streams(stalled, files, leases, bus, Infinity);
  const target = { _id: await f.target(), owner: 'janitor-test' };
  await t.rejects(streams.create(target, [{ name: 'state.xml', bytes: Buffer.alloc(5000, 1) }], []), { code: 'unavailable' }, 'not answered as created');
  t.ok(cleared && cleared.streams >= 1, 'the janitor cleared the creation meanwhile');
  t.notOk(await db.collection('streams').findOne({ _id: id as never }), 'no stream document');
  t.equal(await db.collection('files').countDocuments({ streamId: id }), 0, 'no seed file');
  t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': id }), 0, 'no GridFS blob');
  t.same((await redis.zrange(leases.keys(target._id).ready, '0', '-1')).filter((m) => m.endsWith(id)), [], 'not in the pool');
  t.match(await db.collection('stream_changes').findOne({ _id: id as never }), { op: 'create', claimed: true }, 'its record kept, claimed, for the janitor to look at again after the lag');
  await db.collection('stream_changes').deleteOne({ _id: id as never });
});

t.test('a creation that died after its stream document, before it stood: the janitor removes the stream and its files', async (t) => {
  const { f, db, files, target, stream, lagMs } = await newStream();
  // As if the process died between the stream document and the mark that it stands (the
  // record of this release, not marked done); the stream was never answered as created.
  await db.collection('stream_changes').insertOne({ _id: stream as never, op: 'create', v: 2, createdAt: new Date() });
  const leases = leasesOf(f);
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leases, `jt${process.pid}-o:`, pino({ level: 'silent' }), lagMs);
  t.match(await janitor.pass(5000, Date.now() + lagMs + 1000), { streams: 1 });
  t.notOk(await db.collection('streams').findOne({ _id: stream as never }), 'no stream document');
  t.equal(await db.collection('files').countDocuments({ streamId: stream }), 0, 'no seed file');
  t.same((await f.ts.server.storage.redis.zrange(leases.keys(target).ready, '0', '-1')).filter((m) => m.endsWith(stream)), [], 'not in the pool');
  t.equal(await db.collection('stream_changes').countDocuments({ _id: stream as never }), 0, 'its record removed');
});

t.test("an abandoned creation's queue entry goes even when its stream document is gone already", async (t) => {
  const { f, db, files, target, lagMs } = await newStream();
  // An undo that deleted its stream document, then could not reach Redis to dequeue it.
  const id = `undone-${process.pid}`;
  const leases = leasesOf(f);
  const member = readyMember(new Date(), id);
  await f.ts.server.storage.redis.zadd(leases.keys(target).ready, 0, member);
  await db.collection('stream_changes').insertOne({ _id: id as never, op: 'create', v: 2, claimed: true, queue: { target, member }, createdAt: new Date() });
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leases, `jt${process.pid}-p:`, pino({ level: 'silent' }), lagMs);
  await janitor.pass(5000, Date.now() + lagMs + 1000);
  t.equal(await f.ts.server.storage.redis.zscore(leases.keys(target).ready, member), null, 'its queue entry removed, named by its record');
  await db.collection('stream_changes').deleteOne({ _id: id as never });
});

t.test('a creation that stopped before queuing its stream: the janitor queues it', async (t) => {
  const { f, db, files, target, stream, lagMs } = await newStream();
  // As if the process died between the stream document and its queue entry.
  const leases = leasesOf(f);
  await leases.forgetManifest(stream);
  const member = await f.ts.server.storage.redis.zrange(leases.keys(target).ready, '0', '-1');
  await f.ts.server.storage.redis.zrem(leases.keys(target).ready, ...member.filter((m) => m.endsWith(stream)));
  await db.collection('stream_changes').insertOne({ _id: stream as never, op: 'create', createdAt: new Date() });
  const core = await f.client({ reconnect: false });
  t.teardown(() => core.close());
  await t.rejects(core.assign(target), { code: 'no_streams_available' }, 'not in the pool');
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leases, `jt${process.pid}-l:`, pino({ level: 'silent' }), lagMs);
  t.match(await janitor.pass(5000, Date.now() + lagMs + 1000), { streams: 0 });
  t.equal((await core.assign(target)).streamId, stream, 'in the pool again');
  t.equal(await db.collection('stream_changes').countDocuments({ _id: stream as never }), 0, 'its record removed');
});

t.test('pages: a run of records with one createdAt longer than a page is walked through, each collection from its own watermark', async (t) => {
  const f = fixture!;
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1024);
  const lagMs = f.ts.settings.storage.janitorLagS * 1000;
  const live = await f.stream(await f.target());
  // Older than anything the file's other cases wrote (they leave committed partitions), so
  // the limited pass below reads these first however long those cases took.
  const base = Date.UTC(2020, 0, 1);
  const at = (i: number): Date => new Date(base + i);
  const file = (streamId: string, name: string): Record<string, unknown> => ({ _id: `${streamId}:seed:${name}`, streamId, kind: 'seed', name, size: 1, createdAt: at(0) });
  // Seven crashed creations (a record and a file each) and one finished but for its record,
  // all in the same millisecond, read three at a time.
  const ghosts = Array.from({ length: 7 }, (_, i) => `pg-ghost${i}`);
  await db.collection('stream_changes').insertMany([...ghosts, live].map((id) => ({ _id: id as never, op: 'create', createdAt: at(0) })));
  await db.collection('files').insertMany([...ghosts.map((g) => file(g, 'a')), file(live, 'pg')] as never[]);
  // Four partitions of a stream that is gone, and one more crashed creation after them.
  await db.collection('partitions').insertMany(Array.from({ length: 4 }, (_, i) => ({ _id: `pg-gone:${i}` as never, streamId: 'pg-gone', n: i + 1, frames: [], checkpoint: [], createdAt: at(1 + i) })));
  await db.collection('stream_changes').insertOne({ _id: 'pg-late' as never, op: 'create', createdAt: at(10) });
  await db.collection('files').insertOne(file('pg-late', 'a') as never);

  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leasesOf(f), `jt${process.pid}-c:`, pino({ level: 'silent' }), lagMs, 3);
  const later = Date.now() + lagMs + 1000;
  const first = await janitor.pass(2, later);
  t.equal(first.partitions, 2, 'a pass limited to two examines two partitions (both removable)');
  t.ok(first.streams <= 2, `and two change records (${first.streams} creations cleared)`);
  const second = await janitor.pass(5000, later);
  t.equal(second.partitions, 2, 'the partitions the first pass did not reach are found');
  t.equal(first.streams + second.streams, 8, 'every crashed creation cleared, across pages of one millisecond');
  t.equal(await db.collection('files').countDocuments({ streamId: { $in: [...ghosts, 'pg-late'] } }), 0, 'their files removed');
  t.equal(await db.collection('files').countDocuments({ _id: `${live}:seed:pg` as never }), 1, "the live stream's file kept");
  t.equal(await db.collection('stream_changes').countDocuments({ _id: { $in: [...ghosts, live, 'pg-late'] } } as never), 0, 'every record examined is removed');
  t.equal(await db.collection('partitions').countDocuments({ streamId: 'pg-gone' }), 0);
  t.same(await janitor.pass(5000, later + 1000), { partitions: 0, streams: 0 }, 'nothing left, nothing examined twice');
});

t.test('documents of one millisecond deleted between passes: the walk skips none of the rest', async (t) => {
  const { f, db, files, stream, lagMs } = await newStream();
  // Four committed partitions and a leftover above them, all stamped in one millisecond,
  // older than anything else in the collection: the walk reads them first.
  let frames = 0;
  for (let i = 0; i < 4; i++) {
    const r = await commitCheckpoint(db, files, stream, frames, 1, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, i) }], []);
    t.match(r, { ok: true });
    frames++;
  }
  const leftover = await writePartition(db, files, stream, 9, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 9) }], []);
  await db.collection('partitions').updateMany({ streamId: stream }, { $set: { createdAt: new Date(Date.UTC(2019, 0, 1)) } });
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leasesOf(f), `jt${process.pid}-m:`, pino({ level: 'silent' }), lagMs, 2);
  const later = Date.now() + lagMs + 1000;
  await janitor.pass(4, later);
  // Two of the four it saw go (as a stream's deletion removes its partitions) before the next pass.
  const seen = await db.collection('partitions').find({ streamId: stream, _id: { $ne: leftover._id } } as never, { sort: { _id: 1 }, limit: 2 }).toArray();
  await db.collection('partitions').deleteMany({ _id: { $in: seen.map((p) => p._id) } });
  await janitor.pass(4, later);
  t.equal(await db.collection('partitions').countDocuments({ _id: leftover._id as never }), 0, 'the leftover among them was examined and removed');
  t.equal(await db.collection('partitions').countDocuments({ streamId: stream }), 2, 'the other committed partitions are kept');
});

t.test('an interrupted deletion is finished; a deletion that never began leaves the stream alone', async (t) => {
  const f = fixture!;
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1024);
  const lagMs = f.ts.settings.storage.janitorLagS * 1000;
  const target = await f.target();
  const [doomed, kept] = [await f.stream(target), await f.stream(target)];
  t.equal(await db.collection('stream_changes').countDocuments({ _id: { $in: [doomed, kept] } } as never), 0, 'a finished creation leaves no record');
  for (const id of [doomed, kept]) {
    await commitCheckpoint(db, files, id, 0, 2, [{ name: 'frames.xtc', bytes: Buffer.alloc(10, 1) }], []);
    await db.collection('files').insertOne({ _id: `${id}:seed:x` as never, streamId: id, kind: 'seed', name: 'x', size: 1, createdAt: new Date() });
    await db.collection('stream_changes').insertOne({ _id: id as never, op: 'delete', createdAt: new Date() });
  }
  // The deletion of `doomed` crashed right after its document went; `kept`'s before anything.
  await db.collection('streams').deleteOne({ _id: doomed as never });
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, leasesOf(f), `jt${process.pid}-e:`, pino({ level: 'silent' }), lagMs, 3);
  // Its partition is found by the partition walk too (its stream is gone), the rest by its record.
  t.same(await janitor.pass(5000, Date.now() + lagMs + 1000), { partitions: 1, streams: 1 });
  t.equal(await db.collection('partitions').countDocuments({ streamId: doomed }), 0, "the deleted stream's partitions are gone");
  t.equal(await db.collection('files').countDocuments({ streamId: doomed }), 0, 'and its files');
  t.equal(await db.collection('partitions').countDocuments({ streamId: kept }), 1, 'the other stream keeps its partition');
  t.equal(await db.collection('files').countDocuments({ _id: `${kept}:seed:x` as never }), 1, 'and its file');
  t.equal(await db.collection('stream_changes').countDocuments({ _id: { $in: [doomed, kept] } } as never), 0, 'both records removed');
});

t.test('passes take turns across processes', async (t) => {
  const f = fixture!;
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1024);
  const redis = f.ts.server.storage.redis;
  const make = (): Janitor => new Janitor(db, files, redis, leasesOf(f), `jt${process.pid}-d:`, pino({ level: 'silent' }), 1000, 3);
  const [a, b] = [make(), make()];
  t.ok(await a.passInTurn(5000), 'the first takes the turn and passes');
  t.equal(await b.passInTurn(5000), null, 'another process within the turn does not');
  await redis.del(`jt${process.pid}-d:janitor:turn`);
  t.ok(await b.passInTurn(5000), 'after the turn, the next one passes');
});

t.test("an upgrade: the partition walk resumes from the single watermark of earlier releases", async (t) => {
  const f = fixture!;
  const db = f.ts.server.storage.mongo.db;
  const redis = f.ts.server.storage.redis;
  const prefix = `jt${process.pid}-f:`;
  const base = Date.now() - 1000;
  await db.collection('partitions').insertMany([0, 1].map((i) => ({ _id: `up-gone:${i}` as never, streamId: 'up-gone', n: i + 1, frames: [], checkpoint: [], createdAt: new Date(base + i * 10) })));
  // The old watermark lies between the two: only the second is new to the janitor.
  await redis.set(`${prefix}janitor:watermark`, String(base + 5));
  const janitor = new Janitor(db, new FileStore(db, 1024), redis, leasesOf(f), prefix, pino({ level: 'silent' }), 1000, 3);
  t.same(await janitor.pass(5000, Date.now() + 5000), { partitions: 1, streams: 0 }, 'the partition before the old watermark is not examined again');
  t.equal(await db.collection('partitions').countDocuments({ _id: 'up-gone:0' as never }), 1);
  await db.collection('partitions').deleteOne({ _id: 'up-gone:0' as never });
});
