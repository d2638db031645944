import crypto from 'node:crypto';
import t from 'tap';
import { CoreError } from '../src/client';
import { coreFixture, type CoreFixture } from './helpers/core';
import { request } from './helpers/server';
import { stopStack } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'http.activeStreamsCacheMs': 1 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

t.test('full lifecycle: assign, frames, checkpoints, download byte-identical, stop, donor credit', async (t) => {
  const target = await f.target({ options: { steps_per_frame: 50 } });
  const seed = crypto.randomBytes(3000);
  const stream = await f.stream(target, seed);
  const c = await f.client();
  t.teardown(() => c.close());
  t.equal(c.welcome?.protocol, 1);
  t.ok(c.welcome?.limits.max_message_bytes);

  const a = await c.assign();
  t.equal(a.streamId, stream);
  t.equal(a.targetId, target);
  t.equal(a.frames, 0);
  t.same(a.options, { steps_per_frame: 50 });
  t.same(a.files['state.xml'], seed, 'seed files in the assignment');

  const sent: Buffer[] = [];
  let committed = 0;
  for (let cp = 0; cp < 3; cp++) {
    for (let i = 0; i < 4; i++) {
      const chunk = crypto.randomBytes(1000 + i * 10);
      sent.push(chunk);
      const ack = await c.sendFrames([{ name: 'frames.xtc', data: chunk }], 2);
      t.equal(ack.bufferedFrames, (i + 1) * 2);
    }
    const state = Buffer.from(`checkpoint ${cp}`);
    const res = await c.checkpoint([{ name: 'state.xml', data: state }]);
    committed += 8;
    t.equal(res.frames, committed);
    t.equal(res.partition, committed);
  }

  const parts = await f.api<{ partitions: number[]; frame_files: string[]; checkpoint_files: string[] }>('GET', `/v1/streams/${stream}/partitions`, f.manager);
  t.same(parts.partitions, [8, 16, 24]);
  t.same(parts.frame_files, ['frames.xtc']);
  t.same(parts.checkpoint_files, ['state.xml']);
  const dl = await request(`${f.ts.url}/v1/streams/${stream}/frames/frames.xtc`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } });
  t.equal(dl.status, 200);
  t.ok(dl.body.equals(Buffer.concat(sent)), 'downloaded frame file is byte-identical across partitions');
  t.equal(dl.headers['content-length'], String(Buffer.concat(sent).length));
  const cpFile = await request(`${f.ts.url}/v1/streams/${stream}/partitions/16/checkpoint/state.xml`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } });
  t.equal(cpFile.body.toString(), 'checkpoint 1');

  const active = await f.api<{ targets: Record<string, Array<{ stream_id: string; frames: number }>> }>('GET', '/v1/active-streams', f.manager);
  t.equal(active.targets[target]?.[0]?.stream_id, stream);
  const s1 = await f.api<{ active: boolean; engine: string }>('GET', `/v1/streams/${stream}`, f.manager);
  t.match(s1, { active: true, engine: 'openmm' });
  const cores = await f.api<{ engines: Record<string, number> }>('GET', '/v1/active-cores', undefined);
  t.ok(cores.engines.openmm === undefined || cores.engines.openmm >= 0, 'active cores answers');

  const empty = await c.checkpoint([{ name: 'state.xml', data: Buffer.from('x') }]);
  t.equal(empty.frames, 24, 'a checkpoint with nothing buffered changes nothing');
  t.same((await f.api<{ partitions: number[] }>('GET', `/v1/streams/${stream}/partitions`, f.manager)).partitions, [8, 16, 24]);

  await c.stop();
  const s2 = await f.api<{ active: boolean; frames: number }>('GET', `/v1/streams/${stream}`, f.manager);
  t.match(s2, { active: false, frames: 24 });

  // The next assignment gets the checkpoint files overlaid on the seed.
  const again = await c.assign(target);
  t.equal(again.streamId, stream);
  t.equal(again.frames, 24);
  t.equal(again.files['state.xml']?.toString(), 'checkpoint 2', 'latest checkpoint wins over the seed');
  await c.stop();

  const donorName = (await f.api<{ name: string }>('GET', '/v1/me', f.donor)).name;
  const d = await f.api<{ frames: number; core_seconds: number; targets: Array<{ target_id: string; frames: number }> }>('GET', `/v1/donors/${donorName}`, undefined);
  t.equal(d.frames, 24, 'donor credited with committed frames');
  t.same(d.targets.map((x) => [x.target_id, x.frames]), [[target, 24]]);
  const fragments = await f.ts.server.storage.mongo.db.collection('fragments').find({ donor: donorName }).toArray();
  t.equal(fragments.reduce((n, x) => n + (x.frames as number), 0), d.frames, 'donor total = sum of fragments');
});

t.test('upgrade refusals: 401 with a JSON body, no upgrade', async (t) => {
  const { CoreClient } = await import('../src/client');
  const bad = new CoreClient({ url: f.wsUrl, engineKey: 'nope', ca: f.ts.ca, reconnect: false });
  await t.rejects(bad.connect(), { code: 'unauthorized', message: /Unknown or revoked engine key/ });
  const badDonor = new CoreClient({ url: f.wsUrl, engineKey: f.engineKey, donorToken: 'nope', ca: f.ts.ca, reconnect: false });
  await t.rejects(badDonor.connect(), { code: 'unauthorized', message: /donor/ });
  const none = await request(`${f.ts.url}/core/v1`, { ca: f.ts.ca, headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } });
  t.equal(none.status, 401);
  t.match(none.json(), { error: { code: 'unauthorized' } });
});

t.test('no streams: no_streams_available with retry_after_s', async (t) => {
  const c = await f.client();
  t.teardown(() => c.close());
  const other = await f.target({ engines: ['gromacs'] });
  void other;
  try {
    // Every public openmm stream of earlier tests is idle, so name a target with no ready stream.
    const empty = await f.target();
    await c.assign(empty);
    t.fail('expected an error');
  } catch (err) {
    t.ok(err instanceof CoreError);
    t.equal((err as CoreError).code, 'no_streams_available');
    t.ok(((err as CoreError).retryAfterS ?? 0) > 0);
  }
  await t.rejects(c.assign(other), { code: 'engine_not_allowed' });
  await t.rejects(c.assign('AAAAAAAAAAAAAAAAAAAAAA'), { code: 'target_not_found' });
  await c.ping();
  t.pass('socket still usable');
});

t.test('cores assigned at once each receive their own stream\'s seed files, large ones too', async (t) => {
  // The uWS transport encodes assignments into one buffer it reuses (src/transport/uws-core.ts);
  // messages written in the same flush must not share bytes. One seed is over that buffer's 1 MiB.
  const target = await f.target({ stage: 'private' });
  const seeds = new Map<string, Buffer>();
  for (const bytes of [150_000, 200_000, 210_000, 260_000, 300_000, 1_300_000, 5, 180_000]) {
    const seed = crypto.randomBytes(bytes);
    seeds.set(await f.stream(target, seed), seed);
  }
  const cores = await Promise.all([...seeds.keys()].map(() => f.client()));
  t.teardown(() => Promise.all(cores.map((c) => c.close())));
  const got = await Promise.all(cores.map((c) => c.assign(target)));
  t.same(new Set(got.map((a) => a.streamId)), new Set(seeds.keys()), 'every stream assigned once');
  for (const a of got) t.ok(Buffer.from(a.files['state.xml']!).equals(seeds.get(a.streamId)!), `${a.streamId}: its own ${seeds.get(a.streamId)!.length} bytes`);
  await Promise.all(cores.map((c) => c.stop()));
});
