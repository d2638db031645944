/**
 * The uWS core endpoint under pipelining: a core may send many frame messages without
 * waiting for their acks (acks carry `seq`). Over TLS, the vendored uSockets loses the rest
 * of a read when the server writes from inside the read callback, which used to drop such a
 * core with 1006 once ≈ 800 KB were in flight; replies now leave through the outbox after
 * the callback. Each case sends everything at once and expects every ack, in order, on an
 * open socket, and a checkpoint that commits all of it.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore, type Msg } from './helpers/core-raw';
import { encodeBinary } from '../src/core/messages';
import { stopStack } from './helpers/stack';

let f: CoreFixture;
t.before(async () => {
  // The default transport (uws); the rate limit raised so 2,000 messages in a burst are allowed.
  f = await coreFixture({ 'core.messagesPerSecond': 5000, 'core.memoryBufferBytes': 8 * 1024 * 1024 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const cases = [
  { label: '16 × 64 KiB', count: 16, bytes: 64 * 1024 },
  { label: '2,000 × 1 KiB', count: 2000, bytes: 1024 },
  { label: '4 × 1 MiB', count: 4, bytes: 1024 * 1024 },
];

for (const c of cases) {
  t.test(`${c.label} frames sent at once are all acknowledged over TLS`, async (t) => {
    const target = await f.target();
    const stream = await f.stream(target);
    const core = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, donorToken: f.donor, ca: f.ts.ca });
    t.teardown(() => core.close());
    t.match(await core.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream });

    const payload = crypto.randomBytes(c.bytes);
    const ids: number[] = [];
    for (let seq = 1; seq <= c.count; seq++) {
      ids.push(core.id());
      core.send(encodeBinary({ type: 'frame', id: ids[seq - 1], seq, frames: 1 }, [{ name: 'frames.xtc', bytes: payload }]));
    }
    const acks: Msg[] = [];
    for (let i = 0; i < c.count; i++) acks.push(await core.next((m) => m.type === 'ack' || m.type === 'error', 15000));
    t.equal(acks.filter((m) => m.type === 'ack').length, c.count, 'every frame acknowledged');
    t.same(
      acks.map((m) => [m.id, m.seq]),
      ids.map((id, i) => [id, i + 1]),
      'in order, each with its request id',
    );
    t.ok(core.isOpen, 'the socket is still open');

    t.match(await core.checkpoint(c.count + 1), { type: 'committed', seq: c.count + 1, frames: c.count });
    const meta = await f.api<{ frames: number }>('GET', `/v1/streams/${stream}`, f.manager);
    t.equal(meta.frames, c.count, 'every frame committed');
  });
}
