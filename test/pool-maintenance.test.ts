/**
 * The pool's periodic maintenance (sweep expired leases, re-read their streams from MongoDB,
 * put them back) never runs two passes at once: with a slow store, overlapping passes would
 * each claim more leases and queue one more read behind the last. The store is made slow for
 * real: this test file's own MongoDB server is stopped (SIGSTOP) while a pass reads it.
 * And a sweeper that dies between claiming expired leases and putting their streams back
 * strands nothing: its claim runs out and a later sweep returns them.
 */
import pino from 'pino';
import t from 'tap';
import { Leases, readyMember } from '../src/store/leases';
import { Pool } from '../src/store/pool';
import { coreFixture } from './helpers/core';
import { eventually } from './helpers/server';
import { getStack, stopStack, STORE_STOP_TOLERANT } from '../test-support/stack';

t.teardown(stopStack);

t.test('a pass waiting on a slow store is not joined by another; the stream comes back once it answers', async (t) => {
  const f = await coreFixture(STORE_STOP_TOLERANT);
  t.teardown(() => f.ts.close());
  const target = await f.target();
  const stream = await f.stream(target);
  // A pool of its own under another prefix: the server's sweeper never touches these keys.
  const leases = new Leases(f.ts.server.storage.redis, `pm${process.pid}:`, 200);
  await leases.enqueue([{ target, frames: 0, member: readyMember(new Date(), stream) }]);
  await leases.markRebuilt();
  const got = await leases.assign([{ manager: 'm', managerWeight: 1, target, targetWeight: 1 }], { node: 'n', session: 's', engine: 'openmm', resume: 'x' });
  t.equal(got?.stream, stream, 'leased for 200 ms, then left to expire');
  await new Promise((r) => setTimeout(r, 400));

  let sweeps = 0;
  const sweep = leases.sweep.bind(leases);
  leases.sweep = (limit?: number) => {
    sweeps++;
    return sweep(limit);
  };
  const pool = new Pool(f.ts.server.storage.mongo.db, leases, pino({ level: 'silent' }));
  const mongo = (await getStack()).mongo.pid;
  process.kill(mongo, 'SIGSTOP');
  try {
    pool.start(0.1);
    await new Promise((r) => setTimeout(r, 1500));
    t.equal(sweeps, 1, 'one pass in 1.5 s of passes due every 0.1 s: it waits on the store, none starts beside it');
    t.equal(await leases.readyCount(target), 0, 'the claimed stream is being re-read');
  } finally {
    process.kill(mongo, 'SIGCONT');
  }
  await eventually(async () => (await leases.readyCount(target)) === 1, 15000, 'the stream back in the pool');
  await eventually(async () => sweeps > 1, 5000, 'passes resuming');
  pool.stop();
});

t.test('streams claimed by a sweeper that died are returned by a later sweep', async (t) => {
  const f = await coreFixture();
  t.teardown(() => f.ts.close());
  const target = await f.target();
  const stream = await f.stream(target);
  const prefix = `pd${process.pid}:`;
  // The dying sweeper: claims (with a 300 ms claim) and never puts back or settles.
  const dead = new Leases(f.ts.server.storage.redis, prefix, 100, 300);
  await dead.enqueue([{ target, frames: 0, member: readyMember(new Date(), stream) }]);
  await dead.markRebuilt();
  t.equal((await dead.assign([{ manager: 'm', managerWeight: 1, target, targetWeight: 1 }], { node: 'n', session: 's', engine: 'openmm', resume: 'x' }))?.stream, stream);
  await new Promise((r) => setTimeout(r, 200));
  t.same((await dead.sweep()).flatMap((c) => c.streams), [stream], 'the expired lease is claimed');
  t.equal(await dead.readyCount(target), 0, 'neither ready');
  t.equal(await dead.get(stream), undefined, 'nor leased');

  const leases = new Leases(f.ts.server.storage.redis, prefix, 100, 300);
  const pool = new Pool(f.ts.server.storage.mongo.db, leases, pino({ level: 'silent' }));
  await pool.tick();
  t.equal(await leases.readyCount(target), 0, 'a claim still open is left to its sweeper');
  await new Promise((r) => setTimeout(r, 400));
  await pool.tick();
  t.equal(await leases.readyCount(target), 1, 'once it ran out, a later sweep puts the stream back');
  t.same(await leases.sweep(), [], 'and settles the claim: nothing left to take');
  const k = leases.keys(target);
  t.equal(await f.ts.server.storage.redis.exists(k.returning), 0, 'the returning set is empty');
});
