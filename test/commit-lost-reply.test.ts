/**
 * A commit point that landed but whose answer never came back (docs/protocol.md "Commit and
 * credit"): the server talks to MongoDB through a TLS proxy that reads the wire protocol and,
 * armed, passes the next update of `streams` on to MongoDB and then cuts the connection
 * instead of returning the answer. The checkpoint is refused `unavailable`; sent again, it is
 * answered `committed` by what landed (nothing written twice). If frames came in between, they
 * cannot be told apart from those it committed, and a different checkpoint sent again is not
 * the one that landed: the assignment ends with `lease_lost`, and the next one starts from
 * what landed, as it does after a `stop` in between. A connection reset under a large write
 * (which the driver reports as Node's raw ECONNRESET) is `unavailable` too.
 */
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import { BSON, type Document } from 'mongodb';
import t, { type Test } from 'tap';
import { CoreError } from '../src/client';
import type { Stack } from '../src/provision/stack';
import { remoteCoreFixture, type RemoteCoreFixture } from '../test-support/core-fixture';
import { getStack, stopStack } from '../test-support/stack';
import { eventually, startTestServer, type TestServer } from './helpers/server';
import { assignedCore, committedOnce, type CommittedCore } from './helpers/core';

t.teardown(stopStack);

/** `<command>: "<collection>"` as a BSON string element: the start of a command's body. */
function commandOn(command: string, collection: string): Buffer {
  const len = Buffer.alloc(4);
  len.writeInt32LE(collection.length + 1);
  return Buffer.concat([Buffer.from([0x02]), Buffer.from(`${command}\0`), len, Buffer.from(`${collection}\0`)]);
}
/** The commit point's command (and a fence raise's). */
const UPDATE_STREAMS = commandOn('update', 'streams');
/** A partition document's write: step one of a commit. */
const WRITE_PARTITIONS = commandOn('insert', 'partitions');

/** Splits a byte stream into wire-protocol messages (int32 length first, little-endian). */
function messages(onMessage: (m: Buffer) => void): (chunk: Buffer) => void {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= pending.readInt32LE(0)) {
      const len = pending.readInt32LE(0);
      if (len < 16) throw new Error(`not a wire-protocol message (length ${len})`);
      onMessage(pending.subarray(0, len));
      pending = pending.subarray(len);
    }
  };
}

interface CuttingProxy {
  port: number;
  /** Arms the cut; resolves once a `command` (default: the commit point's, an update of `streams`) went through and its answer was dropped. */
  cutNext(command?: Buffer): Promise<void>;
  /** Arms a reset (TCP RST) of the connection that next carries more than `bytes` to MongoDB; resolves when done. */
  resetDuringWrite(bytes: number): Promise<void>;
  /**
   * Holds the next update of `streams` back (and cuts the connection it came on, so the server
   * gets no answer), then sends it to MongoDB on a connection of its own just before the
   * `inserts`-th following insert into `partitions` goes on (never, with Infinity): a commit
   * point that lands late, after the server asked whether it had landed and while it commits
   * anew. Resolves once it is held.
   */
  holdNextStreamsUpdate(inserts?: number): Promise<void>;
  /** MongoDB's answers to the held updates it was sent, in order. */
  lateAnswers: Document[];
  /** MongoDB unreachable through the proxy (every connection refused at once) until `up()`. */
  down(): void;
  up(): void;
  close(): void;
}

