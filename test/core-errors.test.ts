/**
 * PROTOCOL §2 "Errors": every error code a core can meet, provoked on purpose. Each error
 * message has the shape {"type":"error","id":<id or null>,"code","message"}, and a bad
 * message never closes the socket by itself (a ping still works afterwards); repeated
 * abuse, rate-limit floods and oversized messages close it with 1008 or 1009.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { encodeBinary } from '../src/core/messages';
import { assignedCore, coreFixture, type CoreFixture } from './helpers/core';
import { RawCore, tryUpgrade, type Msg } from './helpers/core-raw';
import { eventually } from './helpers/server';
import { stopStack } from '../test-support/stack';

const KIB = 1024;
const MAX_MESSAGE = 64 * KIB;
const MAX_BUFFER = 100 * KIB;

let f: CoreFixture;
t.before(async () => {
  f = await coreFixture({ 'core.maxMessageBytes': MAX_MESSAGE, 'core.maxBufferBytes': MAX_BUFFER, 'core.retryAfterS': 7 });
});
t.teardown(async () => {
  await f?.ts.close();
  await stopStack();
});

const raw = (extra: { engineKey?: string; donorToken?: string } = {}, fx: CoreFixture = f): Promise<RawCore> =>
  RawCore.connect(fx.wsUrl, { engineKey: fx.engineKey, donorToken: fx.donor, ca: fx.ts.ca, ...extra });

/** Checks the error shape: exactly type, id, code, message (plus `extra` keys when given). */
function isError(t: tap.Test, m: Msg, id: number | null, code: string, extra: string[] = [], what = code): void {
  t.match(m, { type: 'error', id, code }, `${what}: error ${code} with id ${id}`);
  t.ok(typeof m.message === 'string' && m.message.length > 0, `${what}: a human message`);
  t.same(Object.keys(m).sort(), ['code', 'id', 'message', 'type', ...extra].sort(), `${what}: nothing but the documented fields`);
}

/** Builds a binary message by hand: a header length, header bytes, payload. */
function binary(headerLength: number, header: string | Buffer, payload: Buffer = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(headerLength, 0);
  return Buffer.concat([len, Buffer.from(header), payload]);
}

function frameHeader(id: number, files: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ type: 'frame', id, seq: 1, files, ...extra });
}

