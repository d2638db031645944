/**
 * The `/core/v1` WebSocket endpoint on uWebSockets.js: authentication at upgrade (401 with
 * the JSON error body and no upgrade), the subprotocol echo, and the glue between uWS
 * callbacks and {@link CoreSession}. uWS rules kept here: headers are copied before any
 * await, the upgrade is corked, a closed socket is never touched again, and nothing is written
 * to a socket from inside a uWS callback (see {@link Outbox}).
 */
import type uws from 'uWebSockets.js';
import type { Auth } from '../auth/users';
import { clientAddress, normalizeAddress, type TrustList } from '../http/client-address';
import { errorHeaders } from '../http/exchange';
import { headerList } from './uws-headers';
import type { CoreHub } from '../core/hub';
import { CoreSession, type CoreSocket } from '../core/session';
import type { EngineKeys } from '../auth/engine-keys';
import { AppError, errorBody, toAppError } from '../errors';
import { bearer, hashToken } from '../auth/tokens';
import { statusLine } from './uws-http';
import { admitCore } from '../core/admission';
import type { CoreIdentity } from '../model';

/** The subprotocol cores offer and the server echoes. */
export const SUBPROTOCOL = 'coordinator.core.v1';

/**
 * Per-socket state. uWS.js copies these properties onto its WebSocket object, so no name may
 * shadow a WebSocket method (`send`, `end`, `close`, `cork`, …).
 */
interface SocketData {
  identity: CoreIdentity;
  session?: CoreSession;
  /** uWS closed the socket, or a close is queued: nothing more is sent. */
  closed: boolean;
  /** The socket, set at open (uWS hands it to callbacks only). */
  socket?: uws.WebSocket<SocketData>;
  /** Messages queued for the next flush, in order. */
  out?: string[];
  /** A close queued behind `out`. */
  closeWith?: { code: number; reason: string };
}

/**
 * Replies are written after the uWS callback that caused them, all at once on `setImmediate`.
 *
 * Why: the vendored uSockets' TLS layer discards the still-encrypted rest of a read when the
 * application writes from inside its data callback (`us_internal_ssl_socket_write` resets the
 * loop's read input). That happens as soon as one read decrypts more than its 512 KiB buffer,
 * i.e. when a core pipelines frames (≈ 800 KB in flight), and the socket then dies with 1006.
 * Promise continuations run inside the callback (uWS drains microtasks before returning), so
 * an ack sent after `await` of settled work is still "inside"; `setImmediate` is not. The flush
 * also corks every socket once per turn of the event loop, however many replies it has.
 * `bench/uws-tls-burst.ts` reproduces the drop without the coordinator.
 */
class Outbox {
  private readonly dirty = new Set<SocketData>();
  private scheduled = false;

  /** Queues a message for the socket. */
  send(data: SocketData, message: string): void {
    (data.out ??= []).push(message);
    this.mark(data);
  }

  /** Queues a close behind the socket's queued messages; later sends are dropped. */
  end(data: SocketData, code: number, reason: string): void {
    data.closeWith = { code, reason };
    this.mark(data);
  }

  private mark(data: SocketData): void {
    this.dirty.add(data);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    for (const data of this.dirty) {
      const ws = data.socket;
      const out = data.out;
      const end = data.closeWith;
      data.out = undefined;
      data.closeWith = undefined;
      // uWS's close callback ran meanwhile: the socket object must not be touched.
      if (!ws || (data.closed && !end)) continue;
      ws.cork(() => {
        if (out) for (const m of out) ws.send(m, false);
        if (end) ws.end(end.code, end.reason);
      });
    }
    this.dirty.clear();
  };
}

const outbox = new Outbox();

/** A session's side of its uWS socket: every write goes through the outbox. */
class UwsCoreSocket implements CoreSocket {
  constructor(private readonly data: SocketData) {}

  send(message: Record<string, unknown>): void {
    if (!this.data.closed) outbox.send(this.data, JSON.stringify(message));
  }

  close(code: number, reason: string): void {
    if (this.data.closed) return;
    this.data.closed = true;
    outbox.end(this.data, code, reason);
  }
}

const decoder = new TextDecoder();

/**
 * Decides whether an upgrade may proceed: a valid engine key, an optional valid donor
 * token, and room under server.maxConnections. Throws the AppError to answer with.
 */
export async function authorizeCore(
  headers: { authorization?: string; donor?: string },
  deps: { engineKeys: EngineKeys; auth: Auth; hub: CoreHub },
  remote: string,
): Promise<CoreIdentity> {
  return admitCore(deps.hub, remote, () => deps.auth.failures.guard(remote, () => identifyCore(headers, deps, remote)));
}

