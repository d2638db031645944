/**
 * Replies that clients do not read: what is left of them counts against the memory budget
 * (memory.repliesBytes) until the kernel takes it, and the anonymous target list is one shared
 * answer sent a chunk at a time, so clients that ask for it and never read hold no copies.
 * Before, sixty such clients of a 9 MB list made a uws server grow by 896 MiB (node: 1.7 GiB).
 * A client that reads none of its reply loses it after an idle timeout. On both transports.
 */
import tls from 'node:tls';
import t from 'tap';
import { freePort } from '../src/provision/exec';
import { cliServer, type CliServer } from './helpers/core-raw';
import { eventually, request } from './helpers/server';
import { stopStack } from '../test-support/stack';

const MIB = 1024 * 1024;
t.teardown(stopStack);

/** A TLS client that sent `GET path` and reads nothing; `status()` reads the status line, then closes. */
async function nonReader(srv: CliServer, path: string, token?: string): Promise<{ socket: tls.TLSSocket; status(): Promise<string> }> {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca: srv.ca, servername: 'localhost' }, () => resolve(s));
    s.on('error', reject);
  });
  socket.pause();
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}\r\n`);
  return {
    socket,
    status: () =>
      new Promise((resolve) => {
        let head = '';
        socket.on('data', (d: Buffer) => {
          head += d.toString('latin1', 0, Math.min(d.length, 16));
          if (head.length >= 12) {
            resolve(head.slice(9, 12));
            socket.destroy();
          }
        });
        socket.on('close', () => resolve(head.slice(9, 12) || 'closed'));
        socket.resume();
      }),
  };
}

async function repliesHeld(srv: CliServer): Promise<number> {
  const m = (await request(`https://127.0.0.1:${srv.port}/metrics`, { ca: srv.ca })).body.toString();
  return Number(/coordinator_memory_budget_used_bytes\{kind="replies"[^}]*\} (\d+)/.exec(m)?.[1] ?? NaN);
}

/** Options of about 60 KiB, so `n` targets make a list of n × 60 KiB. */
const BIG_OPTIONS = Object.fromEntries(Array.from({ length: 60 }, (_, k) => [`k${k}`, 'x'.repeat(1000)]));

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: non-reading clients of the public list hold nothing; other replies stop at memory.repliesBytes`, async (t) => {
    const srv = await cliServer(
      await freePort(),
      { 'server.transport': transport, 'server.workers': 1, 'memory.repliesBytes': 8 * MIB, 'http.publicTargetsCacheMs': 60_000, 'http.idleTimeoutS': 3 },
      /"msg":"listening"/,
    );
    t.teardown(() => srv.stop());
    const sockets: tls.TLSSocket[] = [];
    t.teardown(() => sockets.forEach((s) => s.destroy()));

    for (let i = 0; i < 100; i++) await srv.f.target({ engines: ['e1'], stage: 'public', options: BIG_OPTIONS });
    const list = (await request(`https://127.0.0.1:${srv.port}/v1/targets`, { ca: srv.ca })).body;
    t.ok(list.length > 6_000_000, `the public list is large (${list.length} bytes)`);

    // Forty anonymous clients ask for it (240 MB if each had a copy) and read nothing.
    const rss0 = srv.rss();
    const anonymous = await Promise.all(Array.from({ length: 40 }, () => nonReader(srv, '/v1/targets')));
    sockets.push(...anonymous.map((c) => c.socket));
    await new Promise((r) => setTimeout(r, 2000));
    const grown = srv.rss() - rss0;
    t.ok(grown < 64 * MIB, `the server grew by ${(grown / MIB).toFixed(1)} MiB, not by their copies`);
    t.equal(await repliesHeld(srv), 0, 'shared replies are not counted per client');
    t.same((await Promise.all(anonymous.map((c) => c.status()))).filter((s) => s !== '200'), [], 'each got its answer');

    // The shared answer is dropped at once when a target changes, not after its 60 s.
    const fresh = await srv.f.target({ engines: ['e1'], stage: 'public' });
    await eventually(async () => (await request(`https://127.0.0.1:${srv.port}/v1/targets`, { ca: srv.ca })).body.toString().includes(fresh), 3000, 'the new target in the public list');

    // A manager's own list is built per request (6 MB): one fits in 8 MiB while its client does not read.
    const own = await Promise.all(Array.from({ length: 6 }, () => nonReader(srv, '/v1/targets', srv.f.manager)));
    sockets.push(...own.map((c) => c.socket));
    await eventually(async () => (await repliesHeld(srv)) > 0, 5000, 'replies counted');
    await new Promise((r) => setTimeout(r, 1000));
    const held = await repliesHeld(srv);
    t.ok(held > 4 * MIB && held <= 8 * MIB, `replies held ${held} bytes, within memory.repliesBytes`);
    // A client that reads none of its reply loses its connection, and the reply its memory:
    // after http.idleTimeoutS on node, uWS's fixed 10 s on uws.
    const idleBound = transport === 'node' ? 6_000 : 18_000;
    const waited = Date.now();
    await eventually(async () => (await repliesHeld(srv)) === 0, idleBound, 'the unread reply given back');
    t.pass(`the unread reply was given back after ${((Date.now() - waited) / 1000).toFixed(1)} s more`);
    const statuses = await Promise.all(own.map((c) => c.status()));
    // The kernel's socket buffers may take a little of each, never most of 6 MB.
    t.ok(statuses.filter((s) => s === '429').length >= 4, `the replies past the share are 429 (${statuses.join(' ')})`);
    t.ok(statuses.includes('200'), 'the one within it is sent');
  });
}