t.test('bad_request: malformed messages are answered and the socket stays usable', async (t) => {
  const c = await raw();
  t.teardown(() => c.close());
  t.match(c.welcome, { type: 'welcome', protocol: 1, limits: { max_message_bytes: MAX_MESSAGE, max_buffer_bytes: MAX_BUFFER } });

  // [what, message, expected id]
  const cases: Array<[string, string | Buffer, number | null]> = [
    ['non-JSON text', 'hello there', null],
    ['a JSON array', '[1,2,3]', null],
    ['a JSON string', '"ping"', null],
    ['JSON null', 'null', null],
    ['an unknown type', JSON.stringify({ type: 'dance', id: 3 }), 3],
    ['no type', JSON.stringify({ id: 4 }), 4],
    ['a missing id', JSON.stringify({ type: 'ping' }), null],
    ['a non-integer id', JSON.stringify({ type: 'ping', id: 1.5 }), null],
    ['a string id', JSON.stringify({ type: 'assign', id: '5' }), null],
    ['a frame sent as text', JSON.stringify({ type: 'frame', id: 6, seq: 1, files: [] }), 6],
    ['a checkpoint sent as text', JSON.stringify({ type: 'checkpoint', id: 7, seq: 1, files: [] }), 7],
    ['assign with a non-string target_id', JSON.stringify({ type: 'assign', id: 8, target_id: 42 }), 8],
    ['stop with a non-string error', JSON.stringify({ type: 'stop', id: 9, error: { x: 1 } }), 9],
    ['resume without a token', JSON.stringify({ type: 'resume', id: 10 }), 10],
    ['an empty binary message', Buffer.alloc(0), null],
    ['binary shorter than 4 bytes', Buffer.from([0, 0, 1]), null],
    ['a zero header length', binary(0, ''), null],
    ['a header length beyond the message', binary(1000, '{"type":"frame"}'), null],
    ['a header that is not JSON', binary(9, 'not json!'), null],
    ['a header that is a JSON array', binary(2, '[]'), null],
    ['a header without id', binary(Buffer.byteLength('{"type":"frame","seq":1,"files":[]}'), '{"type":"frame","seq":1,"files":[]}'), null],
    ['an unknown binary type', binary(Buffer.byteLength(JSON.stringify({ type: 'blob', id: 20, seq: 1, files: [] })), JSON.stringify({ type: 'blob', id: 20, seq: 1, files: [] })), 20],
    ['seq 0', encodeBinary({ type: 'frame', id: 21, seq: 0 }, []), 21],
    ['a non-integer seq', encodeBinary({ type: 'frame', id: 22, seq: 'one' }, []), 22],
    ['frames 0', encodeBinary({ type: 'frame', id: 23, seq: 1, frames: 0 }, [{ name: 'a.xtc', bytes: Buffer.from('x') }]), 23],
    ['files not a list', binary(Buffer.byteLength(frameHeader(24, 'a.xtc')), frameHeader(24, 'a.xtc')), 24],
    ['sizes adding up to more than the payload', binary(Buffer.byteLength(frameHeader(25, [{ name: 'a.xtc', size: 10 }])), frameHeader(25, [{ name: 'a.xtc', size: 10 }]), Buffer.alloc(5)), 25],
    ['sizes adding up to less than the payload', binary(Buffer.byteLength(frameHeader(26, [{ name: 'a.xtc', size: 3 }])), frameHeader(26, [{ name: 'a.xtc', size: 3 }]), Buffer.alloc(5)), 26],
    ['a file name "../x"', binary(Buffer.byteLength(frameHeader(27, [{ name: '../x', size: 1 }])), frameHeader(27, [{ name: '../x', size: 1 }]), Buffer.alloc(1)), 27],
    ['a file name with a slash', binary(Buffer.byteLength(frameHeader(28, [{ name: 'a/b', size: 1 }])), frameHeader(28, [{ name: 'a/b', size: 1 }]), Buffer.alloc(1)), 28],
    ['a file name starting with a dot', binary(Buffer.byteLength(frameHeader(29, [{ name: '.hidden', size: 1 }])), frameHeader(29, [{ name: '.hidden', size: 1 }]), Buffer.alloc(1)), 29],
    ['an empty file name', binary(Buffer.byteLength(frameHeader(30, [{ name: '', size: 1 }])), frameHeader(30, [{ name: '', size: 1 }]), Buffer.alloc(1)), 30],
    ['a 129-character file name', binary(Buffer.byteLength(frameHeader(31, [{ name: 'a'.repeat(129), size: 1 }])), frameHeader(31, [{ name: 'a'.repeat(129), size: 1 }]), Buffer.alloc(1)), 31],
    ['a negative size', binary(Buffer.byteLength(frameHeader(32, [{ name: 'a.xtc', size: -1 }])), frameHeader(32, [{ name: 'a.xtc', size: -1 }])), 32],
    ['a fractional size', binary(Buffer.byteLength(frameHeader(33, [{ name: 'a.xtc', size: 0.5 }])), frameHeader(33, [{ name: 'a.xtc', size: 0.5 }])), 33],
    [
      'a duplicate file name',
      binary(Buffer.byteLength(frameHeader(34, [{ name: 'a.xtc', size: 1 }, { name: 'a.xtc', size: 1 }])), frameHeader(34, [{ name: 'a.xtc', size: 1 }, { name: 'a.xtc', size: 1 }]), Buffer.alloc(2)),
      34,
    ],
    ['a malformed sha256', encodeBinary({ type: 'frame', id: 35, seq: 1, sha256: 'abc' }, [{ name: 'a.xtc', bytes: Buffer.from('x') }]), 35],
  ];
  for (const [what, message, id] of cases) {
    c.send(message);
    isError(t, await c.next(), id, 'bad_request', [], what);
    const pong = await c.ping();
    t.equal(pong.type, 'pong', `socket usable after ${what}`);
  }
  t.ok(c.isOpen, `the socket survived ${cases.length} bad messages (core.maxProtocolErrors is 50)`);
  // A token that cannot be one is answered like an unknown one: assign again (no protocol error).
  c.send(JSON.stringify({ type: 'resume', id: 11, resume_token: 'no-dot-here' }));
  isError(t, await c.next(), 11, 'not_assigned', [], 'resume with a malformed token');
});

