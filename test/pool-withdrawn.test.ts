/**
 * A stream stopped or deleted stays out of the pool against the enqueues that read the store
 * before: the pool's rebuild and its return of expired leases, the janitor's queuing of a
 * creation it found standing, and a session's requeue at its end all work from a read that
 * the stop or the deletion may have overtaken. Before, such an enqueue put a stopped or
 * deleted stream back in the ready set (with its manifest), and a core was handed it.
 */
import t from 'tap';
import { Leases, readyMember } from '../src/store/leases';
import { queuedStreams, queueEntry } from '../src/store/streams';
import { assignedCore, coreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';
import { eventually } from './helpers/server';

const prefix = `withdrawn-${process.pid}:`;
let f: CoreFixture;
let leases: Leases;
t.before(async () => {
  f = await coreFixture({ 'redis.keyPrefix': prefix, 'core.leaseRenewS': 1 });
  // The server's own keys, through the same scripts: what the pool and the janitor call.
  leases = new Leases(f.ts.server.storage.redis, prefix, 30_000);
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

/** The read of the store an enqueue works from (the pool's and the janitor's `queuedStreams`). */
async function readForQueue(stream: string): Promise<ReturnType<typeof queueEntry>[]> {
  return (await queuedStreams(f.ts.server.storage.mongo.db, [stream])).map(queueEntry);
}

t.test('a stop overtaking a read of the store keeps the stream out of the pool until it is started', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const earlier = await readForQueue(stream);
  t.equal(earlier.length, 1, 'read while ok');
  await f.api('POST', `/v1/streams/${stream}/stop`, f.manager, undefined, 200);
  t.equal(await leases.enqueue(earlier), 0, 'the enqueue of the earlier read adds nothing');
  t.equal(await leases.readyCount(target), 0, 'not in the ready set');
  const core = await f.client({ reconnect: false });
  t.teardown(() => core.close());
  await t.rejects(core.assign(target), { code: 'no_streams_available' }, 'no core is handed the stopped stream');
  await f.api('POST', `/v1/streams/${stream}/start`, f.manager, undefined, 200);
  t.equal((await core.assign(target)).streamId, stream, 'started again, it is back in the pool at once');
});

t.test('a deletion overtaking a read of the store: neither its queue entry nor its manifest comes back', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const earlier = await readForQueue(stream);
  t.ok(earlier[0]?.manifest, 'the read carries a manifest');
  await f.api('DELETE', `/v1/streams/${stream}`, f.manager, undefined, 204);
  t.equal(await leases.enqueue(earlier), 0, 'the enqueue of the earlier read adds nothing');
  t.equal(await leases.readyCount(target), 0, 'not in the ready set');
  t.equal(await f.ts.server.storage.redis.hget(leases.keys(target).manifest, stream), null, 'no manifest written for it');
});

t.test('a stream stopped while a core holds it stays out of the pool however late its session ends; started again meanwhile, it goes back', async (t) => {
  // A pool of its own, whose marks last 1 s; nothing of the server's touches these keys.
  const own = new Leases(f.ts.server.storage.redis, `withdrawn-own-${process.pid}:`, 30_000, 60_000, 1000);
  const target = 'tw';
  t.teardown(async () => {
    const k = own.keys(target);
    await f.ts.server.storage.redis.del(k.ready, k.lease, k.expiry, k.manifest, k.withdrawn);
  });
  const lease = async (stream: string, session: string): Promise<string> => {
    const member = readyMember(new Date(0), stream);
    await own.enqueue([{ target, frames: 0, member }]);
    const got = await own.assign([{ manager: 'm', managerWeight: 1, target, targetWeight: 1 }], { node: 'n', session, engine: 'openmm', resume: 'x' });
    t.equal(got?.stream, stream, `${stream} leased`);
    return member;
  };
  // Stopped while held; its session ends long after the mark, asking for a requeue (an
  // idle timeout, say: the stop never reached it). Its renewals say it was stopped.
  const m1 = await lease('sw1', 's1');
  await own.withdraw(target, m1, 'stopped');
  t.same(await own.renew([{ stream: 'sw1', session: 's1' }]), { lost: [], withdrawn: [{ stream: 'sw1', why: 'stopped' }] }, 'renewed, and reported stopped to its holder');
  await new Promise((r) => setTimeout(r, 1100));
  t.ok(await own.release('sw1', 's1', true, 0), 'the lease is released');
  t.equal(await own.readyCount(target), 0, 'but the stream is not requeued: the lease was withdrawn');
  // Told of the stop, the session asks to requeue only if the stream was started since.
  const m2 = await lease('sw2', 's2');
  await own.withdraw(target, m2, 'stopped');
  t.ok(await own.release('sw2', 's2', 'if_started', 0), 'released');
  t.equal(await own.readyCount(target), 0, 'not started again: not requeued');
  // Stopped and started again while held (a restart): the start finds the stream leased and
  // cannot queue it; the session, told of the stop, puts it back.
  const m3 = await lease('sw3', 's3');
  await own.withdraw(target, m3, 'stopped');
  t.equal(await own.enqueue([{ target, frames: 0, member: m3 }], true), 0, 'the start cannot queue a leased stream');
  t.same((await own.renew([{ stream: 'sw3', session: 's3' }])).withdrawn, [], 'started again: no longer reported');
  t.ok(await own.release('sw3', 's3', 'if_started', 0), 'released');
  t.equal(await own.readyCount(target), 1, 'started again meanwhile: requeued');
  // A start of a stream that was never stopped flags nothing; a session then told of a stop
  // its lease knows nothing of (a late message, or a node of an earlier release) hears so,
  // and asks MongoDB (the next test).
  await lease('sw3', 's4');
  t.equal(await own.enqueue([{ target, frames: 0, member: m3 }], true), 0, 'started while ok and held');
  t.equal(await own.release('sw3', 's4', 'if_started', 0), 'unflagged', 'told of a stop its lease does not record: not released');
  t.match(await own.get('sw3'), { session: 's4' }, 'the lease kept while MongoDB is asked');
  t.equal(await own.release('sw3', 's4', true, 0), true, 'then released as MongoDB says (ok)');
  t.equal(await own.readyCount(target), 1, 'and requeued');
  await f.ts.server.storage.redis.zrem(own.keys(target).ready, m3);
  // A start landing while it asks (MongoDB said stopped, read just before) reinstates it.
  await lease('sw3', 's7');
  t.equal(await own.release('sw3', 's7', 'if_started', 0), 'unflagged', 'kept while MongoDB is asked');
  t.equal(await own.enqueue([{ target, frames: 0, member: m3 }], true), 0, 'a start meanwhile cannot queue it');
  t.equal(await own.release('sw3', 's7', false, 0), true, 'released as MongoDB said (stopped)');
  t.equal(await own.readyCount(target), 1, 'but requeued: the start came last');
  await f.ts.server.storage.redis.zrem(own.keys(target).ready, m3);
  // Reinstated, a lease goes back whatever its session was told (a stop with an error that
  // found the stream stopped, say).
  const m6 = await lease('sw6', 's6');
  await own.withdraw(target, m6, 'stopped');
  await own.enqueue([{ target, frames: 0, member: m6 }], true);
  t.equal(await own.release('sw6', 's6', false, 0), true, 'released without a requeue asked');
  t.equal(await f.ts.server.storage.redis.zscore(own.keys(target).ready, m6), '0', 'requeued all the same: the start came last');
  await f.ts.server.storage.redis.zrem(own.keys(target).ready, m6);
  // The mark's lifetime, and a start's enqueue.
  const m5 = readyMember(new Date(0), 'sw5');
  await own.withdraw(target, m5, 'deleted');
  t.equal(await own.enqueue([{ target, frames: 0, member: m5 }]), 0, 'an enqueue within the mark adds nothing');
  const ttl = await f.ts.server.storage.redis.pttl(own.keys(target).withdrawn);
  t.ok(ttl > 0 && ttl <= 1000, `the marks expire whole when the last one ends (${ttl} ms)`);
  await new Promise((r) => setTimeout(r, 1100));
  t.equal(await own.enqueue([{ target, frames: 0, member: m5 }]), 1, "after the mark's lifetime an enqueue adds it again");
  await own.withdraw(target, m5, 'stopped');
  t.equal(await own.enqueue([{ target, frames: 0, member: m5 }], true), 1, 'a reinstating enqueue (a start) adds it at once');
  // Queued while marked (only a node of an earlier release can: here by hand), it is handed
  // out without its manifest, flagged, and keeps its mark until MongoDB says it is ok.
  await own.withdraw(target, m5, 'stopped');
  await f.ts.server.storage.redis.zadd(own.keys(target).ready, 0, m5);
  const got = await own.assign([{ manager: 'm', managerWeight: 1, target, targetWeight: 1 }], { node: 'n', session: 's5', engine: 'openmm', resume: 'x' });
  t.match(got, { stream: 'sw5', marked: true, manifest: undefined }, 'assigned marked, without its manifest');
  t.ok(await f.ts.server.storage.redis.zscore(own.keys(target).withdrawn, 'sw5'), 'still marked');
  await own.unmark(target, 'sw5');
  t.equal(await f.ts.server.storage.redis.zscore(own.keys(target).withdrawn, 'sw5'), null, 'unmarked');
});

const streamsOf = () => f.ts.server.storage.mongo.db.collection<{ _id: string; createdAt: Date; status: string }>('streams');

/** The stream a core is assigned of `target` once one is ready (within 5 s). */
function assignWithin(core: Awaited<ReturnType<CoreFixture['client']>>, target: string): Promise<string> {
  return eventually(async () => core.assign(target).then((a) => a.streamId, () => undefined), 5000, `an assignment of ${target}`);
}

/** Resolves with the core's next server stop, or 'no stop' after `ms`. */
function nextStop(core: Awaited<ReturnType<CoreFixture['client']>>, ms = 5000): Promise<unknown> {
  return Promise.race([new Promise((resolve) => core.once('stop', resolve)), new Promise((r) => setTimeout(() => r('no stop'), ms))]);
}

t.test("a core whose stream was stopped is stopped at the next renewal when the bus's stop did not reach it", async (t) => {
  const { core, target, stream } = await assignedCore(t, f);
  const createdAt = (await streamsOf().findOne({ _id: stream }))!.createdAt;
  const stopped = nextStop(core);
  // A stop's two steps, without its message on the bus.
  await streamsOf().updateOne({ _id: stream }, { $set: { status: 'stopped' } });
  await leases.withdraw(target, readyMember(createdAt, stream), 'stopped');
  t.match(await stopped, { reason: 'stream_stopped' }, 'told by its renewal (core.leaseRenewS 1)');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await leases.get(stream), undefined, 'its lease released');
  t.equal(await leases.readyCount(target), 0, 'and the stream not requeued');
});

