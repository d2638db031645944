/**
 * PROTOCOL §2 "Resume": a dropped socket's uncommitted frames are discarded and its stream
 * stays leased for resume_grace_s; a core that reconnects within it gets the same stream
 * (committed frames and files, seq from 1). After the grace period the token is dead and
 * the stream returns to the pool (the sweeper runs every storage.poolSweepS).
 */
import { once } from 'node:events';
import t from 'tap';
import { CoreError, type Assignment } from '../src/client';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore } from './helpers/core-raw';
import { FileStore } from '../src/store/files';
import { commitPartition, writePartition } from '../src/store/partitions';
import { Leases, decodeManifest } from '../src/store/leases';
import { eventually, request } from './helpers/server';
import { stopStack } from '../test-support/stack';

const GRACE_S = 2;

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'core.resumeGraceS': GRACE_S });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const partitions = async (stream: string): Promise<number[]> => (await f.api<{ partitions: number[] }>('GET', `/v1/streams/${stream}/partitions`, f.manager)).partitions;
const frameFile = async (stream: string): Promise<string> =>
  (await request(`${f.ts.url}/v1/streams/${stream}/frames/frames.xtc`, { ca: f.ts.ca, headers: { authorization: `Bearer ${f.manager}` } })).body.toString();
const data = (s: string): Array<{ name: string; data: Buffer }> => [{ name: 'frames.xtc', data: Buffer.from(s) }];

t.test('a dropped core reconnects and resumes its stream from the last checkpoint', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target, Buffer.from('seed'));
  const c = await f.client();
  t.teardown(() => c.close());
  const a = await c.assign(target);
  t.equal(a.streamId, stream);
  for (const s of ['a', 'b', 'c']) await c.sendFrames(data(s));
  t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('state at 3') }]), { frames: 3, partition: 3 });
  t.match(await c.sendFrames(data('lost1'), 2), { seq: 5, bufferedFrames: 2 });
  t.match(await c.sendFrames(data('lost2')), { seq: 6, bufferedFrames: 3 });
  const firstSession = c.welcome!.session;

  const resumed = once(c, 'resumed') as Promise<[Assignment]>;
  const disconnected = once(c, 'disconnect') as Promise<[{ code: number }]>;
  c.terminate();
  t.equal((await disconnected)[0].code, 1006, 'the socket dropped');
  const [r] = await resumed;
  t.not(c.welcome!.session, firstSession, 'a new session');
  t.equal(r.streamId, stream, 'the same stream');
  t.equal(r.targetId, target);
  t.equal(r.frames, 3, 'committed frames = the last checkpoint');
  t.equal(r.files['state.xml']?.toString(), 'state at 3', 'files of the last checkpoint');
  t.not(r.resumeToken, a.resumeToken, 'a fresh resume token');

  const ack = await c.sendFrames(data('d'));
  t.same(ack, { seq: 1, bufferedFrames: 1 }, 'seq restarts at 1 and the frames buffered before the drop are gone');
  t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('state at 4') }]), { seq: 2, frames: 4, partition: 4 });
  t.same(await partitions(stream), [3, 4]);
  t.equal(await frameFile(stream), 'abcd', 'the discarded frames never reached storage');

  // The old token was used up: nobody else can take the stream with it.
  const thief = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  t.teardown(() => thief.close());
  t.match(await thief.request({ type: 'resume', resume_token: a.resumeToken }), { type: 'error', code: 'not_assigned' }, 'the first token no longer resumes');
  t.match(await thief.request({ type: 'assign', target_id: target }), { type: 'error', code: 'no_streams_available' }, 'the stream is still held');
  await c.stop();
});

t.test('a commit the previous holder still had in flight cannot land after the resume (fence)', async (t) => {
  const db = f.ts.server.storage.mongo.db;
  const files = new FileStore(db, 1 << 20);
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await f.client();
  t.teardown(() => c.close());
  await c.assign(target);
  await c.sendFrames(data('a'), 2);
  t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('s2') }]), { frames: 2 });
  // The old session's next partition is written (step one) when its socket drops; its commit
  // point is still on its way to the store (a slow store, a node killed mid-commit).
  const inFlight = await writePartition(db, files, stream, 5, [{ name: 'frames.xtc', bytes: Buffer.from('OLD') }], []);
  const resumed = once(c, 'resumed') as Promise<[Assignment]>;
  c.terminate();
  const [r] = await resumed;
  t.equal(r.frames, 2, 'resumed at the last commit');
  t.notOk(await commitPartition(db, stream, 2, inFlight), 'the late commit point of the previous holder does not land');
  await c.sendFrames(data('b'));
  t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('s3') }]), { frames: 3 }, 'the resumed core commits on top of what it was given');
  t.equal(await frameFile(stream), 'ab', 'only what the resumed core was told is there');
  const leases = new Leases(f.ts.server.storage.redis, f.ts.settings.redis.keyPrefix, 1000);
  const manifest = decodeManifest((await f.ts.server.storage.redis.hget(leases.keys(target).manifest, stream)) ?? '');
  t.match(manifest, { frames: 3, fence: 1 }, 'the manifest carries the raised fence for the next assignment');
  await c.stop();
  const other = await f.client({ reconnect: false });
  t.teardown(() => other.close());
  t.match(await other.assign(target), { streamId: stream, frames: 3 }, 'the next core gets the stream from the manifest');
  await other.sendFrames(data('c'));
  t.match(await other.checkpoint([]), { frames: 4 }, 'and commits with the fence it was given');
  await other.stop();
});

