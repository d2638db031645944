/**
 * The store answers the coordinator's off-hot-path queries correctly and, on the provisioned
 * FerretDB build, through an index (src/provision/ferretdb-patches.ts, patch 4): equality on a field
 * the coordinator stores as a string, and the janitor's `createdAt` window. The results are
 * checked against what MongoDB's semantics give, so the same test holds on `mongod`.
 */
import t from 'tap';
import type { Document } from 'mongodb';
import { revokedEngineKeys } from '../src/store/engine-keys';
import { ensureIndexes, INDEXES } from '../src/store/indexes';
import { withTimeout } from '../src/store/outage';
import { commitPoints, queuedStreams } from '../src/store/streams';
import { createdQuery, type CreatedRange } from '../src/store/created-order';
import { partitionHeadsCreated } from '../src/store/partitions';
import { useStoreDb } from './helpers/store';

const store = useStoreDb('queries', { monitorCommands: true });
/** True on the provisioned FerretDB build, whose plans the tests read; mongod plans differently. */
const ferret = (): boolean => store.stack.mongoKind === 'ferretdb';

/** SQLite's plan lines of a find, as FerretDB's explain reports them. */
async function plan(collection: string, filter: Record<string, unknown>): Promise<string> {
  const explained = (await store.db.collection(collection).find(filter).explain()) as { queryPlanner?: { Plan?: string[] } };
  return (explained.queryPlanner?.Plan ?? []).join(' | ');
}

t.test('equality on a string field: the right documents, through the index', async (t) => {
  const streams = store.db.collection<{ _id: string; targetId: string; status: string; partitionIds: string[] }>('streams');
  await streams.createIndexes([{ key: { targetId: 1, status: 1, _id: 1 }, name: 'target_status_id' }]);
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
  if (ferret()) t.match(await plan('streams', { targetId: 't1', status: 'ok' }), /USING INDEX \S+_target_status_id/, 'FerretDB searches the target_status_id index');
});

t.test("the janitor's createdAt window: the right documents, through the index", async (t) => {
  const parts = store.db.collection<{ _id: string; streamId: string; createdAt: Date }>('partitions');
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
  if (ferret()) {
    t.match(await plan('partitions', { createdAt: { $gte: at(10), $lt: at(20) } }), /USING INDEX \S+_createdAt/, 'FerretDB searches the createdAt index');
    t.match(await plan('partitions', { streamId: 's3' }), /USING INDEX \S+_stream_n/, 'and the stream_n index by streamId');
  }

  // The janitor's pages (store/created-order.ts): a window bounded on both sides, in
  // creation order, limited; and one millisecond's documents after an id, by id.
  const page = async (range: CreatedRange, limit: number): Promise<string[]> => (await partitionHeadsCreated(store.db, range, limit)).map((d) => d._id);
  t.same(await page({ from: at(5), to: at(40) }, 7), range(5, 12), "the janitor's page: the oldest of the window, in order");
  t.same(await page({ from: at(0), to: at(50) }, 50), range(0, 50), 'the whole window');
  await parts.insertMany(['p08a', 'p08b', 'p08c'].map((id) => ({ _id: id, streamId: 's9', createdAt: at(8) })));
  t.same(await page({ at: at(8), afterId: '' }, 3), ['p08', 'p08a', 'p08b'], "a millisecond's documents, by id");
  t.same(await page({ at: at(8), afterId: 'p08b' }, 3), ['p08c'], 'after an id');
  t.same(await page({ at: at(9), afterId: 'p09' }, 3), [], 'none left in that millisecond');
  await parts.deleteMany({ _id: { $in: ['p08a', 'p08b', 'p08c'] } });
  t.same((await parts.find({ createdAt: { $gte: new Date(0), $lt: at(50) } }, { sort: { createdAt: 1 }, limit: 3 }).toArray()).map((d) => d._id), range(0, 3), 'from the epoch: left to FerretDB, still right');
  if (ferret()) {
    const explained = (await parts.find({ createdAt: { $gte: at(5), $lt: at(40) } }, { sort: { createdAt: 1 }, limit: 7 }).explain()) as { queryPlanner?: { Plan?: string[] }; sortPushdown?: boolean; limitPushdown?: boolean };
    t.match(explained, { sortPushdown: true, limitPushdown: true }, "FerretDB leaves the janitor page's sort and limit to SQLite");
    t.notMatch((explained.queryPlanner?.Plan ?? []).join(' | '), /TEMP B-TREE/, 'which reads the createdAt index in order');
    for (const afterId of ['', 'p07']) {
      const { filter, sort } = createdQuery({ at: at(8), afterId });
      const instant = (await parts.find(filter as Document, { sort, limit: 7 }).explain()) as { queryPlanner?: { Plan?: string[] }; sortPushdown?: boolean; limitPushdown?: boolean };
      t.match(instant, { sortPushdown: true, limitPushdown: true }, `and a millisecond's page too (after '${afterId}')`);
      t.match((instant.queryPlanner?.Plan ?? []).join(' | '), /USING INDEX \S+_createdAt/, 'through the createdAt index');
    }
  }
});

