/**
 * Downloads of a long stream, most of whose partitions are listed in pages: the whole frame
 * file is byte-identical with the right Content-Length (also for partitions committed before
 * streams recorded `frameIndex`), a partition fetch reads a few documents by `_id` whether
 * it is the first partition or the last, and deletion removes the committed partitions and
 * the pages. Commands are counted with
 * the driver's command monitoring on the server's own MongoDB client.
 */
import crypto from 'node:crypto';
import t from 'tap';
import type { CommandStartedEvent, Document } from 'mongodb';
import { startApiServer } from './helpers/api';
import { getStack, stopStack } from '../test-support/stack';

const KIB = 1024;
const PARTITIONS = 240;
/** Partitions committed before `frameIndex` is taken away, as on a stream written by an older version. */
const OLD = 40;
/** Partitions per page (storage.partitionsPerPage's default). */
const PAGE = 64;

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

t.teardown(stopStack);

t.test('a stream of a few hundred partitions downloads byte-identical, reading O(1) documents per partition', async (t) => {
  const stack = await getStack();
  const srv = await startApiServer({
    // Small inline limit: some frame and checkpoint files go through GridFS.
    'storage.inlineMaxBytes': 8 * KIB,
    'storage.janitorIntervalS': 3600,
    // The block list and key revocations are re-read every auth.cacheTtlS in the background;
    // kept out of the command counts below.
    'auth.cacheTtlS': 3600,
    'mongodb.uri': `${stack.mongo.uri}&monitorCommands=true`,
  });
  t.teardown(() => srv.close());
  const { api, fx } = srv;
  const db = srv.ts.server.storage.mongo.db;
  const client = srv.ts.server.storage.mongo.client;
  const commands: CommandStartedEvent[] = [];
  client.on('commandStarted', (e) => commands.push(e));

  const owner = await fx.manager();
  const target = await fx.target(owner);
  const stream = await fx.stream(owner, target, { 'state.xml': crypto.randomBytes(20 * KIB), 'system.xml': '<System/>' });

  const traj: Buffer[] = [];
  const ckpt: Buffer[] = [];
  for (let n = 1; n <= PARTITIONS; n++) {
    // Sizes vary, a few above the inline limit.
    const size = n % 50 === 0 ? 20 * KIB : 1 + crypto.randomInt(4 * KIB);
    traj.push(crypto.randomBytes(size));
    ckpt.push(crypto.randomBytes(n % 60 === 0 ? 10 * KIB : 512));
    await fx.commitPartition(stream, n, { 'traj.dcd': traj[n - 1] }, { 'state.xml': ckpt[n - 1] }, PAGE);
    if (n === OLD) await db.collection('streams').updateOne({ _id: stream as never }, { $unset: { frameIndex: '' } });
  }
  const doc = await db.collection('streams').findOne({ _id: stream as never });
  const paged = Math.floor(PARTITIONS / PAGE) * PAGE;
  t.same(doc?.pageEnds, [64, 128, 192], 'the oldest partitions moved to pages');
  t.same(doc?.partitions, Array.from({ length: PARTITIONS - paged }, (_, i) => paged + i + 1), 'the stream lists the newest itself');
  t.equal(doc?.frameIndex.length, PARTITIONS - paged, 'with their frame files');
  t.equal(await db.collection('partition_pages').countDocuments({ streamId: stream }), 3, 'three pages');

  const whole = Buffer.concat(traj);
  commands.length = 0;
  const fr = await api.call('GET', `/v1/streams/${stream}/frames/traj.dcd`, { token: owner.token });
  t.equal(fr.status, 200);
  t.equal(fr.headers['content-length'], String(whole.length), 'Content-Length: the sum of every partition');
  t.equal(fr.body.length, whole.length);
  t.equal(sha256(fr.body), sha256(whole), 'every partition, in order, byte-identical');
  const partitionReads = commands.filter((c) => c.commandName === 'find' && c.command.find === 'partitions');
  t.equal(partitionReads.length, PARTITIONS + OLD, 'one read per partition, plus one for each partition older than frameIndex');
  t.equal(commands.filter((c) => c.commandName === 'find' && c.command.find === 'partition_pages').length, 1, 'the pages in one read (by _id)');
  t.ok(
    partitionReads.every((c) => Object.keys(c.command.filter as Document).join() === '_id' && typeof c.command.filter._id === 'string'),
    'every partition read is by a single _id',
  );

  // A Range request starting inside a late partition skips the partitions before it.
  const offset = traj.slice(0, 200).reduce((a, b) => a + b.length, 0) + 1;
  commands.length = 0;
  const ranged = await api.call('GET', `/v1/streams/${stream}/frames/traj.dcd`, { token: owner.token, headers: { range: `bytes=${offset}-` } });
  t.equal(ranged.status, 206, 'a range of the frame file');
  t.equal(sha256(ranged.body), sha256(whole.subarray(offset)), 'the range is byte-identical');
  const rangeReads = commands.filter((c) => c.commandName === 'find' && c.command.find === 'partitions').length;
  t.ok(rangeReads <= PARTITIONS - 200 + OLD, `partitions before the range are not read (${rangeReads} partition reads)`);

  // A single partition: the first is in a page, the last in the stream's own list.
  const fetch = async (n: number, kind: 'frame' | 'checkpoint'): Promise<{ body: Buffer; finds: Document[] }> => {
    commands.length = 0;
    const path = kind === 'frame' ? `/v1/streams/${stream}/partitions/${n}/traj.dcd` : `/v1/streams/${stream}/partitions/${n}/checkpoint/state.xml`;
    const res = await api.call('GET', path, { token: owner.token });
    t.equal(res.status, 200, `${kind} of partition ${n}`);
    return { body: res.body, finds: commands.filter((c) => c.commandName === 'find').map((c) => ({ coll: c.command.find, filter: c.command.filter, limit: c.command.limit })) };
  };
  const first = await fetch(1, 'frame');
  const last = await fetch(PARTITIONS, 'frame');
  t.equal(sha256(first.body), sha256(traj[0]), 'partition 1 byte-identical');
  t.equal(sha256(last.body), sha256(traj[PARTITIONS - 1]), `partition ${PARTITIONS} byte-identical`);
  t.same(last.finds.map((f) => f.coll), ['streams', 'partitions'], 'the last partition: the stream, then the partition');
  t.same(first.finds.map((f) => f.coll), ['streams', 'partition_pages', 'partitions'], 'the first: the stream, its page, then the partition');
  t.same(
    last.finds.filter((f) => f.coll === 'partitions'),
    [{ coll: 'partitions', filter: { _id: doc?.lastPartitionId }, limit: 1 }],
    'one partition document, read by its _id',
  );
  t.same(first.finds.find((f) => f.coll === 'partition_pages')?.filter, { _id: { $in: [`${stream}:p0-64`] } }, 'one page, read by its _id');
  const listing = await api.json<{ partitions: number[] }>('GET', `/v1/streams/${stream}/partitions`, owner.token, undefined, 200);
  t.same(listing.partitions, Array.from({ length: PARTITIONS }, (_, i) => i + 1), 'the listing names every partition, pages first');
  const grid = await fetch(60, 'checkpoint');
  t.equal(sha256(grid.body), sha256(ckpt[59]), 'a checkpoint file kept in GridFS, byte-identical');

  // Deletion still removes everything of the stream.
  commands.length = 0;
  const del = await api.call('DELETE', `/v1/streams/${stream}`, { token: owner.token });
  t.equal(del.status, 204, 'deleted', { log: del.status === 204 ? undefined : srv.ts.logLines().filter((l) => Number(l.level) >= 50) });
  t.equal(await db.collection('partitions').countDocuments({ streamId: stream }), 0, 'no partition left');
  t.equal(await db.collection('partition_pages').countDocuments({ streamId: stream }), 0, 'no page left');
  t.equal(await db.collection('files').countDocuments({ streamId: stream }), 0, 'no seed file left');
  t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': stream }), 0, 'no GridFS blob left');
  t.equal((await api.call('GET', `/v1/streams/${stream}/frames/traj.dcd`, { token: owner.token })).status, 404, 'the deleted stream is gone');
});
