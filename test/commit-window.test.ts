/**
 * A commit point is sent only within its window after its partition was written
 * (src/store/abandoned.ts): the writer gives it a signal that aborts when the window ends,
 * which the driver checks before every attempt it writes, its retry after a lost connection
 * included. Here the store stops answering (this file's own MongoDB server, SIGSTOP) just as
 * the commit point goes out: the writer stops waiting at the end of its window with an outage
 * (`unavailable`) instead of waiting for the store, and the attempt it reported as sent is
 * the one asked about afterwards. Before, it waited as long as the store did.
 */
import t from 'tap';
import { commitCheckpoint, unsettledLanded, type UnsettledCommit } from '../src/store/commit';
import { FileStore } from '../src/store/files';
import { isStorageOutage } from '../src/store/outage';
import { useStoreDb } from './helpers/store';

const store = useStoreDb('commitwindow', { serverSelectionTimeoutMS: 60_000 });
const WINDOW_MS = 1500;
const FROZEN_MS = 6000;

t.test('a commit point the store has not answered by the end of its window is given up, and asked about after', async (t) => {
  const db = store.db;
  const files = new FileStore(db, 1 << 20);
  await db.collection<{ _id: string; frames: number }>('streams').insertOne({ _id: 'window-1', frames: 0 });
  const mongo = store.stack.mongo.pid;
  let sent: UnsettledCommit | undefined;
  let frozenAt = 0;
  let over = false;
  let sendings = 0;
  const outcome = commitCheckpoint(db, files, 'window-1', 0, 1, [{ name: 'frames.xtc', bytes: Buffer.from('frame') }], [{ name: 'state.xml', bytes: Buffer.from('state') }], {
    commitWindowMs: WINDOW_MS,
    sending: (u) => {
      sent = u;
      sendings++;
      // Never after the wait below has ended and let the store go on.
      if (over) return;
      process.kill(mongo, 'SIGSTOP');
      frozenAt = performance.now();
    },
  }).then(
    () => 'answered',
    (err: unknown) => err,
  );
  let result: unknown;
  try {
    result = await Promise.race([outcome, new Promise((r) => setTimeout(() => r('still waiting'), FROZEN_MS))]);
  } finally {
    over = true;
    process.kill(mongo, 'SIGCONT');
  }
  const waited = performance.now() - frozenAt;
  t.ok(isStorageOutage(result), `an outage, answered unavailable (${String(result)})`);
  t.ok(waited < WINDOW_MS + 1000, `given up at the window's end (${Math.round(waited)} ms of a ${WINDOW_MS} ms window), not when the store answered`);
  t.ok(sent, 'the attempt was reported before it was sent');
  t.equal(sendings, 1, 'one attempt: the one asked about below');
  // The attempt written before the window ended may land once the store goes on (the store
  // had it): whatever the stream says, it says it whole, and the writer's question agrees.
  await new Promise((r) => setTimeout(r, 500));
  const stream = await db.collection<{ _id: string; frames: number; lastPartitionId?: string }>('streams').findOne({ _id: 'window-1' });
  // Asked after the stream was read: a landing is for good, so one seen must be found.
  const landed = await unsettledLanded(db, 'window-1', [sent!]);
  if (stream?.frames === 1) {
    t.ok(landed, 'the question after the refusal finds it');
    t.equal(stream.lastPartitionId, sent!.partitionId, 'landed: the stream names its partition');
    t.ok(await db.collection('partitions').findOne({ _id: sent!.partitionId as never }), 'which exists');
  } else {
    t.equal(stream?.frames, 0, 'not landed: the stream is where it was');
  }
});
