/**
 * PROTOCOL §2 "Ordering and replays": `seq` counts the frame and checkpoint messages of one
 * assignment from 1; an already acknowledged seq is acknowledged again with no effect; a
 * seq that skips ahead is out_of_order and changes nothing.
 */
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { request } from './helpers/server';
import { stopStack } from '../test-support/stack';

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture();
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const raw = (): Promise<RawCore> => RawCore.connect(f.wsUrl, { engineKey: f.engineKey, donorToken: f.donor, ca: f.ts.ca });

const partitions = async (stream: string): Promise<number[]> => (await f.api<{ partitions: number[] }>('GET', `/v1/streams/${stream}/partitions`, f.manager)).partitions;
const framesOf = async (stream: string): Promise<number> => (await f.api<{ frames: number }>('GET', `/v1/streams/${stream}`, f.manager)).frames;
const frameFile = async (stream: string): Promise<string> => {
  const r = await request(`${f.ts.url}/v1/streams/${stream}/frames/frames.xtc`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } });
  return r.body.toString();
};
const bytes = (s: string): Array<{ name: string; bytes: Buffer }> => [{ name: 'frames.xtc', bytes: Buffer.from(s) }];

t.test('replays of acknowledged frames and checkpoints are no-ops', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await raw();
  t.teardown(() => c.close());
  t.match(await c.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream, frames: 0 });

  t.match(await c.frame(1, { frames: 2, files: bytes('a') }), { type: 'ack', seq: 1, buffered_frames: 2 });
  t.match(await c.frame(2, { frames: 3, files: bytes('b') }), { type: 'ack', seq: 2, buffered_frames: 5 });
  // The reply to seq 2 was "lost": the core sends it again, then seq 1 for good measure.
  const again = await c.frame(2, { frames: 3, files: bytes('b') });
  t.same(again, { type: 'ack', id: c.lastId, seq: 2, buffered_frames: 5 }, 'a replayed frame is acked again, buffered_frames unchanged');
  t.match(await c.frame(1, { frames: 2, files: bytes('a') }), { type: 'ack', seq: 1, buffered_frames: 5 }, 'an older replay too');

  const cp = await c.checkpoint(3);
  t.same(cp, { type: 'committed', id: c.lastId, seq: 3, frames: 5, partition: 5 });
  t.same(await partitions(stream), [5]);
  t.equal(await frameFile(stream), 'ab', 'each frame payload stored once');

  // The committed reply was "lost": replaying the checkpoint commits nothing new.
  const cpAgain = await c.checkpoint(3, [{ name: 'state.xml', bytes: Buffer.from('a different state') }]);
  t.same(cpAgain, { type: 'committed', id: c.lastId, seq: 3, frames: 5, partition: 5 }, 'same frames and partition as the first reply');
  t.same(await partitions(stream), [5], 'no new partition');
  t.equal(await framesOf(stream), 5);

  // With frames buffered after it, a replayed checkpoint still commits nothing.
  t.match(await c.frame(4, { frames: 1, files: bytes('c') }), { type: 'ack', seq: 4, buffered_frames: 1 });
  t.match(await c.checkpoint(3), { type: 'committed', seq: 3, frames: 5, partition: 5 }, 'replayed checkpoint with frames buffered');
  t.same(await partitions(stream), [5], 'the buffered frame was not committed by the replay');
  t.match(await c.frame(4, { frames: 1, files: bytes('c') }), { type: 'ack', seq: 4, buffered_frames: 1 }, 'buffer unchanged by the replays');
  t.match(await c.frame(1, { frames: 2, files: bytes('a') }), { type: 'ack', seq: 1, buffered_frames: 1 }, 'a pre-checkpoint frame replay does not re-buffer');

  t.match(await c.checkpoint(5), { type: 'committed', seq: 5, frames: 6, partition: 6 });
  t.same(await partitions(stream), [5, 6]);
  t.equal(await frameFile(stream), 'abc');
  t.match(await c.checkpoint(5), { type: 'committed', seq: 5, frames: 6, partition: 6 }, 'latest checkpoint replayed');
  // An older checkpoint replayed after a newer one: no effect either (the reply reports the stream as it is now).
  const old = await c.checkpoint(3);
  t.match(old, { type: 'committed', seq: 3 });
  t.same(await partitions(stream), [5, 6], 'no effect');
  t.equal(await framesOf(stream), 6);
  await c.request({ type: 'stop' });
});

