/**
 * The benchmarks' bulk loader (bench/lib/populate.ts) writes what the product writes: the
 * shape check against Streams.create and the commit path passes on the real store, and a
 * bulk-loaded target behaves like one built through the API — queued by Pool.rebuild, a new
 * stream assigned with its seed files, a stream with a history assigned with its last
 * checkpoint, its frames downloadable — and loading the same range again changes nothing.
 */
import t from 'tap';
import pino from 'pino';
import { Leases } from '../src/store/leases';
import { Pool } from '../src/store/pool';
import { RECIPE, seedFiles } from '../bench/lib/fixtures';
import { checkShapes, populate, streamIdOf } from '../bench/lib/populate';
import { coreFixture } from './helpers/core';
import { getStack, stopStack } from '../test-support/stack';

t.teardown(stopStack);

t.test('bulk-loaded streams are assigned, resumed and downloaded like streams made through the API', async (t) => {
  const stack = await getStack();
  const fx = await coreFixture({ 'storage.janitorIntervalS': 3600 });
  t.teardown(() => fx.ts.close());
  const db = fx.ts.server.storage.mongo.db;

  await t.resolves(checkShapes(db, stack.redis.url), "the loader's documents have the fields and value kinds the product writes");

  const target = await fx.target({ options: RECIPE.targetOptions });
  const owner = (await fx.api<{ name: string }>('GET', '/v1/me', fx.manager)).name;
  const history = { partitions: 3, framesPerPartition: 5, frameBytes: 3000, checkpointBytes: 1500 };
  const range = { space: `test:${target}`, from: 0, to: 4, newStreams: 1 };
  const first = await populate(db, { targetId: target, owner }, range, history);
  t.same({ streams: first.streams, partitions: first.partitions }, { streams: 4, partitions: 9 }, 'one new stream, three with three partitions each');
  const again = await populate(db, { targetId: target, owner }, range, history);
  t.equal(again.streams, 4, 'a repeated range loads again without error (resume)');
  t.equal(await db.collection('streams').countDocuments({ targetId: target }), 4, '… and adds no documents');
  t.equal(await db.collection('partitions').countDocuments({ streamId: { $in: [0, 1, 2, 3].map((i) => streamIdOf(range.space, i)) } }), 9);

  const leases = new Leases(fx.ts.server.storage.redis, fx.ts.settings.redis.keyPrefix, 30_000);
  await new Pool(db, leases, pino({ level: 'silent' })).rebuild();

  // Fewest frames first: the new stream, with the recipe's seed files.
  const a = await fx.client();
  t.teardown(() => a.close());
  const fresh = await a.assign(target);
  t.equal(fresh.streamId, streamIdOf(range.space, 0));
  t.equal(fresh.frames, 0);
  const seeds = seedFiles(0);
  t.ok(fresh.files['state.xml']?.equals(seeds[0]!.bytes), 'the 200 KiB seed state, byte for byte');
  t.ok(fresh.files['system.xml']?.equals(seeds[1]!.bytes), 'the system file');
  t.same(fresh.options, RECIPE.targetOptions, "the target's options");

  // Then the oldest stream with a history: its last checkpoint overlays the seed state.
  const b = await fx.client();
  t.teardown(() => b.close());
  const resumed = await b.assign(target);
  const id = streamIdOf(range.space, 1);
  t.equal(resumed.streamId, id);
  t.equal(resumed.frames, 15, 'three partitions of five frames');
  t.equal(resumed.files['state.xml']?.length, history.checkpointBytes, 'the last checkpoint state, not the seed state');
  t.ok(resumed.files['system.xml']?.equals(seedFiles(1)[1]!.bytes), 'the seed system file');

  const frames = await fx.get(`/v1/streams/${id}/frames/${RECIPE.frame.name}`);
  t.equal(frames.status, 200);
  t.equal(frames.body.length, 3 * history.frameBytes, 'the whole frame file: every partition, from the stream\'s frameIndex');
  const part = await fx.get(`/v1/streams/${id}/partitions/10/${RECIPE.frame.name}`);
  t.equal(part.status, 200);
  t.equal(part.body.length, history.frameBytes, 'one partition by number');

  // A committed checkpoint lands on top of the bulk history like on any stream.
  await b.sendFrames([{ name: RECIPE.frame.name, data: Buffer.alloc(100, 1) }], 2);
  const c = await b.checkpoint([{ name: RECIPE.checkpoint.name, data: Buffer.alloc(64, 2) }]);
  t.equal(c.frames, 17);
});