t.test("a target's pages in id order and its counts: exact, with the sort, limit and count left to the index", async (t) => {
  const streams = store.db.collection<{ _id: string; targetId: string; status: string; frames: number }>('pages');
  await streams.createIndexes([
    { key: { targetId: 1, status: 1, _id: 1 }, name: 'target_status_id' },
    { key: { targetId: 1, _id: 1 }, name: 'target_id' },
  ]);
  // Ids as the coordinator makes them (base64url), inserted out of order.
  const docs = Array.from({ length: 300 }, (_, i) => ({ _id: Buffer.from(`id-${(i * 7919) % 300}`).toString('base64url'), targetId: `t${i % 3}`, status: ['ok', 'ok', 'stopped', 'failed'][i % 4]!, frames: i }));
  await streams.insertMany(docs);
  const byId = (a: { _id: string }, b: { _id: string }): number => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0);
  const of = (target: string) => docs.filter((d) => d.targetId === target).sort(byId);
  const page = async (filter: Record<string, unknown>, order: 1 | -1, skip: number, limit: number): Promise<string[]> =>
    (await streams.find(filter, { sort: { _id: order }, skip, limit }).toArray()).map((d) => d._id);
  const t1 = of('t1');

  t.same(await page({ targetId: 't1' }, 1, 0, 10), t1.slice(0, 10).map((d) => d._id), 'first page');
  t.same(await page({ targetId: 't1' }, 1, 30, 10), t1.slice(30, 40).map((d) => d._id), 'a page by offset');
  t.same((await streams.find({ targetId: 't1' }, { sort: { _id: 1 }, skip: 95 }).toArray()).map((d) => d._id), t1.slice(95).map((d) => d._id), 'an offset without a limit');
  t.same(await page({ targetId: 't1' }, 1, 100, 10), [], 'an offset past the end');
  t.same(await page({ targetId: 't1' }, -1, 0, 10), [...t1].reverse().slice(0, 10).map((d) => d._id), 'descending');
  const after = t1[41]!._id;
  t.same(await page({ targetId: 't1', _id: { $gt: after } }, 1, 0, 10), t1.slice(42, 52).map((d) => d._id), 'a page after an id');
  t.same(await page({ targetId: 't1', _id: { $lt: after } }, -1, 0, 5), t1.slice(36, 41).reverse().map((d) => d._id), 'a page before an id, descending');
  t.same(await page({ targetId: 't1', status: 'ok' }, 1, 0, 7), t1.filter((d) => d.status === 'ok').slice(0, 7).map((d) => d._id), 'with a status');
  t.same(await page({ targetId: 't1', frames: { $gte: 150 } }, 1, 0, 5), t1.filter((d) => d.frames >= 150).slice(0, 5).map((d) => d._id), 'a condition SQL is not given (frames): still right');
  t.same(await page({ targetId: 't1', _id: { $gt: 'a"b' } }, 1, 0, 5), t1.filter((d) => d._id > 'a"b').slice(0, 5).map((d) => d._id), 'a bound with a quote: left to FerretDB, still right');

  const count = async (query: Record<string, unknown>, limit?: number): Promise<number> => (await store.db.command({ count: 'pages', query, ...(limit ? { limit } : {}) })).n as number;
  t.equal(await count({ targetId: 't2' }), of('t2').length, 'count of a target');
  t.equal(await count({ targetId: 't2', status: 'failed' }), of('t2').filter((d) => d.status === 'failed').length, 'count by status');
  t.equal(await count({ targetId: 't2' }, 3), 3, 'count with a limit');
  t.equal(await count({ targetId: 't2', frames: { $lt: 30 } }), of('t2').filter((d) => d.frames < 30).length, 'count with a condition SQL is not given');
  t.equal(await count({ targetId: 'none' }), 0, 'count of nothing');

  if (ferret()) {
    const explained = (await streams.find({ targetId: 't1' }, { sort: { _id: 1 }, limit: 10 }).explain()) as { queryPlanner?: { Plan?: string[] }; sortPushdown?: boolean; limitPushdown?: boolean };
    t.match(explained, { sortPushdown: true, limitPushdown: true }, 'FerretDB leaves the sort and the limit to SQLite');
    const steps = (explained.queryPlanner?.Plan ?? []).join(' | ');
    t.match(steps, /USING INDEX \S+_target_id/, 'which walks the target_id index');
    t.notMatch(steps, /TEMP B-TREE/, 'without sorting');
  }
});