t.test('unauthorized: refused upgrades are HTTP 401 with the JSON error body, no upgrade', async (t) => {
  const base = { 'sec-websocket-protocol': 'coordinator.core.v1' };
  const check = async (what: string, headers: Record<string, string>, message: RegExp): Promise<void> => {
    const r = await tryUpgrade(f.wsUrl, { ...base, ...headers }, f.ts.ca);
    t.equal(r.opened, false, `${what}: no upgrade`);
    t.equal(r.status, 401, `${what}: 401`);
    t.match(String(r.headers?.['content-type']), /^application\/json/, `${what}: JSON`);
    const body = JSON.parse(r.body ?? '{}') as { error: { code: string; message: string } };
    t.same(Object.keys(body), ['error']);
    t.same(Object.keys(body.error).sort(), ['code', 'message']);
    t.equal(body.error.code, 'unauthorized', `${what}: code`);
    t.match(body.error.message, message, `${what}: message`);
  };
  await check('no Authorization', {}, /Bearer/);
  await check('an unknown engine key', { authorization: 'Bearer not-a-key' }, /engine key/);
  await check('a manager token as engine key', { authorization: `Bearer ${f.manager}` }, /engine key/);
  await check('an unknown donor token', { authorization: `Bearer ${f.engineKey}`, 'x-donor-token': 'not-a-donor' }, /donor/i);
  await check('a manager token as donor token', { authorization: `Bearer ${f.engineKey}`, 'x-donor-token': f.manager }, /donor/i);

  const key = await f.api<{ id: string; key: string }>('POST', '/v1/engine-keys', f.admin, { engine: 'openmm', description: 'to revoke' }, 201);
  t.equal((await tryUpgrade(f.wsUrl, { ...base, authorization: `Bearer ${key.key}` }, f.ts.ca)).opened, true, 'the new key works');
  await f.api('DELETE', `/v1/engine-keys/${key.id}`, f.admin, undefined);
  await eventually(async () => (await tryUpgrade(f.wsUrl, { ...base, authorization: `Bearer ${key.key}` }, f.ts.ca)).status === 401, 5000, 'revoked key refused');
  await check('a revoked engine key', { authorization: `Bearer ${key.key}` }, /engine key/);

  const ok = await tryUpgrade(f.wsUrl, { ...base, authorization: `Bearer ${f.engineKey}`, 'x-donor-token': f.donor }, f.ts.ca);
  t.equal(ok.opened, true, 'a valid key and donor token upgrade');
});

t.test('not_assigned: data and stop without an assignment, resume with an unknown token', async (t) => {
  const c = await raw();
  t.teardown(() => c.close());
  isError(t, await c.frame(1), c.lastId, 'not_assigned');
  isError(t, await c.checkpoint(1), c.lastId, 'not_assigned');
  isError(t, await c.request({ type: 'stop', id: 50 }), 50, 'not_assigned');
  isError(t, await c.request({ type: 'stop', id: 51, error: 'boom' }), 51, 'not_assigned');
  isError(t, await c.request({ type: 'resume', id: 52, resume_token: 'AAAAAAAAAAAAAAAAAAAAAA.bm90LWEtc2VjcmV0' }), 52, 'not_assigned');

  // A real stream id with a wrong secret is just as unknown.
  const target = await f.target();
  const stream = await f.stream(target);
  const holder = await raw();
  t.teardown(() => holder.close());
  const a = await holder.request({ type: 'assign', target_id: target });
  t.equal(a.stream_id, stream);
  isError(t, await c.request({ type: 'resume', id: 53, resume_token: `${stream}.wrongsecret` }), 53, 'not_assigned');
  t.equal((await c.ping()).type, 'pong', 'still usable');
  await holder.request({ type: 'stop' });
});

