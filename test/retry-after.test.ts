/**
 * Retry-after lives in the error catalog (ErrorSpec.retryAfterS) and HTTP renders it as
 * Retry-After: on a refused core upgrade (server_busy, with server.busyRetryAfterS) over
 * both transports, and on an admin request that meets unreachable storage (unavailable).
 */
import net from 'node:net';
import t from 'tap';
import { ERRORS } from '../src/errors';
import { coreFixture } from './helpers/core';
import { RawCore, tryUpgrade } from './helpers/core-raw';
import { request, startTestServer } from './helpers/server';
import { stopStack } from '../test-support/stack';

t.teardown(stopStack);

for (const transport of ['uws', 'node'] as const) {
  t.test(`server_busy over ${transport}: 503 with Retry-After from server.busyRetryAfterS`, async (t) => {
    const f = await coreFixture({ 'server.transport': transport, 'server.maxConnections': 1, 'server.busyRetryAfterS': 7, 'redis.keyPrefix': `ra-${transport}:` });
    t.teardown(() => f.ts.close());
    const first = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
    t.teardown(() => first.close());
    const r = await tryUpgrade(f.wsUrl, { authorization: `Bearer ${f.engineKey}`, 'sec-websocket-protocol': 'coordinator.core.v1' }, f.ts.ca);
    t.equal(r.opened, false, 'no upgrade');
    t.equal(r.status, 503);
    t.equal(r.headers?.['retry-after'], '7', 'the configured value, not the catalog default');
    t.match(JSON.parse(r.body ?? '{}'), { error: { code: 'server_busy', message: String } });
  });
}

t.test('an admin request meeting a hung Redis: 503 unavailable with the catalog Retry-After', async (t) => {
  // A TCP listener that accepts and never answers, like a wedged Redis.
  const silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => silent.close());
  const port = (silent.address() as net.AddressInfo).port;
  const s = await startTestServer({ 'redis.url': `redis://127.0.0.1:${port}`, 'redis.commandTimeoutMs': 1000 });
  t.teardown(() => s.close());
  // Public and Redis-backed: no token lookup stands in front of the Redis read.
  const res = await request(`${s.url}/v1/active-cores`, { ca: s.ca });
  t.equal(res.status, 503);
  t.match(res.json(), { error: { code: 'unavailable', message: String } });
  t.equal(res.headers['retry-after'], String(ERRORS.unavailable.retryAfterS));
  t.equal(ERRORS.unavailable.retryAfterS, 5, 'the documented 5 s');
});
