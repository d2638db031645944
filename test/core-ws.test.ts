/**
 * The uWS core endpoint under pipelining: a core may send many frame messages without
 * waiting for their acks (acks carry `seq`). Over TLS, the vendored uSockets loses the rest
 * of a read when the server writes from inside the read callback, which used to drop such a
 * core with 1006 once ≈ 800 KB were in flight; replies now leave through the outbox after
 * the callback. Each case sends everything at once and expects every ack, in order, on an
 * open socket, and a checkpoint that commits all of it.
 *
 * Upgrades answered after an await (the key or donor not yet cached) are the other uWS hazard:
 * upgraded inside `res.cork`, the vendored build could close the new socket right after
 * `open`, at random, or always when the request said `Connection: close`
 * (src/transport/uws-core.ts).
 */
import crypto from 'node:crypto';
import tls from 'node:tls';
import t from 'tap';
import { coreFixture, type CoreFixture } from './helpers/core';
import { RawCore, type Msg } from './helpers/core-raw';
import { encodeBinary } from '../src/core/messages';
import { stopStack } from '../test-support/stack';
import { eventually } from './helpers/server';
import { handshakeRequest } from './helpers/handshake';

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

/** Sends an upgrade request by hand over TLS; resolves with what came back within `ms`, and whether the socket closed. */
function rawUpgrade(url: string, ca: string, headers: Record<string, string | undefined>, ms = 1500): Promise<{ text: string; closed: boolean }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    let text = '';
    const s = tls.connect({ host: u.hostname, port: Number(u.port), ca, servername: 'localhost' }, () => {
      s.write(handshakeRequest('/core/v1', { host: u.host, 'sec-websocket-protocol': 'coordinator.core.v1', ...headers }));
    });
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, ms);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

/** A fresh engine key: its first upgrade waits for a MongoDB lookup. */
async function freshKey(): Promise<string> {
  return (await f.api<{ key: string }>('POST', '/v1/engine-keys', f.admin, { engine: 'openmm', description: 'uncached' }, 201)).key;
}

t.test('an upgrade decided after a lookup keeps its socket; one without Connection: Upgrade is refused and opens no session', async (t) => {
  for (let i = 0; i < 20; i++) {
    const core = await RawCore.connect(f.wsUrl, { engineKey: await freshKey(), ca: f.ts.ca });
    t.equal((await core.ping()).type, 'pong', `core ${i + 1} of 20 (uncached key) has a working socket`);
    await core.close();
  }

  const spelled = await rawUpgrade(f.wsUrl, f.ts.ca, { connection: 'keep-alive, Upgrade', authorization: `Bearer ${await freshKey()}` });
  t.match(spelled.text, /^HTTP\/1\.1 101 /, '"keep-alive, Upgrade" (as browsers send it) upgrades');
  t.match(spelled.text, /"type":"welcome"/, 'and gets its welcome');
  t.notOk(spelled.closed, 'and stays open');

  const before = f.ts.logLines().filter((l) => l.msg === 'core connected').length;
  for (const connection of ['close', 'keep-alive', undefined]) {
    const got = await rawUpgrade(f.wsUrl, f.ts.ca, { connection, authorization: `Bearer ${await freshKey()}` });
    t.match(got.text, /^HTTP\/1\.1 400 /, `Connection: ${connection ?? '(none)'} is refused with 400`);
    t.match(got.text, /"code":"bad_request"/);
  }
  t.equal(f.ts.logLines().filter((l) => l.msg === 'core connected').length, before, 'no session was opened for them');

  await eventually(async () => {
    const lines = f.ts.logLines();
    const open = new Set(lines.filter((l) => l.msg === 'core connected').map((l) => l.session));
    for (const l of lines) if (l.msg === 'core disconnected') open.delete(l.session);
    return open.size === 0;
  }, 5000, 'every session that opened also closed');
  t.pass('every session that opened also closed');
});
