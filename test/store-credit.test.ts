import { ObjectId } from 'mongodb';
import t from 'tap';
import { CreditWriter, writeFragments, type Fragment } from '../src/store/credit';
import { commandsDuring, useCoreFixture } from './helpers/core';

const fx = useCoreFixture({}, { monitored: true });

const db = () => fx().ts.server.storage.mongo.db;
let donors = 0;

/** A donor registered as the API does (zero totals); returns its name and `_id`. */
async function newDonor(): Promise<{ name: string; id: ObjectId }> {
  const name = `credit-${process.pid}-${++donors}`;
  const id = new ObjectId();
  await db().collection('donors').insertOne({ _id: id, name, frames: 0, coreSeconds: 0 });
  return { name, id };
}

/** A fragment of `seconds` core-seconds ending now. */
function fragment(targetId: string, frames: number, seconds: number, donor?: { name: string; id?: ObjectId }): Fragment {
  const end = new Date();
  return { streamId: `s-${frames}`, targetId, engine: 'openmm', start: new Date(end.getTime() - seconds * 1000), end, frames, ...(donor ? { donor: donor.name, ...(donor.id ? { donorId: donor.id } : {}) } : {}) };
}

/** The store commands `fn` sends, by name (the server's own client). */
async function commandsByName(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (const e of await commandsDuring(fx().ts.server.storage.mongo.client, fn)) seen[e.commandName] = (seen[e.commandName] ?? 0) + 1;
  return seen;
}

t.test('a crowd of ended activations is written in a few commands, and every donor credited exactly', async (t) => {
  const targets = [await fx().target(), await fx().target()];
  const people = [await newDonor(), await newDonor(), await newDonor()];
  const byName = { ...people[2]!, id: undefined }; // credited by name, as before donors had ids in sessions
  const writer = new CreditWriter(db(), { batchMax: 256, maxQueued: 10_000 });
  const crowd: Fragment[] = [];
  for (let i = 0; i < 650; i++) {
    const who = i % 13 === 0 ? undefined : i % 3 === 2 ? byName : people[i % 3];
    crowd.push(fragment(targets[i % 2]!, 1 + (i % 7), 2 + (i % 5), who));
  }
  const seen = await commandsByName(() => Promise.all(crowd.map((c) => writer.record(c))));
  // The first goes at once, then 256 + 256 + 137: four batches of at most three commands.
  t.equal(seen.insert, 4, 'one insert per batch');
  t.ok((seen.update ?? 0) <= 8, `at most two updates per batch (${seen.update})`);
  t.equal(writer.queued, 0, 'nothing left waiting');

  for (const target of targets) t.equal(await db().collection('fragments').countDocuments({ targetId: target }), 325, 'every fragment stored');
  for (const d of people) {
    const mine = crowd.filter((c) => c.donor === d.name);
    const frames = mine.reduce((s, c) => s + c.frames, 0);
    const seconds = mine.reduce((s, c) => s + (c.end.getTime() - c.start.getTime()) / 1000, 0);
    const doc = await db().collection('donors').findOne({ _id: d.id });
    t.equal(doc?.frames, frames, `${d.name}: frames equal the sum of its fragments`);
    t.ok(Math.abs((doc?.coreSeconds as number) - seconds) < 1e-6, `${d.name}: core-seconds too`);
    for (const target of targets) {
      const row = await db().collection('donor_targets').findOne({ _id: `${d.name}:${target}` as never });
      t.equal(row?.frames, mine.filter((c) => c.targetId === target).reduce((s, c) => s + c.frames, 0), `${d.name}: frames on each target`);
      t.match(row, { donor: d.name, targetId: target });
    }
  }
});

t.test('writers racing to credit a new donor and target all count (upsert races retried)', async (t) => {
  const targetId = await fx().target();
  const donor = await newDonor();
  // Separate writers stand for separate processes: their batches race on the same new _id.
  const writers = Array.from({ length: 4 }, () => new CreditWriter(db(), { batchMax: 256, maxQueued: 100 }));
  const results = await Promise.allSettled(writers.flatMap((w) => Array.from({ length: 5 }, () => w.record(fragment(targetId, 3, 1, donor)))));
  t.same(
    results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
    [],
    'no fragment lost to a duplicate-key error',
  );
  t.equal(await db().collection('fragments').countDocuments({ donor: donor.name }), 20, 'every fragment stored');
  const row = await db().collection('donor_targets').findOne({ _id: `${donor.name}:${targetId}` as never });
  // On FerretDB too: the provisioned build makes read-then-write updates atomic (patch 3).
  t.equal(row?.frames, 60, 'every fragment credited to the donor on the target');
  t.equal((await db().collection('donors').findOne({ _id: donor.id }))?.frames, 60, 'and to the donor');
});

t.test('fragments past donors.creditMaxQueued are refused, and the rest written', async (t) => {
  const targetId = await fx().target();
  const donor = await newDonor();
  const writer = new CreditWriter(db(), { batchMax: 256, maxQueued: 3 });
  // The first goes to the store at once; three wait for it; the fifth finds the queue full.
  const calls = Array.from({ length: 5 }, () => writer.record(fragment(targetId, 2, 1, donor)));
  const results = await Promise.allSettled(calls);
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected'],
  );
  t.match((results[4] as PromiseRejectedResult).reason, { code: 'unavailable' });
  t.equal(await db().collection('fragments').countDocuments({ targetId }), 4, 'the refused fragment is not stored');
  t.equal((await db().collection('donors').findOne({ _id: donor.id }))?.frames, 8, 'and not credited');
});

t.test('a fragment the store refuses is not credited; the others of its batch are', async (t) => {
  // A database of its own, where fragments of one stream must be unique, makes one fail.
  const other = fx().ts.server.storage.mongo.client.db(`${fx().ts.settings.mongodb.database}_credit`);
  t.teardown(() => other.dropDatabase());
  await other.collection('fragments').createIndex({ streamId: 1 }, { unique: true });
  const id = new ObjectId();
  await other.collection('donors').insertOne({ _id: id, name: 'solo', frames: 0, coreSeconds: 0 });
  const donor = { name: 'solo', id };
  const batch = [fragment('t1', 5, 1, donor), { ...fragment('t1', 7, 1, donor), streamId: 's-5' }, fragment('t1', 11, 1, donor)];
  const errors = await writeFragments(other, batch);
  t.same(
    errors.map((e) => e !== undefined),
    [false, true, false],
    'the duplicate alone fails',
  );
  t.equal((await other.collection('donors').findOne({ _id: id }))?.frames, 16, 'the donor is credited with the two stored fragments only');
  t.equal((await other.collection('donor_targets').findOne({ _id: 'solo:t1' as never }))?.frames, 16, 'per target too');
});
