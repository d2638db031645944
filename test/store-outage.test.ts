/**
 * One decision whether an error is a storage outage (store/outage.ts), fed with the errors
 * the real drivers raise against a port where nothing listens.
 */
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import t from 'tap';
import { ERRORS, toAppError } from '../src/errors';
import { isStorageOutage, outageBackend, withTimeout } from '../src/store/outage';
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

t.test("a network error the MongoDB driver lets through unwrapped is MongoDB's outage", async (t) => {
  // As seen when MongoDB died mid-commit: Node's writeAfterFIN error, thrown from the driver.
  const raw = Object.assign(new Error('This socket has been ended by the other party'), {
    code: 'EPIPE',
    stack: 'Error: This socket has been ended by the other party\n    at TLSSocket.writeAfterFIN [as write] (node:net:566:14)\n    at Connection.writeCommand (/srv/app/node_modules/mongodb/lib/cmap/connection.js:350:27)',
  });
  t.equal(outageBackend(raw), 'mongodb');
  t.equal(toAppError(raw).code, 'unavailable', 'answered unavailable (with its retry delay), not internal');
  const ours = Object.assign(new Error('This socket has been ended by the other party'), { code: 'EPIPE', stack: 'Error: x\n    at Socket.write (node:net:566:14)\n    at reply (/srv/app/dist/src/http/exchange.js:10:3)' });
  t.notOk(isStorageOutage(ours), 'the same error from anything else is not a store outage');
});

t.test('anything else is not an outage', async (t) => {
  t.notOk(isStorageOutage(new Error('boom')));
  t.notOk(isStorageOutage('Connection is closed'), 'only Error objects');
  t.equal(toAppError(new TypeError('x is undefined')).code, 'internal');
});
