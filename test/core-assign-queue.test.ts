/**
 * core.maxConcurrentAssignments: a process prepares at most that many assignments at once
 * (lease, stream, seed files); the rest wait their turn, and a core that hangs up while
 * waiting costs neither a lease nor a store read. The store is made slow for real: the test
 * file's own MongoDB server is stopped (SIGSTOP) while one assignment is being prepared.
 */
import type Redis from 'ioredis';
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore, type Msg } from './helpers/core-raw';
import { eventually } from './helpers/server';
import { getStack, stopStack, STORE_STOP_TOLERANT } from '../test-support/stack';
import { targetKeys } from '../src/store/target-keys';

const PREFIX = 'aq:';
let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ ...STORE_STOP_TOLERANT, 'core.maxConcurrentAssignments': 1, 'core.maxAssignmentsPerDonor': 1, 'redis.keyPrefix': PREFIX });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

t.test('one assignment prepared at a time; a core that hangs up while waiting holds nothing', async (t) => {
  const target = await f.target();
  // Seed contents of their own: a seed cache that already holds the fixture's default seed
  // (from another test of the run) would let an assignment skip the stopped store.
  const seed = (i: number): Buffer => Buffer.from(`queue seed ${i} ${process.pid} ${Date.now()}`);
  const all = [await f.stream(target, seed(0)), await f.stream(target, seed(1)), await f.stream(target, seed(2)), await f.stream(target, seed(3))];
  const redis = f.ts.server.storage.redis as Redis;
  const leases = (): Promise<number> => redis.hlen(targetKeys(PREFIX, target).lease);
  const abandoned = async (): Promise<number> => (await f.ts.server.metrics.assignAbandoned.get()).values[0]?.value ?? 0;
  const connect = (): Promise<RawCore> => RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  const [first, quitter, patient] = [await connect(), await connect(), await connect()];
  t.teardown(() => Promise.all([first.close(), patient.close()]));
  // Warm the target's cache, so that with the store stopped only the files are waited for.
  // The stream the warm-up had is then stopped by its manager: the three left have never
  // been read, so none of their files can be at hand while the store is stopped.
  const warm = await patient.request({ type: 'assign', target_id: target });
  t.match(warm, { type: 'assignment' });
  t.match(await patient.request({ type: 'stop' }), { type: 'stopped' });
  await f.api('POST', `/v1/streams/${warm.stream_id as string}/stop`, f.manager, undefined, 200);
  const streams = all.filter((s) => s !== warm.stream_id);
  const before = await abandoned();

  const mongo = (await getStack()).mongo.pid;
  process.kill(mongo, 'SIGSTOP');
  try {
    first.send({ type: 'assign', id: 1, target_id: target });
    // The first assignment has its lease and now waits on the stopped store for its files.
    await eventually(async () => (await leases()) === 1, 5000, 'the first lease');
    quitter.send({ type: 'assign', id: 1, target_id: target });
    patient.send({ type: 'assign', id: 1, target_id: target });
    await new Promise((r) => setTimeout(r, 300));
    t.equal(await leases(), 1, 'the others wait their turn without a lease');
    quitter.ws.terminate();
    await quitter.closed;
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    process.kill(mongo, 'SIGCONT');
  }
  const replies: [Msg, Msg] = [await first.reply(1, 15000), await patient.reply(1, 15000)];
  t.match(replies[0], { type: 'assignment', target_id: target }, 'the first assignment completes once the store answers');
  t.match(replies[1], { type: 'assignment', target_id: target }, 'then the waiting core gets its own');
  t.not(replies[0].stream_id, replies[1].stream_id);
  t.equal(await abandoned(), before + 1, 'the core that hung up was skipped');
  t.equal(await leases(), 2, 'and never held a lease');

  const late = await connect();
  t.teardown(() => late.close());
  const third = await late.request({ type: 'assign', target_id: target }, 15000);
  t.match(third, { type: 'assignment' }, 'its stream is still free for the next core');
  t.same(new Set([replies[0].stream_id, replies[1].stream_id, third.stream_id]), new Set(streams));
});

t.test("a donor's cap counts the assignments made while its requests waited in line", async (t) => {
  const target = await f.target();
  for (let i = 0; i < 3; i++) await f.stream(target);
  const connect = (donorToken?: string): Promise<RawCore> => RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca, ...(donorToken ? { donorToken } : {}) });
  const [holder, a, b] = [await connect(), await connect(f.donor), await connect(f.donor)];
  t.teardown(() => Promise.all([holder.close(), a.close(), b.close()]));
  t.match(await holder.request({ type: 'assign', target_id: target }), { type: 'assignment' }, 'the target is cached');
  t.match(await holder.request({ type: 'stop' }), { type: 'stopped' });

  const mongo = (await getStack()).mongo.pid;
  process.kill(mongo, 'SIGSTOP');
  try {
    // A core without a donor takes the one slot and waits on the store; the donor's two
    // requests queue behind it, neither holding anything yet.
    holder.send({ type: 'assign', id: 2, target_id: target });
    await new Promise((r) => setTimeout(r, 300));
    a.send({ type: 'assign', id: 1, target_id: target });
    b.send({ type: 'assign', id: 1, target_id: target });
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    process.kill(mongo, 'SIGCONT');
  }
  t.match(await holder.reply(2, 15000), { type: 'assignment' });
  t.match(await a.reply(1, 15000), { type: 'assignment' }, "the first of the donor's requests is served");
  t.match(await b.reply(1, 15000), { type: 'error', code: 'rate_limited', message: /maxAssignmentsPerDonor/ }, 'the one queued with it meets the cap of 1');
});
