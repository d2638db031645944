/**
 * A Redis outage while the server runs (docs/protocol.md "Leases, resume and failures"):
 * the server's own Redis (no persistence) is killed with SIGKILL under a working core, then
 * started again empty on the same port. Meanwhile the process stays up, `/readyz` names
 * Redis, a new assignment is refused `unavailable`, and the working core's checkpoints still
 * commit (the commit point is MongoDB's alone).
 * Once Redis is back without its data, the first renewal finds the lease gone and stops
 * the core with `lease_lost`; the ready queues are rebuilt from MongoDB, and the core's
 * next `assign` gets the same stream with every frame it committed.
 */
import { once } from 'node:events';
import t from 'tap';
import type { RunningService } from '../src/provision/exec';
import { freePort } from '../src/provision/exec';
import { startRedis } from '../src/provision/redis';
import { remoteCoreFixture } from '../test-support/core-fixture';
import { stopStack } from '../test-support/stack';
import { tempDir } from '../test-support/temp';
import { eventually, request, startTestServer } from './helpers/server';
import { committedOnce } from './helpers/core';

t.teardown(stopStack);

const frames = (s: string): Array<{ name: string; data: Buffer }> => [{ name: 'frames.xtc', data: Buffer.from(s) }];

t.test('Redis killed and started again empty under a working core', async (t) => {
  const dir = tempDir('sc-redis-outage-');
  const port = await freePort();
  let redis: RunningService = await startRedis({ dir, port });
  const ts = await startTestServer({ 'redis.url': redis.url, 'health.timeoutMs': 700, 'core.leaseRenewS': 1, 'core.leaseTtlS': 5 });
  t.teardown(async () => {
    await ts.close();
    await redis.stop();
  });
  const f = await remoteCoreFixture(ts.url, ts.ca, ts.server.storage.mongo.client.db(ts.settings.mongodb.database));
  const { core, stream, target } = await committedOnce(t, f);

  process.kill(redis.pid, 'SIGKILL');
  await redis.stop();
  const ready = await eventually(async () => {
    const r = await request(`${ts.url}/readyz`, { ca: ts.ca });
    return r.status === 503 ? r : undefined;
  }, 15000, 'readyz 503 while Redis is down');
  t.match(ready.json(), { status: 'unavailable', checks: { mongodb: 'ok', redis: /.+/ } });

  const other = await f.client({ reconnect: false });
  t.teardown(() => other.close());
  await t.rejects(other.assign(target), { code: 'unavailable' }, 'a new assignment needs the ready queues: refused for now');

  await core.sendFrames(frames('b'));
  t.match(await core.checkpoint([{ name: 'state.xml', data: Buffer.from('at 2') }]), { frames: 2, partition: 2 }, 'a held stream commits without Redis');

  const stopped = once(core, 'stop') as Promise<[{ reason: string }]>;
  redis = await startRedis({ dir, port });
  const [stop] = await stopped;
  t.equal(stop.reason, 'lease_lost', 'the lease went with Redis: the core is told at the next renewal');
  await eventually(async () => (await request(`${ts.url}/readyz`, { ca: ts.ca })).status === 200, 15000, 'readyz 200');

  const again = await eventually(() => core.assign(target), 30000, 'the stream back in the ready queue');
  t.equal(again.streamId, stream, 'the same stream');
  t.equal(again.frames, 2, 'with every frame committed, also during the outage');
  t.equal(again.files['state.xml']?.toString(), 'at 2', "and the last checkpoint's files");
  await core.stop();
});