async function identifyCore(
  headers: { authorization?: string; donor?: string },
  deps: { engineKeys: EngineKeys; auth: Auth; hub: CoreHub },
  remote: string,
): Promise<CoreIdentity> {
  const key = bearer(headers.authorization);
  if (!key) throw new AppError('unauthorized', 'Cores authenticate with Authorization: Bearer <engine key>', { 'www-authenticate': 'Bearer' });
  const found = await deps.engineKeys.lookup(key);
  if (!found) throw new AppError('unauthorized', 'Unknown or revoked engine key', { 'www-authenticate': 'Bearer' });
  let donor: CoreIdentity['donor'];
  if (headers.donor) {
    const p = await deps.auth.lookup(hashToken(headers.donor.trim()));
    if (!p || p.role !== 'donor') throw new AppError('unauthorized', 'Unknown donor token');
    donor = { name: p.name, beta: p.beta === true };
  }
  if (deps.hub.size >= deps.hub.settings.server.maxConnections) {
    throw new AppError('server_busy', 'This node is at its session limit; retry later or elsewhere', {}, deps.hub.settings.server.busyRetryAfterS);
  }
  return { engine: found.engine, keyId: found.keyId, ...(donor ? { donor } : {}), remote };
}

/** The uWS behaviour of `/core/v1`. */
export function coreBehavior(deps: { hub: CoreHub; engineKeys: EngineKeys; auth: Auth; trust: TrustList }): uws.WebSocketBehavior<SocketData> {
  const { hub } = deps;
  const c = hub.settings.core;
  return {
    // uWS drops (1006) a message over maxPayloadLength without a close frame; accepting up to
    // twice the limit lets the message callback close the larger ones properly with 1009.
    maxPayloadLength: c.maxMessageBytes * 2,
    // A core that does not read its replies is dropped rather than buffered without bound.
    maxBackpressure: Math.max(c.maxMessageBytes * 2, 64 * 1024 * 1024),
    closeOnBackpressureLimit: true,
    idleTimeout: Math.min(960, c.heartbeatS * 2),
    sendPingsAutomatically: true,
    compression: 0,

    upgrade: (res, req, context) => {
      const headers = {
        authorization: req.getHeader('authorization'),
        donor: req.getHeader('x-donor-token'),
        key: req.getHeader('sec-websocket-key'),
        protocol: req.getHeader('sec-websocket-protocol'),
        extensions: req.getHeader('sec-websocket-extensions'),
        forwarded: headerList(req, 'x-forwarded-for'),
      };
      const peer = normalizeAddress(decoder.decode(res.getRemoteAddressAsText()));
      const remote = clientAddress(deps.trust, peer, headers.forwarded);
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      authorizeCore(headers, deps, remote).then(
        (identity) => {
          if (aborted) return;
          const offered = headers.protocol.split(',').map((p) => p.trim());
          res.cork(() => {
            res.upgrade<SocketData>({ identity, closed: false }, headers.key, offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : '', headers.extensions, context);
          });
        },
        (err: unknown) => {
          if (aborted) return;
          const e = toAppError(err);
          if (e.code === 'internal') hub.log.error({ err, remote }, 'core upgrade failed');
          hub.log.info({ remote, status: e.status, code: e.code }, 'core upgrade refused');
          res.cork(() => {
            res.writeStatus(statusLine(e.status)).writeHeader('content-type', 'application/json; charset=utf-8');
            for (const [k, v] of Object.entries(errorHeaders(e))) res.writeHeader(k, v);
            res.end(errorBody(e), true);
          });
        },
      );
    },

    open: (ws) => {
      const data = ws.getUserData();
      data.socket = ws;
      const socket = new UwsCoreSocket(data);
      const session = new CoreSession(hub, socket, data.identity);
      data.session = session;
      hub.add(session, socket);
      hub.log.info({ session: session.id, engine: data.identity.engine, donor: data.identity.donor?.name, remote: data.identity.remote }, 'core connected');
      session.welcome();
    },

    message: (ws, message, isBinary) => {
      const data = ws.getUserData();
      if (data.closed) return;
      if (message.byteLength > c.maxMessageBytes) {
        hub.log.warn({ session: data.session?.id, bytes: message.byteLength }, 'message over core.maxMessageBytes; closing');
        data.closed = true;
        outbox.end(data, 1009, 'message too large');
        return;
      }
      // uWS reuses `message` after this callback: copy it before anything asynchronous.
      data.session?.onMessage(Buffer.from(new Uint8Array(message)), isBinary);
    },

    close: (ws, code) => {
      const data = ws.getUserData();
      data.closed = true;
      // Queued messages and close die with the socket.
      data.socket = undefined;
      data.closeWith = undefined;
      const s = data.session;
      if (!s) return;
      hub.remove(s);
      hub.log.info({ session: s.id, code }, 'core disconnected');
      void s.onClose();
    },
  };
}
