/**
 * The sessions benchmark's load generators retry a refused set-up as a real core does: after
 * the delay the refusal names (`retry_after_s` of no_streams_available), not the bench's own
 * short pause. A real server with one stream and two cores: the second core is refused, waits
 * core.retryAfterS (1 s here) plus up to as much again, and is refused once more. With the
 * bench's own pause set to 0, finishing before 1 s would mean the server's delay was ignored.
 * The same for an upgrade refused with HTTP 503 and `Retry-After` (server_busy, a server at
 * server.maxConnections). Both load generators are checked: bench/loadgen.ts and the Go one.
 */
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';
import { closeLoadGens, startLoadGens, type LoadGen, type LoadGenKind } from '../bench/lib/loadgen-pool';
import type { SessionsCommand, SessionsResult } from '../bench/loadgen';

let f: CoreFixture;
let busy: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'core.retryAfterS': 1 });
  busy = await coreFixture({ 'server.maxConnections': 1, 'server.busyRetryAfterS': 1 });
});
t.teardown(async () => {
  await f?.ts.close();
  await busy?.ts.close();
  await stopStack();
});

/** Two sessions, one retry each, no pause of the bench's own: what the load generator of `kind` reports. */
async function twoSessions(t: tap.Test, kind: LoadGenKind, on: CoreFixture, localAddress: string): Promise<SessionsResult> {
  const gens: LoadGen[] = await startLoadGens(1, kind);
  t.teardown(() => closeLoadGens(gens));
  const lg = gens[0]!;
  lg.send({
    cmd: 'sessions',
    url: on.wsUrl,
    key: on.engineKey,
    protocol: 'coordinator.core.v1',
    ca: on.ts.ca,
    localAddress,
    count: 2,
    concurrency: 1,
    timeoutMs: 10_000,
    deadlineMs: 30_000,
    expect: 'assignment',
    retries: 1,
    retryDelayMs: 0,
  } satisfies SessionsCommand);
  return lg.next<SessionsResult>(['sessions'], 60_000);
}

/** The retry came after the server's 1 s (plus up to as much again), not at once. */
function waitedOneSecond(t: tap.Test, r: SessionsResult): void {
  const spanMs = r.lastDone - r.firstStart;
  t.ok(spanMs >= 1000, `the retry came after the server's delay (${spanMs} ms from the first set-up to the last)`);
  t.ok(spanMs < 10_000, `and not much later (${spanMs} ms)`);
}

for (const [kind, addresses] of [
  ['node', ['127.0.62.2', '127.0.62.4']],
  ['go', ['127.0.62.3', '127.0.62.5']],
] as const) {
  t.test(`${kind} load generator waits the server's retry_after_s`, async (t) => {
    await f.stream(await f.target());
    const r = await twoSessions(t, kind, f, addresses[0]);
    t.equal(r.ok, 1, 'the one stream is assigned');
    t.same(r.reasons, { 'error no_streams_available': 1 }, 'the second core is refused after its retry');
    t.same(r.retryReasons, { 'error no_streams_available': 1 });
    t.equal(r.retried, 1);
    waitedOneSecond(t, r);
  });

  t.test(`${kind} load generator waits an upgrade refusal's Retry-After`, async (t) => {
    await busy.stream(await busy.target());
    await busy.stream(await busy.target());
    const r = await twoSessions(t, kind, busy, addresses[1]);
    t.equal(r.ok, 1, 'one session fits server.maxConnections');
    t.same(r.reasons, { 'http 503': 1 }, 'the second is refused at the upgrade after its retry');
    t.same(r.retryReasons, { 'http 503': 1 });
    waitedOneSecond(t, r);
  });
}
