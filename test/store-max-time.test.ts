/**
 * An update's `maxTimeMS` holds on the store (FerretDB patch 18): a commit point held up in
 * the store past its time limit fails, and never lands afterwards, which the janitor's
 * judgement of a leftover by its age rests on (src/store/abandoned.ts). The update here waits
 * behind a long one on the same collection, as a commit point waits behind another write.
 */
import t from 'tap';
import { MongoServerError } from 'mongodb';
import { isStorageOutage } from '../src/store/outage';
import { useStoreDb } from './helpers/store';

const store = useStoreDb('maxtime');

t.test('an update that runs out of its maxTimeMS fails with MaxTimeMSExpired, an outage, and does not land later', async (t) => {
  // On mongod an update does not wait for another one on other documents: nothing to hold it up.
  if (store.stack.mongoKind !== 'ferretdb') {
    t.comment('not on mongod: an update does not wait behind another on other documents');
    return;
  }
  const docs = store.db.collection<{ _id: string; x: number; pad: string; y?: number }>('docs');
  const total = 30_000;
  for (let i = 0; i < total; i += 5000) await docs.insertMany(Array.from({ length: 5000 }, (_, j) => ({ _id: `d${String(i + j).padStart(6, '0')}`, x: 0, pad: 'p'.repeat(200) })));

  const began = performance.now();
  const long = docs.updateMany({}, { $inc: { x: 1 } }).then(() => performance.now() - began);
  await new Promise((r) => setTimeout(r, 50));
  const sent = performance.now();
  const short = await docs.updateOne({ _id: 'd000007' }, { $set: { y: 1 } }, { maxTimeMS: 200 }).then(
    () => undefined,
    (err: unknown) => err,
  );
  const waited = performance.now() - sent;
  const longMs = await long;
  t.ok(longMs > waited, `the long update (${Math.round(longMs)} ms) still held the collection when the short one gave up (${Math.round(waited)} ms)`);
  t.ok(short instanceof MongoServerError && short.code === 50, `MaxTimeMSExpired (${String(short)})`);
  t.ok(waited < 1000, `within about its time limit (${Math.round(waited)} ms for 200)`);
  t.ok(isStorageOutage(short), 'which the coordinator answers as unavailable');
  await new Promise((r) => setTimeout(r, 300));
  t.equal((await docs.findOne({ _id: 'd000007' }))?.y, undefined, 'and it never landed after');
  t.equal((await docs.findOne({ _id: 'd000007' }))?.x, 1, 'while the long one did');

  const free = await docs.updateOne({ _id: 'd000007' }, { $set: { y: 2 } }, { maxTimeMS: 200 });
  t.equal(free.modifiedCount, 1, 'an update with a time limit it keeps applies as before');

  // Alone on the collection, an update that runs out of time in its own reads and write.
  const own = performance.now();
  const cut = await docs.updateMany({}, { $inc: { x: 10 } }, { maxTimeMS: 100 }).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(cut instanceof MongoServerError && cut.code === 50, `spent in its own work: MaxTimeMSExpired after ${Math.round(performance.now() - own)} ms (${String(cut)})`);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await docs.countDocuments({ x: { $gte: 10 } }), 0, 'and none of its writes landed');
});
