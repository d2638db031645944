/**
 * The session clock (src/core/session-clock.ts): times a held session keeps, as ms since the
 * module loaded, made small integers while they fit (V8 then keeps them in the object) and
 * exact either way. A child process with V8's natives syntax checks that they are small
 * integers, since that is the point of the clock.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { epochOf, sessionClock } from '../src/core/session-clock';

t.test('round trips are exact, inside and past the small-integer range', async (t) => {
  const now = Date.now();
  for (const dt of [0, 1, -1000, 86_400_000, 24 * 86_400_000, 25 * 86_400_000, 400 * 86_400_000]) {
    t.equal(epochOf(sessionClock(now + dt)), now + dt, `now + ${dt} ms`);
  }
  t.ok(Number.isInteger(sessionClock()), 'a whole number of ms');
  t.ok(sessionClock() >= 0 && sessionClock() < 60_000, 'counted from when the module loaded');
});

t.test('times near now are small integers for V8, times past 2^31 ms are still numbers', async (t) => {
  const clock = path.resolve(__dirname, '..', 'src', 'core', 'session-clock.js');
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '-e', `const c = require(${JSON.stringify(clock)}); console.log(JSON.stringify([%IsSmi(c.sessionClock()), %IsSmi(c.sessionClock(Date.now() + 3600e3)), %IsSmi(c.sessionClock(Date.now() + 30 * 86400e3))]))`], { encoding: 'utf8' });
  t.same(JSON.parse(out), [true, true, false]);
});
