/**
 * Greedy hosts (issue 12 §4): concurrent assignments per donor and per engine key are
 * capped (rate_limited, with retry_after_s), and a stream held with no commit for
 * core.maxIdleAssignmentS goes back to the pool (stop "idle_timeout") where an honest core
 * gets it; a committing core is never released.
 */
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { Leases } from '../src/store/leases';
import { stopStack } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'core.maxAssignmentsPerDonor': 2, 'core.maxAssignmentsPerKey': 3, 'core.maxIdleAssignmentS': 2 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const connect = (donor = true): Promise<RawCore> => RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ...(donor ? { donorToken: f.donor } : {}), ca: f.ts.ca });
/** Ends a core's part in a test: its stream released (a hang-up would keep it for a resume, counted against the shared key's cap), then its socket. */
async function leave(c: RawCore): Promise<void> {
  if (c.isOpen) await c.request({ type: 'stop' }).catch(() => undefined);
  await c.close();
}

t.test('assignments per donor and per engine key are capped', async (t) => {
  const target = await f.target();
  for (let i = 0; i < 5; i++) await f.stream(target);
  const cores = await Promise.all([connect(), connect(), connect(), connect(false), connect(false)]);
  t.teardown(() => Promise.all(cores.map((c) => leave(c))));
  const [d1, d2, d3, a1, a2] = cores as [RawCore, RawCore, RawCore, RawCore, RawCore];
  t.equal((await d1.request({ type: 'assign', target_id: target })).type, 'assignment');
  t.equal((await d2.request({ type: 'assign', target_id: target })).type, 'assignment');
  t.match(await d3.request({ type: 'assign', target_id: target }), { type: 'error', code: 'rate_limited', message: /maxAssignmentsPerDonor/, retry_after_s: Number }, 'the donor\'s third stream is refused');
  t.equal((await a1.request({ type: 'assign', target_id: target })).type, 'assignment', 'a core without that donor still gets one (key: 3 of 3)');
  t.match(await a2.request({ type: 'assign', target_id: target }), { type: 'error', code: 'rate_limited', message: /maxAssignmentsPerKey/ }, 'the key\'s fourth is refused');
  t.equal((await d1.request({ type: 'stop' })).type, 'stopped');
  t.equal((await d3.request({ type: 'assign', target_id: target })).type, 'assignment', 'a released stream frees the donor\'s place');
});

t.test('a stream held without commits goes back to the pool; a committing core keeps its stream', async (t) => {
  const target = await f.target();
  const idleStream = await f.stream(target);
  const idle = await connect(false);
  const busy = await connect(false);
  t.teardown(() => Promise.all([leave(idle), leave(busy)]));
  t.equal((await idle.request({ type: 'assign', target_id: target })).stream_id, idleStream);
  const busyStream = await f.stream(target);
  t.equal((await busy.request({ type: 'assign', target_id: target })).stream_id, busyStream);
  const started = Date.now();
  let seq = 0;
  const working = (async () => {
    while (Date.now() - started < 5000) {
      t.equal((await busy.frame(++seq)).type, 'ack');
      t.equal((await busy.checkpoint(++seq)).type, 'committed');
      await new Promise((r) => setTimeout(r, 700));
    }
  })();
  const stop = await idle.next((m) => m.type === 'stop', 10000);
  const ms = Date.now() - started;
  t.same(stop, { type: 'stop', reason: 'idle_timeout' }, 'the idle core is told');
  t.ok(ms >= 1500 && ms < 6000, `after about core.maxIdleAssignmentS (${ms} ms)`);
  t.ok(idle.isOpen, 'its socket stays open');
  const honest = await connect(false);
  t.teardown(() => leave(honest));
  t.equal((await honest.request({ type: 'assign', target_id: target })).stream_id, idleStream, 'an honest core gets the released stream');
  await working;
  t.notOk(busy.received.some((m) => m.type === 'stop'), 'the committing core was never stopped');
});

