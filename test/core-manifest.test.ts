/**
 * Assignments take what they need of a stream from its manifest in Redis (committed frames,
 * seed file names, last partition) instead of reading MongoDB, and fall back to MongoDB
 * when the manifest is missing, stale or written before it named the seed files. Either way the core gets the same assignment.
 */
import t from 'tap';
import { Leases, readyMember } from '../src/store/leases';
import { queuedStreams, queueEntry, seedDigest } from '../src/store/streams';
import { coreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';

const PREFIX = 'mf:';
let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'redis.keyPrefix': PREFIX });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const misses = async (): Promise<number> => (await f.ts.server.metrics.manifestMisses.get()).values[0]?.value ?? 0;
// Manifests live in their target's slot (see src/store/leases.ts).
let manifestKey = '';
const manifest = (stream: string): Promise<string | null> => f.ts.server.storage.redis.hget(manifestKey, stream);

t.test('the manifest follows commits and serves assignments; a stale or missing one falls back to MongoDB', async (t) => {
  const target = await f.target();
  manifestKey = `${PREFIX}{t:${target}}:manifest`;
  const seed = Buffer.from('seed state');
  const stream = await f.stream(target, seed);
  const digest = seedDigest(seed);
  t.equal(await manifest(stream), `0|1||state.xml|0|0|${digest}`, 'written at creation: no frames, has seed files, their names, no fence or listed partition, their digests');

  const c = await f.client();
  t.teardown(() => c.close());
  const before = await misses();
  const a = await c.assign(target);
  t.match(a, { streamId: stream, frames: 0 });
  t.same(a.files['state.xml'], seed, 'seed files handed out');
  t.equal(await misses(), before, 'no MongoDB read of the stream');

  await c.sendFrames([{ name: 'frames.xtc', data: Buffer.from('abc') }], 3);
  t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('at 3') }]), { frames: 3 });
  t.match(await manifest(stream), new RegExp(`^3\\|1\\|[^|]+\\|state\\.xml\\|0\\|1\\|${digest}$`), 'rewritten after the commit, naming the partition, no fence, one partition listed, the digests kept');
  await c.stop();

  const manifestAfterCommit = await manifest(stream);
  const again = await c.assign(target);
  t.match(again, { streamId: stream, frames: 3 });
  t.equal(again.files['state.xml']?.toString(), 'at 3', 'the checkpoint named by the manifest');
  t.equal(await misses(), before, 'still no MongoDB read');
  await c.stop();

  // A manifest whose frames do not match the queue (a lost write) is ignored.
  await f.ts.server.storage.redis.hset(manifestKey, stream, '0|0|');
  const stale = await c.assign(target);
  t.match(stale, { streamId: stream, frames: 3 });
  t.equal(stale.files['state.xml']?.toString(), 'at 3', 'same files from MongoDB');
  t.equal(await misses(), before + 1, 'read from MongoDB once');
  t.equal(await manifest(stream), manifestAfterCommit, 'and repaired from the stream document, its count of listed partitions too');
  await c.stop();

  // A manifest written before seed names were recorded (`frames|1|partition`) cannot name
  // the seed files' ids: the assignment reads the stream by _id once and repairs it.
  const current = (await manifest(stream))!;
  await f.ts.server.storage.redis.hset(manifestKey, stream, current.split('|').slice(0, 3).join('|'));
  const legacy = await c.assign(target);
  t.same(legacy.files['state.xml']?.toString(), 'at 3', 'same files');
  t.equal(await misses(), before + 2, 'read from MongoDB once');
  t.equal(await manifest(stream), current, 'and repaired with the names');
  await c.stop();

  await f.ts.server.storage.redis.hdel(manifestKey, stream);
  const missing = await c.assign(target);
  t.match(missing, { streamId: stream, frames: 3 });
  t.equal(missing.files['state.xml']?.toString(), 'at 3');
  t.equal(await misses(), before + 3, 'a missing manifest reads MongoDB too');
  await c.stop();

  await f.api('DELETE', `/v1/streams/${stream}`, f.manager, undefined, 204);
  t.equal(await manifest(stream), null, 'deleted with the stream');
});

t.test("an enqueue from an earlier read leaves a held stream's manifest to its holder", async (t) => {
  const target = await f.target();
  manifestKey = `${PREFIX}{t:${target}}:manifest`;
  const stream = await f.stream(target);
  // Read as the pool reads it, before the holder commits.
  const earlier = (await queuedStreams(f.ts.server.storage.mongo.db, [stream])).map(queueEntry);
  const c = await f.client({ reconnect: false });
  t.teardown(() => c.close());
  await c.assign(target);
  await c.sendFrames([{ name: 'frames.xtc', data: Buffer.from('one') }]);
  t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('at 1') }]), { frames: 1 });
  const held = await manifest(stream);
  t.match(held, /^1\|/, "the holder's commit wrote its manifest");
  const leases = new Leases(f.ts.server.storage.redis, PREFIX, 30_000);
  t.equal(await leases.enqueue(earlier), 0, 'not queued: it is held');
  t.equal(await manifest(stream), held, 'and its manifest is not put back to the one read before the commit');
});

t.test("an enqueue from an earlier read leaves a queued stream's entry and manifest as they are", async (t) => {
  const leases = new Leases(f.ts.server.storage.redis, `mfq${process.pid}:`, 30_000);
  const target = 'mfq-target';
  const k = leases.keys(target);
  t.teardown(async () => {
    await f.ts.server.storage.redis.del(k.ready, k.manifest, `mfq${process.pid}:st:mfq-stream`);
    await f.ts.server.storage.redis.srem(`mfq${process.pid}:targets`, target);
  });
  const member = readyMember(new Date(0), 'mfq-stream');
  const now = { frames: 2, seed: true, seedFiles: ['state.xml'], lastPartitionId: 'p2', fence: 1, unpaged: 2 };
  t.equal(await leases.enqueue([{ target, frames: 2, member, manifest: now }]), 1, 'queued at 2 frames (released after its commits)');
  const written = await f.ts.server.storage.redis.hget(k.manifest, 'mfq-stream');
  t.equal(await leases.enqueue([{ target, frames: 0, member, manifest: { frames: 0, seed: true, seedFiles: ['state.xml'] } }]), 0, 'the earlier read adds nothing');
  t.equal(await f.ts.server.storage.redis.zscore(k.ready, member), '2', 'the score stays');
  t.equal(await f.ts.server.storage.redis.hget(k.manifest, 'mfq-stream'), written, 'and so does the manifest');
});
