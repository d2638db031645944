/**
 * The Node transport: node:https (or node:http behind a proxy) for the routes and `ws` for
 * `/core/v1`, through the same exchange and session code as the uWS transport.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { normalizeAddress } from '../http/client-address';
import { AppError } from '../errors';
import { chooseSubprotocol, closeSession, decideUpgrade, maxBackpressureBytes, openSession, refusalOf, type Refusal } from './core-socket';
import { NodeCoreSocket, UnsentBytes } from './node-core-socket';
import { PartialMessages } from './node-partial-messages';
import { serveNodeHttp } from './node-http';
import type { Transport, TransportOptions } from './types';
import { DEFAULT_CIPHERS, MIN_TLS_VERSION } from './tls-policy';

/** The HTTP answer to an upgrade that will not happen. */
function refusal(r: Refusal): string {
  const headers = Object.entries(r.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `HTTP/1.1 ${r.statusLine}\r\n${headers}content-length: ${Buffer.byteLength(r.body)}\r\nconnection: close\r\n\r\n${r.body}`;
}

/**
 * Answers an upgrade that will not happen and closes its socket once the answer is written,
 * or after `idleMs` if the client does not take it. `end` alone is not enough: Node hands an
 * upgrade's socket over half-open, so a client that never closes its side kept it (and its
 * place under http.maxConnections) for good; one that reset it while the decision ran could
 * leave it so too.
 */
function abortUpgrade(socket: Duplex, response: string, idleMs: number): void {
  const timer = setTimeout(() => socket.destroy(), idleMs).unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('finish', () => socket.destroy());
  socket.end(response);
}

/** Starts listening with node:http(s) and ws. */
export async function startNodeTransport(o: TransportOptions): Promise<Transport> {
  const { hub } = o.core;
  const c = hub.settings.core;
  // Node's own defaults let a connection that sends nothing, or headers a byte at a time,
  // hold its socket for minutes (120 s for a handshake; 60 s for headers, checked every 30 s).
  const idleMs = hub.settings.http.idleTimeoutS * 1000;
  // Node's request timeout (300 s unless set) would cut an honest slow upload short, and it
  // answers without the error catalog's body: bodies keep their pace in the exchange instead
  // (http.bodyGraceS, http.minBodyBytesPerSecond), as on uws. 0 turns it off.
  const timeouts: http.ServerOptions = { headersTimeout: idleMs, requestTimeout: 0, connectionsCheckingInterval: Math.min(1000, idleMs) };
  const server = o.tls.enabled
    ? https.createServer({ ...timeouts, handshakeTimeout: idleMs, cert: fs.readFileSync(o.chainFile!), key: fs.readFileSync(o.tls.key), passphrase: o.tls.passphrase || undefined, minVersion: MIN_TLS_VERSION, ciphers: o.tls.ciphers ?? DEFAULT_CIPHERS, honorCipherOrder: true })
    : http.createServer(timeouts);
  // Node times out headers only once their first byte came: a connection that sends nothing
  // after its handshake gets the same time for its first request head.
  const waitingHead = new WeakMap<Duplex, NodeJS.Timeout>();
  const headFor = (socket: Duplex): void => {
    const timer = waitingHead.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    waitingHead.delete(socket);
  };
  server.on('request', (req, res) => {
    headFor(req.socket);
    serveNodeHttp(o.http, req, res, idleMs);
  });
  // Connections per address (connection-limit.ts), from the raw TCP socket, before TLS. A core
  // upgrade finds its raw socket by the peer's address and port (unique while both are open).
  const counted = new Map<string, net.Socket>();
  const rawKey = (socket: { remoteAddress?: string; remotePort?: number }): string => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
  server.on('connection', (raw: net.Socket) => {
    // Reset before Node asked for its address: nothing to count it against.
    const peer = raw.remoteAddress;
    if (peer === undefined || !o.connections.admit(peer)) {
      raw.destroy();
      return;
    }
    const key = rawKey(raw);
    counted.set(key, raw);
    raw.once('close', () => {
      if (counted.get(key) !== raw) return;
      counted.delete(key);
      o.connections.release(peer);
    });
  });
  /** The connection of `req` is now a core socket: core.maxSocketsPerAddress counts it. */
  const becameCore = (req: http.IncomingMessage): void => {
    const key = rawKey(req.socket);
    const raw = counted.get(key);
    if (!raw) return;
    counted.delete(key);
    o.connections.release(raw.remoteAddress ?? '');
  };
  server.on(o.tls.enabled ? 'secureConnection' : 'connection', (socket: Duplex) => {
    waitingHead.set(socket, setTimeout(() => socket.destroy(), idleMs).unref());
    socket.once('close', () => headFor(socket));
  });

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: c.maxMessageBytes,
    // ws keeps each read of a message in part as a Buffer of its own (PER_READ_BYTES): its
    // default of 262,144 let one socket sending a byte at a time hold about 100 MiB. This
    // allows reads of 1 KiB on average for the largest message.
    maxBufferedChunks: Math.max(16_384, Math.ceil(c.maxMessageBytes / 1024)),
    perMessageDeflate: false,
    handleProtocols: (protocols) => chooseSubprotocol(protocols) ?? false,
  });
  const partial = new PartialMessages(Math.min(hub.settings.memory.partialMessagesBytes, hub.memory.options.limitBytes));
  hub.memory.countTransport('partial', () => partial.total);
  const unsent = new UnsentBytes();
  hub.memory.countTransport('unsent', () => unsent.total);
  const alive = new WeakMap<WebSocket, boolean>();
  const maxBackpressure = maxBackpressureBytes(hub.settings);

  server.on('upgrade', (req, socket, head) => {
    headFor(req.socket);
    const path = (req.url ?? '').split('?')[0];
    socket.on('error', () => undefined);
    // A decision waits on store lookups with no deadline of their own: past three idle
    // timeouts (a stalled store) the socket goes, rather than hold a place under
    // http.maxConnections for as long as the stall lasts; a slow but working store has time.
    const deciding = setTimeout(() => socket.destroy(), 3 * idleMs).unref();
    socket.once('close', () => clearTimeout(deciding));
    if (path !== '/core/v1') {
      // Answered as the router answers any unknown path (uWS routes such an upgrade there).
      abortUpgrade(socket, refusal(refusalOf(new AppError('not_found', `No route for ${path}`))), idleMs);
      return;
    }
    const peer = normalizeAddress(req.socket.remoteAddress ?? '');
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    void decideUpgrade(o.core, { authorization: header('authorization'), donor: header('x-donor-token'), forwarded: String(req.headers['x-forwarded-for'] ?? ''), connection: header('connection') }, peer).then((decision) => {
      if (!decision.ok) {
        abortUpgrade(socket, refusal(decision.refusal), idleMs);
        return;
      }
      if (socket.destroyed) return;
      wss.handleUpgrade(req, socket, head, (ws) => {
        clearTimeout(deciding);
        becameCore(req);
        const delivered = partial.track(ws, socket);
        alive.set(ws, true);
        const coreSocket = new NodeCoreSocket(ws, maxBackpressure, unsent, c.unreadRepliesBytes);
        // Node empties a socket's queue without telling ws: its count is brought down then.
        socket.on('drain', () => coreSocket.recount());
        const session = openSession(o.core, coreSocket, decision.identity);
        ws.on('pong', () => alive.set(ws, true));
        ws.on('message', (data: Buffer, isBinary) => {
          delivered();
          session.onMessage(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), isBinary);
        });
        ws.on('error', () => undefined);
        ws.on('close', (code) => {
          coreSocket.forget();
          closeSession(o.core, session, code);
        });
      });
    });
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
      // Upgrades still being decided are no longer the HTTP server's to close.
      for (const raw of counted.values()) raw.destroy();
    },
  };
}