t.test('a core told of a stop its lease knows nothing of lets MongoDB decide: a stale stop does not lose an ok stream', async (t) => {
  const { core, target, stream } = await assignedCore(t, f);
  const stopped = nextStop(core);
  // A stop that reaches this lease late (it was meant for an earlier one, before a start), or
  // comes from a node of an earlier release: a bus message only, the stream ok in MongoDB.
  await f.ts.server.storage.redis.publish(`${prefix}bus`, JSON.stringify({ origin: 'a-late-stop', event: 'stream.stop', data: { streamId: stream, reason: 'stream_stopped' } }));
  t.match(await stopped, { reason: 'stream_stopped' }, 'the core is told');
  const other = await f.client({ reconnect: false });
  t.teardown(() => other.close());
  const got = await assignWithin(other, target);
  t.equal(got, stream, 'ok in MongoDB, the stream went back to the pool');
});

t.test('a stream queued while marked (by a node of an earlier release) is handed out only if MongoDB says it is ok', async (t) => {
  const target = await f.target();
  const [stopped, ok] = [await f.stream(target), await f.stream(target)];
  const keys = leases.keys(target);
  for (const [score, id] of [stopped, ok].entries()) {
    const createdAt = (await streamsOf().findOne({ _id: id }))!.createdAt;
    await leases.withdraw(target, readyMember(createdAt, id), 'stopped');
    // What an older node's enqueue does: ignores the mark (the stopped one first in line).
    await f.ts.server.storage.redis.zadd(keys.ready, score, readyMember(createdAt, id));
  }
  await streamsOf().updateOne({ _id: stopped }, { $set: { status: 'stopped' } });
  const core = await f.client({ reconnect: false });
  t.teardown(() => core.close());
  t.equal((await core.assign(target)).streamId, ok, 'the stopped one is passed over; the ok one handed out');
  t.equal(await f.ts.server.storage.redis.zscore(keys.withdrawn, ok), null, "the ok one's mark cleared");
  t.ok(await f.ts.server.storage.redis.zscore(keys.withdrawn, stopped), "the stopped one's kept");
  t.equal(await leases.readyCount(target), 0, 'and it is not queued again');
});

t.test('a stream stopped and started again at once while a core holds it ends up in the pool (whichever of the start and the release comes first)', async (t) => {
  const { target, stream } = await assignedCore(t, f);
  await f.api('POST', `/v1/streams/${stream}/stop`, f.manager, undefined, 200);
  await f.api('POST', `/v1/streams/${stream}/start`, f.manager, undefined, 200);
  const other = await f.client({ reconnect: false });
  t.teardown(() => other.close());
  const got = await assignWithin(other, target);
  t.equal(got, stream, 'assignable again once the holder let go');
});
