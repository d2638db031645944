/**
 * The vendored uWebSockets.js build itself (vendor/uWebSockets.js/BUILD.md): an upgrade made
 * in `res.cork` after an await keeps its socket. Unpatched v20.66.0 could close such a socket
 * right after `open`; a request whose `Connection` value has 5 characters (`close`) made it
 * close every time, which is how this test tells the builds apart. Plain TCP: the bug is in
 * the HTTP layer, not TLS. Also what the transport relies on of the binding: an upgrade's user
 * data becomes the socket's own properties.
 */
import net from 'node:net';
import t from 'tap';
import uws from 'uWebSockets.js';
import { handshakeRequest } from './helpers/handshake';

interface Outcome {
  upgraded: boolean;
  greeted: boolean;
  open: boolean;
}

/** Sends a handshake by hand and reports what happened within `ms`. */
function handshake(port: number, connection: string, ms = 400): Promise<Outcome> {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(handshakeRequest('/ws', { connection }));
    });
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    const done = (open: boolean): void => resolve({ upgraded: got.startsWith('HTTP/1.1 101 '), greeted: got.includes('hello from open'), open });
    const timer = setTimeout(() => {
      s.end();
      done(true);
    }, ms);
    s.on('close', () => {
      clearTimeout(timer);
      done(false);
    });
  });
}

t.test('an upgrade corked after an await keeps its socket, whatever the Connection header says', async (t) => {
  let opened = 0;
  let closed = 0;
  const app = uws.App().ws('/ws', {
    upgrade: (res, req, context) => {
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      let aborted = false;
      res.onAborted(() => (aborted = true));
      setTimeout(() => {
        if (!aborted) res.cork(() => res.upgrade({}, key, protocol, extensions, context));
      }, 5);
    },
    open: (ws) => {
      opened++;
      setImmediate(() => {
        if (opened > closed) ws.send('hello from open');
      });
    },
    close: () => {
      closed++;
    },
  });
  const listen = await new Promise<uws.us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  t.teardown(() => uws.us_listen_socket_close(listen));
  const port = uws.us_socket_local_port(listen);

  for (const connection of ['Upgrade', 'close', 'keep-alive, Upgrade', 'close']) {
    t.same(await handshake(port, connection), { upgraded: true, greeted: true, open: true }, `Connection: ${connection}`);
  }
  await new Promise((r) => setTimeout(r, 100));
  t.equal(closed, opened, 'every socket that opened got its close callback once the client left');
});

t.test('the user data an upgrade passes is copied onto the socket, which getUserData returns', async (t) => {
  // src/transport/uws-core.ts keeps each socket's state on the socket object itself and reads it
  // from there after uWS has closed the socket (when getUserData would throw).
  const seen: Array<{ same: boolean; keys: string[]; value: unknown }> = [];
  let afterClose: unknown;
  const app = uws.App().ws<{ state: string }>('/ws', {
    upgrade: (res, req, context) => res.upgrade({ state: 'open' }, req.getHeader('sec-websocket-key'), '', '', context),
    open: (ws) => {
      const data = ws.getUserData();
      seen.push({ same: (data as unknown) === ws, keys: Object.keys(ws), value: (ws as unknown as { state: string }).state });
      ws.end(1000, 'bye');
    },
    close: (ws) => {
      ws.getUserData().state = 'gone';
      setImmediate(() => (afterClose = (ws as unknown as { state: string }).state));
    },
  });
  const listen = await new Promise<uws.us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  t.teardown(() => uws.us_listen_socket_close(listen));
  await handshake(uws.us_socket_local_port(listen), 'Upgrade', 200);
  t.same(seen, [{ same: true, keys: ['state'], value: 'open' }], 'one socket, its data its own properties');
  t.equal(afterClose, 'gone', 'still readable after the close callback');
});
