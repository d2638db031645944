/**
 * Connections that are not core sockets, per client address (http.maxConnectionsPerAddress)
 * and per process (http.maxConnections), on both transports: past the limit a connection is closed as it is accepted, before its TLS
 * handshake, so one host cannot hold a process's file descriptors with connections that each
 * stay short of the idle timeout; other addresses are served meanwhile; a core socket stops
 * counting once upgraded; a trusted proxy's connections are not counted; refusals show in
 * /metrics.
 */
import net from 'node:net';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { coreFixture } from './helpers/core';
import { eventually, request } from './helpers/server';
import { stopStack } from '../test-support/stack';

t.teardown(stopStack);

const MAX = 4;

/** A TCP connection from `from`; resolves once connected, with whether the server closes it within `ms`. */
async function connection(t: Test, port: number, from = '127.0.0.1'): Promise<{ socket: net.Socket; closedWithin: (ms: number) => Promise<boolean> }> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
  socket.on('error', () => undefined);
  t.teardown(() => socket.destroy());
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  const closedWithin = (ms: number): Promise<boolean> => Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  return { socket, closedWithin };
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: connections past http.maxConnectionsPerAddress are closed as they come`, async (t) => {
    const f = await coreFixture({ 'server.transport': transport, 'http.maxConnectionsPerAddress': MAX, 'server.trustProxy': ['127.0.0.3'] });
    t.teardown(() => f.ts.close());
    const port = f.ts.server.port;
    const health = (): Promise<number> => request(`${f.ts.url}/healthz`, { ca: f.ts.ca }).then((r) => r.status, () => 0);

    const held = [];
    for (let i = 0; i < MAX; i++) held.push(await connection(t, port));
    const stays = await Promise.all(held.map((c) => c.closedWithin(500)));
    t.same(stays, Array(MAX).fill(false), `${MAX} silent connections from one address stay open`);
    const extra = await connection(t, port);
    t.equal(await extra.closedWithin(2000), true, 'one more from that address is closed at once');
    t.equal(await health(), 0, 'so is a request from it');

    const other = await connection(t, port, '127.0.0.2');
    t.equal(await other.closedWithin(500), false, 'another address is not affected');
    const proxy = [];
    for (let i = 0; i < MAX + 2; i++) proxy.push(await connection(t, port, '127.0.0.3'));
    t.same(await Promise.all(proxy.map((c) => c.closedWithin(500))), Array(MAX + 2).fill(false), "a trusted proxy's connections are not counted");

    held.pop()!.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    t.equal(await health(), 200, 'a connection that closes makes room');

    for (const c of held) c.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const cores = [];
    for (let i = 0; i < MAX + 2; i++) {
      const core = await f.client({ reconnect: false });
      t.teardown(() => core.close());
      cores.push(core);
    }
    t.pass(`${MAX + 2} core sockets from the address, one after another: each stops counting once upgraded`);
    const after = [];
    for (let i = 0; i < MAX; i++) after.push(await connection(t, port));
    t.same(await Promise.all(after.map((c) => c.closedWithin(500))), Array(MAX).fill(false), `and ${MAX} more connections fit beside them`);
    await Promise.all(cores.map((c) => c.ping()));
    for (const c of after) c.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));

    const metrics = (await request(`${f.ts.url}/metrics`, { ca: f.ts.ca })).body.toString();
    t.match(metrics, /coordinator_http_connections_refused_total\{limit="address"[^}]*\} [2-9]/, 'refusals are counted');
    const open = Number(/coordinator_http_connections(?:\{[^}]*\})? (\d+)/.exec(metrics)?.[1]);
    t.equal(open, MAX + 4, "open connections counted: the proxy's, the other address's and the /metrics request's own, not the cores'");
  });

  t.test(`${transport}: connections past http.maxConnections, from any address, are closed as they come`, async (t) => {
    const TOTAL = 6;
    const f = await coreFixture({ 'server.transport': transport, 'http.maxConnections': TOTAL, 'http.maxConnectionsPerAddress': 2, 'server.trustProxy': ['127.0.0.3'] });
    t.teardown(() => f.ts.close());
    const port = f.ts.server.port;
    const held = [await connection(t, port, '127.0.0.3'), await connection(t, port, '127.0.0.3'), await connection(t, port, '127.0.0.3')];
    for (const from of ['127.0.0.4', '127.0.0.5', '127.0.0.6']) held.push(await connection(t, port, from));
    t.same(await Promise.all(held.map((c) => c.closedWithin(500))), Array(TOTAL).fill(false), `${TOTAL} silent connections from four addresses, a trusted proxy's among them, stay open`);
    for (const from of ['127.0.0.7', '127.0.0.3']) {
      const extra = await connection(t, port, from);
      t.equal(await extra.closedWithin(2000), true, `one more from ${from} is closed at once`);
    }

    held.pop()!.socket.destroy();
    held.pop()!.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const core = await f.client({ reconnect: false });
    t.teardown(() => core.close());
    t.pass('connections that close make room: a core connects');
    const more = [await connection(t, port, '127.0.0.8'), await connection(t, port, '127.0.0.8')];
    t.same(await Promise.all(more.map((c) => c.closedWithin(500))), [false, false], 'and, once upgraded, stops counting: two more fit');
    const last = await connection(t, port, '127.0.0.9');
    t.equal(await last.closedWithin(2000), true, 'the process is full again');

    for (const c of [...held, ...more]) c.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const metrics = (await request(`${f.ts.url}/metrics`, { ca: f.ts.ca })).body.toString();
    t.match(metrics, /coordinator_http_connections_refused_total\{limit="process"[^}]*\} 3/, 'the three refusals are counted as the process limit');
    await core.ping();
  });
}

for (const transport of ['uws', 'node'] as const) {
  t.test(`${transport}: a refused upgrade is closed even when its client keeps the connection open`, async (t) => {
    const f = await coreFixture({ 'server.transport': transport });
    t.teardown(() => f.ts.close());
    const port = f.ts.server.port;
    const open = async (): Promise<number> => Number(/coordinator_http_connections(?:\{[^}]*\})? (\d+)/.exec((await request(`${f.ts.url}/metrics`, { ca: f.ts.ca })).body.toString())?.[1]);
    const cases: Array<[string, string, string]> = [
      ['a path that is not the core endpoint', '/core/v2', f.engineKey],
      ['an unknown engine key', '/core/v1', 'not-a-key'],
    ];
    for (const [what, path, key] of cases) {
      // allowHalfOpen: the client never closes its side, as a hostile one would not.
      const s = tls.connect({ port, host: '127.0.0.1', ca: f.ts.ca, servername: 'localhost', allowHalfOpen: true } as tls.ConnectionOptions);
      s.on('error', () => undefined);
      t.teardown(() => s.destroy());
      await new Promise<void>((r) => s.once('secureConnect', () => r()));
      let answer = '';
      s.on('data', (d: Buffer) => (answer += d.toString()));
      const ended = new Promise<void>((r) => s.once('end', () => r()));
      s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: coordinator.core.v1\r\nAuthorization: Bearer ${key}\r\n\r\n`);
      await ended;
      t.match(answer, /^HTTP\/1\.1 (401|404)/, `${what}: refused`);
      // Both transports answer with the error catalog's body (node once sent a bare 404).
      t.match(answer, path === '/core/v1' ? /"code":"unauthorized"/ : /"code":"not_found"/, `${what}: the catalog's JSON error`);
      await eventually(async () => (await open()) === 1, 5000, `${what}: the connection no longer counted`);
      t.pass(`${what}: the server closed it and stopped counting it`);
    }
  });
}
