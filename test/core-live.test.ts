/**
 * The live view of active streams (GET /v1/active-streams) follows a session: the record
 * appears at assignment, its buffered and committed counts are refreshed with the batched
 * lease renewal when they change, and it goes when the core stops.
 */
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { eventually } from './helpers/server';
import { stopStack } from './helpers/stack';

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'core.leaseRenewS': 1 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

interface Active {
  stream_id: string;
  buffered_frames: number;
  frames: number;
}

const record = async (target: string, stream: string): Promise<Active | undefined> => {
  const r = await f.api<{ targets: Record<string, Active[]> }>('GET', '/v1/active-streams', f.manager);
  return r.targets[target]?.find((a) => a.stream_id === stream);
};

t.test('buffered and committed counts reach the live view with the next renewal', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const core = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, donorToken: f.donor, ca: f.ts.ca });
  t.teardown(() => core.close());
  t.match(await core.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream });
  t.match(await record(target, stream), { buffered_frames: 0, frames: 0 }, 'recorded at assignment');

  t.match(await core.frame(1, { frames: 3 }), { type: 'ack', buffered_frames: 3 });
  t.ok(await eventually(async () => (await record(target, stream))?.buffered_frames === 3, 5000, 'buffered_frames 3'), 'buffered frames refreshed');

  t.match(await core.checkpoint(2), { type: 'committed', frames: 3 });
  t.match(await eventually(async () => {
    const a = await record(target, stream);
    return a?.frames === 3 && a.buffered_frames === 0 ? a : undefined;
  }, 5000, 'frames 3, buffered 0'), { frames: 3, buffered_frames: 0 }, 'commit recorded');

  t.match(await core.request({ type: 'stop' }), { type: 'stopped' });
  t.ok(await eventually(async () => (await record(target, stream)) === undefined, 5000, 'record removed'), 'gone after stop');
});
