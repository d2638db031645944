/**
 * Request bodies count against the memory budget as their bytes arrive, within their own
 * share (memory.bodiesBytes): anonymous clients that declare large bodies and send nothing
 * hold nothing, and bodies that do arrive cannot take the budget the cores need. On both
 * transports.
 */
import tls from 'node:tls';
import t from 'tap';
import { freePort } from '../src/provision/exec';
import { cliServer, type CliServer } from './helpers/core-raw';
import { request } from './helpers/server';
import { stopStack } from '../test-support/stack';

const MIB = 1024 * 1024;
t.teardown(stopStack);

/**
 * A TLS connection that sent a POST head announcing `length` bytes and then `send` of them;
 * `answer` is what the server said, once its JSON error body is complete or the connection
 * closed.
 */
function stalledPost(srv: CliServer, length: number, send = 0): Promise<{ socket: tls.TLSSocket; answer: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: srv.port, ca: srv.ca, servername: 'localhost' }, () => {
      socket.write(`POST /v1/donors HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
      if (send > 0) socket.write(Buffer.alloc(send, 0x20));
      let text = '';
      const answer = new Promise<string>((done) => {
        socket.on('data', (d: Buffer) => {
          text += d.toString();
          if (/^HTTP\/1\.1 \d{3}[\s\S]*\r\n\r\n\{[\s\S]*\}$/.test(text)) done(text);
        });
        socket.on('close', () => done(text));
        socket.on('error', () => done(text));
      });
      resolve({ socket, answer });
    });
    socket.on('error', reject);
  });
}

async function bodiesHeld(srv: CliServer): Promise<number> {
  const m = (await request(`https://127.0.0.1:${srv.port}/metrics`, { ca: srv.ca })).body.toString();
  return Number(/coordinator_memory_budget_used_bytes\{kind="bodies"[^}]*\} (\d+)/.exec(m)?.[1] ?? NaN);
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: declared bodies hold nothing; bodies that arrive stop at memory.bodiesBytes, and cores keep working`, async (t) => {
    const srv = await cliServer(
      await freePort(),
      { 'server.transport': transport, 'server.workers': 1, 'memory.budgetBytes': 16 * MIB, 'memory.bodiesBytes': 4 * MIB, 'memory.spillAtBytes': 4 * MIB, 'donors.registrationsPerHour': 1000 },
      /"msg":"listening"/,
    );
    t.teardown(() => srv.stop());
    const core = await srv.connect();
    t.teardown(() => core.close());

    // Forty clients announce 1 MiB each (40 MiB, over the whole budget) and send nothing.
    const stalled = await Promise.all(Array.from({ length: 40 }, () => stalledPost(srv, MIB - 1)));
    t.teardown(() => stalled.forEach((s) => s.socket.destroy()));
    await new Promise((r) => setTimeout(r, 300));
    t.equal(await srv.f.api<{ name: string }>('POST', '/v1/donors', undefined, { name: `honest-${transport}` }, 201).then((r) => r.name), `honest-${transport}`, 'an honest registration gets through');
    t.equal((await core.request({ type: 'ping' })).type, 'pong', 'a core is served');
    t.ok((await bodiesHeld(srv)) < 64 * 1024, 'the declared bodies hold nothing');

    // Now bodies that arrive: 768 KiB each, short of their 1 MiB; the sixth passes 4 MiB.
    const sending = await Promise.all(Array.from({ length: 6 }, () => stalledPost(srv, MIB - 1, 768 * 1024)));
    t.teardown(() => sending.forEach((s) => s.socket.destroy()));
    const refused = await Promise.race([Promise.any(sending.map((s) => s.answer.then((a) => (a.includes(' 429 ') ? a : Promise.reject(new Error(a)))))), new Promise<string>((r) => setTimeout(() => r('none'), 30_000))]);
    t.match(refused, /HTTP\/1\.1 429 .*rate_limited/s, 'the body past memory.bodiesBytes is refused with 429');
    if (refused === 'none') t.comment(`held by bodies: ${await bodiesHeld(srv)} bytes; sockets open: ${sending.filter((s) => !s.socket.destroyed).length}`);
    t.ok((await bodiesHeld(srv)) <= 4 * MIB, 'bodies never hold more than their share');
    t.equal((await core.request({ type: 'ping' })).type, 'pong', 'the core is still served');
  });
}
