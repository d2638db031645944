/**
 * The `/core/v1` WebSocket endpoint on uWebSockets.js: the glue between uWS callbacks and
 * the transport-neutral endpoint (core-socket.ts: authorization, subprotocol, refusal,
 * session registration). uWS rules kept here: headers are copied before any await, the
 * upgrade is corked, a closed socket is never touched again, and nothing is written to a
 * socket from inside a uWS callback (see {@link Outbox}). Corking an upgrade that follows an
 * await needs the vendored build's cork fix (vendor/uWebSockets.js/BUILD.md, "The patches", 1).
 */
import type uws from 'uWebSockets.js';
import { CLOSES } from '../errors';
import { normalizeAddress } from '../http/client-address';
import type { MessageBuffer, MessageEncoder } from '../core/assignment-message';
import type { CoreSession, CoreSocket } from '../core/session';
import { headerList } from './uws-headers';
import type { CoreIdentity } from '../model';
import { chooseSubprotocol, closeSession, decideUpgrade, maxBackpressureBytes, openSession, type CoreEndpoint } from './core-socket';
import type { ConnectionLimit } from './connection-limit';

/**
 * Per-socket state. uWS.js copies these properties onto its WebSocket object (`getUserData()`
 * returns the socket itself, test/uws-vendor.test.ts), so no name may shadow a WebSocket method
 * (`send`, `end`, `close`, `cork`, …). They live in a property array of the socket that every
 * held session keeps, and V8 sizes that array in steps of three: three fields cost 24 bytes
 * per session less than the five this once had.
 */
interface SocketData {
  identity: CoreIdentity;
  session: CoreSession | undefined;
  /**
   * `closing`: a close is queued, nothing more is sent; `gone`: uWS closed the socket, whose
   * object must not be touched again (its methods throw).
   */
  state: 'open' | 'closing' | 'gone';
}

type CoreWs = uws.WebSocket<SocketData>;

/** The socket's own fields: the socket object itself, typed as its data. */
function dataOf(ws: CoreWs): SocketData {
  return ws as unknown as SocketData;
}

/** What the outbox holds for a socket until its next flush. */
interface Queued {
  /** Messages in order: JSON text, or what encodes it (written then). */
  out: Array<string | MessageEncoder>;
  /** A close queued behind `out`; `now`: without the close handshake (core.unreadRepliesBytes). */
  closeWith?: { code: number; reason: string; now?: boolean };
}

/**
 * Replies are written after the uWS callback that caused them, all at once on `setImmediate`.
 *
 * Why: the flush corks every socket once per turn of the event loop, however many replies it
 * has. It began as the way around a uSockets bug: a write from inside the data callback threw
 * away the still-encrypted rest of a read over 512 KiB (a core pipelining frames), dropping the
 * socket with 1006; promise continuations run inside the callback (uWS drains microtasks
 * before returning), `setImmediate` does not. Patch 7 of the vendored build fixed that at its
 * cause (uWS's own pongs are written inside the callback), so this queue no longer carries
 * correctness, but it is kept for the corking and for builds without the patch (the official
 * package). `bench/uws-tls-burst.ts` checks the transport alone.
 */
class Outbox {
  /**
   * What each socket has queued. Kept here rather than on the socket's data, which every held
   * session keeps for its whole life while this is empty between flushes.
   */
  private queued = new Map<CoreWs, Queued>();
  private scheduled = false;

  /** Queues a message for the socket. */
  send(ws: CoreWs, message: string | MessageEncoder): void {
    this.entry(ws).out.push(message);
  }

  /** Queues a close behind the socket's queued messages; later sends are dropped. */
  end(ws: CoreWs, code: number, reason: string, now = false): void {
    this.entry(ws).closeWith = { code, reason, now };
  }

  /** Drops what the socket has queued (uWS closed it). */
  forget(ws: CoreWs): void {
    this.queued.delete(ws);
  }

  private entry(ws: CoreWs): Queued {
    let q = this.queued.get(ws);
    if (q === undefined) this.queued.set(ws, (q = { out: [] }));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    return q;
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    // Whatever is queued while this batch is written (a close callback's reply) waits for the next flush.
    const batch = this.queued;
    this.queued = new Map();
    for (const [ws, { out, closeWith: end }] of batch) {
      const state = dataOf(ws).state;
      // uWS's close callback ran meanwhile: the socket object must not be touched.
      if (state === 'gone' || (state === 'closing' && !end)) continue;
      ws.cork(() => {
        for (const m of out) ws.send(typeof m === 'string' ? m : m(sendBuffer), false);
        if (end?.now) ws.close();
        else if (end) ws.end(end.code, end.reason);
      });
    }
  };
}

const outbox = new Outbox();


/** Largest message written into the shared buffer (bytes); larger ones get a buffer of their own. */
const SHARED_SEND_BYTES = 1024 * 1024;
let shared: Buffer | undefined;

/**
 * The buffer the flush encodes queued messages into, one at a time. uWS copies a message
 * (into its frame, cork or backpressure buffer) before `send` returns, so the buffer is free
 * again at once; reusing it spares every assignment a fresh buffer of hundreds of KiB, which
 * with the workers' fixed mmap threshold (server.mallocMmapThresholdBytes) is a new mapping,
 * a page fault per 4 KiB written and an unmapping (docs/performance.md).
 */