t.test("a target's committed frames: one $sum, exact (FerretDB: one SQL sum over the target_frames_id index, patch 6)", async (t) => {
  // The collection's real name (shared with the first test: other ids) and indexes: patch 6
  // sums only fields listed for their collection.
  const streams = store.db.collection<{ _id: string; targetId: string; status: string; frames?: number }>('streams');
  await streams.createIndexes(INDEXES.streams!);
  const docs = Array.from({ length: 300 }, (_, i) => ({ _id: `fs${i}`, targetId: `ft${i % 3}`, status: ['ok', 'ok', 'stopped', 'failed'][i % 4]!, frames: i * 1024 }));
  await streams.insertMany(docs);
  const sum = async (match: Record<string, unknown>, field = '$frames'): Promise<unknown[]> =>
    (await streams.aggregate([{ $match: match }, { $group: { _id: null, frames: { $sum: field } } }]).toArray()) as unknown[];
  const total = (pick: (d: (typeof docs)[number]) => boolean): number => docs.filter(pick).reduce((n, d) => n + d.frames, 0);
  t.same(await sum({ targetId: 'ft0' }), [{ _id: null, frames: total((d) => d.targetId === 'ft0') }], 'frames summed over a target');
  t.same(await sum({ targetId: 'ft0', status: 'ok' }), [{ _id: null, frames: total((d) => d.targetId === 'ft0' && d.status === 'ok') }], 'and over its ok streams');
  t.same(await sum({ targetId: 'none' }), [], 'nothing matches: no group, as MongoDB answers');
  t.same(await sum({ targetId: 'ft0', frames: { $gt: 100_000 } }), [{ _id: null, frames: total((d) => d.targetId === 'ft0' && d.frames > 100_000) }], 'a condition SQL is not given: still right');
  await streams.updateOne({ _id: 'fs3' }, { $inc: { frames: 1024 } });
  t.same(await sum({ targetId: 'ft0' }), [{ _id: null, frames: total((d) => d.targetId === 'ft0') + 1024 }], 'a commit point moves the sum (the index follows the update)');
  await streams.insertOne({ _id: 'no-frames', targetId: 'ft9', status: 'ok' });
  await streams.insertOne({ _id: 'big', targetId: 'ft9', status: 'ok', frames: 3_000_000_000 });
  await streams.insertOne({ _id: 'big2', targetId: 'ft9', status: 'ok', frames: 2 ** 40 + 1 });
  t.same(await sum({ targetId: 'ft9' }), [{ _id: null, frames: 3_000_000_000 + 2 ** 40 + 1 }], 'a stream without frames adds nothing; sums past 2^31 and 2^32 stay exact');
});

