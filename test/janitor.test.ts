import pino from 'pino';
import t from 'tap';
import { commitCheckpoint } from '../src/store/commit';
import { FileStore } from '../src/store/files';
import { Janitor } from '../src/store/janitor';
import { writePartition } from '../src/store/partitions';
import { coreFixture } from './helpers/core';
import { stopStack } from './helpers/stack';

t.test('the janitor removes uncommitted partitions and orphan files, never committed data', async (t) => {
  const f = await coreFixture({ 'storage.inlineMaxBytes': 1024 });
  t.teardown(async () => {
    await f.ts.close();
    await stopStack();
  });
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1024);
  const target = await f.target();
  const stream = await f.stream(target);

  // Committed partition 3, then a leftover partition 5 (big enough for GridFS) never committed.
  const r = await commitCheckpoint(db, files, stream, 0, 3, [{ name: 'frames.xtc', bytes: Buffer.alloc(100, 1) }], []);
  t.match(r, { ok: true, frames: 3, partitionId: String });
  await writePartition(db, files, stream, 5, [{ name: 'frames.xtc', bytes: Buffer.alloc(5000, 2) }], []);
  // A seed file of a stream that never came to exist (crash during creation).
  await db.collection('files').insertOne({ _id: 'ghost:seed:a' as never, streamId: 'ghost', kind: 'seed', name: 'a', size: 1, createdAt: new Date() });
  t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': stream }), 1, 'the leftover has a GridFS blob');

  const lagMs = f.ts.settings.storage.janitorLagS * 1000;
  const janitor = new Janitor(db, files, f.ts.server.storage.redis, `jt${process.pid}:`, pino({ level: 'silent' }), lagMs);
  t.same(await janitor.pass(5000, Date.now()), { partitions: 0, files: 0 }, 'nothing younger than the lag is touched');
  const later = Date.now() + lagMs + 1000;
  t.same(await janitor.pass(5000, later), { partitions: 1, files: 1 });
  const left = await db.collection('partitions').find({ streamId: stream }).toArray();
  t.same(left.map((p) => p.n), [3], 'committed partition kept, leftover removed');
  t.equal(await db.collection('blobs.files').countDocuments({ 'metadata.streamId': stream }), 0, 'its GridFS blob too');
  t.equal(await db.collection('files').countDocuments({ streamId: 'ghost' }), 0, 'orphan file removed');
  t.equal(await db.collection('files').countDocuments({ streamId: stream }), 1, "the live stream's seed file kept");
  t.same(await janitor.pass(5000, later + 1000), { partitions: 0, files: 0 }, 'watermark: nothing is examined twice');
});