t.test('a skipped seq is out_of_order and does not advance', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await raw();
  t.teardown(() => c.close());
  await c.request({ type: 'assign', target_id: target });

  t.match(await c.frame(2, { files: bytes('x') }), { type: 'error', code: 'out_of_order', id: c.lastId, message: /Expected seq 1, got 2/ });
  t.match(await c.checkpoint(2), { type: 'error', code: 'out_of_order', id: c.lastId });
  t.match(await c.frame(1, { files: bytes('a') }), { type: 'ack', seq: 1, buffered_frames: 1 }, 'seq 1 is still the next one');
  t.match(await c.frame(3, { files: bytes('x') }), { type: 'error', code: 'out_of_order', message: /Expected seq 2, got 3/ });
  t.match(await c.frame(1000, { files: bytes('x') }), { type: 'error', code: 'out_of_order' });
  t.match(await c.checkpoint(4), { type: 'error', code: 'out_of_order', message: /Expected seq 2, got 4/ }, 'a skipping checkpoint is refused…');
  t.same(await partitions(stream), [], '…and commits nothing');
  t.match(await c.frame(2, { files: bytes('b') }), { type: 'ack', seq: 2, buffered_frames: 2 }, 'the refused messages were not buffered');
  t.match(await c.checkpoint(3), { type: 'committed', seq: 3, frames: 2 });
  t.equal(await frameFile(stream), 'ab');
  t.match(await c.frame(5, { files: bytes('x') }), { type: 'error', code: 'out_of_order', message: /Expected seq 4, got 5/ }, 'a checkpoint counts as a seq');
  await c.request({ type: 'stop' });
});

t.test('seq restarts at 1 for every assignment', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await raw();
  t.teardown(() => c.close());
  await c.request({ type: 'assign', target_id: target });
  t.match(await c.frame(1, { files: bytes('a') }), { type: 'ack', seq: 1, buffered_frames: 1 });
  t.match(await c.frame(2, { files: bytes('b') }), { type: 'ack', seq: 2, buffered_frames: 2 });
  t.match(await c.checkpoint(3), { type: 'committed', frames: 2 });
  t.match(await c.request({ type: 'stop' }), { type: 'stopped' });

  // The same stream again, on the same socket.
  t.match(await c.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream, frames: 2 });
  t.match(await c.frame(4, { files: bytes('x') }), { type: 'error', code: 'out_of_order', message: /Expected seq 1, got 4/ }, 'the old count does not carry over');
  const first = await c.frame(1, { frames: 3, files: bytes('c') });
  t.match(first, { type: 'ack', seq: 1, buffered_frames: 3 }, 'seq 1 is new work, not a replay');
  t.match(await c.checkpoint(2), { type: 'committed', seq: 2, frames: 5, partition: 5 });
  t.same(await partitions(stream), [2, 5]);
  t.equal(await frameFile(stream), 'abc');
  t.match(await c.request({ type: 'stop' }), { type: 'stopped' });

  // And on another socket.
  const d = await raw();
  t.teardown(() => d.close());
  t.match(await d.request({ type: 'assign', target_id: target }), { type: 'assignment', stream_id: stream, frames: 5 });
  t.match(await d.frame(1, { files: bytes('d') }), { type: 'ack', seq: 1, buffered_frames: 1 });
  t.match(await d.checkpoint(2), { type: 'committed', frames: 6 });
  await d.request({ type: 'stop' });
});
