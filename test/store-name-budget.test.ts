/**
 * The per-process cache of stream file names (store/name-budget.ts) is bounded by names, all
 * streams together, each stream counting one more than its names (core.fileNameCacheNames):
 * cores choose the names and their number per stream, so a bound by streams let a few
 * thousand streams hold gigabytes, and streams without names must still count.
 */
import t from 'tap';
import { FileNameCache } from '../src/store/name-budget';

const names = (prefix: string, n: number): Set<string> => new Set(Array.from({ length: n }, (_, i) => `${prefix}-${i}`));

t.test('the least recently checked streams go first, and the count never passes the bound', async (t) => {
  const cache = new FileNameCache(100);
  cache.set('a', names('a', 39));
  cache.set('b', names('b', 39));
  t.equal(cache.size, 80, 'two streams of 39 names: 40 each');
  t.ok(cache.get('a'), 'a is used again: b is now the oldest');
  cache.set('c', names('c', 39));
  t.equal(cache.size, 80, 'b went to make room');
  t.notOk(cache.get('b'));
  t.ok(cache.get('a') && cache.get('c'));
});

t.test('names added to a stream count, and the stream that grows past the room makes room from the others', async (t) => {
  const cache = new FileNameCache(100);
  cache.set('a', names('a', 49));
  cache.set('b', names('b', 39));
  cache.add('b', ['b-0', 'b-new-1', 'b-new-2']);
  t.equal(cache.size, 92, 'only new names count');
  cache.add('b', names('b-more', 20));
  t.equal(cache.size, 62, 'a went; b kept with its 61 names');
  t.notOk(cache.get('a'));
  t.equal(cache.get('b')?.size, 61);
});

t.test('a stream with more names than the whole bound is not kept', async (t) => {
  const cache = new FileNameCache(100);
  cache.set('a', names('a', 9));
  cache.set('huge', names('h', 100));
  t.notOk(cache.get('huge'));
  t.equal(cache.size, 10, 'and nothing else was dropped for it');
  cache.add('a', names('a-more', 95));
  t.notOk(cache.get('a'), 'a stream that grows past the bound alone is let go');
  t.equal(cache.size, 0);
});

t.test('streams without names count too: they cannot pile up without bound', async (t) => {
  const cache = new FileNameCache(100);
  for (let i = 0; i < 10_000; i++) cache.set(`s${i}`, new Set());
  t.equal(cache.size, 100, 'a hundred empty streams fill it');
  t.notOk(cache.get('s0'), 'the oldest went');
  t.ok(cache.get('s9999'));
});