/** The TLS proxy in front of the stack's MongoDB (see the file's comment). */
async function cuttingProxy(stack: Stack): Promise<CuttingProxy> {
  const ca = fs.readFileSync(stack.mongoCAFile);
  let armed: { command: Buffer; done: () => void } | undefined;
  let reset: { after: number; done: () => void } | undefined;
  let refusing = false;
  let holding: { inserts: number; done: () => void } | undefined;
  const held: Array<{ m: Buffer; inserts: number }> = [];
  const lateAnswers: Document[] = [];
  /** Sends `m` to MongoDB on a connection of its own and returns the answer (an OP_MSG: its body section starts at byte 21). */
  const sendAlone = async (m: Buffer): Promise<Document> => {
    const s = tls.connect({ host: stack.mongo.host, port: stack.mongo.port, ca, servername: 'localhost' });
    const answer = await new Promise<Buffer>((resolve, reject) => {
      s.once('error', reject);
      s.on('data', messages((a) => resolve(Buffer.from(a))));
      s.write(m);
    });
    s.destroy();
    return BSON.deserialize(answer.subarray(21));
  };
  const sockets = new Set<net.Socket>();
  const cert = fs.readFileSync(stack.certs.fullChain);
  const key = fs.readFileSync(stack.certs.key);
  // TLS over a plain socket of our own: only a TCP socket can be reset.
  const server = net.createServer((raw) => {
    if (refusing) return void raw.resetAndDestroy();
    const client = new tls.TLSSocket(raw, { isServer: true, cert, key });
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => undefined);
    const upstream = tls.connect({ host: stack.mongo.host, port: stack.mongo.port, ca, servername: 'localhost' });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    let cutAnswerTo: number | undefined;
    let cut: (() => void) | undefined;
    // In order, each after the one before: a held update goes on before the insert it waits for.
    let forwarding = Promise.resolve();
    const split = messages((m) => {
      forwarding = forwarding.then(async () => {
        if (holding && m.includes(UPDATE_STREAMS)) {
          held.push({ m: Buffer.from(m), inserts: holding.inserts });
          const h = holding;
          holding = undefined;
          client.destroy();
          upstream.destroy();
          return h.done();
        }
        if (m.includes(WRITE_PARTITIONS)) {
          for (const h of [...held]) {
            if (--h.inserts > 0) continue;
            held.splice(held.indexOf(h), 1);
            lateAnswers.push(await sendAlone(h.m));
          }
        }
        if (armed && m.includes(armed.command)) {
          cutAnswerTo = m.readInt32LE(4);
          cut = armed.done;
          armed = undefined;
        }
        upstream.write(m);
      });
    });
    client.on('data', (chunk: Buffer) => {
      if (reset && (reset.after -= chunk.length) < 0) {
        const done = reset.done;
        reset = undefined;
        raw.resetAndDestroy();
        upstream.destroy();
        return done();
      }
      split(chunk);
    });
    upstream.on(
      'data',
      messages((m) => {
        if (cutAnswerTo !== undefined && m.readInt32LE(8) === cutAnswerTo) {
          client.destroy();
          upstream.destroy();
          cut?.();
          return;
        }
        client.write(m);
      }),
    );
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cutNext: (command = UPDATE_STREAMS) => new Promise<void>((resolve) => (armed = { command, done: resolve })),
    resetDuringWrite: (bytes) => new Promise<void>((resolve) => (reset = { after: bytes, done: resolve })),
    holdNextStreamsUpdate: (inserts = 1) => new Promise<void>((resolve) => (holding = { inserts, done: resolve })),
    lateAnswers,
    down: () => {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    up: () => {
      refusing = false;
    },
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

/** `p`, or a failure with `what` after 10 s. */
const within = <T>(p: Promise<T>, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(what)), 10_000).unref())]);

const frames = (s: string): Array<{ name: string; data: Buffer }> => [{ name: 'frames.xtc', data: Buffer.from(s) }];
const state = (s: string): Array<{ name: string; data: Buffer }> => [{ name: 'state.xml', data: Buffer.from(s) }];

let ts: TestServer;
let f: RemoteCoreFixture;
let proxy: CuttingProxy;
t.before(async () => {
  const stack = await getStack();
  proxy = await cuttingProxy(stack);
  ts = await startTestServer({ 'mongodb.uri': `mongodb://127.0.0.1:${proxy.port}/?tls=true` });
  f = await remoteCoreFixture(ts.url, ts.ca, ts.server.storage.mongo.client.db(ts.settings.mongodb.database));
});
t.teardown(async () => {
  await ts?.close();
  proxy?.close();
});

