/**
 * Documents come back from the store exactly as they were written, whatever their shape:
 * the provisioned FerretDB build reads stored documents with its own splitter and base64
 * decoder (src/provision/ferretdb-patches.ts, patch 9), and falls back to encoding/json for
 * what it cannot split (keys with escapes, repeated keys). Both ways are exercised here, and
 * compared in canonical Extended JSON, so types (int, long, double, binary subtype) count
 * too. Finds with a projection get what MongoDB's projection gives, though the build decodes
 * only the fields the projection, filter and sort name (patch 10). The same test holds on
 * `mongod`.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { Binary, BSON, Double, Int32, Long, ObjectId, type Document } from 'mongodb';
import { useStoreDb } from './helpers/store';

const store = useStoreDb('documents');

/** A document with a string `_id`, as the coordinator writes them. */
type Stored = Document & { _id: string };

const canonical = (d: Document | null): string => BSON.EJSON.stringify(d, { relaxed: false });
/** Reads keep BSON's types (a double 3.0 stays a double rather than the number 3). */
const typed = { promoteValues: false } as const;

/** A partition as the commit path writes it: files inline, three levels down. */
function partition(id: string, frameBytes: number): Stored {
  return {
    _id: id,
    streamId: 's1',
    n: new Int32(7),
    createdAt: new Date(Date.UTC(2026, 11, 4, 12, 0, 0, 123)),
    frames: [{ name: 'frames.xtc', data: new Binary(crypto.randomBytes(frameBytes)) }],
    checkpoint: [
      { name: 'state.xml', data: new Binary(crypto.randomBytes(200 * 1024)) },
      { name: 'empty', data: new Binary(Buffer.alloc(0)) },
    ],
    index: [{ kind: 'frame', name: 'frames.xtc', size: new Int32(frameBytes) }],
  };
}

t.test('partitions with inline files of every size around base64 padding', async (t) => {
  const parts = store.db.collection<Stored>('partitions');
  const docs = [0, 1, 2, 3, 4, 5, 64 * 1024 + 1, 1024 * 1024].map((bytes, i) => partition(`p${i}`, bytes));
  await parts.insertMany(docs);
  for (const doc of docs) t.equal(canonical(await parts.findOne({ _id: doc._id }, typed)), canonical(doc), `${doc._id} by _id`);
  const byField = await parts.find({ streamId: 's1' }, { sort: { _id: 1 }, ...typed }).toArray();
  t.equal(canonical(byField), canonical(docs), 'all by streamId');
});

t.test('every value type, nesting, and keys the splitter must leave to encoding/json', async (t) => {
  const c = store.db.collection<Stored>('shapes');
  const doc: Stored = {
    _id: 'shapes',
    int: new Int32(-7),
    long: Long.fromString('9007199254740993'),
    doubles: [new Double(0.1), new Double(-2.5e-300), new Double(1e300), new Double(3)],
    strings: ['', 'plain', 'quote " and backslash \\', 'line\nbreak\ttab', '\u0001 control', '\u2028 separator', 'é 漢字 🚀', '</script> & <b>'],
    binaries: [new Binary(Buffer.from('abc')), new Binary(crypto.randomBytes(33), 4), new Binary(Buffer.alloc(0), 5)],
    flags: [true, false, null],
    when: new Date(0),
    oid: new ObjectId(),
    empty: {},
    emptyArray: [],
    // FerretDB v1 refuses an array directly inside an array; MongoDB takes either.
    deep: { a: { b: { c: [{ list: [new Int32(1), { d: 'x', e: [] }] }, {}] } } },
    // FerretDB v1 (with or without the patches) refuses a top-level key holding a quote on
    // insert ("malformed JSON") and cannot read back one holding a tab: such keys go nested.
    'é-key': 'non-ASCII key',
    '<html-key>': 'a key json.Marshal escapes',
    nested: { 'key "quoted"': { '<k>': [new Binary(crypto.randomBytes(100))] }, 'tab\tkey': 'control character in a key' },
  };
  await c.insertOne(doc);
  t.equal(canonical(await c.findOne({ _id: 'shapes' }, typed)), canonical(doc), 'read back unchanged');
  await c.updateOne({ _id: 'shapes' }, { $set: { 'deep.a.b.added': new Binary(crypto.randomBytes(5)) } });
  const after = await c.findOne({ _id: 'shapes' }, typed);
  t.equal(canonical(after?.deep), canonical({ a: { b: { c: doc.deep.a.b.c, added: after?.deep.a.b.added } } }), 'an update rewrites and reads it back');
  t.equal((after?.deep.a.b.added as Binary).length(), 5, 'the added binary');
});

