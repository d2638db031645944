/**
 * Bounds on what a core can make a node hold (issue 12 §2-3): padded binary headers are
 * refused before parsing and RSS stays bounded while honest cores commit beside the
 * attacker; unknown header fields, too many files or frames per message, too many distinct
 * file names per stream are refused with their documented codes; a checkpoint of many
 * inline-sized files keeps its partition document small (the rest goes to GridFS); and a
 * document over the store's limit is `too_large`, never `internal`.
 */
import crypto from 'node:crypto';
import t from 'tap';
import { toAppError } from '../src/errors';
import { freePort } from '../src/provision/exec';
import { cliServer, RawCore, type CliServer } from './helpers/core-raw';
import { request } from './helpers/server';
import { stopStack } from '../test-support/stack';

const MIB = 1024 * 1024;
let srv: CliServer;
t.before(async () => {
  srv = await cliServer(
    await freePort(),
    {
      'server.workers': 1,
      'core.maxProtocolErrors': 1000,
      'core.messagesPerSecond': 1000,
      'core.maxFilesPerMessage': 8,
      'core.maxFramesPerMessage': 500,
      'core.maxFileNamesPerStream': 12,
      'storage.inlineMaxBytes': 512 * 1024,
      'storage.maxInlineBytesPerDocument': MIB,
    },
    /"msg":"listening"/,
  );
});
t.teardown(async () => {
  await srv?.stop();
  await stopStack();
});

/** A binary message with a hand-made header (encodeBinary would add a correct files list). */
function rawBinary(header: Record<string, unknown>, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(h.length, 0);
  return Buffer.concat([len, h, payload]);
}

async function assigned(core: RawCore): Promise<string> {
  const target = await srv.f.target();
  const stream = await srv.f.stream(target);
  const a = await core.request({ type: 'assign', target_id: target });
  t.equal(a.type, 'assignment');
  return stream;
}

t.test('welcome announces the bounds', async (t) => {
  const core = await srv.connect();
  t.teardown(() => core.close());
  t.match(core.welcome.limits, { max_header_bytes: 65536, max_files_per_message: 8, max_frames_per_message: 500, max_file_names_per_stream: 12 });
});

t.test('padded headers: refused with bad_request, RSS bounded, an honest core commits meanwhile', async (t) => {
  const attacker = await srv.connect();
  const honest = await srv.connect();
  t.teardown(() => Promise.all([attacker.close(), honest.close()]));
  await assigned(attacker);
  const honestStream = await assigned(honest);
  const before = srv.rss();
  const N = 40;
  const pad = 'A'.repeat(15 * MIB);
  let peak = before;
  const frames: Buffer[] = [];
  const honestWork = (async () => {
    for (let i = 1; i <= 10; i++) {
      const bytes = crypto.randomBytes(64 * 1024);
      frames.push(bytes);
      t.equal((await honest.frame(2 * i - 1, { files: [{ name: 'frames.xtc', bytes }] })).type, 'ack');
      t.equal((await honest.checkpoint(2 * i)).type, 'committed');
    }
  })();
  for (let i = 0; i < N; i++) {
    const id = attacker.id();
    attacker.send(rawBinary({ type: 'frame', id, seq: 1, files: [{ name: 'f.xtc', size: 0 }], pad }));
    const reply = await attacker.next((m) => m.type === 'error' || m.type === 'ack', 30000);
    t.equal(reply.code, 'bad_request', `padded message ${i + 1} refused`);
    peak = Math.max(peak, srv.rss());
  }
  await honestWork;
  t.match(attacker.received.find((m) => m.type === 'error')?.message, /max_header_bytes/);
  const growth = peak - before;
  t.ok(growth < 300 * MIB, `RSS grew by ${(growth / MIB).toFixed(0)} MiB while ${N} × 15 MiB padded headers arrived (bound 300 MiB; all retained would be ${N * 15} MiB)`);
  const dl = await request(`https://127.0.0.1:${srv.port}/v1/streams/${honestStream}/frames/frames.xtc`, { ca: srv.ca, headers: { authorization: `Bearer ${srv.f.manager}` } });
  t.equal(dl.status, 200);
  t.ok(dl.body.equals(Buffer.concat(frames)), 'the honest core\'s committed frames are byte-identical');
});