t.test('a manual resume within the grace period works from another connection', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  const a = await c.request({ type: 'assign', target_id: target });
  t.match(await c.frame(1, { frames: 2 }), { type: 'ack', buffered_frames: 2 });
  t.match(await c.checkpoint(2), { type: 'committed', frames: 2 });
  t.match(await c.frame(3), { type: 'ack', buffered_frames: 1 });
  c.ws.terminate();
  await c.closed;

  const d = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  t.teardown(() => d.close());
  const r = await d.request({ type: 'resume', id: 1, resume_token: a.resume_token as string });
  t.match(r, { type: 'assignment', id: 1, stream_id: stream, target_id: target, frames: 2, files: { 'state.xml': Buffer.from('checkpoint 2').toString('base64') } });
  t.match(await d.frame(1), { type: 'ack', seq: 1, buffered_frames: 1 });
  t.match(await d.checkpoint(2), { type: 'committed', frames: 3 });
  t.match(await d.request({ type: 'stop' }), { type: 'stopped' });
});

t.test('a resume from a new socket while the old one is still open (half-open): the old one is told lease_lost', async (t) => {
  const target = await f.target();
  await f.stream(target);
  const c = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  t.teardown(() => c.close());
  const a = await c.request({ type: 'assign', target_id: target });
  t.match(await c.frame(1), { type: 'ack', buffered_frames: 1 });
  const d = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  t.teardown(() => d.close());
  t.match(await d.request({ type: 'resume', id: 1, resume_token: a.resume_token as string }), { type: 'assignment', id: 1 });
  t.match(await c.next(), { type: 'stop', reason: 'lease_lost' }, 'the old socket is told');
  t.match(await c.frame(2), { type: 'error', code: 'not_assigned' }, 'and its next frame is refused');
  t.match(await d.frame(1), { type: 'ack', seq: 1 }, 'the new socket works on');
});

t.test('after the grace period the token is dead and the stream goes to another core', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await f.client({ reconnect: false });
  const a = await c.assign(target);
  await c.sendFrames(data('a'));
  t.match(await c.checkpoint([{ name: 'state.xml', data: Buffer.from('s1') }]), { frames: 1 });
  await c.sendFrames(data('lost'));
  const gone = once(c, 'disconnect');
  c.terminate();
  await gone;

  const other = await f.client({ reconnect: false });
  t.teardown(() => other.close());
  await t.rejects(other.assign(target), { code: 'no_streams_available' }, 'held for a resume during the grace period');

  await new Promise((r) => setTimeout(r, GRACE_S * 1000 + 500));
  const late = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  t.teardown(() => late.close());
  t.match(await late.request({ type: 'resume', id: 9, resume_token: a.resumeToken }), { type: 'error', id: 9, code: 'not_assigned', message: /grace|unknown/ }, 'resume after the grace period fails');
  t.ok(late.isOpen, 'the socket stays open');

  const started = Date.now();
  const got = await eventually(
    async () => {
      try {
        return await other.assign(target);
      } catch (err) {
        if (err instanceof CoreError && err.code === 'no_streams_available') return undefined;
        throw err;
      }
    },
    (f.ts.settings.storage.poolSweepS + 5) * 1000,
    'the stream back in the pool',
  );
  t.equal(got.streamId, stream, `another core gets the stream (after ${Date.now() - started} ms)`);
  t.equal(got.frames, 1, 'with the committed frames only');
  t.equal(got.files['state.xml']?.toString(), 's1');
  t.match(await other.sendFrames(data('b')), { seq: 1, bufferedFrames: 1 });
  t.match(await other.checkpoint([]), { frames: 2 });
  t.equal(await frameFile(stream), 'ab');
  t.match(await late.request({ type: 'resume', resume_token: a.resumeToken }), { type: 'error', code: 'not_assigned' }, 'the old token cannot take it back');
  await other.stop();
});

t.test('a core that hangs up before its assignment is sent holds nothing: the stream goes straight to the next core', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const abandoned = async (): Promise<number> => (await f.ts.server.metrics.assignAbandoned.get()).values[0]?.value ?? 0;
  const before = await abandoned();
  const quitter = await RawCore.connect(f.wsUrl, { engineKey: f.engineKey, ca: f.ts.ca });
  // The assign and the close leave in one write, so the server reads the close before it
  // starts on the assign: the core gave up before anything was prepared for it.
  const socket = (quitter.ws as unknown as { _socket: import('node:net').Socket })._socket;
  socket.cork();
  quitter.send({ type: 'assign', id: 1, target_id: target });
  quitter.ws.close(1000);
  socket.uncork();
  await quitter.closed;
  await eventually(async () => (await abandoned()) === before + 1, 5000, 'the dropped assign counted');

  const next = await f.client({ reconnect: false });
  t.teardown(() => next.close());
  t.equal((await next.assign(target)).streamId, stream, 'not held for a resume the core could never make');
});