/** `doc` with only the top-level fields in `fields` (and `_id` unless `noId`), as an inclusion projection gives it. */
function included(doc: Document, fields: string[], noId = false): Document {
  return Object.fromEntries(Object.entries(doc).filter(([k]) => (k === '_id' ? !noId : fields.includes(k))));
}

t.test('finds with a projection: what MongoDB gives, when the filter and sort read fields the projection leaves out', async (t) => {
  const c = store.db.collection<Stored>('projected');
  const streams: Stored[] = Array.from({ length: 12 }, (_, i) => ({
    _id: `s${String(i).padStart(2, '0')}`,
    targetId: i % 2 ? 'odd' : 'even',
    status: i % 3 ? 'ok' : 'stopped',
    frames: new Int32((i * 7) % 5),
    errorCount: new Int32(i % 4),
    createdAt: new Date(Date.UTC(2026, 11, 4, 12, 0, 12 - i)),
    partitions: Array.from({ length: i * 20 }, (_, n) => new Int32(n)),
    frameIndex: Array.from({ length: i * 20 }, () => ({ files: [{ name: 'frames.xtc', size: new Int32(65536) }] })),
    deep: { a: { b: new Int32(i), c: 'x' }, d: [new Int32(i)] },
    'é-key': `é${i}`,
  }));
  await c.insertMany(streams);
  const fields = ['targetId', 'status', 'frames', 'errorCount', 'createdAt'];
  const projection = Object.fromEntries(fields.map((f) => [f, 1]));
  const find = (filter: Document, options: Document) => c.find(filter, { ...options, ...typed }).toArray();
  const expect = (docs: Stored[], keep: string[], noId = false) => canonical(docs.map((d) => included(d, keep, noId)));

  const page = streams.filter((d) => d.targetId === 'even');
  t.equal(canonical(await find({ targetId: 'even' }, { projection, sort: { _id: 1 }, limit: 4 })), expect(page.slice(0, 4), fields), 'a page of a target in id order (the stream list)');
  t.equal(canonical(await find({ targetId: 'odd' }, { projection, sort: { frames: -1, _id: -1 }, skip: 1, limit: 3 })), expect([...streams.filter((d) => d.targetId === 'odd')].sort((a, b) => b.frames - a.frames || (a._id < b._id ? 1 : -1)).slice(1, 4), fields), 'sorted by a projected field, descending, from an offset');

  const byError = streams.filter((d) => d.errorCount.valueOf() >= 2).sort((a, b) => a.createdAt - b.createdAt);
  t.equal(canonical(await find({ errorCount: { $gte: 2 } }, { projection: { status: 1 }, sort: { createdAt: 1 } })), expect(byError, ['status']), 'filtered and sorted by fields left out of the projection');
  const withIds = streams.filter((d) => d.partitions.length > 100 && d.status === 'ok');
  t.equal(canonical(await find({ 'partitions.100': { $exists: true }, status: 'ok' }, { projection: { frames: 1, _id: 0 }, sort: { _id: 1 } })), expect(withIds, ['frames'], true), 'a dotted filter on a long list, without _id');
  t.equal(canonical(await find({ _id: 's05' }, { projection: { 'deep.a.b': 1, 'é-key': 1 } })), canonical([{ _id: 's05', deep: { a: { b: new Int32(5) } }, 'é-key': 'é5' }]), 'a dotted projection and a non-ASCII key');
  t.equal(canonical(await find({ _id: 's07' }, { projection: { partitions: 0, frameIndex: 0 } })), canonical([Object.fromEntries(Object.entries(streams[7]!).filter(([k]) => k !== 'partitions' && k !== 'frameIndex'))]), 'an exclusion projection keeps every other field');
  t.equal(canonical(await find({ $or: [{ errorCount: 3 }, { _id: 's00' }] }, { projection: { frames: 1 }, sort: { _id: 1 } })), expect(streams.filter((d) => d.errorCount.valueOf() === 3 || d._id === 's00'), ['frames']), 'a top-level operator in the filter');
  t.equal(canonical(await find({ _id: 's04' }, { projection: { deep: true, status: 1.0 } })), canonical([included(streams[4]!, ['deep', 'status'])]), 'true and 1.0 include too');
  t.equal(canonical(await find({ targetId: 'even' }, { projection: { nothere: 1 }, sort: { _id: 1 }, limit: 2 })), canonical([{ _id: 's00' }, { _id: 's02' }]), 'a projected field no document has');
  t.equal(canonical(await find({ _id: 's06' }, { projection: { _id: 0 } })), canonical([Object.fromEntries(Object.entries(streams[6]!).filter(([k]) => k !== '_id'))]), 'leaving out only _id keeps every other field');
});
