/**
 * The one wrapper between uWebSockets.js HTTP responses and the transport-neutral handlers
 * of http.ts (the shared logic is in exchange.ts). uWS rules it enforces in one place:
 * - everything needed from `req` is copied out synchronously (req is invalid after the handler returns);
 * - `onAborted` is registered before any asynchronous work, and nothing is written after an abort;
 * - bodies are read with `onData` against the route's limit: a larger Content-Length is refused
 *   at once and a body that grows past the limit is cut off, never buffered;
 * - writes after an await are `cork`ed; streamed bodies use `tryEnd`/`onWritable` so a slow
 *   client never makes the server hold more than one chunk.
 */
import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { AppError } from '../errors';
import { serveExchange, type BodySink, type ExchangeState, type HttpContext } from '../http/exchange';
import type { Reply, StreamBody } from '../http/router';
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
  const isStream = b !== undefined && typeof b === 'object' && !(b instanceof Uint8Array);
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    for (const [k, v] of Object.entries(base)) res.writeHeader(k, v);
    if (reply.headers) for (const [k, v] of Object.entries(reply.headers)) res.writeHeader(k, v);
    if (closeConnection) res.writeHeader('connection', 'close');
    if (head) {
      const len = b === undefined ? 0 : isStream ? (b as StreamBody).length : Buffer.byteLength(b as string | Uint8Array);
      res.endWithoutBody(len, closeConnection);
    } else if (!isStream) {
      res.end(b as string | Uint8Array | undefined, closeConnection);
    }
  });
  if (isStream && !head) {
    try {
      await streamBody(res, b as StreamBody, state);
    } catch (err) {
      // The status line and part of the body are out: the only honest signal left is a cut
      // connection (the client sees fewer bytes than Content-Length), never a hang.
      if (!state.aborted) res.close();
      throw err;
    }
  }
}

/**
 * Streams a body of known length with tryEnd/onWritable; stops when the client aborts.
 * uWS keeps the first onWritable handler it is given, so one handler is registered per
 * response and retries whichever chunk is pending.
 */
async function streamBody(res: HttpResponse, body: StreamBody, state: ExchangeState): Promise<void> {
  const total = body.length;
  let finished = false;
  let pending: { chunk: Buffer; startOffset: number; resolve: () => void } | undefined;
  const wake = (): void => {
    const p = pending;
    pending = undefined;
    p?.resolve();
  };
  state.onAbort.push(wake);
  res.onWritable((offset) => {
    if (state.aborted || !pending) return true;
    const [ok, done] = res.tryEnd(pending.chunk.subarray(offset - pending.startOffset), total);
    finished ||= done;
    if (ok || done) wake();
    return ok;
  });

  const iterator = body.chunks[Symbol.asyncIterator]();
  try {
    if (total === 0) {
      res.cork(() => res.end());
      return;
    }
    while (!finished) {
      const next = await iterator.next();
      if (state.aborted) return;
      if (next.done) {
        // A source shorter than its declared length: the client sees a truncated body and a closed socket.
        res.close();
        return;
      }
      const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      let ok = false;
      let startOffset = 0;
      res.cork(() => {
        startOffset = res.getWriteOffset();
        let done: boolean;
        [ok, done] = res.tryEnd(chunk, total);
        finished ||= done;
      });
      if (!ok && !finished) await new Promise<void>((resolve) => (pending = { chunk, startOffset, resolve }));
      if (state.aborted) return;
    }
  } finally {
    await iterator.return?.();
  }
}

