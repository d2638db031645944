/**
 * Engine-key revocation (issue 12 §1): a lookup racing a revocation is not cached, a failed
 * announcement answers 503 `unavailable` instead of 204 (and a retry still closes the
 * sockets), and a revocation whose bus message never arrived still closes the key's sockets
 * within `auth.cacheTtlS` (the sweep). The cross-worker "within 1 s" case is in
 * core-stops.test.ts ("across two worker processes").
 */
import { once } from 'node:events';
import Redis from 'ioredis';
import t from 'tap';
import { EngineKeys } from '../src/auth/engine-keys';
import { hashToken } from '../src/auth/tokens';
import { Bus } from '../src/store/bus';
import { coreFixture, type CoreFixture } from './helpers/core';
import { eventually, memoryLogger } from './helpers/server';
import { getStack, stopStack } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  // A short command timeout so a paused Redis fails the announcement quickly; a 1 s sweep.
  f = await coreFixture({ 'redis.commandTimeoutMs': 400, 'auth.cacheTtlS': 1 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const newKey = (description: string): Promise<{ id: string; key: string }> => f.api('POST', '/v1/engine-keys', f.admin, { engine: 'openmm', description }, 201);

t.test('a lookup that raced a revocation is not cached', async (t) => {
  const storage = f.ts.server.storage;
  const bus = new Bus(storage.redis, 'race:', memoryLogger().log);
  t.teardown(() => bus.close());
  // The lookup's read of MongoDB (the real one) answers before the revocation, and its answer is
  // held back until the revocation has reached this process: the race, every time.
  let readDone!: () => void;
  const read = new Promise<void>((r) => (readDone = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const db = storage.mongo.db;
  const heldDb = new Proxy(db, {
    get: (target, prop) =>
      prop === 'collection'
        ? (name: string) => {
            const c = target.collection(name);
            return new Proxy(c, {
              get: (ct, p) =>
                p === 'findOne'
                  ? async (...args: Parameters<typeof c.findOne>) => {
                      const doc = await ct.findOne(...args);
                      readDone();
                      await gate;
                      return doc;
                    }
                  : (Reflect.get(ct, p) as unknown),
            });
          }
        : (Reflect.get(target, prop) as unknown),
  });
  const keys = new EngineKeys(heldDb, bus, 60_000, 100);
  const revocations = (): number => (keys as unknown as { keys: { generation: number } }).keys.generation;
  const k = await newKey('race');
  const pending = keys.lookup(hashToken(k.key));
  await read;
  await db.collection('engine_keys').updateOne({ _id: k.id as never }, { $set: { revokedAt: new Date() } });
  const before = revocations();
  await bus.publish('engine-key.revoked', { keyId: k.id });
  await eventually(async () => revocations() > before, 5000, 'the revocation reached the key cache');
  release();
  t.match(await pending, { keyId: k.id }, 'the racing lookup itself saw the key as valid');
  t.equal(await keys.lookup(hashToken(k.key)), null, 'but its answer was not cached: the next lookup reads MongoDB again and finds it revoked');
});

t.test('a revocation that cannot be announced answers 503 unavailable; the retry closes the sockets', async (t) => {
  const stack = await getStack();
  const admin = new Redis(stack.redis.url);
  t.teardown(() => admin.disconnect());
  const k = await newKey('paused');
  const c = await f.client({ engineKey: k.key, reconnect: false });
  const closed = once(c, 'disconnect') as Promise<[{ code: number; reason: string }]>;
  // Every Redis write (PUBLISH included) now waits longer than the server's command timeout.
  await admin.call('CLIENT', 'PAUSE', '3000', 'WRITE');
  const res = await f.api<{ error: { code: string } }>('DELETE', `/v1/engine-keys/${k.id}`, f.admin, undefined, 503);
  t.equal(res.error.code, 'unavailable', 'not 204: the admin must not believe it is done');
  await admin.call('CLIENT', 'UNPAUSE');
  const started = Date.now();
  await f.api('DELETE', `/v1/engine-keys/${k.id}`, f.admin, undefined, 204);
  const [d] = await closed;
  t.equal(d.code, 1008, 'closed with 1008');
  t.match(d.reason, /revoked/);
  t.ok(Date.now() - started < 5000, 'the socket is gone once the retry succeeded');
});

t.test('a revocation whose bus message was lost still closes the sockets (sweep every auth.cacheTtlS)', async (t) => {
  const k = await newKey('lost message');
  const c = await f.client({ engineKey: k.key, reconnect: false });
  const bystander = await f.client({ reconnect: false });
  t.teardown(() => bystander.close());
  const closed = once(c, 'disconnect') as Promise<[{ code: number; reason: string }]>;
  // Revoked in MongoDB only, as if Redis had dropped the announcement.
  await f.ts.server.storage.mongo.db.collection('engine_keys').updateOne({ _id: k.id as never }, { $set: { revokedAt: new Date() } });
  const started = Date.now();
  const [d] = await closed;
  const ms = Date.now() - started;
  t.equal(d.code, 1008);
  t.ok(ms < 4000, `closed by the sweep within a few seconds (${ms} ms; sweep every 1 s)`);
  await bystander.ping();
  t.pass('the other key is untouched');
});
