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
import { coreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';

const prefix = `withdrawn-${process.pid}:`;
let f: CoreFixture;
let leases: Leases;
t.before(async () => {
  f = await coreFixture({ 'redis.keyPrefix': prefix });
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

t.test("a session's requeue after a stop leaves the stream out; the mark lasts its lifetime", async (t) => {
  // A pool of its own, whose marks last 400 ms; nothing of the server's touches these keys.
  const own = new Leases(f.ts.server.storage.redis, `withdrawn-own-${process.pid}:`, 30_000, 60_000, 400);
  const [target, stream] = ['tw', 'sw1'];
  const member = readyMember(new Date(0), stream);
  await own.enqueue([{ target, frames: 0, member }]);
  const got = await own.assign([{ manager: 'm', managerWeight: 1, target, targetWeight: 1 }], { node: 'n', session: 's', engine: 'openmm', resume: 'x' });
  t.equal(got?.stream, stream, 'leased');
  // Stopped while held: the session ends later and asks for the stream to go back.
  await own.withdraw(target, member);
  t.ok(await own.release(stream, 's', true, 0), 'the lease is released');
  t.equal(await own.readyCount(target), 0, 'but the stream is not requeued');
  t.equal(await own.enqueue([{ target, frames: 0, member }]), 0, 'nor put back by an enqueue within the mark');
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await own.enqueue([{ target, frames: 0, member }]), 1, "after the mark's lifetime an enqueue adds it again");
  await own.withdraw(target, member);
  t.equal(await own.enqueue([{ target, frames: 0, member }], true), 1, 'a reinstating enqueue (a start) adds it at once');
});
