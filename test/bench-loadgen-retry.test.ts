/**
 * The sessions benchmark's load generators retry a refused set-up as a real core does: after
 * the delay the refusal names (`retry_after_s` of no_streams_available), not the bench's own
 * short pause. A real server with one stream and two cores: the second core is refused, waits
 * core.retryAfterS (1 s here) plus up to as much again, and is refused once more. With the
 * bench's own pause set to 0, finishing before 1 s would mean the server's delay was ignored.
 * Both load generators are checked: bench/loadgen.ts and the Go one.
 */
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from './helpers/stack';
import { closeLoadGens, startLoadGens, type LoadGen } from '../bench/lib/loadgen-pool';
import type { SessionsCommand, SessionsResult } from '../bench/loadgen';

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'core.retryAfterS': 1 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

for (const [kind, localAddress] of [
  ['node', '127.0.62.2'],
  ['go', '127.0.62.3'],
] as const) {
  t.test(`${kind} load generator waits the server's retry_after_s`, async (t) => {
    const target = await f.target();
    await f.stream(target);
    const gens: LoadGen[] = await startLoadGens(1, kind);
    t.teardown(() => closeLoadGens(gens));
    const lg = gens[0]!;
    lg.send({
      cmd: 'sessions',
      url: f.wsUrl,
      key: f.engineKey,
      protocol: 'coordinator.core.v1',
      ca: f.ts.ca,
      localAddress,
      count: 2,
      concurrency: 1,
      timeoutMs: 10_000,
      deadlineMs: 30_000,
      expect: 'assignment',
      retries: 1,
      retryDelayMs: 0,
    } satisfies SessionsCommand);
    const r = await lg.next<SessionsResult>(['sessions'], 60_000);
    t.equal(r.ok, 1, 'the one stream is assigned');
    t.same(r.reasons, { 'error no_streams_available': 1 }, 'the second core is refused after its retry');
    t.same(r.retryReasons, { 'error no_streams_available': 1 });
    t.equal(r.retried, 1);
    const spanMs = r.lastDone - r.firstStart;
    t.ok(spanMs >= 1000, `the retry came after retry_after_s (${spanMs} ms from the first set-up to the last)`);
    t.ok(spanMs < 10_000, `and not much later (${spanMs} ms)`);
  });
}
