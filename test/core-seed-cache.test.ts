/**
 * The seed cache (src/core/seed-cache.ts): streams record their seed files' SHA-256 at
 * creation, and an assignment takes content another assignment read recently from the
 * directory the server's processes share instead of the store. Admission on the second miss,
 * the byte budget, least recently used first out, two processes on one directory, files that
 * are not what was written, the directory's life; on a real server, which assignments read the
 * `files` collection (driver command monitoring), which bytes each core gets, and streams
 * without digests.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createSeedCacheDir, DOORKEEPER_SIZE, onTmpfs, removeSeedCacheDir, SeedCache, seedCacheParent } from '../src/core/seed-cache';
import { checkSeedCache } from '../src/config/preflight';
import type { Settings } from '../src/config/settings';
import { decodeManifest, encodeManifest } from '../src/store/leases';
import { seedDigest } from '../src/store/streams';
import type { CoreClient } from '../src/client';
import { commandsDuring, monitoredCoreFixture, type CoreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';

const KIB = 1024;
const MIB = 1024 * KIB;
const PREFIX = 'sd:';

const b64 = (b: Buffer): string => b.toString('base64');

const tempDir = (t: Test): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-seed-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};
/** A digest as streams record them, for a name. */
const d = (name: string): string => seedDigest(Buffer.from(name));

t.test('content is kept from its second miss, in base64, within the budget, least recently used out first', async (t) => {
  const dir = tempDir(t);
  const counts = { hit: 0, miss: 0, held: 0 };
  const cache = new SeedCache(dir, 100 * KIB, { hit: () => counts.hit++, miss: () => counts.miss++, bytes: (n) => (counts.held = n) });
  // 15 KiB of bytes are 20 KiB of base64, what the budget counts.
  const a = Buffer.alloc(15 * KIB, 1);
  t.equal(cache.get(d('a')), undefined, 'empty');
  cache.offer(d('a'), a);
  t.equal(cache.get(d('a')), undefined, 'not kept after one miss');
  t.same(fs.readdirSync(dir), [], 'nothing written after one miss');
  cache.offer(d('a'), a);
  t.same(fs.readdirSync(dir), [d('a')], 'written after the second, named by its digest');
  const kept = cache.get(d('a'));
  t.equal(kept?.ascii.toString('latin1'), b64(a), 'read back as its base64');
  t.equal(fs.readFileSync(path.join(dir, d('a')), 'latin1'), b64(a), 'the file holds the base64');
  a.fill(9);
  t.equal(cache.get(d('a'))?.ascii.toString('latin1'), b64(Buffer.alloc(15 * KIB, 1)), 'a copy: the buffer it came from can change');
  t.same(counts, { hit: 2, miss: 2, held: 20 * KIB });

  for (const n of ['b', 'c', 'd', 'e']) {
    cache.offer(d(n), Buffer.alloc(15 * KIB, n.charCodeAt(0)));
    cache.offer(d(n), Buffer.alloc(15 * KIB, n.charCodeAt(0)));
  }
  t.equal(cache.size, 100 * KIB, 'five files fill the budget');
  cache.get(d('a'));
  cache.offer(d('f'), Buffer.alloc(15 * KIB));
  cache.offer(d('f'), Buffer.alloc(15 * KIB));
  t.equal(cache.size, 100 * KIB, 'a sixth evicts one');
  t.ok(cache.get(d('a')), 'not the one used last');
  t.equal(cache.get(d('b')), undefined, 'the least recently used');
  t.notOk(fs.existsSync(path.join(dir, d('b'))), 'its file is deleted');
  t.equal(fs.readdirSync(dir).length, 5, 'the directory holds what the index holds');

  // 19 KiB of bytes: 25.3 KiB of base64, over a quarter of 100 KiB.
  cache.offer(d('big'), Buffer.alloc(19 * KIB));
  cache.offer(d('big'), Buffer.alloc(19 * KIB));
  t.equal(cache.get(d('big')), undefined, 'a file over a quarter of the budget is never kept');
});

t.test('processes share the directory: one copy, and what one evicts the others miss', async (t) => {
  const dir = tempDir(t);
  const one = new SeedCache(dir, 100 * KIB);
  const two = new SeedCache(dir, 100 * KIB);
  const body = Buffer.alloc(15 * KIB, 3);
  for (const c of [one, two]) {
    c.offer(d('s'), body);
    c.offer(d('s'), body);
  }
  t.same(fs.readdirSync(dir), [d('s')], 'one file for both');
  t.equal(two.get(d('s'))?.ascii.toString('latin1'), b64(body), 'the second reads it');
  for (const n of ['1', '2', '3', '4', '5']) {
    one.offer(d(n), Buffer.alloc(15 * KIB));
    one.offer(d(n), Buffer.alloc(15 * KIB));
  }
  t.notOk(fs.existsSync(path.join(dir, d('s'))), 'the first evicted it');
  t.equal(two.get(d('s')), undefined, 'the second misses');
  t.equal(two.size, 0, 'and forgets it');
  two.offer(d('s'), body);
  t.equal(two.get(d('s')), undefined, 'admitted again only on its second miss');
  two.offer(d('s'), body);
  t.equal(two.get(d('s'))?.ascii.toString('latin1'), b64(body), 'then written again');
});