const sendBuffer: MessageBuffer = (bytes) => (bytes > SHARED_SEND_BYTES ? Buffer.allocUnsafe(bytes) : (shared ??= Buffer.allocUnsafe(SHARED_SEND_BYTES)));

/**
 * The socket whose `open` callback is running. Its welcome is written at once: `open` runs
 * inside `res.upgrade`, which `upgrade` calls corked, so the welcome joins the 101 response
 * in one TLS record and one write instead of a flush of its own on the next turn (a write
 * on loopback costs as much as the rest of the welcome). The burst problem the outbox avoids
 * does not arise: the 101 response is written from the same place anyway.
 */
let opening: CoreWs | undefined;

/** A session's side of its uWS socket: every write but the welcome goes through the outbox. */
class UwsCoreSocket implements CoreSocket {
  /** @param unreadRepliesBytes unsent bytes past which a close skips the handshake (core.unreadRepliesBytes) */
  constructor(
    private readonly ws: CoreWs,
    private readonly unreadRepliesBytes: number,
  ) {}

  send(message: Record<string, unknown>): void {
    if (dataOf(this.ws).state !== 'open') return;
    if (opening === this.ws) this.ws.send(JSON.stringify(message), false);
    else outbox.send(this.ws, JSON.stringify(message));
  }

  sendEncoded(encode: MessageEncoder, counted: () => void): void {
    if (dataOf(this.ws).state !== 'open') return counted();
    outbox.send(this.ws, encode);
    // uWS counts it once the outbox writes it, on the immediate that sending scheduled (or one
    // already pending): this one runs after it.
    setImmediate(counted);
  }

  close(code: number, reason: string): void {
    const data = dataOf(this.ws);
    if (data.state !== 'open') return;
    data.state = 'closing';
    // Behind unread replies the close frame would never be read, and uWS would hold the socket
    // and its bytes until its close timed out.
    outbox.end(this.ws, code, reason, this.ws.getBufferedAmount() > this.unreadRepliesBytes);
  }

  unsentBytes(): number {
    return dataOf(this.ws).state === 'open' ? this.ws.getBufferedAmount() : 0;
  }
}

const decoder = new TextDecoder();

/** The uWS behaviour of `/core/v1`. */
export function coreBehavior(deps: CoreEndpoint, connections: ConnectionLimit): uws.WebSocketBehavior<SocketData> {
  const { hub } = deps;
  const c = hub.settings.core;
  return {
    // uWS drops (1006) a message over maxPayloadLength without a close frame; accepting up to
    // twice the limit lets the message callback close the larger ones properly with 1009.
    maxPayloadLength: c.maxMessageBytes * 2,
    maxBackpressure: maxBackpressureBytes(hub.settings),
    closeOnBackpressureLimit: true,
    // core.heartbeatS is at most 480 (config/formats.ts): uWS's limit is 960 s.
    idleTimeout: c.heartbeatS * 2,
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
        connection: req.getHeader('connection'),
      };
      const peer = normalizeAddress(decoder.decode(res.getRemoteAddressAsText()));
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      void decideUpgrade(deps, headers, peer).then((decision) => {
        if (aborted) return;
        res.cork(() => {
          if (decision.ok) {
            // Every field the socket's data ever has, in the order they are read.
            res.upgrade<SocketData>({ identity: decision.identity, session: undefined, state: 'open' }, headers.key, chooseSubprotocol(headers.protocol.split(',')) ?? '', headers.extensions, context);
            // No longer an HTTP connection: core.maxSocketsPerAddress counts it from here.
            connections.release(peer);
            return;
          }
          const r = decision.refusal;
          res.writeStatus(r.statusLine);
          for (const [k, v] of Object.entries(r.headers)) res.writeHeader(k, v);
          res.end(r.body, true);
        });
      });
    },

    open: (ws) => {
      const data = ws.getUserData();
      opening = ws;
      try {
        data.session = openSession(deps, new UwsCoreSocket(ws, hub.settings.core.unreadRepliesBytes), data.identity);
      } finally {
        opening = undefined;
      }
    },

    message: (ws, message, isBinary) => {
      const data = ws.getUserData();
      if (data.state !== 'open') return;
      if (message.byteLength > c.maxMessageBytes) {
        hub.clientLog.warn({ session: data.session?.id, bytes: message.byteLength }, 'message over core.maxMessageBytes; closing');
        data.state = 'closing';
        outbox.end(ws, CLOSES.message_too_large.code, CLOSES.message_too_large.reason);
        return;
      }
      // uWS reuses `message` after this callback: copy it before anything asynchronous.
      data.session?.onMessage(Buffer.from(new Uint8Array(message)), isBinary);
    },

    close: (ws, code) => {
      const data = ws.getUserData();
      data.state = 'gone';
      // Queued messages and close die with the socket.
      outbox.forget(ws);
      const s = data.session;
      if (s) closeSession(deps, s, code);
    },
  };
}
