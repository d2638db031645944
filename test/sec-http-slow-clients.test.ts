/**
 * Connections that never send a complete request head do not hold their socket for long,
 * on both transports: TCP without a TLS hello, TLS with nothing after the handshake, and
 * headers sent a byte at a time. The node transport closes them after http.idleTimeoutS
 * (Node's own defaults held all three for over 75 s); uWS after its fixed 10 s. A core
 * session, once upgraded, is not touched by it.
 */
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { coreFixture } from './helpers/core';
import { stopStack } from '../test-support/stack';

t.teardown(stopStack);

/** Seconds until the server closes `socket` (or `limitS`, when it does not). */
function closedAfter(socket: net.Socket, limitS: number): Promise<number> {
  const started = Date.now();
  socket.on('error', () => undefined);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(limitS);
    }, limitS * 1000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve((Date.now() - started) / 1000);
    });
  });
}

const cases = [
  { transport: 'node', idleTimeoutS: 2, boundS: 5 },
  // uSockets checks its timeouts every 4 s: its 10 s come due between 12 and 16 s.
  { transport: 'uws', idleTimeoutS: 10, boundS: 17 },
] as const;

for (const { transport, idleTimeoutS, boundS } of cases) {
  t.test(`${transport}: silent and slow connections are closed within ${boundS} s; a core session stays`, async (t) => {
    const f = await coreFixture({ 'server.transport': transport, 'http.idleTimeoutS': idleTimeoutS });
    t.teardown(() => f.ts.close());
    const port = f.ts.server.port;
    const secure = (): tls.TLSSocket => tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ts.ca });

    const core = await f.client({ reconnect: false });
    t.teardown(() => core.close());

    const raw = net.connect(port, '127.0.0.1');
    const silent = secure();
    const slow = secure();
    slow.once('secureConnect', () => {
      slow.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
      const drip = setInterval(() => slow.destroyed || slow.write('X'), 500);
      slow.once('close', () => clearInterval(drip));
    });
    const [rawS, silentS, slowS] = await Promise.all([raw, silent, slow].map((s) => closedAfter(s, boundS + 5)));
    t.ok(rawS <= boundS, `TCP without a TLS hello closed after ${rawS} s`);
    t.ok(silentS <= boundS, `TLS without a request closed after ${silentS} s`);
    t.ok(slowS <= boundS, `headers a byte at a time closed after ${slowS} s`);
    await core.ping();
    t.pass('the core session, idle meanwhile, is still served');
  });
}