t.test('already_assigned: assign or resume while holding a stream', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  await f.stream(target);
  const c = await raw();
  t.teardown(() => c.close());
  const a = await c.request({ type: 'assign', id: 1, target_id: target });
  t.equal(a.type, 'assignment');
  t.equal(a.stream_id, stream, 'the oldest of two fresh streams');
  isError(t, await c.request({ type: 'assign', id: 2, target_id: target }), 2, 'already_assigned');
  isError(t, await c.request({ type: 'assign', id: 3 }), 3, 'already_assigned');
  isError(t, await c.request({ type: 'resume', id: 4, resume_token: a.resume_token as string }), 4, 'already_assigned');
  // The assignment itself is intact.
  t.match(await c.frame(1, { frames: 2 }), { type: 'ack', seq: 1, buffered_frames: 2 });
  t.match(await c.checkpoint(2), { type: 'committed', frames: 2 });
  t.match(await c.request({ type: 'stop', id: 5 }), { type: 'stopped', id: 5 });
});

t.test('no_streams_available, target_not_found, engine_not_allowed', async (t) => {
  const c = await raw();
  t.teardown(() => c.close());
  const empty = await f.target();
  isError(t, await c.request({ type: 'assign', id: 1, target_id: empty }), 1, 'no_streams_available', ['retry_after_s']);
  t.equal(c.received.at(-1)?.retry_after_s, 7, 'retry_after_s is core.retryAfterS');

  isError(t, await c.request({ type: 'assign', id: 2, target_id: 'AAAAAAAAAAAAAAAAAAAAAA' }), 2, 'target_not_found');
  const beta = await f.target({ stage: 'beta' });
  await f.stream(beta);
  isError(t, await c.request({ type: 'assign', id: 3, target_id: beta }), 3, 'target_not_found');
  const disabled = await f.target({ stage: 'disabled' });
  await f.stream(disabled);
  isError(t, await c.request({ type: 'assign', id: 4, target_id: disabled }), 4, 'target_not_found');

  const gromacs = await f.target({ engines: ['gromacs'] });
  await f.stream(gromacs);
  isError(t, await c.request({ type: 'assign', id: 5, target_id: gromacs }), 5, 'engine_not_allowed');

  // A private target is fine when named.
  const priv = await f.target({ stage: 'private' });
  const ps = await f.stream(priv);
  t.match(await c.request({ type: 'assign', id: 6, target_id: priv }), { type: 'assignment', id: 6, stream_id: ps });
  t.match(await c.request({ type: 'stop', id: 7 }), { type: 'stopped' });
  t.equal((await c.ping()).type, 'pong', 'still usable');
});

t.test('out_of_order and bad_checksum', async (t) => {
  const target = await f.target();
  await f.stream(target);
  const c = await raw();
  t.teardown(() => c.close());
  await c.request({ type: 'assign', target_id: target });
  isError(t, await c.frame(2), c.lastId, 'out_of_order');
  isError(t, await c.checkpoint(5), c.lastId, 'out_of_order');

  const bytes = crypto.randomBytes(500);
  const wrong = crypto.createHash('sha256').update('something else').digest('hex');
  isError(t, await c.frame(1, { files: [{ name: 'frames.xtc', bytes }], sha256: wrong }), c.lastId, 'bad_checksum');
  const right = crypto.createHash('sha256').update(bytes).digest('hex');
  t.match(await c.frame(1, { files: [{ name: 'frames.xtc', bytes }], sha256: right.toUpperCase() }), { type: 'ack', seq: 1, buffered_frames: 1 }, 'the right checksum (any case) is accepted at the same seq');
  t.match(await c.checkpoint(2), { type: 'committed', frames: 1 });
  await c.request({ type: 'stop' });
});

t.test('buffer_full: a frame that would exceed core.maxBufferBytes; checkpoint first', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await raw();
  t.teardown(() => c.close());
  await c.request({ type: 'assign', target_id: target });
  const big = (): Array<{ name: string; bytes: Buffer }> => [{ name: 'frames.xtc', bytes: crypto.randomBytes(60 * KIB) }];
  t.match(await c.frame(1, { files: big() }), { type: 'ack', seq: 1, buffered_frames: 1 });
  const full = await c.frame(2, { files: big() });
  isError(t, full, c.lastId, 'buffer_full');
  t.equal((await c.ping()).type, 'pong', 'still usable');
  t.match(await c.checkpoint(2), { type: 'committed', seq: 2, frames: 1 }, 'seq 2 was not used up by the refused frame');
  t.match(await c.frame(3, { files: big() }), { type: 'ack', seq: 3, buffered_frames: 1 }, 'room again after the checkpoint');
  t.match(await c.checkpoint(4), { type: 'committed', frames: 2 });
  t.same((await f.api<{ partitions: number[] }>('GET', `/v1/streams/${stream}/partitions`, f.manager)).partitions, [1, 2]);
  await c.request({ type: 'stop' });
});

