/**
 * One decision whether an error is a storage outage (store/outage.ts), fed with the errors
 * the real drivers raise against a port where nothing listens.
 */
import { Redis } from 'ioredis';
import { MongoClient, MongoServerError } from 'mongodb';
import t from 'tap';
import { ERRORS, toAppError } from '../src/errors';
import { fromMongo, isStorageOutage, outageBackend, withTimeout } from '../src/store/outage';
import { errorReply } from '../src/http/router';
import { freePort } from '../src/provision/exec';

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

t.test('MongoDB unreachable', async (t) => {
  const port = await freePort();
  const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, { serverSelectionTimeoutMS: 300 });
  const err = await caught(client.db('x').command({ ping: 1 }));
  await client.close();
  t.equal(outageBackend(err), 'mongodb', (err as Error).name);
  const e = toAppError(err);
  t.equal(e.code, 'unavailable');
  t.equal(e.retryAfterS, ERRORS.unavailable.retryAfterS, "the catalog's retry delay (rendered as Retry-After, or retry_after_s to a core)");
  t.equal(errorReply(e).headers?.['retry-after'], String(ERRORS.unavailable.retryAfterS), 'Retry-After from the catalog');
});

t.test('Redis unreachable', async (t) => {
  const port = await freePort();
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  const err = await caught(redis.get('k'));
  redis.disconnect();
  t.equal(outageBackend(err), 'redis', (err as Error).message);
  t.equal(toAppError(err).code, 'unavailable');
});

t.test('our own deadlines name their store', async (t) => {
  const never = new Promise<never>(() => undefined);
  t.equal(outageBackend(await caught(withTimeout(never, 10, 'redis'))), 'redis');
  t.equal(outageBackend(await caught(withTimeout(never, 10, 'mongodb', 'a Redis-named MongoDB call'))), 'mongodb', 'by its type, not its text');
  t.notOk(isStorageOutage(new Error('the job did not answer within 10 ms')), 'a message that only looks like a deadline is not one');
});

t.test("a raw network error from a call that talks to MongoDB alone is MongoDB's outage", async (t) => {
  // What the driver lets through when a large write waits for the socket to drain and the
  // connection is reset (test/commit-lost-reply.test.ts makes it happen for real).
  const raw = (): Error => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  t.notOk(isStorageOutage(raw()), 'on its own it names no store');
  const err = await caught(fromMongo(Promise.reject(raw())));
  t.equal(outageBackend(err), 'mongodb');
  t.equal(toAppError(err).code, 'unavailable', 'answered unavailable (with its retry delay), not internal');
  const bug = new TypeError('x is undefined');
  t.equal(await caught(fromMongo(Promise.reject(bug))), bug, 'anything else passes through');
});

t.test("MongoDB's MaxTimeMSExpired is its outage; its other server errors are not", async (t) => {
  // store-max-time.test.ts gets the real one from the store.
  t.equal(toAppError(new MongoServerError({ code: 50, errmsg: 'operation exceeded time limit' })).code, 'unavailable');
  t.notOk(isStorageOutage(new MongoServerError({ code: 11000, errmsg: 'E11000 duplicate key error' })), 'a duplicate key');
});

t.test('anything else is not an outage', async (t) => {
  t.notOk(isStorageOutage(new Error('boom')));
  t.notOk(isStorageOutage('Connection is closed'), 'only Error objects');
  t.equal(toAppError(new TypeError('x is undefined')).code, 'internal');
});
