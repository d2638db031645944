/**
 * The Node transport: node:https (or node:http behind a proxy) for the routes and `ws` for
 * `/core/v1`, through the same exchange and session code as the uWS transport.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { clientAddress, normalizeAddress } from '../http/client-address';
import { errorHeaders } from '../http/exchange';
import { CoreSession } from '../core/session';
import { authorizeCore, SUBPROTOCOL } from './uws-core';
import { errorBody, toAppError, type AppError } from '../errors';
import { serveNodeHttp } from './node-http';
import type { Transport, TransportOptions } from './types';
import { statusLine } from './uws-http';
import { DEFAULT_CIPHERS, MIN_TLS_VERSION } from './tls-policy';

function refuse(socket: Duplex, e: AppError): void {
  const body = errorBody(e);
  const extra = Object.entries(errorHeaders(e)).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${statusLine(e.status)}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`);
}

/** Starts listening with node:http(s) and ws. */
export async function startNodeTransport(o: TransportOptions): Promise<Transport> {
  const { hub } = o.core;
  const c = hub.settings.core;
  const server = o.tls.enabled
    ? https.createServer({ cert: fs.readFileSync(o.chainFile!), key: fs.readFileSync(o.tls.key), passphrase: o.tls.passphrase || undefined, minVersion: MIN_TLS_VERSION, ciphers: o.tls.ciphers ?? DEFAULT_CIPHERS, honorCipherOrder: true })
    : http.createServer();
  server.on('request', (req, res) => serveNodeHttp(o.http, req, res));

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: c.maxMessageBytes,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  const alive = new WeakMap<WebSocket, boolean>();
  const maxBackpressure = Math.max(c.maxMessageBytes * 2, 64 * 1024 * 1024);

  server.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '').split('?')[0];
    socket.on('error', () => undefined);
    if (path !== '/core/v1') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    const peer = normalizeAddress(req.socket.remoteAddress ?? '');
    const remote = clientAddress(o.core.trust, peer, String(req.headers['x-forwarded-for'] ?? ''));
    const donor = req.headers['x-donor-token'];
    authorizeCore({ authorization: req.headers.authorization, donor: Array.isArray(donor) ? donor[0] : donor }, o.core, remote).then(
      (identity) => {
        if (socket.destroyed) return;
        wss.handleUpgrade(req, socket, head, (ws) => {
          const socketApi = {
            send: (m: Record<string, unknown>) => {
              if (ws.readyState !== WebSocket.OPEN) return;
              // Mirrors uWS closeOnBackpressureLimit: a core that does not read is dropped.
              if (ws.bufferedAmount > maxBackpressure) ws.terminate();
              else ws.send(JSON.stringify(m));
            },
            close: (code: number, reason: string) => ws.close(code, reason),
          };
          const session = new CoreSession(hub, socketApi, identity);
          alive.set(ws, true);
          hub.add(session, socketApi);
          hub.log.info({ session: session.id, engine: identity.engine, donor: identity.donor?.name, remote }, 'core connected');
          ws.on('pong', () => alive.set(ws, true));
          ws.on('message', (data: Buffer, isBinary) => session.onMessage(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), isBinary));
          ws.on('error', () => undefined);
          ws.on('close', (code) => {
            hub.remove(session);
            hub.log.info({ session: session.id, code }, 'core disconnected');
            void session.onClose();
          });
          session.welcome();
        });
      },
      (err: unknown) => {
        const e = toAppError(err);
        if (e.code === 'internal') hub.log.error({ err, remote }, 'core upgrade failed');
        hub.log.info({ remote, status: e.status, code: e.code }, 'core upgrade refused');
        refuse(socket, e);
      },
    );
  });

  // ws does not ping on its own: ping every heartbeat, drop sockets that missed the last one.
  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.get(ws)) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, c.heartbeatS * 1000);
  pinger.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: o.host, port: o.port }, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : o.port,
    stopAccepting: () => server.close(),
    closeAll: () => {
      clearInterval(pinger);
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
    },
  };
}
