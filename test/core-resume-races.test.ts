/**
 * A resume racing the rest of the system: the target changed while the stream was parked,
 * the old socket still open on the same node, or the old holder on another node learning
 * of the resume only at its next renewal. A token is no way around an assignment's checks,
 * every activation is credited, and the live view shows the holder (a target disable stops
 * cores through it).
 */
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { eventually, startTestServer } from './helpers/server';
import { Leases } from '../src/store/leases';
import { stopStack } from '../test-support/stack';

const SHORT = { 'core.resumeGraceS': 5, 'core.leaseRenewS': 1, 'core.leaseTtlS': 5 };

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture(SHORT);
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const raw = (url = f.wsUrl): Promise<RawCore> => RawCore.connect(url, { engineKey: f.engineKey, ca: f.ts.ca, donorToken: f.donor });

t.test("a parked stream of a target disabled meanwhile is not resumed: the resume is refused like an assign, and the stream goes back to the pool", async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await raw();
  const a = await c.request({ type: 'assign', target_id: target });
  c.ws.terminate();
  await c.closed;
  await f.api('PATCH', `/v1/targets/${target}`, f.manager, { stage: 'disabled' });
  const d = await raw();
  t.teardown(() => d.close());
  t.match(await d.request({ type: 'assign', target_id: target }), { type: 'error', code: 'target_not_found' });
  t.match(await d.request({ type: 'resume', resume_token: a.resume_token }), { type: 'error', code: 'target_not_found' }, 'the token does not get around it');
  t.match(await d.frame(1), { type: 'error', code: 'not_assigned' });
  await f.api('PATCH', `/v1/targets/${target}`, f.manager, { stage: 'public' });
  const again = await eventually(async () => {
    const m = await d.request({ type: 'assign', target_id: target });
    if (m.type !== 'assignment') throw new Error(String(m.code));
    return m;
  }, 10_000, 'the stream back in the pool');
  t.equal(again.stream_id, stream);
  t.match(await d.frame(1), { type: 'ack' });
  t.match(await d.checkpoint(2), { type: 'committed', frames: 1 }, 'its next holder commits: the manifest carries the raised fence');
  await d.request({ type: 'stop' });
});

t.test('a resume on the same node while the old socket is open: the old activation is credited', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await raw();
  t.teardown(() => c.close());
  const a = await c.request({ type: 'assign', target_id: target });
  t.match(await c.frame(1, { frames: 5 }), { type: 'ack' });
  t.match(await c.checkpoint(2), { type: 'committed', frames: 5 });
  const d = await raw();
  t.teardown(() => d.close());
  t.match(await d.request({ type: 'resume', resume_token: a.resume_token }), { type: 'assignment', frames: 5 });
  t.match(await c.next((m) => m.type === 'stop'), { reason: 'lease_lost' });
  t.match(await d.request({ type: 'stop' }), { type: 'stopped' });
  const fragments = f.ts.server.storage.mongo.db.collection<{ frames: number }>('fragments');
  const frames = await eventually(async () => {
    const list = await fragments.find({ streamId: stream }).toArray();
    if (list.length < 2) throw new Error(`${list.length} fragments`);
    return list.map((x) => x.frames).sort();
  }, 10_000, 'both activations recorded');
  t.same(frames, [0, 5], "the old socket's 5 committed frames are credited");
});

t.test("a resume on another node: the old node's end leaves the new holder's live record, so a target disable stops it", async (t) => {
  const b = await startTestServer({ 'mongodb.database': f.ts.settings.mongodb.database, ...SHORT });
  t.teardown(() => b.close());
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await raw();
  t.teardown(() => c.close());
  const a = await c.request({ type: 'assign', target_id: target });
  t.match(await c.frame(1), { type: 'ack' });
  t.match(await c.checkpoint(2), { type: 'committed', frames: 1 });
  const d = await raw(`${b.url.replace(/^http/, 'ws')}/core/v1`);
  t.teardown(() => d.close());
  t.match(await d.request({ type: 'resume', resume_token: a.resume_token }), { type: 'assignment' }, 'resumed on node B');
  t.match(await c.next((m) => m.type === 'stop', 5000), { reason: 'lease_lost' }, 'node A learns at its renewal');
  const redis = f.ts.server.storage.redis;
  const key = new Leases(redis, f.ts.settings.redis.keyPrefix, 1000).keys(target).active;
  // Node A's end has run once its core got the stop; give its Redis calls a moment.
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.ok(await redis.hget(key, stream), 'the record of node B is still there');
  await f.api('PATCH', `/v1/targets/${target}`, f.manager, { stage: 'disabled' });
  t.match(await d.next((m) => m.type === 'stop', 5000), { reason: 'target_disabled' }, "node B's core is stopped");
});

t.test('a stream held without a commit for core.maxIdleAssignmentS is not resumed, however briefly each socket held it', async (t) => {
  const g = await coreFixture({ ...SHORT, 'core.maxIdleAssignmentS': 2, 'redis.keyPrefix': 'idle-resume:' });
  t.teardown(() => g.ts.close());
  const target = await g.target();
  const stream = await g.stream(target);
  const connect = (): Promise<RawCore> => RawCore.connect(g.wsUrl, { engineKey: g.engineKey, ca: g.ts.ca, donorToken: g.donor });
  let token = (await (async () => {
    const c = await connect();
    const a = await c.request({ type: 'assign', target_id: target });
    c.ws.terminate();
    await c.closed;
    return a;
  })()).resume_token as string;
  // Resumed and dropped at once, again and again: never held long enough for the idle sweep.
  const started = Date.now();
  while (Date.now() - started < 2500) {
    const c = await connect();
    const m = await c.request({ type: 'resume', resume_token: token });
    c.ws.terminate();
    await c.closed;
    if (m.type !== 'assignment') {
      t.match(m, { type: 'error', code: 'not_assigned', message: /maxIdleAssignmentS/ }, 'refused once idle for too long');
      break;
    }
    token = m.resume_token as string;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.ok(Date.now() - started >= 1500, 'resumed while under the limit');
  const d = await connect();
  t.teardown(() => d.close());
  t.match(await d.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream }, 'back in the pool for others');
});
