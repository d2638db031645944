/**
 * The two transports behind one interface. `uws` (default): uWebSockets.js, loaded lazily
 * so a platform where its binary cannot load gets a clear message. `node`: Node's
 * http/https plus `ws` — the baseline of the benchmarks and a fallback. Both serve the same
 * routes (exchange.ts) and the same core endpoint (core-socket.ts).
 */
import type { Auth } from '../auth/principals';
import type { TrustList } from '../http/client-address';
import type { ConnectionLimit } from './connection-limit';
import type { CoreHub } from '../core/hub';
import type { EngineKeys } from '../auth/engine-keys';
import type { HttpContext } from '../http/exchange';
import type { TlsMode } from './tls';

/** What a transport needs. */
export interface TransportOptions {
  host: string;
  port: number;
  /** TLS mode; with TLS on, `chainFile` holds certificate + chain. */
  tls: TlsMode;
  chainFile?: string;
  http: HttpContext;
  core: { hub: CoreHub; engineKeys: EngineKeys; auth: Auth; trust: TrustList };
  /** Connections per address that are not core sockets (http.maxConnectionsPerAddress). */
  connections: ConnectionLimit;
}

/** A listening transport. */
export interface Transport {
  readonly port: number;
  /** Stops accepting new connections. */
  stopAccepting(): void;
  /** Closes every remaining connection. */
  closeAll(): void;
}

/** Thrown when uWebSockets.js cannot load here; the message says how to get out. */
export class TransportLoadError extends Error {}

/** Loads uWebSockets.js or explains the two ways out. */
export function loadUws(): typeof import('uWebSockets.js') {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('uWebSockets.js') as typeof import('uWebSockets.js');
  } catch (err) {
    throw new TransportLoadError(
      `uWebSockets.js cannot load on this platform (${process.platform}-${process.arch}, Node ${process.versions.node}): ${(err as Error).message.split('\n')[0]}. ` +
        'The vendored build is for Linux x64, glibc >= 2.36, Node 20. Either install the official package for your platform ' +
        '(npm i uNetworking/uWebSockets.js#v20.66.0) or set server.transport to "node" (SC_TRANSPORT=node).',
    );
  }
}
