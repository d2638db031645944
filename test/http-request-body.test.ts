/**
 * A body's pace (http/request-body.ts keepPace) counts from when it may be read: a route's
 * authentication that keeps the server waiting does not spend the client's time, and a
 * closed sink (its exchange answered) stops the clock.
 */
import t from 'tap';
import { BodySink, keepPace } from '../src/http/request-body';

const never = new Promise<Buffer>(() => undefined);
const pace = { graceMs: 200, minBytesPerSecond: 1000 };
const settledWithin = (p: Promise<unknown>, ms: number): Promise<string> =>
  Promise.race([p.then(() => 'resolved', (e: { code?: string }) => `rejected ${e.code ?? ''}`), new Promise<string>((r) => setTimeout(() => r('pending'), ms))]);

t.test('the clock starts when the gate opens', async (t) => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const paced = keepPace(never, new BodySink(1e6, () => true), pace, gate);
  t.equal(await settledWithin(paced, 400), 'pending', 'the server held the body back for 400 ms: not the client’s time');
  open();
  t.equal(await settledWithin(paced, 100), 'pending', 'within the grace after the gate');
  t.equal(await settledWithin(paced, 300), 'rejected request_timeout', 'then past its pace');
});

t.test('a gate that refuses never starts the clock', async (t) => {
  const gate = Promise.reject(new Error('refused'));
  gate.catch(() => undefined);
  const paced = keepPace(never, new BodySink(1e6, () => true), pace, gate);
  t.equal(await settledWithin(paced, 400), 'pending');
});

t.test('a closed sink stops the clock and refuses what comes after, uncounted', async (t) => {
  let counted = 0;
  const sink = new BodySink(1e6, (n) => ((counted += n), true));
  const paced = keepPace(never, sink, pace);
  sink.close();
  t.equal(await settledWithin(paced, 400), 'pending', 'no timeout once its exchange is over');
  t.ok(sink.add(Buffer.alloc(10)), 'a later chunk is refused');
  t.equal(counted, 0, 'and not counted against the budget');
});

t.test('a body that has all come before the gate opens starts no clock', async (t) => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const sink = new BodySink(1e6, () => true);
  const paced = keepPace(Promise.resolve(Buffer.from('{}')), sink, pace, gate);
  t.equal(await settledWithin(paced, 50), 'resolved');
  open();
  await new Promise((r) => setTimeout(r, 400));
  t.notOk(sink.add(Buffer.alloc(1)), 'no late request_timeout refused the finished body');
});