const streamFrames = async (id: string): Promise<number> => (await f.api<{ frames: number }>('GET', `/v1/streams/${id}`, f.manager)).frames;
const frameFile = async (id: string): Promise<string> => (await f.get(`/v1/streams/${id}/frames/frames.xtc`)).body.toString();

/** How many held updates the proxy had sent before the last {@link afterLostAnswer}. */
let lateBefore = 0;

/**
 * A core that committed 'a', then sent 'b' and a checkpoint refused `unavailable`, its answer
 * lost: its commit point `landed` (the proxy cut the connection after MongoDB applied it), or
 * is `held` by the proxy (it reaches MongoDB just before the next partition write).
 */
async function afterLostAnswer(t: Test, how: 'landed' | 'held' = 'landed'): Promise<CommittedCore> {
  const { core, stream, target } = await committedOnce(t, f);
  await core.sendFrames(frames('b'));
  lateBefore = proxy.lateAnswers.length;
  const intercepted = how === 'landed' ? proxy.cutNext() : proxy.holdNextStreamsUpdate();
  const refused = await core.checkpoint(state('at 2')).catch((e: unknown) => e);
  await within(intercepted, 'the proxy saw no update of streams');
  t.match(refused, { code: 'unavailable' }, 'the checkpoint is refused: its answer never came');
  t.ok(refused instanceof CoreError);
  if (how === 'landed') t.equal(await streamFrames(stream), 2, 'though its commit point landed');
  else t.equal(await streamFrames(stream), 1, 'its commit point has not reached MongoDB yet');
  return { core, stream, target };
}

// Each twice: the commit point landed before the server asked, or landed late, after the
// server found it had not and while the checkpoint sent again was committing anew.
for (const [how, when] of [
  ['landed', 'the earlier attempt landed'],
  ['held', 'the earlier attempt landing late, after the question'],
] as const) {
  const landedLate = (t: Test): void => {
    if (how !== 'held') return;
    t.equal(proxy.lateAnswers.length, lateBefore + 1, 'the held update was sent');
    t.match(proxy.lateAnswers.at(-1), { n: 1, nModified: 1 }, 'it reached MongoDB and matched');
  };

  t.test(`${when}: the checkpoint sent again is answered by it`, async (t) => {
    const { core, stream } = await afterLostAnswer(t, how);
    t.match(await core.checkpoint(state('at 2')), { frames: 2, partition: 2 }, 'committed, not lease_lost');
    landedLate(t);
    t.same((await f.api<{ partitions: number[] }>('GET', `/v1/streams/${stream}/partitions`, f.manager)).partitions, [1, 2], 'nothing committed twice');
    await core.sendFrames(frames('c'));
    t.match(await core.checkpoint(state('at 3')), { frames: 3 }, 'the assignment goes on');
    t.equal(await frameFile(stream), 'abc');
  });

  t.test(`${when}, frames sent in between: the assignment ends, and the next starts from what landed`, async (t) => {
    const { core, stream, target } = await afterLostAnswer(t, how);
    const stopped = new Promise<{ reason: string }>((resolve) => core.once('stop', resolve));
    t.match(await core.sendFrames(frames('c')), { bufferedFrames: 2 }, "'c' buffered after 'b'");
    await t.rejects(core.checkpoint(state('at 3')), { code: 'not_assigned' });
    landedLate(t);
    t.equal((await stopped).reason, 'lease_lost');
    t.equal(await streamFrames(stream), 2, "only what landed: 'c' was never committed");
    const again = await core.assign(target);
    t.equal(again.streamId, stream, 'back in the pool at once, not after the lease');
    t.equal(again.frames, 2);
    t.equal(again.files['state.xml']?.toString(), 'at 2', 'with the checkpoint that landed');
    t.equal(await frameFile(stream), 'ab');
  });

  t.test(`${when}, a different checkpoint sent again: not answered by it`, async (t) => {
    const { core, stream, target } = await afterLostAnswer(t, how);
    await t.rejects(core.checkpoint(state('something else')), { code: 'not_assigned' });
    landedLate(t);
    const again = await core.assign(target);
    t.equal(again.streamId, stream, 'back in the pool at once');
    t.equal(again.files['state.xml']?.toString(), 'at 2', 'the next assignment gets the checkpoint that landed');
  });
}

