/**
 * The Node transport's HTTP side: node:http(s) requests served through the same exchange
 * logic as uWS. Bodies are read against the route limit (the excess is never buffered);
 * replies past one chunk wait for 'drain' so a slow client never makes the server buffer more
 * than one chunk, and a client that reads nothing for `idleMs` loses its connection, as uWS
 * does after its fixed 10 s.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { normalizeAddress } from '../http/client-address';
import { AppError } from '../errors';
import { serveExchange, type ExchangeState, type HttpContext } from '../http/exchange';
import type { BodySink } from '../http/request-body';
import { BUFFER_CHUNK_BYTES, bufferBody, isStreamBody, type Reply, type StreamBody } from '../http/router';

/**
 * Serves one request.
 * @param idleMs how long a reply may wait for a client that reads none of it (http.idleTimeoutS)
 */
export function serveNodeHttp(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, idleMs: number): void {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  let abort: (() => void) | undefined;
  const gone = (): void => {
    if (!res.writableFinished) abort?.();
  };
  // A response queued behind a pipelined one emits no 'close' when its socket goes: the
  // socket's own 'close' ends it too.
  const socket = req.socket;
  socket.once('close', gone);
  res.once('close', () => {
    socket.off('close', gone);
    gone();
  });
  abort = serveExchange(ctx, {
    method: (req.method ?? 'GET').toUpperCase(),
    path: q < 0 ? url : url.slice(0, q),
    query: q < 0 ? '' : url.slice(q + 1),
    headers,
    peer: normalizeAddress(req.socket.remoteAddress ?? ''),
    readBody: (sink, state, gate) => (gate ? gate.then(() => readBody(req, sink, state)) : readBody(req, sink, state)),
    // An answer that goes out while the request's body is still arriving (a route that needs
    // none, a refusal before it is read) closes the connection: Node would otherwise keep
    // reading that body, however slowly it comes, before the connection's next request. An
    // answer made at once, inside Node's 'request' event, waits a turn for Node to parse a
    // body that came in the same packet.
    write: async (reply, base, state, head, closeConnection) => {
      if (!closeConnection && bodyUnfinished(req)) await new Promise((resolve) => setImmediate(resolve));
      return writeReply(res, reply, base, state, head, closeConnection || bodyUnfinished(req), new Waits(res, state, idleMs));
    },
  });
}

/**
 * Whether the request announced a body that has not all arrived. A request without one is
 * not: Node marks even those complete only after its 'request' event, and answers made at
 * once (a CORS preflight, an unknown path) must keep the connection.
 */
function bodyUnfinished(req: IncomingMessage): boolean {
  const announced = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  return announced && !req.complete;
}

function readBody(req: IncomingMessage, sink: BodySink, state: ExchangeState): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    req.on('data', (chunk: Buffer) => {
      const refused = sink.add(chunk);
      if (refused) {
        req.removeAllListeners('data');
        req.pause();
        reject(refused);
      }
    });
    req.on('end', () => resolve(sink.bytes()));
    state.onAbort.push(() => reject(new AppError('bad_request', 'Client aborted the request body')));
  });
}

async function writeReply(res: ServerResponse, reply: Reply, base: Record<string, string>, state: ExchangeState, head: boolean, closeConnection: boolean, waits: Waits): Promise<void> {
  const b = reply.body;
  const isStream = isStreamBody(b);
  const length = b === undefined ? 0 : isStream ? (b as StreamBody).length : Buffer.byteLength(b as string | Uint8Array);
  res.writeHead(reply.status, { ...base, ...reply.headers, 'content-length': String(length), ...(closeConnection ? { connection: 'close' } : {}) });
  if (head || (!isStream && length <= BUFFER_CHUNK_BYTES)) {
    res.end(head ? undefined : (b as string | Uint8Array | undefined));
    // Until the kernel has it (mostly at once) the exchange counts it as held.
    await waits.finished();
    return;
  }
  // A large body in memory goes out a chunk at a time too: written at once, the TLS layer
  // would keep an encrypted copy of all of it for a client that does not read.
  const stream = isStream ? (b as StreamBody) : bufferBody(typeof b === 'string' ? Buffer.from(b) : (b as Uint8Array));
  const iterator = stream.chunks[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await iterator.next();
      if (state.aborted) return;
      if (next.done) break;
      if (!res.write(next.value)) await waits.drained();
      if (state.aborted) return;
    }
    res.end();
    await waits.finished();
  } catch (err) {
    // Headers and part of the body are out: cut the connection so the client sees a short
    // body at once instead of waiting for bytes that never come.
    res.destroy(err as Error);
    throw err;
  } finally {
    await iterator.return?.();
  }
}

/**
 * The waits of one reply for its client: for room in the socket ('drain') and for the end
 * ('finish', when the kernel has the last byte). Each ends when the client aborts, and a
 * wait longer than `idleMs` (a client that reads nothing) destroys the connection, which
 * aborts it. One abort hook per reply, however many chunks wait.
 */
class Waits {
  private current: (() => void) | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly state: ExchangeState,
    private readonly idleMs: number,
  ) {
    state.onAbort.push(() => this.current?.());
  }

  drained(): Promise<void> {
    return this.until('drain');
  }

  finished(): Promise<void> {
    return this.res.writableFinished ? Promise.resolve() : this.until('finish');
  }

  private until(event: 'drain' | 'finish'): Promise<void> {
    if (this.state.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.res.destroy(), this.idleMs);
      const done = (): void => {
        clearTimeout(timer);
        this.res.off(event, done);
        this.current = undefined;
        resolve();
      };
      this.res.on(event, done);
      this.current = done;
    });
  }
}
