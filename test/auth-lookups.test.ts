/**
 * Credential lookups under concurrency: connections presenting the same credential while its
 * lookup runs share that one store query (an engine key is shared by thousands of cores, and
 * its cache entry expires for all of them at once), and the failures an address can owe are
 * bounded.
 */
import t from 'tap';
import { FailedAuth } from '../src/auth/failed-auth';
import { AppError } from '../src/errors';
import { commandsDuring, useCoreFixture } from './helpers/core';
import { tryUpgrade } from './helpers/core-raw';
import { request } from './helpers/server';

const fixture = useCoreFixture({ 'auth.failuresPerMinute': 1000 }, { monitored: true });

/** `find` commands on `collection` among the driver's events. */
const finds = (events: Array<{ commandName: string; command: Record<string, unknown> }>, collection: string): number =>
  events.filter((e) => e.commandName === 'find' && e.command.find === collection).length;

t.test('30 upgrades at once with an engine key this server has not looked up: one lookup', async (t) => {
  const f = fixture();
  const { key } = await f.api<{ key: string }>('POST', '/v1/engine-keys', f.admin, { engine: 'openmm', description: 'shared' }, 201);
  let opened = 0;
  const events = await commandsDuring(f.ts.server.storage.mongo.client, async () => {
    const results = await Promise.all(Array.from({ length: 30 }, () => tryUpgrade(f.wsUrl, { authorization: `Bearer ${key}` }, f.ts.ca)));
    opened = results.filter((r) => r.opened).length;
  });
  t.equal(opened, 30, 'every upgrade opened');
  t.equal(finds(events, 'engine_keys'), 1, 'one engine-key lookup');
});

t.test('30 requests at once with a token this server has not looked up: one lookup', async (t) => {
  const f = fixture();
  const { token } = await f.api<{ token: string }>('POST', '/v1/users', f.admin, { name: `shared-${Date.now()}`, role: 'manager' }, 201);
  let ok = 0;
  const events = await commandsDuring(f.ts.server.storage.mongo.client, async () => {
    const results = await Promise.all(Array.from({ length: 30 }, () => request(`${f.ts.url}/v1/me`, { ca: f.ts.ca, headers: { authorization: `Bearer ${token}` } })));
    ok = results.filter((r) => r.status === 200).length;
  });
  t.equal(ok, 30, 'every request served');
  t.equal(finds(events, 'users'), 1, 'one user lookup');
});

t.test('an address owes at most a minute of failures', async (t) => {
  const auth = new FailedAuth(30, 1000);
  for (let i = 0; i < 500; i++) auth.fail('10.0.0.2');
  const err = (() => {
    try {
      auth.check('10.0.0.2');
    } catch (e) {
      return e as AppError;
    }
    return undefined;
  })();
  t.equal(err?.code, 'rate_limited');
  const retry = Number(err?.retryAfterS);
  t.ok(retry > 60 && retry <= 63, `refused for ${retry} s after 500 failures at 30 a minute, not ${Math.ceil(500 / 0.5)} s`);
});