t.test('the oldest of five unanswered attempts landing late is forgotten: a conflict, never taken for the checkpoint sent', async (t) => {
  const { core, stream, target } = await committedOnce(t, f);
  await core.sendFrames(frames('b'));
  const late = proxy.lateAnswers.length;
  // Attempt 1 lands just before attempt 5's partition write; attempts 2-4 never land.
  for (let i = 1; i <= 4; i++) {
    const held = proxy.holdNextStreamsUpdate(i === 1 ? 4 : Infinity);
    await t.rejects(core.checkpoint(state(`v${i}`)), { code: 'unavailable' });
    await held;
  }
  const stopped = new Promise<{ reason: string }>((resolve) => core.once('stop', resolve));
  await t.rejects(core.checkpoint(state('v5')), { code: 'not_assigned' }, 'not committed: v5 is not what landed');
  t.equal(proxy.lateAnswers.length, late + 1);
  t.match(proxy.lateAnswers.at(-1), { n: 1, nModified: 1 }, 'attempt 1 landed late');
  t.equal((await within(stopped, 'no stop came')).reason, 'lease_lost');
  // A conflict, not a landed_earlier (which requeues at once): attempt 1 was not recognised.
  await t.rejects(core.assign(target), { code: 'no_streams_available' }, 'the stream waits for its lease to expire');
  t.equal(await streamFrames(stream), 2);
  t.equal(await frameFile(stream), 'ab');
});

t.test('a stop in between: the stream is released with what landed', async (t) => {
  const { core, stream, target } = await afterLostAnswer(t);
  await core.stop();
  const next = await f.client({ reconnect: false });
  t.teardown(() => next.close());
  const again = await next.assign(target);
  t.equal(again.streamId, stream, 'back in the pool at once');
  t.equal(again.frames, 2, 'with the frames that landed, not the count the session had');
  t.equal(again.files['state.xml']?.toString(), 'at 2');
  await next.sendFrames(frames('c'));
  t.match(await next.checkpoint(state('at 3')), { frames: 3 }, 'and the next core commits on top of it');
  t.equal(await frameFile(stream), 'abc');
});

t.test('a stop while MongoDB cannot tell: the stream is released, and its next assignment reads MongoDB', async (t) => {
  const { core, stream, target } = await afterLostAnswer(t);
  proxy.down();
  try {
    await core.stop();
  } finally {
    proxy.up();
  }
  const redis = ts.server.storage.redis;
  t.ok(await redis.exists(`${ts.settings.redis.keyPrefix}st:${stream}`), "the stream's target entry is kept (only its manifest went)");
  const next = await f.client({ reconnect: false });
  t.teardown(() => next.close());
  const again = await eventually(() => next.assign(target), 15000, 'the stream back in the pool');
  t.equal(again.streamId, stream);
  t.equal(again.frames, 2, "MongoDB's count, not the old one the session had");
  await next.sendFrames(frames('c'));
  t.match(await next.checkpoint(state('at 3')), { frames: 3 });
});

t.test('a connection reset under a large write is unavailable, and the checkpoint sent again commits', async (t) => {
  const { core, stream } = await assignedCore(t, f);
  // Seven files of 1000 KB, each under storage.inlineMaxBytes: one partition document of 7 MB.
  const big = Buffer.alloc(1000 << 10, 7);
  await core.sendFrames(Array.from({ length: 7 }, (_, n) => ({ name: `frames${n}.xtc`, data: big })));
  const reset = proxy.resetDuringWrite(1 << 20);
  await t.rejects(core.checkpoint(state('at 1')), { code: 'unavailable' }, 'not internal');
  await reset;
  t.match(await core.checkpoint(state('at 1')), { frames: 1 });
  t.equal((await f.get(`/v1/streams/${stream}/frames/frames6.xtc`)).body.length, big.length);
});