t.test("a target's streams by frames or errors, then id: exact, ties and pages included (FerretDB: sorted by SQLite, patch 11)", async (t) => {
  // The collection's real name: patch 11 sorts only by the integer fields listed for it. Its
  // indexes as init makes them, only the missing ones: a createIndexes naming only existing
  // indexes drops the connection on FerretDB v1.24.2.
  const streams = store.db.collection<{ _id: string; targetId: string; status: string; frames?: number; errorCount?: number }>('streams');
  await ensureIndexes(store.db);
  const docs = Array.from({ length: 240 }, (_, i) => ({
    _id: Buffer.from(`sorted-${(i * 7919) % 240}`).toString('base64url'),
    targetId: `st${i % 2}`,
    status: i % 5 ? 'ok' : 'stopped',
    // Many ties, and counts past 2^31 that must sort as numbers, not as text.
    frames: [0, 1024, 2048, 9 * 1024, 3_000_000_000][i % 5]! + (i % 7 === 0 ? 1 : 0),
    ...(i % 11 === 0 ? {} : { errorCount: i % 4 }),
  }));
  await streams.insertMany(docs);
  const cmp = (a: number | undefined, b: number | undefined): number => (a ?? -Infinity) - (b ?? -Infinity);
  const byId = (a: { _id: string }, b: { _id: string }): number => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0);
  const expected = (field: 'frames' | 'errorCount', order: 1 | -1, filter: (d: (typeof docs)[number]) => boolean): string[] =>
    docs.filter(filter).sort((a, b) => order * (cmp(a[field], b[field]) || byId(a, b))).map((d) => d._id);
  const page = async (filter: Record<string, unknown>, field: 'frames' | 'errorCount', order: 1 | -1, skip: number, limit: number): Promise<string[]> =>
    (await streams.find(filter, { sort: { [field]: order, _id: order }, skip, limit, projection: { _id: 1 } }).toArray()).map((d) => d._id);

  const st0 = (d: (typeof docs)[number]): boolean => d.targetId === 'st0';
  t.same(await page({ targetId: 'st0' }, 'frames', -1, 0, 25), expected('frames', -1, st0).slice(0, 25), 'first page by frames, descending');
  t.same(await page({ targetId: 'st0' }, 'frames', -1, 40, 25), expected('frames', -1, st0).slice(40, 65), 'a page by offset');
  t.same(await page({ targetId: 'st0' }, 'frames', 1, 0, 200), expected('frames', 1, st0), 'the whole target ascending');
  t.same(await page({ targetId: 'st1' }, 'errorCount', -1, 0, 30), expected('errorCount', -1, (d) => d.targetId === 'st1').slice(0, 30), 'by errors, descending');
  t.same(await page({ targetId: 'st1' }, 'errorCount', 1, 0, 30), expected('errorCount', 1, (d) => d.targetId === 'st1').slice(0, 30), 'by errors, ascending: streams without a count first');
  t.same(await page({ targetId: 'st0', status: 'ok' }, 'frames', -1, 5, 10), expected('frames', -1, (d) => st0(d) && d.status === 'ok').slice(5, 15), 'with a status');
  t.same(await page({ targetId: 'st0', frames: { $gt: 2048 } }, 'frames', -1, 0, 10), expected('frames', -1, (d) => st0(d) && d.frames! > 2048).slice(0, 10), 'a condition SQL is not given: sorted by FerretDB, still right');

  if (ferret()) {
    const explained = (await streams.find({ targetId: 'st0' }, { sort: { frames: -1, _id: -1 }, limit: 10 }).explain()) as { queryPlanner?: { Plan?: string[] }; sortPushdown?: boolean; limitPushdown?: boolean };
    t.match(explained, { sortPushdown: true, limitPushdown: true }, 'FerretDB leaves the sort by frames and the limit to SQLite');
    t.match((explained.queryPlanner?.Plan ?? []).join(' | '), /USING INDEX \S+_target_frames_id/, 'which walks the target_frames_id index');
    const byErrors = (await streams.find({ targetId: 'st0' }, { sort: { errorCount: -1, _id: -1 }, limit: 10 }).explain()) as { queryPlanner?: { Plan?: string[] }; sortPushdown?: boolean };
    t.match(byErrors, { sortPushdown: true }, 'and the sort by errors');
    t.match((byErrors.queryPlanner?.Plan ?? []).join(' | '), /USING INDEX \S+_target_errors_id/, 'along the target_errors_id index');
  }
});

