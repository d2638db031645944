/**
 * Documents come back from the store exactly as they were written, whatever their shape:
 * the provisioned FerretDB build reads stored documents with its own splitter and base64
 * decoder (src/provision/ferretdb-patches.ts, patch 9), and falls back to encoding/json for
 * what it cannot split (keys with escapes, repeated keys). Both ways are exercised here, and
 * compared in canonical Extended JSON, so types (int, long, double, binary subtype) count
 * too. The same test holds on `mongod`.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { Binary, BSON, Double, Int32, Long, MongoClient, ObjectId, type Db, type Document } from 'mongodb';
import { getStack, stopStack } from '../test-support/stack';

let client: MongoClient;
let db: Db;

t.before(async () => {
  const stack = await getStack();
  client = new MongoClient(stack.mongo.uri, { tlsCAFile: stack.mongoCAFile });
  await client.connect();
  db = client.db(`documents${Date.now()}`);
});
t.teardown(async () => {
  await client?.close();
  await stopStack();
});

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
  const parts = db.collection<Stored>('partitions');
  const docs = [0, 1, 2, 3, 4, 5, 64 * 1024 + 1, 1024 * 1024].map((bytes, i) => partition(`p${i}`, bytes));
  await parts.insertMany(docs);
  for (const doc of docs) t.equal(canonical(await parts.findOne({ _id: doc._id }, typed)), canonical(doc), `${doc._id} by _id`);
  const byField = await parts.find({ streamId: 's1' }, { sort: { _id: 1 }, ...typed }).toArray();
  t.equal(canonical(byField), canonical(docs), 'all by streamId');
});

t.test('every value type, nesting, and keys the splitter must leave to encoding/json', async (t) => {
  const c = db.collection<Stored>('shapes');
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