t.test('a connection reset under a large seed write: the new stream is refused 503 unavailable, and created when sent again', async (t) => {
  const target = await f.target();
  // Three seed files of 1000 KB, each a document of its own under storage.inlineMaxBytes.
  const seed = Buffer.alloc(1000 << 10, 3).toString('base64');
  const body = { files: { 'a.xml': seed, 'b.xml': seed, 'c.xml': seed } };
  const reset = proxy.resetDuringWrite(1 << 20);
  const refused = await f.api<{ error: { code: string } }>('POST', `/v1/targets/${target}/streams`, f.manager, body).catch((e: Error) => e);
  await reset;
  t.match(refused, { error: { code: 'unavailable' } }, 'not internal');
  const created = await f.api<{ stream_id: string }>('POST', `/v1/targets/${target}/streams`, f.manager, body, 201);
  t.equal((await f.get(`/v1/streams/${created.stream_id}/files/c.xml`)).body.length, 1000 << 10);
});

t.test("a creation whose change record's removal loses its answer is created once: 201, not a 503 inviting a second", async (t) => {
  const target = await f.target();
  const cut = proxy.cutNext(commandOn('delete', 'stream_changes'));
  const created = await f.api<{ stream_id: string }>('POST', `/v1/targets/${target}/streams`, f.manager, { files: { 'state.xml': Buffer.from('s').toString('base64') } }, 201);
  await within(cut, 'the proxy saw no delete of stream_changes');
  t.match(await f.api('GET', `/v1/targets/${target}/streams`, f.manager), { total: 1 });
  const core = await f.client({ reconnect: false });
  t.teardown(() => core.close());
  t.equal((await core.assign(target)).streamId, created.stream_id, 'in the pool');
});

t.test('a creation whose mark that it stands loses its answer is marked again and created once: 201', async (t) => {
  const target = await f.target();
  // The mark's `$set: {done: true}` (a boolean; the record's creation unsets `done` with a string).
  const cut = proxy.cutNext(Buffer.concat([Buffer.from([0x08]), Buffer.from('done\0'), Buffer.from([0x01])]));
  const created = await f.api<{ stream_id: string }>('POST', `/v1/targets/${target}/streams`, f.manager, { files: { 'state.xml': Buffer.from('s').toString('base64') } }, 201);
  await within(cut, 'the proxy saw no mark');
  t.match(await f.api('GET', `/v1/targets/${target}/streams`, f.manager), { total: 1 });
  const core = await f.client({ reconnect: false });
  t.teardown(() => core.close());
  const a = await core.assign(target);
  t.equal(a.streamId, created.stream_id, 'in the pool');
  t.equal(a.files['state.xml']?.toString(), 's', 'with its seed file');
});

t.test('a connection reset under a GridFS seed upload leaves none of its chunks behind', async (t) => {
  const target = await f.target();
  const db = ts.server.storage.mongo.db;
  const orphans = async (): Promise<number> => {
    const files = new Set((await db.collection('blobs.files').find({}, { projection: { _id: 1 } }).toArray()).map((d) => String(d._id)));
    const chunks = await db.collection('blobs.chunks').find({}, { projection: { files_id: 1 } }).toArray();
    return chunks.filter((c) => !files.has(String(c.files_id))).length;
  };
  const before = await orphans();
  // One 3 MiB seed file: over storage.inlineMaxBytes, so GridFS chunks of 255 KiB.
  const body = { files: { 'big.xml': Buffer.alloc(3 << 20, 9).toString('base64') } };
  const reset = proxy.resetDuringWrite(1 << 20);
  const refused = await f.api<{ error: { code: string } }>('POST', `/v1/targets/${target}/streams`, f.manager, body).catch((e: Error) => e);
  await reset;
  t.match(refused, { error: { code: 'unavailable' } });
  t.equal(await orphans(), before, 'the chunks written before the reset are removed');
});