t.test("a target's streams by status or creation time, then id: exact, ties and pages included (FerretDB: sorted by SQLite, patch 12)", async (t) => {
  // The collection's real name: patch 12 sorts only by the date and word fields listed for it.
  const streams = store.db.collection<{ _id: string; targetId: string; status?: string; createdAt?: Date }>('streams');
  await ensureIndexes(store.db);
  // Dates of 13 digits of milliseconds and others (1970, before 1970, past 2286), which
  // must sort as times, not as text; many ties; a few streams without the field.
  const at = [Date.UTC(2026, 11, 4), Date.UTC(2026, 11, 4), Date.UTC(2025, 0, 1, 12), 5, -86_400_000, Date.UTC(2300, 0, 1), Date.UTC(2026, 11, 5)];
  const docs = Array.from({ length: 210 }, (_, i) => ({
    _id: Buffer.from(`by-${(i * 7919) % 210}`).toString('base64url'),
    targetId: `ct${i % 2}`,
    ...(i % 13 === 0 ? {} : { status: ['ok', 'ok', 'stopped', 'failed'][i % 4]! }),
    ...(i % 17 === 0 ? {} : { createdAt: new Date(at[i % at.length]!) }),
  }));
  await streams.insertMany(docs);
  type Doc = (typeof docs)[number];
  // MongoDB's order: a missing field first, then the values (one type each here).
  const rank = (d: Doc, field: 'status' | 'createdAt'): [number, number | string] => {
    const v = d[field];
    return v === undefined ? [0, 0] : [1, v instanceof Date ? v.getTime() : v];
  };
  const cmp = (a: Doc, b: Doc, field: 'status' | 'createdAt'): number => {
    const [ra, va] = rank(a, field);
    const [rb, vb] = rank(b, field);
    return ra - rb || (va < vb ? -1 : va > vb ? 1 : 0) || (a._id < b._id ? -1 : a._id > b._id ? 1 : 0);
  };
  const expected = (field: 'status' | 'createdAt', order: 1 | -1, filter: (d: Doc) => boolean): string[] =>
    docs.filter(filter).sort((a, b) => order * cmp(a, b, field)).map((d) => d._id);
  const page = async (filter: Record<string, unknown>, field: 'status' | 'createdAt', order: 1 | -1, skip: number, limit: number): Promise<string[]> =>
    (await streams.find(filter, { sort: { [field]: order, _id: order }, skip, limit, projection: { _id: 1 } }).toArray()).map((d) => d._id);
  const ct0 = (d: Doc): boolean => d.targetId === 'ct0';

  for (const field of ['status', 'createdAt'] as const) {
    t.same(await page({ targetId: 'ct0' }, field, 1, 0, 25), expected(field, 1, ct0).slice(0, 25), `by ${field}: first page, ascending (streams without it first)`);
    t.same(await page({ targetId: 'ct0' }, field, -1, 0, 25), expected(field, -1, ct0).slice(0, 25), `by ${field}: first page, descending`);
    t.same(await page({ targetId: 'ct0' }, field, -1, 40, 25), expected(field, -1, ct0).slice(40, 65), `by ${field}: a page by offset`);
    t.same(await page({ targetId: 'ct1' }, field, 1, 0, 200), expected(field, 1, (d) => d.targetId === 'ct1'), `by ${field}: the whole target`);
    t.same(await page({ targetId: 'ct1', status: 'ok' }, field, -1, 3, 10), expected(field, -1, (d) => d.targetId === 'ct1' && d.status === 'ok').slice(3, 13), `by ${field}: with a status`);
  }

  if (ferret()) {
    for (const [field, index] of [['status', 'target_status_id'], ['createdAt', 'target_created_id']] as const) {
      const explained = (await streams.find({ targetId: 'ct0' }, { sort: { [field]: -1, _id: -1 }, limit: 10 }).explain()) as { queryPlanner?: { Plan?: string[] }; sortPushdown?: boolean; limitPushdown?: boolean };
      t.match(explained, { sortPushdown: true, limitPushdown: true }, `FerretDB leaves the sort by ${field} and the limit to SQLite`);
      const steps = (explained.queryPlanner?.Plan ?? []).join(' | ');
      t.match(steps, new RegExp(`USING INDEX \\S+_${index}`), `which walks the ${index} index`);
      t.notMatch(steps, /TEMP B-TREE/, 'without sorting');
    }
  }
});