t.test('a file that is not what was written is a miss; what cannot name a file is never written', async (t) => {
  const dir = tempDir(t);
  const cache = new SeedCache(dir, MIB);
  const body = Buffer.alloc(3 * KIB, 5);
  cache.offer(d('x'), body);
  cache.offer(d('x'), body);
  fs.appendFileSync(path.join(dir, d('x')), 'A');
  t.equal(cache.get(d('x')), undefined, 'a longer file');
  cache.offer(d('x'), body);
  cache.offer(d('x'), body);
  fs.truncateSync(path.join(dir, d('x')), 10);
  t.equal(cache.get(d('x')), undefined, 'a shorter one');

  for (const bad of ['../escape', 'a/b', '', d('y').slice(1), `${d('y')}.tmp`]) {
    cache.offer(bad, body);
    cache.offer(bad, body);
    t.equal(cache.get(bad), undefined, `"${bad}" is not a digest`);
  }
  t.same(fs.readdirSync(dir), [], 'no file written for any of them');
  t.notOk(fs.existsSync(path.join(dir, '..', 'escape')), 'nothing outside');

  const gone = new SeedCache(path.join(dir, 'missing'), MIB);
  gone.offer(d('z'), body);
  gone.offer(d('z'), body);
  t.equal(gone.size, 0, 'a file that cannot be written (a full tmpfs) is not admitted');
  t.equal(gone.get(d('z')), undefined);
});

t.test('the doorkeeper forgets, and a budget of 0 or no directory turns the cache off', async (t) => {
  const dir = tempDir(t);
  const cache = new SeedCache(dir, MIB);
  cache.offer(d('x'), Buffer.from('x'));
  for (let i = 0; i < DOORKEEPER_SIZE; i++) cache.offer(d(`other-${i}`), Buffer.from('o'));
  cache.offer(d('x'), Buffer.from('x'));
  t.equal(cache.get(d('x')), undefined, `a miss more than ${DOORKEEPER_SIZE} misses ago is forgotten`);
  cache.offer(d('x'), Buffer.from('x'));
  t.equal(cache.get(d('x'))?.ascii.toString('latin1'), b64(Buffer.from('x')));

  for (const off of [new SeedCache(dir, 0), new SeedCache(undefined, MIB)]) {
    off.offer(d('y'), Buffer.from('y'));
    off.offer(d('y'), Buffer.from('y'));
    t.equal(off.get(d('y')), undefined);
    t.equal(off.size, 0);
  }
  t.notOk(fs.existsSync(path.join(dir, d('y'))), 'nothing written');
});

t.test('a server makes a private directory, and the next start removes those of servers that died', async (t) => {
  const parent = tempDir(t);
  const dir = createSeedCacheDir(parent);
  t.match(path.basename(dir), new RegExp(`^stream-coordinator-seeds-${process.pid}-`), 'named after the process that made it');
  t.equal(fs.statSync(dir).mode & 0o777, 0o700, 'only its user may read it');
  // A pid that cannot be running (above the kernel's pid_max), a running one, someone else's file.
  const dead = path.join(parent, 'stream-coordinator-seeds-99999999-abcdef');
  const running = path.join(parent, `stream-coordinator-seeds-${process.ppid}-abcdef`);
  const other = path.join(parent, 'stream-coordinator-seeds-notapid');
  for (const p of [dead, running, other]) fs.mkdirSync(p);
  fs.writeFileSync(path.join(dead, d('a')), 'x');
  const link = path.join(parent, 'stream-coordinator-seeds-99999998-link');
  fs.symlinkSync(running, link);
  const next = createSeedCacheDir(parent);
  t.notOk(fs.existsSync(dead), "a dead process's directory is removed");
  t.ok(fs.existsSync(running) && fs.existsSync(other) && fs.existsSync(dir), 'those of running processes, and other names, stay');
  t.ok(fs.existsSync(link) && fs.existsSync(running), 'a link is not followed');
  t.not(next, dir, 'two servers in one process get two directories');
  removeSeedCacheDir(dir);
  t.notOk(fs.existsSync(dir), 'removed at stop');
  t.equal(seedCacheParent('/some/where'), '/some/where', 'the configured parent');
  t.equal(seedCacheParent(''), fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'by default tmpfs where there is one');
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  for (const dir of ['/dev/shm', '/proc']) {
    const type = mounts.filter((m) => m[1] === dir).pop()?.[2];
    if (type !== undefined) t.equal(onTmpfs(dir), type === 'tmpfs', `${dir} is ${type}, as statfs tells`);
  }
});

t.test('preflight says where the files go, and fails where the server could not make its directory', async (t) => {
  const parent = tempDir(t);
  const withDir = (dir: string, bytes = 32 * MIB): Settings => ({ core: { seedCacheDir: dir, seedCacheBytes: bytes } }) as unknown as Settings;
  t.match(checkSeedCache(withDir(parent)), { name: 'seed cache', ok: true, detail: new RegExp(`^${parent} \\(not tmpfs: a hit may wait for the disk\\)`) }, 'a disk directory works, with a note');
  t.same(fs.readdirSync(parent), [], 'and is left as it was');
  if (onTmpfs('/dev/shm')) t.match(checkSeedCache(withDir('')), { ok: true, detail: /^\/dev\/shm \(tmpfs\)/ }, 'the default is tmpfs');
  const file = path.join(parent, 'a-file');
  fs.writeFileSync(file, '');
  t.match(checkSeedCache(withDir(file)), { ok: false, detail: /cannot make a directory in/, fix: /core\.seedCacheDir/ }, 'a file is not a directory');
  t.match(checkSeedCache(withDir(file, 0)), { ok: true, detail: 'off (core.seedCacheBytes 0)' }, 'nothing is checked when the cache is off');
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
  const f: CoreFixture = await monitoredCoreFixture({ 'redis.keyPrefix': PREFIX });
  t.teardown(async () => {
    await f.ts.close();
    await stopStack();
  });
  const server = f.ts.server;
  const fileReads = async (fn: () => Promise<void>): Promise<string[]> => {
    const events = await commandsDuring(server.storage.mongo.client, fn);
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
