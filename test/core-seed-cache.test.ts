/**
 * The seed cache (src/core/seed-cache.ts): streams record their seed files' SHA-256 at
 * creation, and an assignment takes content another assignment of the process read recently
 * from memory instead of the store. Admission on the second miss, the byte budget, least
 * recently used first out; on a real server, which assignments read the `files` collection
 * (driver command monitoring), which bytes each core gets, and streams without digests.
 */
import type { CommandStartedEvent } from 'mongodb';
import t from 'tap';
import { DOORKEEPER_SIZE, SeedCache } from '../src/core/seed-cache';
import { decodeManifest, encodeManifest } from '../src/store/leases';
import { seedDigest } from '../src/store/streams';
import type { CoreClient } from '../src/client';
import { coreFixture, type CoreFixture } from './helpers/core';
import { getStack, stopStack } from '../test-support/stack';

const KIB = 1024;
const MIB = 1024 * KIB;
const PREFIX = 'sd:';

const b64 = (b: Buffer): string => b.toString('base64');

t.test('content is kept from its second miss, in base64, within the budget, least recently used out first', async (t) => {
  const counts = { hit: 0, miss: 0, held: 0 };
  const cache = new SeedCache(100 * KIB, { hit: () => counts.hit++, miss: () => counts.miss++, bytes: (n) => (counts.held = n) });
  // 15 KiB of bytes are 20 KiB of base64, what the budget counts.
  const a = Buffer.alloc(15 * KIB, 1);
  t.equal(cache.get('a'), undefined, 'empty');
  cache.offer('a', a);
  t.equal(cache.get('a'), undefined, 'not kept after one miss');
  cache.offer('a', a);
  const kept = cache.get('a');
  t.equal(kept?.ascii.toString('latin1'), b64(a), 'kept after the second, as its base64');
  a.fill(9);
  t.equal(kept?.ascii.toString('latin1'), b64(Buffer.alloc(15 * KIB, 1)), 'its own copy: the buffer it came from can change');
  t.same(counts, { hit: 1, miss: 2, held: 20 * KIB });

  for (const d of ['b', 'c', 'd', 'e']) {
    cache.offer(d, Buffer.alloc(15 * KIB, d.charCodeAt(0)));
    cache.offer(d, Buffer.alloc(15 * KIB, d.charCodeAt(0)));
  }
  t.equal(cache.size, 100 * KIB, 'five files fill the budget');
  cache.get('a');
  cache.offer('f', Buffer.alloc(15 * KIB));
  cache.offer('f', Buffer.alloc(15 * KIB));
  t.equal(cache.size, 100 * KIB, 'a sixth evicts one');
  t.ok(cache.get('a'), 'not the one used last');
  t.equal(cache.get('b'), undefined, 'the least recently used');

  // 19 KiB of bytes: 25.3 KiB of base64, over a quarter of 100 KiB.
  cache.offer('big', Buffer.alloc(19 * KIB));
  cache.offer('big', Buffer.alloc(19 * KIB));
  t.equal(cache.get('big'), undefined, 'a file over a quarter of the budget is never kept');
});

t.test('the doorkeeper forgets, and a budget of 0 turns the cache off', async (t) => {
  const cache = new SeedCache(MIB);
  cache.offer('x', Buffer.from('x'));
  for (let i = 0; i < DOORKEEPER_SIZE; i++) cache.offer(`other-${i}`, Buffer.from('o'));
  cache.offer('x', Buffer.from('x'));
  t.equal(cache.get('x'), undefined, `a miss more than ${DOORKEEPER_SIZE} misses ago is forgotten`);
  cache.offer('x', Buffer.from('x'));
  t.equal(cache.get('x')?.ascii.toString('latin1'), b64(Buffer.from('x')));

  const off = new SeedCache(0);
  off.offer('y', Buffer.from('y'));
  off.offer('y', Buffer.from('y'));
  t.equal(off.get('y'), undefined);
  t.equal(off.size, 0);
});

t.test('manifests carry the digests last, so older readers take them for malformed', async (t) => {
  const digests = [seedDigest(Buffer.from('a')), seedDigest(Buffer.from('b'))];
  const m = { frames: 0, seed: true, seedFiles: ['state.xml', 'system.xml'], seedDigests: digests };
  const raw = encodeManifest(m);
  t.equal(raw, `0|1||state.xml/system.xml|0|0|${digests.join('/')}`);
  t.same(decodeManifest(raw), m, 'decoded as written');
  t.equal(raw.split('|').length, 7, 'seven fields: a reader of six finds one too many');
  t.same(decodeManifest('0|1||state.xml/system.xml'), { frames: 0, seed: true, seedFiles: ['state.xml', 'system.xml'] }, 'a manifest without digests still decodes');
  t.equal(decodeManifest(`0|1||state.xml/system.xml|0|0|${digests[0]}`), undefined, 'one digest for two files is malformed');
  t.equal(encodeManifest({ ...m, seedDigests: [digests[0]!] }), '0|1||state.xml/system.xml', 'digests that do not match the names are left out');
});

