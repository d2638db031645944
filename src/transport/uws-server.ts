/** The uWebSockets.js transport: one SSLApp (or App) serving HTTP and `/core/v1`. */
import cluster from 'node:cluster';
import { coreBehavior } from './uws-core';
import type { Transport, TransportOptions } from './types';
import { loadUws } from './types';
import { serveHttp } from './uws-http';
import { DEFAULT_CIPHERS } from './tls-policy';
import type { ConnectionLimit } from './connection-limit';

/** Starts listening with uWebSockets.js. */
export async function startUwsTransport(o: TransportOptions): Promise<Transport> {
  const uws = loadUws();
  let app: import('uWebSockets.js').TemplatedApp;
  if (o.tls.enabled) {
    try {
      // SSL_MODE_RELEASE_BUFFERS: idle connections (most cores, most of the time) give their TLS buffers back.
      app = uws.SSLApp({ key_file_name: o.tls.key, cert_file_name: o.chainFile!, passphrase: o.tls.passphrase || undefined, ssl_prefer_low_memory_usage: true, ssl_ciphers: o.tls.ciphers ?? DEFAULT_CIPHERS });
    } catch (err) {
      throw new Error(`TLS setup failed for tls.cert ${o.tls.cert} / tls.key ${o.tls.key}: ${(err as Error).message}. Run 'stream-coordinator preflight' for details.`, { cause: err });
    }
  } else {
    app = uws.App();
  }
  countNativeMemory(uws, o);
  limitConnections(app, o.connections);
  app.ws('/core/v1', coreBehavior(o.core, o.connections));
  app.any('/*', (res, req) => serveHttp(o.http, res, req));
  // uWS sets SO_REUSEPORT by default, which the workers of a group need to share the port, but
  // which lets a lone server bind a port another server already listens on and split its
  // clients with it: a lone process asks for the port to itself.
  // ListenOptions is a declared enum with no runtime object: 0 LIBUS_LISTEN_DEFAULT, 1 LIBUS_LISTEN_EXCLUSIVE_PORT.
  const options = (cluster.isWorker ? 0 : 1) as import('uWebSockets.js').ListenOptions;
  const listenSocket = await new Promise<import('uWebSockets.js').us_listen_socket | false>((resolve) => {
    app.listen(o.host, o.port, options, resolve);
  });
  if (!listenSocket) throw new Error(`cannot listen on ${o.host}:${o.port} (address in use or not permitted)`);
  return {
    port: uws.us_socket_local_port(listenSocket),
    stopAccepting: () => uws.us_listen_socket_close(listenSocket),
    closeAll: () => app.close(),
  };
}

/**
 * Counts what uWS holds for clients in the memory budget: core messages received in part,
 * bounded by memory.partialMessagesBytes (process-wide in the binding: one transport per
 * process), and bytes written but not yet taken by the kernel (memory.unsentBytes, which
 * assign and resume check). Only the vendored build can (its patches 4 and 5); the official
 * package leaves them uncounted, said once.
 */
function countNativeMemory(uws: typeof import('uWebSockets.js'), o: TransportOptions): void {
  const { memory, settings, log } = o.core.hub;
  if (typeof uws.partialMessages !== 'function' || typeof uws.backpressureBytes !== 'function') {
    log.warn('this uWebSockets.js build cannot count messages received in part or unsent: memory.partialMessagesBytes and memory.unsentBytes are not enforced (use the vendored build)');
    return;
  }
  uws.partialMessages(Math.min(settings.memory.partialMessagesBytes, memory.options.limitBytes));
  memory.countTransport('partial', () => uws.partialMessages());
  memory.countTransport('unsent', () => uws.backpressureBytes());
}

const decoder = new TextDecoder();

/**
 * Counts connections per address (connection-limit.ts) through uWS's filter, which it calls
 * with 1 as it accepts a connection (before the TLS handshake) and with -1 as an HTTP
 * connection closes; not when one becomes a WebSocket, which the upgrade releases itself.
 */
function limitConnections(app: import('uWebSockets.js').TemplatedApp, connections: ConnectionLimit): void {
  // Closing a refused connection calls the filter again, with -1, before close() returns.
  let refusing = false;
  app.filter((res, count) => {
    if (refusing) return;
    const peer = decoder.decode(res.getRemoteAddressAsText());
    if (Number(count) < 0) {
      connections.release(peer);
      return;
    }
    if (connections.admit(peer)) return;
    refusing = true;
    try {
      res.close();
    } finally {
      refusing = false;
    }
  });
}
