/**
 * The failed-authentication budget when many authentications of one address run at once:
 * no more lookups run than the address has failures left, so bad credentials sent together
 * cost exactly the budget, while honest ones only wait their turn.
 */
import t from 'tap';
import { FailedAuth } from '../src/auth/failed-auth';
import { AppError } from '../src/errors';

/** A lookup taking `ms` that fails (unknown credential) or succeeds, counting how many run at once. */
function lookups(ms: number) {
  const seen = { started: 0, running: 0, most: 0 };
  const run = (ok: boolean) => async (): Promise<string> => {
    seen.started++;
    seen.most = Math.max(seen.most, ++seen.running);
    await new Promise((r) => setTimeout(r, ms));
    seen.running--;
    if (!ok) throw new AppError('unauthorized', 'Unknown token');
    return 'ok';
  };
  return { seen, run };
}

const codes = (results: PromiseSettledResult<string>[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const r of results) {
    const code = r.status === 'fulfilled' ? 'ok' : (r.reason as AppError).code;
    out[code] = (out[code] ?? 0) + 1;
  }
  return out;
};

t.test('300 bad tokens at once from one address cost exactly its 30 failures', async (t) => {
  const auth = new FailedAuth(30, 1000);
  const { seen, run } = lookups(5);
  const results = await Promise.allSettled(Array.from({ length: 300 }, () => auth.guard('10.0.0.1', run(false))));
  t.equal(seen.started, 30, 'lookups run');
  t.ok(seen.most <= 30, `at most 30 at once (${seen.most})`);
  t.same(codes(results), { unauthorized: 30, rate_limited: 270 });
  await t.rejects(auth.guard('10.0.0.1', run(true)), { code: 'rate_limited' }, 'the address is over its budget afterwards');
  t.equal(await auth.guard('10.0.0.2', run(true)), 'ok', 'another address is not');
});

t.test('honest clients behind one address connecting at once all get through, at most the budget at a time', async (t) => {
  const auth = new FailedAuth(30, 1000);
  const { seen, run } = lookups(2);
  const results = await Promise.allSettled(Array.from({ length: 200 }, () => auth.guard('192.0.2.7', run(true))));
  t.same(codes(results), { ok: 200 });
  t.ok(seen.most <= 30 && seen.most >= 20, `up to 30 at once (${seen.most})`);
});

t.test('an address with failures left runs only that many at once, and the queue is refused once they are spent', async (t) => {
  const auth = new FailedAuth(30, 1000);
  for (let i = 0; i < 27; i++) auth.fail('198.51.100.9');
  const { seen, run } = lookups(5);
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => auth.guard('198.51.100.9', run(false))));
  t.ok(seen.most <= 3, `at most 3 at once (${seen.most})`);
  t.equal(seen.started, 3, 'three lookups for the three failures left');
  t.same(codes(results), { unauthorized: 3, rate_limited: 17 });
});

t.test('a lookup that throws something else neither counts as a failure nor leaks its turn', async (t) => {
  const auth = new FailedAuth(2, 1000);
  for (let i = 0; i < 5; i++) await t.rejects(auth.guard('203.0.113.1', () => Promise.reject(new AppError('unavailable', 'store down'))), { code: 'unavailable' });
  const { seen, run } = lookups(1);
  t.same(codes(await Promise.allSettled(Array.from({ length: 4 }, () => auth.guard('203.0.113.1', run(true))))), { ok: 4 });
  t.ok(seen.most <= 2, 'still two at a time');
});

t.test('the addresses tracked are bounded (auth.cacheMaxEntries): the least recently seen is forgotten first', async (t) => {
  const auth = new FailedAuth(1, 2);
  for (const a of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) auth.fail(a);
  t.doesNotThrow(() => auth.check('192.0.2.1'), 'a third address pushed the first out');
  t.throws(() => auth.check('192.0.2.2'), { code: 'rate_limited' }, 'the second is still tracked');
  t.throws(() => auth.check('192.0.2.3'), { code: 'rate_limited' }, 'and the third');
});
