/**
 * The pool's `<prefix>targets` set (what every sweep walks) is pruned: on target delete
 * through the admin API, and by the sweep once a target's ready, lease and expiry keys are
 * all gone — never while a lease of the target is still held. Against a single Redis and a
 * real Redis Cluster (3 masters, 3 replicas), where the set and a target's keys live in
 * different slots.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startRedisCluster, type RedisCluster } from '../src/provision/redis-cluster';
import { Leases, readyMember } from '../src/store/leases';
import { coreFixture, type CoreFixture } from './helpers/core';
import { eventually } from './helpers/server';
import { stopStack } from '../test-support/stack';

let dir: string | undefined;
let rc: RedisCluster | undefined;
t.teardown(async () => {
  await rc?.stop();
  await stopStack();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

const backends: Array<[string, () => Promise<Record<string, unknown>>]> = [
  ['single Redis', async () => ({ 'redis.keyPrefix': 'pt1:' })],
  [
    'Redis Cluster',
    async () => {
      dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sc-pool-targets-'));
      rc = await startRedisCluster({ dir });
      return { 'redis.cluster': rc.seeds, 'redis.keyPrefix': 'pt2:' };
    },
  ],
];

for (const [name, overrides] of backends) {
  t.test(name, async (t) => {
    const o = await overrides();
    const f: CoreFixture = await coreFixture(o);
    t.teardown(() => f.ts.close());
    const redis = f.ts.server.storage.redis;
    const prefix = o['redis.keyPrefix'] as string;
    const inSet = async (target: string, p = prefix): Promise<boolean> => (await redis.sismember(`${p}targets`, target)) === 1;

    await t.test('deleting a target through the API drops it from the set', async (t) => {
      const target = await f.target();
      const stream = await f.stream(target);
      t.ok(await inSet(target), 'a target with a queued stream is in the set');
      await f.api('DELETE', `/v1/targets/${target}`, f.manager, undefined, 409);
      t.ok(await inSet(target), 'a refused delete keeps it');
      await f.api('DELETE', `/v1/streams/${stream}`, f.manager, undefined, 204);
      await f.api('DELETE', `/v1/targets/${target}`, f.manager, undefined, 204);
      t.notOk(await inSet(target), 'gone after the delete');
      const other = await f.target();
      await f.stream(other);
      t.ok(await inSet(other), 'other targets are untouched');
    });

    await t.test('the sweep drops emptied targets, never one with a lease', async (t) => {
      // A prefix of its own, so the server's sweeper does not race this test's sweeps.
      const p = `${prefix}own:`;
      const leases = new Leases(redis, p, 1500);
      const target = 'T1';
      const candidate = { manager: 'm', managerWeight: 1, target, targetWeight: 1 };
      await leases.enqueue([{ target, frames: 0, member: readyMember(new Date(), 'S1') }]);
      t.ok(await inSet(target, p), 'enqueue adds the target');
      t.equal(await leases.pruneTarget(target), false, 'a ready stream keeps it');
      await redis.sadd(`${p}targets`, 'GONE');
      t.same(await leases.sweep(), [], 'nothing expired yet');
      t.notOk(await inSet('GONE', p), 'a target without keys is dropped by the sweep');
      t.ok(await inSet(target, p), 'the queued target stays');

      const got = await leases.assign([candidate], { node: 'n', session: 'sess', engine: 'openmm', resume: 'x' });
      t.equal(got?.stream, 'S1', 'leased');
      t.equal(await leases.readyCount(target), 0, 'the ready set is empty now');
      t.equal(await leases.pruneTarget(target), false, 'a held lease keeps it');
      t.same(await leases.sweep(), [], 'the lease is live');
      t.ok(await inSet(target, p), 'still walked while the lease is live');

      const claims = await eventually(async () => {
        const c = await leases.sweep();
        return c.length > 0 ? c : false;
      }, 10000, 'the expired lease claimed');
      t.same(claims.flatMap((c) => c.streams), ['S1'], 'the sweep claims the expired lease');
      t.ok(await inSet(target, p), 'a claim on its way back keeps the target');
      t.equal(await leases.pruneTarget(target), false);
      // What the pool does with a claimed stream found stopped: it settles the claim without a queue entry.
      await leases.settle(claims);
      t.same(await leases.sweep(), [], 'nothing left to claim');
      t.notOk(await inSet(target, p), 'and the sweep drops the target it emptied');

      // What the pool does with a claimed stream that is still ok: the target comes back.
      await leases.enqueue([{ target, frames: 0, member: readyMember(new Date(), 'S1') }]);
      t.ok(await inSet(target, p), 'enqueue re-adds a pruned target');
      t.equal(await leases.pruneTarget(target), false);
    });
  });
}
