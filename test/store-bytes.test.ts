/**
 * The store copies and compares bytes exactly: values of every length around the steps of a
 * word-at-a-time copy come back as written, and string keys that differ only after a long
 * common prefix (or only in a byte above 0x7f) are told apart, found and ordered as MongoDB
 * orders them, by UTF-8 bytes. On the provisioned FerretDB build SQLite's memcpy, memmove,
 * memset, memcmp and strlen are the Go runtime's (src/provision/ferretdb-patches.ts,
 * patch 14), used for every value SQLite stores and every key it compares. The same test
 * holds on `mongod`.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { Binary, MongoServerError } from 'mongodb';
import { useStoreDb } from './helpers/store';

const store = useStoreDb('bytes');

t.test('binary values of every length around the copy steps come back exact', async (t) => {
  const col = store.db.collection<{ _id: string; pad: string; data: Binary }>('values');
  const lengths = [...Array.from({ length: 41 }, (_, i) => i), 255, 4095, 4096, 4097, 65_535, 1024 * 1024 + 3];
  // The pad moves each value to a different offset inside its document.
  const docs = lengths.map((n, i) => ({ _id: `v${n}`, pad: 'x'.repeat(i % 7), data: new Binary(crypto.randomBytes(n)) }));
  await col.insertMany(docs);
  for (const doc of docs) {
    const got = await col.findOne({ _id: doc._id });
    t.ok(got && Buffer.from(got.data.buffer).equals(Buffer.from(doc.data.buffer)), `${doc.data.length()} bytes`);
  }
  // An update rewrites the document in place: the copy must still be exact.
  const big = docs[docs.length - 1];
  const replacement = new Binary(crypto.randomBytes(big.data.length() - 1));
  await col.updateOne({ _id: big._id }, { $set: { data: replacement } });
  const got = await col.findOne({ _id: big._id });
  t.ok(got && Buffer.from(got.data.buffer).equals(Buffer.from(replacement.buffer)), 'after an update, one byte shorter');
});

t.test('keys that differ only after a long prefix are found, unique and in byte order', async (t) => {
  const col = store.db.collection<{ _id: string; streamId: string; n: number }>('keys');
  await col.createIndex({ streamId: 1 }, { name: 'stream' });
  const prefix = 'p'.repeat(3000);
  // Last characters chosen across the byte range: a UTF-8 'é' (0xc3 0xa9) sorts after 'z'.
  const tails = ['a', 'b', 'z', 'é', 'A', '0', '~', 'ab', ''];
  const ids = tails.map((tail) => prefix + tail);
  const shuffled = [...ids].sort(() => Math.random() - 0.5);
  await col.insertMany(shuffled.map((id, n) => ({ _id: id, streamId: id, n })));

  for (const id of ids) {
    t.equal((await col.findOne({ _id: id }))?._id, id, `by _id, tail ${JSON.stringify(id.slice(prefix.length))}`);
    t.equal(await col.countDocuments({ streamId: id }), 1, `by an indexed field, tail ${JSON.stringify(id.slice(prefix.length))}`);
  }
  // Pages, so the order is the store's own: FerretDB sorts what SQLite returns again, but a
  // limit and skip given to SQLite pick the page by SQLite's comparison of the keys.
  const tail = (id: string): string => id.slice(prefix.length);
  const byteOrder = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map(tail);
  for (const [dir, expected] of [[1, byteOrder], [-1, [...byteOrder].reverse()]] as const) {
    const pages: string[] = [];
    for (let skip = 0; skip < ids.length; skip += 2) {
      pages.push(...(await col.find({}, { sort: { _id: dir }, skip, limit: 2 }).toArray()).map((d) => tail(d._id)));
    }
    t.same(pages, expected, `pages of two sorted by _id ${dir === 1 ? 'ascending' : 'descending'}, in UTF-8 byte order`);
  }

  const err = await col.insertOne({ _id: prefix + 'z', streamId: 'again', n: 99 }).catch((e: unknown) => e);
  t.ok(err instanceof MongoServerError && err.code === 11000, 'the same long key again is a duplicate');
});
