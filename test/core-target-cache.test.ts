/**
 * The hub's target cache (src/core/target-cache.ts): a change to one target re-reads that
 * target by `_id` before the next assignment, instead of reloading every target with its
 * options (1,500 targets of 60 KiB options made each assignment after a PATCH take 2 s);
 * a change of managers' weights still reloads everything.
 */
import Redis from 'ioredis';
import t, { type Test } from 'tap';
import type { CommandStartedEvent } from 'mongodb';
import { Bus } from '../src/store/bus';
import { TargetCache } from '../src/core/target-cache';
import type { CoreIdentity } from '../src/model';
import { commandsDuring, useCoreFixture } from './helpers/core';
import { eventually, memoryLogger } from './helpers/server';
import { getStack } from '../test-support/stack';

const fixture = useCoreFixture({}, { monitored: true });
const core: CoreIdentity = { engine: 'openmm', keyId: 'k', remote: '127.0.0.1' };

/** A target cache of its own on the fixture's store, hearing the bus of `prefix` (the server's by default). */
async function cacheOn(t: Test, f: ReturnType<typeof fixture>, maxAgeMs: number, prefix = f.ts.settings.redis.keyPrefix): Promise<TargetCache> {
  const redis = new Redis((await getStack()).redis.url);
  const bus = new Bus(redis as never, prefix, memoryLogger().log);
  t.teardown(() => {
    bus.close();
    redis.disconnect();
  });
  return new TargetCache(f.ts.server.storage.mongo.db, bus, maxAgeMs);
}

const targetReads = (events: CommandStartedEvent[]): unknown[] =>
  events.filter((e) => e.commandName === 'find' && (e.command as { find?: string }).find === 'targets').map((e) => (e.command as { filter?: unknown }).filter);

t.test('a changed target is re-read alone, by _id; a weight change reloads all', async (t) => {
  const f = fixture();
  const cache = await cacheOn(t, f, 60_000);
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push(await f.target({ engines: ['openmm'], stage: 'public', options: { i } }));
  const has = async (id: string): Promise<boolean> => (await cache.candidates(core)).some((c) => c.target === id);
  t.ok(await has(ids[0]!), 'the first use loads every target');

  const client = f.ts.server.storage.mongo.client;
  const events = await commandsDuring(client, async () => {
    await f.api('PATCH', `/v1/targets/${ids[0]}`, f.manager, { engines: ['gromacs'] });
    await eventually(async () => !(await has(ids[0]!)), 5000, 'the engine change seen');
    await f.api('PATCH', `/v1/targets/${ids[1]}`, f.manager, { options: { i: 'changed' } });
    await eventually(async () => (await cache.options(ids[1]!)).i === 'changed', 5000, 'the options change seen');
    await f.api('PATCH', `/v1/targets/${ids[2]}`, f.manager, { stage: 'disabled' });
    await eventually(async () => !(await has(ids[2]!)), 5000, 'the disabled target gone');
  });
  // The routes read their target by _id too; none of the reads may be a scan.
  const reads = targetReads(events);
  t.ok(reads.length > 0, 'the cache read the changed targets');
  t.ok(reads.every((filter) => JSON.stringify(filter).startsWith('{"_id":')), `every read is by _id: ${JSON.stringify(reads)}`);
  t.ok(await has(ids[3]!), 'the others are still there');

  const me = await f.api<{ name: string }>('GET', '/v1/me', f.manager);
  const all = await commandsDuring(client, async () => {
    await f.api('PATCH', `/v1/users/${encodeURIComponent(me.name)}`, f.admin, { weight: 3 });
    await eventually(async () => (await cache.candidates(core)).find((c) => c.target === ids[3])?.managerWeight === 3, 5000, 'the weight seen');
  });
  t.ok(targetReads(all).some((filter) => JSON.stringify(filter).includes('$ne')), 'a weight change reloads every target');
});

t.test('after the first load, no use waits for a full reload: a due one runs behind what is installed', async (t) => {
  const f = fixture();
  const cache = await cacheOn(t, f, 1, `${f.ts.settings.redis.keyPrefix}bg:`);
  const id = await f.target({ engines: ['openmm'], stage: 'public' });
  const client = f.ts.server.storage.mongo.client;
  const first = targetReads(await commandsDuring(client, () => cache.candidates(core)));
  t.equal(first.length, 1, 'the first use waits for one full load');
  await new Promise((r) => setTimeout(r, 5));
  // core.targetCacheMs (1 ms here) has passed: the next use starts a reload and does not wait for it.
  let reloaded = false;
  const onDone = (e: { commandName: string; reply?: unknown }): void => {
    if (e.commandName === 'find' && JSON.stringify(e.reply ?? '').includes('"ns":"')) reloaded = true;
  };
  client.on('commandSucceeded', onDone);
  t.teardown(() => client.off('commandSucceeded', onDone));
  const next = await cache.candidates(core);
  t.ok(next.some((c) => c.target === id), 'answered from what is installed');
  t.notOk(reloaded, 'before the reload read anything');
  await eventually(async () => reloaded, 5000, 'the reload in the background');
});

t.test('a use waits only for the changes known when it began, and a new manager weighs what it was created with', async (t) => {
  const f = fixture();
  const cache = await cacheOn(t, f, 60_000);
  await cache.candidates(core);

  // Changes to other targets keep coming (a manager's PATCH loop): a use is not held up by them.
  let flooding = true;
  const flood = (): void => {
    if (!flooding) return;
    cache.targetChanged(`gone-${Math.random()}`);
    setImmediate(flood);
  };
  flood();
  t.teardown(() => (flooding = false));
  const started = Date.now();
  await cache.candidates(core);
  const took = Date.now() - started;
  flooding = false;
  t.ok(took < 1000, `answered in ${took} ms while changes kept coming`);

  const name = `weighty-${Date.now()}`;
  const token = (await f.api<{ token: string }>('POST', '/v1/users', f.admin, { name, role: 'manager', weight: 5 }, 201)).token;
  const id = await f.target({ engines: ['openmm'], stage: 'public' }, token);
  await eventually(async () => (await cache.candidates(core)).find((c) => c.target === id)?.managerWeight === 5, 5000, "the new manager's weight");
  t.pass('a new manager with a weight is weighed by it');
});

t.test('a read in the background that fails is logged, and what is installed stays', async (t) => {
  let down = false;
  const rows: Record<string, unknown[]> = { targets: [{ _id: 'tg', owner: 'm', engines: ['openmm'], stage: 'public', weight: 1, options: {} }], users: [] };
  const db = { collection: (name: string) => ({ find: () => ({ toArray: () => (down ? Promise.reject(new Error('store down')) : Promise.resolve(rows[name])) }) }) };
  const bus = { on: () => undefined };
  const mem = memoryLogger();
  const cache = new TargetCache(db as never, bus as never, 60_000, mem.log);
  t.same((await cache.candidates(core)).map((c) => c.target), ['tg']);
  down = true;
  cache.targetChanged('other');
  await eventually(async () => mem.lines().some((l) => /reading targets failed/.test(String(l.msg))), 2000, 'the warning');
  await t.rejects(cache.candidates(core), /store down/, 'a use that must see the change fails with the store');
  down = false;
  t.same((await cache.candidates(core)).map((c) => c.target), ['tg'], 'and the next one, with the store back, goes on');
});