t.test('on a server', async (t) => {
  const uri = new URL((await getStack()).mongo.uri);
  uri.searchParams.set('monitorCommands', 'true');
  const f: CoreFixture = await coreFixture({ 'mongodb.uri': uri.toString(), 'redis.keyPrefix': PREFIX });
  t.teardown(async () => {
    await f.ts.close();
    await stopStack();
  });
  const server = f.ts.server;
  const fileReads = async (fn: () => Promise<void>): Promise<string[]> => {
    const events: CommandStartedEvent[] = [];
    const listen = (e: CommandStartedEvent): void => void events.push(e);
    server.storage.mongo.client.on('commandStarted', listen);
    try {
      await fn();
    } finally {
      server.storage.mongo.client.off('commandStarted', listen);
    }
    return events.filter((e) => e.commandName === 'find' && e.command.find === 'files').map((e) => String(e.command.filter._id));
  };
  const hits = async (): Promise<number> => (await server.metrics.seedCacheLookups.get()).values.find((v) => v.labels.result === 'hit')?.value ?? 0;

  const target = await f.target();
  const state = Buffer.alloc(64 * KIB, 7);
  const system = Buffer.from('<System/>');
  const body = (s: Buffer): unknown => ({ files: { 'state.xml': s.toString('base64'), 'system.xml': system.toString('base64') } });
  const create = async (s: Buffer): Promise<string> => (await f.api<{ stream_id: string }>('POST', `/v1/targets/${target}/streams`, f.manager, body(s), 201)).stream_id;
  // Created in this order, assigned in this order (new streams, oldest first).
  const clones = [await create(state), await create(state), await create(state)];
  const other = Buffer.alloc(64 * KIB, 8);
  const different = await create(other);

  const doc = await server.storage.mongo.db.collection('streams').findOne({ _id: clones[0] as never });
  t.same(doc?.seedDigests, [seedDigest(state), seedDigest(system)], "the stream records its seed files' SHA-256, in their order");
  const raw = await server.storage.redis.hget(`${PREFIX}{t:${target}}:manifest`, clones[0]!);
  t.same(decodeManifest(raw ?? '')?.seedDigests, doc?.seedDigests, 'and so does its manifest');

  const cores: CoreClient[] = [];
  t.teardown(() => Promise.all(cores.map((c) => c.close())));
  const assign = async (expected: string, reads: string[], s: Buffer, why: string): Promise<void> => {
    const c = await f.client();
    cores.push(c);
    const got = await fileReads(async () => {
      const a = await c.assign(target);
      t.equal(a.streamId, expected, why);
      t.same(a.files['state.xml'], s, `${why}: its own state`);
      t.same(a.files['system.xml'], system, `${why}: its system file`);
    });
    t.same(got.sort(), reads.sort(), `${why}: files read from the store`);
  };
  const seeds = (id: string, ...names: string[]): string[] => names.map((n) => `${id}:seed:${n}`);
  const before = await hits();
  await assign(clones[0]!, seeds(clones[0]!, 'state.xml', 'system.xml'), state, 'first clone');
  await assign(clones[1]!, seeds(clones[1]!, 'state.xml', 'system.xml'), state, 'second clone (content seen twice: kept now)');
  await assign(clones[2]!, [], state, 'third clone');
  t.equal((await hits()) - before, 2, 'two hits');
  await assign(different, seeds(different, 'state.xml'), other, 'a stream with another state');
  t.equal((await server.metrics.seedCacheBytes.get()).values[0]?.value, b64(state).length + b64(system).length, 'the cache holds the shared content once, in base64');

  // A stream created before digests were recorded reads its files as before.
  const legacy = await create(state);
  await server.storage.mongo.db.collection('streams').updateOne({ _id: legacy as never }, { $unset: { seedDigests: '' } });
  await server.storage.redis.hdel(`${PREFIX}{t:${target}}:manifest`, legacy);
  await assign(legacy, seeds(legacy, 'state.xml', 'system.xml'), state, 'a stream without digests');
});
