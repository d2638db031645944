/**
 * The store answers the coordinator's off-hot-path queries correctly and, on the provisioned
 * FerretDB build, through an index (src/provision/ferretdb-patches.ts, patch 4): equality on a field
 * the coordinator stores as a string, and the janitor's `createdAt` window. The results are
 * checked against what MongoDB's semantics give, so the same test holds on `mongod`.
 */
import t from 'tap';
import { MongoClient, type Db } from 'mongodb';
import { getStack, stopStack } from './helpers/stack';

let client: MongoClient;
let db: Db;
let ferret = false;

t.before(async () => {
  const stack = await getStack();
  ferret = stack.mongoKind === 'ferretdb';
  client = new MongoClient(stack.mongo.uri, { tlsCAFile: stack.mongoCAFile });
  await client.connect();
  db = client.db(`queries${Date.now()}`);
});
t.teardown(async () => {
  await client?.close();
  await stopStack();
});

/** SQLite's plan lines of a find, as FerretDB's explain reports them. */
async function plan(collection: string, filter: Record<string, unknown>): Promise<string> {
  const explained = (await db.collection(collection).find(filter).explain()) as { queryPlanner?: { Plan?: string[] } };
  return (explained.queryPlanner?.Plan ?? []).join(' | ');
}

t.test('equality on a string field: the right documents, through the index', async (t) => {
  const streams = db.collection<{ _id: string; targetId: string; status: string; partitionIds: string[] }>('streams');
  await streams.createIndexes([{ key: { targetId: 1, status: 1 }, name: 'target_status' }]);
  const docs = Array.from({ length: 60 }, (_, i) => ({ _id: `s${i}`, targetId: `t${i % 3}`, status: i % 4 === 0 ? 'stopped' : 'ok', partitionIds: [`s${i}:1:x`, `s${i}:2:y`] }));
  await streams.insertMany(docs);
  const ids = async (filter: Record<string, unknown>): Promise<string[]> => (await streams.find(filter, { sort: { _id: 1 } }).toArray()).map((d) => d._id).sort();
  const expect = (pick: (d: (typeof docs)[number]) => boolean): string[] => docs.filter(pick).map((d) => d._id).sort();

  t.same(await ids({ targetId: 't1' }), expect((d) => d.targetId === 't1'), 'by targetId');
  t.same(await ids({ targetId: 't1', status: 'ok' }), expect((d) => d.targetId === 't1' && d.status === 'ok'), 'by targetId and status');
  t.same(await ids({ status: 'stopped', targetId: 't2' }), expect((d) => d.targetId === 't2' && d.status === 'stopped'), 'fields in the other order');
  t.same(await ids({ targetId: 't0', _id: { $gt: 's30' } }), expect((d) => d.targetId === 't0' && d._id > 's30'), 'with an _id range (a page after an id)');
  t.same(await ids({ partitionIds: 's7:2:y' }), ['s7'], 'equality on an array field still matches an element (not narrowed)');
  t.equal(await streams.countDocuments({ targetId: 't0', status: 'ok' }), expect((d) => d.targetId === 't0' && d.status === 'ok').length, 'count');
  t.same(await ids({ targetId: 'nope' }), [], 'no match');
  if (ferret) t.match(await plan('streams', { targetId: 't1', status: 'ok' }), /USING INDEX \S+_target_status/, 'FerretDB searches the target_status index');
});

t.test("the janitor's createdAt window: the right documents, through the index", async (t) => {
  const parts = db.collection<{ _id: string; streamId: string; createdAt: Date }>('partitions');
  await parts.createIndexes([{ key: { createdAt: 1 }, name: 'createdAt' }, { key: { streamId: 1, n: 1 }, name: 'stream_n' }]);
  const base = Date.UTC(2026, 10, 29, 12, 0, 0);
  const docs = Array.from({ length: 50 }, (_, i) => ({ _id: `p${String(i).padStart(2, '0')}`, streamId: `s${i % 5}`, createdAt: new Date(base + i * 1000) }));
  await parts.insertMany(docs);
  const window = async (filter: Record<string, unknown>): Promise<string[]> => (await parts.find({ createdAt: filter }, { sort: { createdAt: 1 }, projection: { _id: 1 } }).toArray()).map((d) => d._id);
  const at = (i: number): Date => new Date(base + i * 1000);
  const range = (from: number, to: number): string[] => docs.slice(from, to).map((d) => d._id);

  t.same(await window({ $gte: new Date(0), $lt: at(10) }), range(0, 10), 'from the epoch (the first pass): the epoch bound is left to FerretDB');
  t.same(await window({ $gte: at(10), $lt: at(20) }), range(10, 20), '[from, to)');
  t.same(await window({ $gt: at(10), $lte: at(20) }), range(11, 21), '(from, to]');
  t.same(await window({ $gte: at(45) }), range(45, 50), 'open-ended');
  t.same(await window({ $lt: new Date(0) }), [], 'before the epoch: nothing');
  t.same((await parts.find({ streamId: 's3' }).toArray()).map((d) => d._id).sort(), docs.filter((d) => d.streamId === 's3').map((d) => d._id).sort(), "a stream's partitions by streamId");
  if (ferret) {
    t.match(await plan('partitions', { createdAt: { $gte: at(10), $lt: at(20) } }), /USING INDEX \S+_createdAt/, 'FerretDB searches the createdAt index');
    t.match(await plan('partitions', { streamId: 's3' }), /USING INDEX \S+_stream_n/, 'and the stream_n index by streamId');
  }
});