t.test('the leaderboard, every donor by frames then name: exact, with the page left to the index (FerretDB: patch 13)', async (t) => {
  // The collection's real name: patch 13 sorts only by the fields listed for it.
  const donors = store.db.collection<{ _id: string; name: string; frames?: number }>('donors');
  await ensureIndexes(store.db);
  const docs = Array.from({ length: 150 }, (_, i) => ({
    _id: `d${i}`,
    name: `donor-${(i * 7919) % 150}`,
    // Ties, counts past 2^31 that must sort as numbers, and donors never credited.
    ...(i % 9 === 0 ? {} : { frames: [0, 1024, 5, 3_000_000_000, 70][i % 5]! + (i % 4 === 0 ? 1 : 0) }),
  }));
  await donors.insertMany(docs);
  const expected = docs
    .slice()
    .sort((a, b) => (b.frames ?? -Infinity) - (a.frames ?? -Infinity) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((d) => d.name);
  const page = async (skip: number, limit: number): Promise<string[]> =>
    (await donors.find({}, { sort: { frames: -1, name: 1 }, skip, limit, projection: { tokenHash: 0 } }).toArray()).map((d) => d.name);
  t.same(await page(0, 20), expected.slice(0, 20), 'the top 20');
  t.same(await page(30, 20), expected.slice(30, 50), 'a page by offset');
  t.same(await page(0, 1000), expected, 'every donor, the never credited last');
  t.equal(await donors.countDocuments({}), docs.length, 'a count of the whole collection');
  t.equal((await store.db.command({ count: 'donors', query: {} })).n, docs.length, 'the count command of the whole collection');
  if (ferret()) {
    const explained = (await donors.find({}, { sort: { frames: -1, name: 1 }, limit: 100 }).explain()) as { queryPlanner?: { Plan?: string[] }; sortPushdown?: boolean; limitPushdown?: boolean };
    t.match(explained, { sortPushdown: true, limitPushdown: true }, 'FerretDB leaves the sort and the limit to SQLite');
    const steps = (explained.queryPlanner?.Plan ?? []).join(' | ');
    t.match(steps, /USING INDEX \S+_frames_name/, 'which walks the frames_name index');
    t.notMatch(steps, /TEMP B-TREE/, 'without sorting');
  }
});

t.test('an _id $in list (the pool, the janitor, revocations): the right documents, through the _id index', async (t) => {
  const streams = store.db.collection<{ _id: string; targetId: string; status: string; frames: number }>('instreams');
  const docs = Array.from({ length: 50 }, (_, i) => ({ _id: `s${String(i).padStart(2, '0')}`, targetId: `t${i % 2}`, status: i % 5 === 0 ? 'stopped' : 'ok', frames: i }));
  await streams.insertMany(docs);
  const ids = async (filter: Record<string, unknown>, limit = 0): Promise<string[]> => (await streams.find(filter, { sort: { _id: 1 }, limit }).toArray()).map((d) => d._id);
  const wanted = ['s03', 's05', 's10', 's44', 'missing', "it's"];
  const expect = (pick: (d: (typeof docs)[number]) => boolean): string[] => docs.filter(pick).map((d) => d._id);

  t.same(await ids({ _id: { $in: wanted } }), expect((d) => wanted.includes(d._id)), 'ids that exist, none that do not');
  t.same(await ids({ _id: { $in: wanted }, status: 'ok' }), expect((d) => wanted.includes(d._id) && d.status === 'ok'), 'with an equality (the pool re-reading ok streams)');
  t.same(await ids({ _id: { $in: wanted } }, 2), ['s03', 's05'], 'sorted and limited');
  t.same(await ids({ targetId: { $in: ['t1', 'tx'] }, _id: { $lt: 's10' } }), expect((d) => d.targetId === 't1' && d._id < 's10'), '$in on a string field, with an _id bound');
  t.same(await ids({ _id: { $in: [] } }), [], 'an empty list matches nothing');
  t.same(await ids({ _id: { $in: [] }, status: 'ok' }), [], '… beside an equality');
  t.same(await ids({ targetId: { $in: [] } }), [], '… on a string field');
  t.equal(await streams.countDocuments({ _id: { $in: [] } }), 0, '… and counts none');
  t.same(await ids({ _id: { $in: [/^s4/] } }), expect((d) => d._id.startsWith('s4')), 'a regular expression in the list still matches as one (left to FerretDB)');
  t.same(await ids({ frames: { $in: [3, 4] } }), ['s03', 's04'], '$in on a number field (left to FerretDB)');
  t.equal(await streams.countDocuments({ _id: { $in: wanted }, status: 'ok' }), expect((d) => wanted.includes(d._id) && d.status === 'ok').length, 'count');
  const many = Array.from({ length: 2000 }, (_, i) => `s${i}`);
  t.same(await ids({ _id: { $in: many } }), expect((d) => many.includes(d._id)), 'a list of 2,000');
  if (ferret()) {
    t.match(await plan('instreams', { _id: { $in: wanted }, status: 'ok' }), /USING INDEX \S+_id_/, 'FerretDB looks the list up in the _id index');
    t.match(await plan('instreams', { _id: { $in: many } }), /USING INDEX \S+_id_/, 'a long list too');
    // Only a filter written exactly in SQL gets its sort and limit pushed down: before patch 8
    // took the empty list, it was left to FerretDB, which read and decoded every document.
    for (const filter of [{ _id: { $in: [] } }, { _id: { $in: [] }, status: 'ok' }, { targetId: { $in: [] } }]) {
      const explained = (await streams.find(filter, { sort: { _id: 1 }, limit: 5 }).explain()) as { sortPushdown?: boolean; limitPushdown?: boolean };
      t.match(explained, { sortPushdown: true, limitPushdown: true }, `an empty list is SQL's constant false: ${JSON.stringify(filter)}`);
    }
  }
});

t.test('an empty id list is answered without a query (a round trip saved; FerretDB v1.24.2 without patch 8 reads every document for `_id: {$in: []}`)', async (t) => {
  const sent: Document[] = [];
  const listen = (e: { command: Document }): void => void sent.push(e.command);
  store.client.on('commandStarted', listen);
  t.teardown(() => void store.client.off('commandStarted', listen));
  // The janitor checks each page's streams, the pool re-queues expired leases, revocations re-check keys:
  // each can come with nothing to look up (an empty page, no expired lease, no key in use).
  t.same([...(await commitPoints(store.db, [])).keys()], [], 'commitPoints');
  t.same(await queuedStreams(store.db, []), [], 'queuedStreams');
  t.same(await revokedEngineKeys(store.db, [], 5000), [], 'revokedEngineKeys');
  t.same(sent, [], 'no command sent');
  await commitPoints(store.db, ['s1']);
  t.equal(sent.length, 1, 'a list with an id is one query (the listener works)');
});

t.test('an update command of 250 statements (a bulkWrite) answers, and the collection serves the next one (FerretDB: patch 16)', async (t) => {
  const donors = store.db.collection<{ _id: string; frames: number }>('bulk_donors');
  await donors.insertMany(Array.from({ length: 200 }, (_, i) => ({ _id: `d${i}`, frames: i })));
  const updates = Array.from({ length: 250 }, (_, i) => ({ updateOne: { filter: { _id: `d${i}` }, update: { $inc: { frames: 1000 } }, upsert: true } }));
  // Without the patch the command never answers: fail in seconds instead of at the file's timeout.
  const first = await withTimeout(donors.bulkWrite(updates, { ordered: false }), 20_000, 'mongodb', 'the first bulkWrite');
  t.match(first, { matchedCount: 200, modifiedCount: 200, upsertedCount: 50 }, '200 updated, 50 inserted');
  const second = await withTimeout(donors.bulkWrite(updates, { ordered: false }), 20_000, 'mongodb', 'the second bulkWrite');
  t.match(second, { matchedCount: 250, modifiedCount: 250, upsertedCount: 0 }, 'the next one too');
  const all = await donors.find({}, { sort: { _id: 1 } }).toArray();
  t.equal(all.length, 250);
  t.same(
    all.filter((d) => d.frames !== (Number(d._id.slice(1)) < 200 ? Number(d._id.slice(1)) + 2000 : 2000)),
    [],
    'every document has both increments',
  );
});

t.test("the statements of one update command see each other's writes, as on MongoDB (FerretDB: patch 17)", async (t) => {
  type Doc = { _id: string; n: number; tag?: string; kind?: string; s?: string };
  const docs = store.db.collection<Doc>('bulk_seen');
  await docs.insertMany([
    { _id: 'a', n: 0, kind: 'k' },
    { _id: 'b', n: 0 },
    { _id: 'd', n: 0, kind: 'k' },
  ]);
  const res = await docs.bulkWrite([
    { updateOne: { filter: { _id: 'a' }, update: { $inc: { n: 1 } } } },
    { updateOne: { filter: { _id: 'a' }, update: { $inc: { n: 1 } } } }, // the same document again: 2
    { updateOne: { filter: { _id: 'b' }, update: { $set: { tag: 'x' } } } },
    { updateOne: { filter: { tag: 'x' }, update: { $inc: { n: 10 } } } }, // found by what the last one wrote
    { updateOne: { filter: { _id: 'c' }, update: { $inc: { n: 5 } }, upsert: true } },
    { updateOne: { filter: { _id: 'c' }, update: { $inc: { n: 1 } } } }, // the upserted document
    { updateMany: { filter: { kind: 'k' }, update: { $inc: { n: 100 } } } },
    { updateOne: { filter: { _id: 'a' }, update: { $inc: { n: 1 } } } },
  ]);
  t.match(res, { matchedCount: 8, modifiedCount: 8, upsertedCount: 1 });
  t.same(
    (await docs.find({}, { sort: { _id: 1 } }).toArray()).map((d) => [d._id, d.n]),
    [
      ['a', 103],
      ['b', 10],
      ['c', 6],
      ['d', 100],
    ],
    'each statement read what the ones before it wrote',
  );

  // Ordered: a failing statement stops the rest, and those before it stay written.
  await docs.insertMany([
    { _id: 'e', n: 0 },
    { _id: 'f', n: 0, s: 'text' },
    { _id: 'g', n: 0 },
  ]);
  await t.rejects(
    // Untyped: the collection's type would not let `s`, a string, be incremented.
    store.db.collection('bulk_seen').bulkWrite([
      { updateOne: { filter: { _id: 'e' as never }, update: { $inc: { n: 1 } } } },
      { updateOne: { filter: { _id: 'f' as never }, update: { $inc: { s: 1 } } } },
      { updateOne: { filter: { _id: 'g' as never }, update: { $inc: { n: 1 } } } },
    ]),
    'incrementing a string fails',
  );
  t.same(
    (await docs.find({ _id: { $in: ['e', 'f', 'g'] } }, { sort: { _id: 1 } }).toArray()).map((d) => [d._id, d.n]),
    [
      ['e', 1],
      ['f', 0],
      ['g', 0],
    ],
    'the statement before the failure is written, the one after it not run',
  );
});