t.test('streams kept for a resume count against the caps; a resume counts too, and keeps the idle clock of the assignment it resumes', async (t) => {
  const target = await f.target();
  for (let i = 0; i < 4; i++) await f.stream(target);
  // The donor holds two streams, then hangs up on both: their leases wait for a resume.
  const first = [await connect(), await connect()];
  const tokens: string[] = [];
  for (const c of first) tokens.push((await c.request({ type: 'assign', target_id: target })).resume_token as string);
  const started = Date.now();
  await Promise.all(first.map((c) => c.close()));
  // Hanging up does not free its places: assigning again is refused while they are kept.
  const again = await connect();
  t.teardown(() => leave(again));
  t.match(await again.request({ type: 'assign', target_id: target }), { type: 'error', code: 'rate_limited', message: /kept for a resume \(core\.maxAssignmentsPerDonor\)/ }, 'a third stream is refused while two are kept for a resume');
  // Resuming one of its own is not: it is counted already.
  const back = await connect();
  t.teardown(() => leave(back));
  const resumed = await back.request({ type: 'resume', resume_token: tokens[1] });
  t.equal(resumed.type, 'assignment', 'resuming a kept stream is let through at the cap');
  t.match(await again.request({ type: 'assign', target_id: target }), { type: 'error', code: 'rate_limited', message: /maxAssignmentsPerDonor/ }, 'still two: one held, one kept');
  t.equal((await back.request({ type: 'stop' })).type, 'stopped');
  // Once the assignment has gone core.maxIdleAssignmentS (2 s) without a commit, the
  // resume is refused: the idle clock runs from the assignment's last progress, not from the
  // resume, and the stream goes back to the pool.
  await new Promise((r) => setTimeout(r, Math.max(0, started + 2200 - Date.now())));
  const third = await connect();
  t.teardown(() => leave(third));
  t.equal((await third.request({ type: 'assign', target_id: target })).type, 'assignment', 'the donor at its cap again: one held, one kept');
  t.match(await back.request({ type: 'resume', resume_token: tokens[0] }), { type: 'error', code: 'not_assigned', message: /maxIdleAssignmentS/ }, 'at the cap, let through and refused as idle');
  // Given back to the pool, it no longer waits for a resume, so its place is free at once.
  const stream = tokens[0]!.slice(0, tokens[0]!.lastIndexOf('.'));
  t.match(await again.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream }, 'back in the pool at once, and no longer counted against the donor');
});

t.test('a resume from a new socket while the old one is still open keeps the idle clock too', async (t) => {
  // Its own server: an idle limit of 4 s, renewals every second.
  const g = await coreFixture({ 'core.maxIdleAssignmentS': 4, 'core.leaseRenewS': 1, 'redis.keyPrefix': `idle-held-${process.pid}:` });
  t.teardown(() => g.ts.close());
  const target = await g.target();
  const stream = await g.stream(target);
  const open = async (): Promise<RawCore> => {
    const c = await RawCore.connect(g.wsUrl, { engineKey: g.engineKey, ca: g.ts.ca });
    t.teardown(() => leave(c));
    return c;
  };
  const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
  const leases = new Leases(g.ts.server.storage.redis, g.ts.settings.redis.keyPrefix, 30_000);
  const first = await open();
  const a = await first.request({ type: 'assign', target_id: target });
  const started = Date.now();
  t.ok(Math.abs((await leases.get(stream))!.progress! - started) < 500, "the lease records the assignment's start as its progress");
  await sleepUntil(started + 2500);
  t.match(await first.frame(1), { type: 'ack' });
  t.match(await first.checkpoint(2), { type: 'committed', frames: 1 });
  const committed = Date.now();
  // No detach wrote the commit's progress: the next renewal did.
  await sleepUntil(committed + 1200);
  const progress = (await leases.get(stream))?.progress ?? 0;
  t.ok(progress > started + 2000 && progress <= committed, `then its commit's (${progress - started} ms after the start)`);
  // Past the limit and a renewal's slack from the start, within the limit from the commit:
  // only the commit's progress lets this resume through.
  await sleepUntil(started + 5500);
  const b = await (await open()).request({ type: 'resume', resume_token: a.resume_token });
  t.match(b, { type: 'assignment', stream_id: stream }, 'resumed from a second socket, the first still open: idle since the commit, not the start');
  // Past the limit and the slack from the commit, not from that resume: refused (by the
  // idle check, or the sweep has already put the stream back in the pool).
  await sleepUntil(committed + 5300);
  t.match(await (await open()).request({ type: 'resume', resume_token: b.resume_token }), { type: 'error', code: 'not_assigned' }, 'a resume past the limit is refused');
});
