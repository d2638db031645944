/**
 * The per-process answers about a target (src/http/target-answers.ts) that the target view
 * and the stream list's total are served from: kept for their lifetime, dropped by a change
 * on the bus (also one published by another process, through Redis), never kept when a
 * change to their target arrived while they were computed, and bounded in number.
 */
import Redis from 'ioredis';
import t from 'tap';
import { Bus } from '../src/store/bus';
import { TargetAnswers } from '../src/http/target-answers';
import { memoryLogger } from './helpers/server';
import { getStack, stopStack } from '../test-support/stack';

let redis: Redis;
let other: Redis;
const buses: Bus[] = [];
t.before(async () => {
  const url = (await getStack()).redis.url;
  redis = new Redis(url);
  other = new Redis(url);
});
t.teardown(async () => {
  for (const b of buses) b.close();
  redis?.disconnect();
  other?.disconnect();
  await stopStack();
});

/** A bus of its own (one per test, so tests do not hear each other's changes). */
async function busOf(prefix: string, client: Redis = redis): Promise<Bus> {
  const bus = new Bus(client as never, prefix, memoryLogger().log);
  buses.push(bus);
  // The subscriber connects in the background; wait until Redis counts it.
  for (let i = 0; i < 100; i++) {
    const [, n] = (await redis.pubsub('NUMSUB', `${prefix}bus`)) as [string, number];
    if (n > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return bus;
}

t.test('an answer is kept for its lifetime, and dropped by a change to its target', async (t) => {
  const bus = await busOf(`answers-a-${Date.now()}:`);
  const answers = new TargetAnswers<number>(bus, 60_000, 100);
  answers.set('target-a', 1, answers.since('target-a'));
  answers.set('target-b', 2, answers.since('target-b'));
  t.equal(answers.get('target-a'), 1, 'kept');
  await bus.publish('target.streams', { targetId: 'target-a' });
  t.equal(answers.get('target-a'), undefined, 'a stream of the target changed: dropped');
  t.equal(answers.get('target-b'), 2, 'another target keeps its answer');
  await bus.publish('target.changed', { targetId: '*' });
  t.equal(answers.get('target-b'), undefined, 'every target changed: all dropped');

  const short = new TargetAnswers<number>(bus, 30, 100);
  short.set('target-a', 3, short.since('target-a'));
  t.equal(short.get('target-a'), 3);
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.equal(short.get('target-a'), undefined, 'past its lifetime: gone');
});

t.test('an answer computed while its target changed is not kept', async (t) => {
  const bus = await busOf(`answers-b-${Date.now()}:`);
  const answers = new TargetAnswers<number>(bus, 60_000, 100);
  const mark = answers.since('target-a');
  // The count runs; meanwhile a stream is created in the target.
  await bus.publish('target.streams', { targetId: 'target-a' });
  answers.set('target-a', 5, mark);
  t.equal(answers.get('target-a'), undefined, 'not kept: it may predate the change');
  const other = answers.since('target-a');
  await bus.publish('target.streams', { targetId: 'target-b' });
  answers.set('target-a', 6, other);
  t.equal(answers.get('target-a'), 6, "a change to another target does not stop it (ids in different buckets)");
});

t.test("another process's change drops the answer through Redis", async (t) => {
  const prefix = `answers-c-${Date.now()}:`;
  const here = await busOf(prefix);
  const there = await busOf(prefix, other);
  const answers = new TargetAnswers<number>(here, 60_000, 100);
  answers.set('target-a', 7, answers.since('target-a'));
  const heard = new Promise<void>((resolve) => here.on('target.streams', () => resolve()));
  await there.publish('target.streams', { targetId: 'target-a' });
  await heard;
  t.equal(answers.get('target-a'), undefined, 'dropped by the other process');
});

t.test('at most maxEntries answers, the oldest dropped first', async (t) => {
  const bus = await busOf(`answers-d-${Date.now()}:`);
  const answers = new TargetAnswers<number>(bus, 60_000, 3);
  for (let i = 0; i < 5; i++) answers.set(`target-${i}`, i, answers.since(`target-${i}`));
  t.same([0, 1, 2, 3, 4].map((i) => answers.get(`target-${i}`)), [undefined, undefined, 2, 3, 4]);
});

t.test('callers that miss together share one computation; a change meanwhile makes later callers compute afresh', async (t) => {
  const bus = await busOf('ta-share:');
  const answers = new TargetAnswers<number>(bus, 60_000, 10);
  let computed = 0;
  let release: () => void = () => undefined;
  const slow = (): Promise<number> => {
    computed++;
    const n = computed;
    return new Promise((resolve) => (release = () => resolve(n)));
  };
  const first = Array.from({ length: 50 }, () => answers.answer('target-a', slow));
  t.equal(computed, 1, '50 callers, one computation');
  // A change arrives while it runs: callers after it must not get an answer read before it.
  await bus.publish('target.changed', { targetId: 'target-a' });
  const releaseFirst = release;
  const later = answers.answer('target-a', slow);
  t.equal(computed, 2, 'a caller after the change computes again');
  releaseFirst();
  release();
  t.same(new Set(await Promise.all(first)), new Set([1]));
  t.equal(await later, 2);
  t.equal(await answers.answer('target-a', slow), 2, 'the answer computed after the change is kept');
  t.equal(computed, 2);
});

t.test('a failed computation fails its callers and is not kept', async (t) => {
  const bus = await busOf('ta-fail:');
  const answers = new TargetAnswers<number>(bus, 60_000, 10);
  let calls = 0;
  const failing = (): Promise<number> => {
    calls++;
    return Promise.reject(new Error('store down'));
  };
  const results = await Promise.allSettled([answers.answer('target-a', failing), answers.answer('target-a', failing)]);
  t.same(results.map((r) => r.status), ['rejected', 'rejected']);
  t.equal(calls, 1);
  t.equal(await answers.answer('target-a', () => Promise.resolve(7)), 7, 'the next caller computes again');
});

t.test('expired answers are dropped as new ones are kept, not only when their target is asked for', async (t) => {
  const bus = await busOf('ta-sweep:');
  const answers = new TargetAnswers<number>(bus, 50, 1000);
  for (let i = 0; i < 100; i++) answers.set(`old-${i}`, i, answers.since(`old-${i}`));
  await new Promise((r) => setTimeout(r, 80));
  answers.set('new', 1, answers.since('new'));
  t.equal(answers.size, 1, 'only the live answer is held');
});