t.test('unknown header fields, too many files or frames', async (t) => {
  const core = await srv.connect();
  t.teardown(() => core.close());
  await assigned(core);
  const send = async (header: Record<string, unknown>, payload?: Buffer) => {
    const id = core.id();
    core.send(rawBinary({ ...header, id }, payload));
    return core.reply(id);
  };
  t.match(await send({ type: 'frame', seq: 1, files: [{ name: 'a', size: 0 }], note: 'x' }), { code: 'bad_request', message: /Unknown header field "note"/ });
  t.match(await send({ type: 'checkpoint', seq: 1, frames: 3, files: [] }), { code: 'bad_request', message: /Unknown header field "frames"/ }, 'frames is not a checkpoint field');
  t.match(await send({ type: 'frame', seq: 1, files: [{ name: 'a', size: 1, mode: 7 }] }, Buffer.from('x')), { code: 'bad_request', message: /Unknown field "mode"/ });
  t.match(await send({ type: 'frame', seq: 1, frames: 501, files: [{ name: 'a', size: 1 }] }, Buffer.from('x')), { code: 'too_large', message: /max_frames_per_message/ });
  const nine = Array.from({ length: 9 }, (_, i) => ({ name: `f${i}`, size: 0 }));
  t.match(await send({ type: 'frame', seq: 1, files: nine }), { code: 'too_large', message: /max_files_per_message/ });
  t.match(await core.frame(1, { frames: 500 }), { type: 'ack', buffered_frames: 500 }, 'at the bounds it is accepted');
});

t.test('distinct file names per stream are bounded; committed data stays intact', async (t) => {
  const core = await srv.connect();
  t.teardown(() => core.close());
  const stream = await assigned(core);
  let seq = 0;
  let accepted = 0;
  let refusal: Record<string, unknown> | undefined;
  for (let round = 0; round < 10 && !refusal; round++) {
    // Four new frame-file names per checkpoint, plus state.xml.
    const files = Array.from({ length: 4 }, (_, i) => ({ name: `r${round}-f${i}.xtc`, bytes: Buffer.from(`r${round}f${i}`) }));
    t.equal((await core.frame(++seq, { files })).type, 'ack');
    const c = await core.checkpoint(++seq);
    if (c.type === 'committed') accepted++;
    else refusal = c;
  }
  t.equal(accepted, 2, 'two checkpoints fit (1 + 4 + 4 = 9 names; the third would make 13 > 12)');
  t.match(refusal, { type: 'error', code: 'too_large', message: /max_file_names_per_stream/ });
  const p = await srv.f.api<{ frame_files: string[]; checkpoint_files: string[] }>('GET', `/v1/streams/${stream}/partitions`, srv.f.manager, undefined, 200);
  t.equal(p.frame_files.length + p.checkpoint_files.length, 9, 'the stream document holds only the committed names');
});

t.test('distinct names are bounded as frames arrive, not only at the checkpoint: empty files cannot pile up', async (t) => {
  const core = await srv.connect();
  t.teardown(() => core.close());
  await assigned(core);
  const empty = (round: number) => Array.from({ length: 8 }, (_, i) => ({ name: `e${round}-${i}.xtc`, bytes: Buffer.alloc(0) }));
  t.equal((await core.frame(1, { files: empty(0) })).type, 'ack', 'eight empty files');
  t.match(await core.frame(2, { files: empty(1) }), { type: 'error', code: 'too_large', message: /max_file_names_per_stream/ }, 'eight more names would make 16 buffered names > 12');
  t.equal((await core.frame(2, { files: empty(0) })).type, 'ack', 'the same names again are buffered');
  t.equal((await core.checkpoint(3)).type, 'committed', 'and commit');
});

t.test('many inline-sized files in one checkpoint: the partition document stays small', async (t) => {
  const core = await srv.connect();
  t.teardown(() => core.close());
  const stream = await assigned(core);
  const files = Array.from({ length: 6 }, (_, i) => ({ name: `big${i}.bin`, bytes: crypto.randomBytes(400 * 1024) }));
  t.equal((await core.frame(1, { files })).type, 'ack');
  t.equal((await core.checkpoint(2)).type, 'committed');
  const db = srv.mongo.db;
  const doc = await db.collection('partitions').findOne({ streamId: stream });
  const inline = (doc!.frames as Array<{ data?: { buffer: Uint8Array } }>).reduce((n, f) => n + (f.data?.buffer.length ?? 0), 0);
  t.ok(inline <= MIB, `inline bytes ${inline} within storage.maxInlineBytesPerDocument`);
  t.ok((doc!.frames as Array<{ gridfsId?: unknown }>).some((f) => f.gridfsId), 'the rest went to GridFS');
  for (const f of files) {
    const dl = await request(`https://127.0.0.1:${srv.port}/v1/streams/${stream}/frames/${f.name}`, { ca: srv.ca, headers: { authorization: `Bearer ${srv.f.manager}` } });
    t.ok(dl.body.equals(f.bytes), `${f.name} byte-identical`);
  }
});

t.test('a document over the store limit maps to too_large, not internal', async (t) => {
  const db = srv.mongo.db;
  const err = await db
    .collection('sec_too_large')
    .insertOne({ big: Buffer.alloc(17 * MIB) })
    .then(() => undefined, (e: unknown) => e);
  t.ok(err, 'the store refused the 17 MiB document');
  t.equal(toAppError(err).code, 'too_large', `mapped to too_large (${(err as Error).message.slice(0, 80)})`);
});