t.test('the client library gives back the number of a refused frame and of the pipelined ones after it', async (t) => {
  const { core, stream } = await assignedCore(t, f);
  const frame = (n: number): Array<{ name: string; data: Buffer }> => [{ name: 'frames.xtc', data: Buffer.alloc(60 * KIB, n) }];
  // Sent together: the second does not fit, so the third is out of order.
  const sent = [core.sendFrames(frame(1)), core.sendFrames(frame(2)), core.sendFrames(frame(3))].map((p) => p.catch((e: unknown) => e));
  const [first, second, third] = await Promise.all(sent);
  t.match(first, { seq: 1, bufferedFrames: 1 });
  t.match(second, { code: 'buffer_full' });
  t.match(third, { code: 'out_of_order' });
  t.match(await core.checkpoint([]), { seq: 2, frames: 1 }, 'the next message takes the refused one\'s number');
  const again = await Promise.all([core.sendFrames(frame(2)), core.sendFrames(frame(3)).catch((e: unknown) => e)]);
  t.match(again, [{ seq: 3, bufferedFrames: 1 }, { code: 'buffer_full' }], 'sent again in order: the third is refused on its own merits');
  t.match(await core.checkpoint([]), { seq: 4, frames: 2 });
  t.match(await core.sendFrames(frame(3)), { seq: 5 });
  t.match(await core.checkpoint([]), { seq: 6, frames: 3 });
  t.same((await f.api<{ partitions: number[] }>('GET', `/v1/streams/${stream}/partitions`, f.manager)).partitions, [1, 2, 3]);
});

t.test('too_large: a message over core.maxMessageBytes closes the socket with 1009', async (t) => {
  const target = await f.target();
  const stream = await f.stream(target);
  const c = await raw();
  await c.request({ type: 'assign', target_id: target });
  // Just under the limit is fine.
  const under = encodeBinary({ type: 'frame', id: 1, seq: 1 }, [{ name: 'frames.xtc', bytes: Buffer.alloc(MAX_MESSAGE - 200) }]);
  t.ok(under.length <= MAX_MESSAGE);
  c.send(under);
  t.match(await c.reply(1), { type: 'ack', seq: 1 });
  c.send(encodeBinary({ type: 'frame', id: 2, seq: 2 }, [{ name: 'frames.xtc', bytes: Buffer.alloc(MAX_MESSAGE + 1) }]));
  const closed = await c.closed;
  t.equal(closed.code, 1009, 'an oversized binary message closes the socket with 1009');
  const text = await raw();
  t.teardown(() => text.close());
  text.send(JSON.stringify({ type: 'ping', id: 1, pad: 'x'.repeat(MAX_MESSAGE + 10) }));
  const textClosed = await text.closed;
  t.equal(textClosed.code, 1009, 'an oversized text message closes the socket with 1009 too');
  t.equal((await f.api<{ status: string }>('GET', `/v1/streams/${stream}`, f.manager)).status, 'ok', 'the stream itself is unharmed');
});

t.test('unavailable and internal', { skip: 'not here: unavailable needs MongoDB or Redis down under a live session, which store-mongo-outage, store-redis-outage and commit-lost-reply provoke with stores of their own; internal needs a server bug' }, async () => undefined);

