/**
 * Request bodies count against the memory budget as their bytes arrive, within their own
 * share (memory.bodiesBytes): anonymous clients that declare large bodies and send nothing
 * hold nothing, and bodies that do arrive cannot take the budget the cores need. A body must
 * keep its pace (http.bodyGraceS, http.minBodyBytesPerSecond): one dripped a byte at a time
 * is refused with 408 and its connection closed. On both transports.
 */
import tls from 'node:tls';
import t from 'tap';
import { freePort } from '../src/provision/exec';
import { cliServer, type CliServer } from './helpers/core-raw';
import { request, startTestServer } from './helpers/server';
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

/**
 * A POST to donor registration announcing `length` bytes, sent `chunk` bytes every `everyMs`;
 * resolves with what the server answered and how long after the head the connection closed
 * (-1: still open a second after the answer).
 */
function drip(port: number, ca: string, length: number, chunk: number, everyMs: number, path = '/v1/donors'): Promise<{ answer: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let started = 0;
    let text = '';
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      started = Date.now();
      socket.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
      let sent = 0;
      timer = setInterval(() => {
        if (sent >= length) return clearInterval(timer);
        const n = Math.min(chunk, length - sent);
        sent += n;
        socket.write(Buffer.alloc(n, 0x20));
      }, everyMs);
    });
    // Settled when the connection closes, or 1 s after a whole answer if it stays open (-1).
    const settle = (closedAfterMs: number): void => {
      clearInterval(timer);
      if (started === 0) reject(new Error('no TLS connection'));
      else resolve({ answer: text, closedAfterMs });
      socket.destroy();
    };
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (/^HTTP\/1\.1 \d{3}[\s\S]*\r\n\r\n\{[\s\S]*\}$/.test(text)) setTimeout(() => settle(-1), 1000);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => settle(Date.now() - started));
  });
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: a body that falls behind its pace gets 408 and its connection closes; one that keeps it is read`, async (t) => {
    const ts = await startTestServer({ 'server.transport': transport, 'http.bodyGraceS': 1, 'http.minBodyBytesPerSecond': 100 });
    t.teardown(() => ts.close());
    // 3 bytes a second: due at 1 s plus 0.01 s per byte received.
    const slow = await drip(ts.server.port, ts.ca, 1000, 1, 300);
    t.match(slow.answer, /^HTTP\/1\.1 408 [\s\S]*"code":"request_timeout"/, `408 request_timeout (${slow.answer.split('\r\n')[0]})`);
    t.ok(slow.closedAfterMs >= 900 && slow.closedAfterMs < 4000, `closed ${slow.closedAfterMs} ms after the head`);
    // 400 bytes a second, for 2.5 s (past the grace): kept, and read whole (then refused as the JSON it is not).
    const paced = await drip(ts.server.port, ts.ca, 1000, 100, 250);
    t.match(paced.answer, /^HTTP\/1\.1 400 /, `read whole and answered, not timed out (${paced.answer.split('\r\n')[0]})`);
    // Answered before its body is read (a bad query): the connection closes with the answer,
    // so the rest of the body is neither waited for nor counted.
    const early = await drip(ts.server.port, ts.ca, 1000, 1, 300, '/v1/donors?x=1');
    t.match(early.answer, /^HTTP\/1\.1 400 /, `answered at once (${early.answer.split('\r\n')[0]})`);
    t.ok(early.closedAfterMs >= 0 && early.closedAfterMs < 3000, `and closed ${early.closedAfterMs} ms after the head, not held while the body drips`);
    const late = await Promise.all(Array.from({ length: 5 }, () => drip(ts.server.port, ts.ca, 60_000, 60_000, 200, '/v1/donors?x=1')));
    t.ok(late.every((r) => / 400 /.test(r.answer)), 'bodies sent after their answer');
    const m = (await request(`${ts.url}/metrics`, { ca: ts.ca })).body.toString();
    t.equal(Number(/coordinator_memory_budget_used_bytes\{kind="bodies"[^}]*\} (\d+)/.exec(m)?.[1]), 0, 'no body memory held after');
  });
}

/** Sends `requests` one after another on one TLS connection; resolves with the status of each answer, and whether the connection is still open after. */
function onOneConnection(port: number, ca: string, requests: string[]): Promise<{ statuses: number[]; open: boolean }> {
  return new Promise((resolve, reject) => {
    const statuses: number[] = [];
    let text = '';
    let open = true;
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => socket.write(requests[0]!));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      open = false;
      if (statuses.length < requests.length) resolve({ statuses, open });
    });
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      // An answer is whole when its body has its Content-Length.
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = text.slice(0, end + 4);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (Buffer.byteLength(text) < Buffer.byteLength(head) + length) return;
      statuses.push(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]));
      text = Buffer.from(text).subarray(Buffer.byteLength(head) + length).toString();
      if (statuses.length < requests.length) socket.write(requests[statuses.length]!);
      else setTimeout(() => {
        resolve({ statuses, open });
        socket.destroy();
      }, 200);
    });
    setTimeout(() => reject(new Error(`no answers after 10 s (${statuses.join(', ')})`)), 10_000);
  });
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: an early answer to a request whose body came with its head keeps the connection`, async (t) => {
    const ts = await startTestServer({ 'server.transport': transport });
    t.teardown(() => ts.close());
    const post = (path: string): string => `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`;
    const r = await onOneConnection(ts.server.port, ts.ca, [post('/v1/donors?x=1'), post('/nope'), 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n']);
    t.same(r.statuses.slice(0, 2), [400, 404], 'a bad query before the body is read, an unknown path: answered');
    t.equal(r.statuses[2], 200, 'and the connection served the next request');
    t.ok(r.open, 'kept open');
  });
}

t.test('node: a body sent with a GET, which the route does not read, does not hold the connection', async (t) => {
  const ts = await startTestServer({ 'server.transport': 'node', 'http.bodyGraceS': 1, 'http.minBodyBytesPerSecond': 100 });
  t.teardown(() => ts.close());
  const r = await new Promise<{ answer: string; ms: number }>((resolve) => {
    let answer = '';
    const started = Date.now();
    const socket = tls.connect({ host: '127.0.0.1', port: ts.server.port, ca: ts.ca, servername: 'localhost' }, () => {
      socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n');
      const timer = setInterval(() => socket.write(' '), 300);
      socket.on('close', () => clearInterval(timer));
    });
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ answer, ms: Date.now() - started }));
    setTimeout(() => socket.destroy(), 10_000);
  });
  t.match(r.answer, /^HTTP\/1\.1 200 /, 'answered');
  t.ok(r.ms < 3000, `closed ${r.ms} ms after (Node would read that body first, however slowly it came)`);
});
