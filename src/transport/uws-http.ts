/**
 * The one wrapper between uWebSockets.js HTTP responses and the transport-neutral exchange
 * (http/exchange.ts, which calls the routes' handlers). uWS rules it enforces in one place:
 * - everything needed from `req` is copied out synchronously (req is invalid after the handler returns);
 * - `onAborted` is registered before any asynchronous work, and nothing is written after an abort;
 * - bodies are read with `onData` against the route's limit: a larger Content-Length is refused
 *   at once and a body that grows past the limit is cut off, never buffered;
 * - writes after an await are `cork`ed; bodies are sent with `tryEnd`/`onWritable`, so what a
 *   slow client has not taken stays with the reply (counted by the exchange, one chunk of a
 *   streamed body) and is never copied into uWS's own buffer.
 */
import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { AppError } from '../errors';
import { serveExchange, type ExchangeState, type HttpContext } from '../http/exchange';
import type { BodySink } from '../http/request-body';
import { isStreamBody, type Reply, type StreamBody } from '../http/router';
import { normalizeAddress } from '../http/client-address';

export type { HttpContext } from '../http/exchange';

const decoder = new TextDecoder();

/** Status line for uWS `writeStatus`. */
export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

/** Serves one HTTP request. Register it as the catch-all: `app.any('/*', (res, req) => serveHttp(ctx, res, req))`. */
export function serveHttp(ctx: HttpContext, res: HttpResponse, uReq: HttpRequest): void {
  const headers: Record<string, string> = {};
  uReq.forEach((k, v) => {
    // Repeated X-Forwarded-For lines joined as node:http does, and as upgrades read them (uws-headers.ts).
    headers[k] = k === 'x-forwarded-for' && headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
  });
  let abort: (() => void) | undefined;
  // uWS keeps one abort handler per response; the exchange fans it out to its listeners.
  res.onAborted(() => abort?.());
  abort = serveExchange(ctx, {
    method: uReq.getCaseSensitiveMethod().toUpperCase(),
    path: uReq.getUrl(),
    query: uReq.getQuery() ?? '',
    headers,
    peer: normalizeAddress(decoder.decode(res.getRemoteAddressAsText())),
    readBody: (sink, state, gate) => readBody(res, sink, state, gate),
    write: (reply, base, state, head, closeConnection) => writeReply(res, reply, base, state, head, closeConnection),
  });
}

function readBody(res: HttpResponse, sink: BodySink, state: ExchangeState, gate?: Promise<void>): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let over = false;
    if (gate) {
      // Held back until the gate opens; what uWS already read (one socket read at most) is buffered meanwhile.
      res.pause();
      gate.then(
        () => {
          if (!state.aborted && !state.done) res.resume();
        },
        (err: unknown) => {
          over = true;
          sink.drop();
          reject(err);
        },
      );
    }
    res.onData((chunk, isLast) => {
      if (over || state.aborted) return;
      // uWS reuses the chunk's memory after this callback returns: the sink copies it.
      const refused = sink.add(chunk);
      if (refused) {
        over = true;
        reject(refused);
        return;
      }
      if (isLast) resolve(sink.bytes());
    });
    state.onAbort.push(() => reject(new AppError('bad_request', 'Client aborted the request body')));
  });
}

async function writeReply(
  res: HttpResponse,
  reply: Reply,
  base: Record<string, string>,
  state: ExchangeState,
  head: boolean,
  closeConnection: boolean,
): Promise<void> {
  const b = reply.body;
  const isStream = isStreamBody(b);
  const inMemory = isStream ? undefined : (b as string | Uint8Array | undefined);
  const writer = new BodyWriter(res, state, isStream ? (b as StreamBody).length : inMemory === undefined ? 0 : Buffer.byteLength(inMemory));
  let sent = true;
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    for (const [k, v] of Object.entries(base)) res.writeHeader(k, v);
    if (reply.headers) for (const [k, v] of Object.entries(reply.headers)) res.writeHeader(k, v);
    if (closeConnection) res.writeHeader('connection', 'close');
    if (head) res.endWithoutBody(writer.total, closeConnection);
    // tryEnd cannot close the connection; the replies that do are short refusals.
    else if (!isStream && (closeConnection || writer.total === 0)) res.end(inMemory, closeConnection);
    else if (!isStream) sent = writer.tryWrite(inMemory!);
  });
  if (head) return;
  if (!isStream) {
    // The part the socket did not take stays with this reply (counted by the exchange), not in uWS.
    if (!sent) await writer.rest(typeof inMemory === 'string' ? Buffer.from(inMemory) : (inMemory as Uint8Array));
    return;
  }
  try {
    await streamBody(writer, b as StreamBody, state);
  } catch (err) {
    // The status line and part of the body are out: the only honest signal left is a cut
    // connection (the client sees fewer bytes than Content-Length), never a hang.
    if (!state.aborted) res.close();
    throw err;
  }
}

/**
 * Sends a body of known length with tryEnd, so uWS never copies what the socket does not
 * take: that stays with the caller until onWritable asks for it. uWS keeps the first
 * onWritable handler it is given, so one is registered per response, the first time a chunk
 * is left over, and retries whichever chunk is pending.
 */
class BodyWriter {
  /** Whether the whole body has been taken by the socket. */
  finished = false;
  private startOffset = 0;
  private pending: { chunk: Uint8Array; resolve: () => void } | undefined;
  private listening = false;

  constructor(
    readonly res: HttpResponse,
    private readonly state: ExchangeState,
    readonly total: number,
  ) {}

  /** Writes a chunk (call it corked); false when the socket did not take all of it (then {@link rest} it). */
  tryWrite(chunk: string | Uint8Array): boolean {
    this.startOffset = this.res.getWriteOffset();
    const [ok, done] = this.res.tryEnd(chunk, this.total);
    this.finished ||= done;
    return ok || done;
  }

  /** Resolves once the socket has taken the rest of `chunk`, the one the last {@link tryWrite} left, or the client aborted. */
  rest(chunk: Uint8Array): Promise<void> {
    if (this.state.aborted) return Promise.resolve();
    this.listen();
    return new Promise<void>((resolve) => (this.pending = { chunk, resolve }));
  }

  private listen(): void {
    if (this.listening) return;
    this.listening = true;
    this.state.onAbort.push(() => this.wake());
    this.res.onWritable((offset) => {
      if (this.state.aborted || !this.pending) return true;
      const [ok, done] = this.res.tryEnd(this.pending.chunk.subarray(offset - this.startOffset), this.total);
      this.finished ||= done;
      if (ok || done) this.wake();
      return ok;
    });
  }

  private wake(): void {
    const p = this.pending;
    this.pending = undefined;
    p?.resolve();
  }
}

/** Streams a body of known length through `writer`; stops when the client aborts. */
async function streamBody(writer: BodyWriter, body: StreamBody, state: ExchangeState): Promise<void> {
  const res = writer.res;
  const iterator = body.chunks[Symbol.asyncIterator]();
  try {
    if (writer.total === 0) {
      res.cork(() => res.end());
      return;
    }
    while (!writer.finished) {
      const next = await iterator.next();
      if (state.aborted) return;
      if (next.done) {
        // A source shorter than its declared length: the client sees a truncated body and a closed socket.
        res.close();
        return;
      }
      const chunk = next.value;
      let sent = false;
      res.cork(() => (sent = writer.tryWrite(chunk)));
      if (!sent) await writer.rest(chunk);
      if (state.aborted) return;
    }
  } finally {
    await iterator.return?.();
  }
}