t.test('rate_limited, then a sustained flood closes with 1008; too many bad messages close with 1008', async (t) => {
  const g = await coreFixture({ 'core.messagesPerSecond': 5, 'core.maxProtocolErrors': 5, 'redis.keyPrefix': 'rate:' });
  t.teardown(() => g.ts.close());

  const c = await raw({}, g);
  t.teardown(() => c.close());
  // A burst of 15 pings: the bucket holds 10 (2 × 5 per second), the rest are refused.
  const ids: number[] = [];
  for (let i = 0; i < 15; i++) {
    const id = c.id();
    ids.push(id);
    c.send({ type: 'ping', id });
  }
  await new Promise((r) => setTimeout(r, 300));
  const got = c.drain();
  const pongs = got.filter((m) => m.type === 'pong');
  const limited = got.filter((m) => m.type === 'error');
  t.ok(pongs.length >= 10 && pongs.length <= 11, `the burst of 10 is served (${pongs.length} pongs)`);
  t.equal(pongs.length + limited.length, 15, 'every message answered');
  t.ok(limited.length >= 4, `the rest are rate_limited (${limited.length})`);
  isError(t, limited[0]!, limited[0]!.id as number, 'rate_limited', ['retry_after_s']);
  t.equal(limited[0]!.retry_after_s, 1);
  t.same(
    [...pongs, ...limited].map((m) => m.id).sort((a, b) => (a as number) - (b as number)),
    ids,
    'each refusal names the request it refuses: every id answered once',
  );
  t.ok(c.isOpen, 'a short excess does not close the socket');
  await new Promise((r) => setTimeout(r, 1200));
  t.equal((await c.ping()).type, 'pong', 'usable again after a second');

  // A refused binary message is named by its header's id; a text message too large to peek at is not.
  for (let i = 0; i < 10; i++) c.send({ type: 'ping', id: c.id() });
  c.send(encodeBinary({ type: 'frame', id: 4242, seq: 1 }, [{ name: 'a.xtc', bytes: Buffer.alloc(64 * 1024) }]));
  c.send({ type: 'ping', id: 4243, pad: 'x'.repeat(2000) });
  await new Promise((r) => setTimeout(r, 300));
  const refused = c.drain().filter((m) => m.type === 'error');
  t.same(
    refused.slice(-2).map((m) => m.id),
    [4242, null],
    'the frame by its id; the 2 KiB ping with null',
  );
  t.ok(refused.slice(0, -2).every((m) => typeof m.id === 'number'), 'the small pings before them by theirs');
  await new Promise((r) => setTimeout(r, 2200));

  // Keep going: more than 2 × messagesPerSecond refusals in a row close the socket.
  for (let i = 0; i < 60; i++) c.send({ type: 'ping', id: c.id() });
  const closed = await c.closed;
  t.equal(closed.code, 1008, 'a sustained flood closes with 1008');
  const errors = c.received.filter((m) => m.type === 'error' && m.code === 'rate_limited');
  t.ok(errors.length > limited.length, 'refusals were announced before the close');

  // core.maxProtocolErrors = 5: four bad messages are tolerated, the fifth closes.
  const d = await raw({}, g);
  for (let i = 0; i < 4; i++) {
    d.send('not json');
    isError(t, await d.next(), null, 'bad_request');
  }
  t.equal((await d.ping()).type, 'pong', 'still open after 4 bad messages');
  d.send(encodeBinary({ type: 'frame', id: 77, seq: 1, sha256: '0'.repeat(64) }, [{ name: 'a.xtc', bytes: Buffer.from('x') }]));
  isError(t, await d.next(), 77, 'bad_checksum');
  t.equal((await d.closed).code, 1008, 'the fifth bad message (a bad checksum counts) closes with 1008');

  // Errors that are not protocol abuse do not count.
  const e = await raw({}, g);
  t.teardown(() => e.close());
  for (let i = 0; i < 8; i++) {
    isError(t, await e.request({ type: 'stop', id: 100 + i }), 100 + i, 'not_assigned');
  }
  t.ok(e.isOpen, 'eight not_assigned errors do not close the socket');
});

t.test('server_busy: upgrades past server.maxConnections get HTTP 503', async (t) => {
  const g = await coreFixture({ 'server.maxConnections': 1, 'redis.keyPrefix': 'busy:' });
  t.teardown(() => g.ts.close());
  const headers = { authorization: `Bearer ${g.engineKey}`, 'sec-websocket-protocol': 'coordinator.core.v1' };
  const first = await raw({}, g);
  const r = await tryUpgrade(g.wsUrl, headers, g.ts.ca);
  t.equal(r.opened, false, 'no upgrade');
  t.equal(r.status, 503);
  t.equal(r.headers?.['retry-after'], '30');
  t.match(JSON.parse(r.body ?? '{}'), { error: { code: 'server_busy', message: String } });
  t.equal((await first.ping()).type, 'pong', 'the connected core is unaffected');
  await first.close();
  await eventually(async () => (await tryUpgrade(g.wsUrl, headers, g.ts.ca)).opened, 5000, 'room again after the first core left');
  t.pass('a new core gets in once the first one left');
});
