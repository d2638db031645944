/**
 * The one wrapper between uWebSockets.js HTTP responses and the transport-neutral handlers
 * of http.ts. uWS rules it enforces in one place:
 * - everything needed from `req` is copied out synchronously (req is invalid after the handler returns);
 * - `onAborted` is registered before any asynchronous work, and nothing is written after an abort;
 * - bodies are read with `onData` against the route's limit: a larger Content-Length is refused
 *   at once and a body that grows past the limit is cut off, never buffered;
 * - writes after an await are `cork`ed; streamed bodies use `tryEnd`/`onWritable` so a slow
 *   client never makes the server hold more than one chunk.
 */
import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { AppError, toAppError } from './errors';
import type { Reply, Request, Router, StreamBody } from './http';
import { errorReply } from './http';
import { clientAddress, normalizeAddress, type TrustList } from './client-address';
import type { Logger } from './log';
import type { Metrics } from './metrics';

/** What the wrapper needs from the server. */
export interface HttpContext {
  router: Router;
  trust: TrustList;
  log: Logger;
  metrics: Metrics;
  /** Requests being served; `idle` callbacks run (once) when the count drops to zero. Used by graceful shutdown. */
  inflight?: { count: number; idle: Array<() => void> };
  /** Headers added to every response (e.g. CORS); may inspect the request. */
  extraHeaders?: (req: Request) => Record<string, string>;
  /** Answers a request before routing when it returns a reply (CORS preflight). */
  preflight?: (method: string, path: string, headers: Record<string, string>) => Reply | undefined;
}

const decoder = new TextDecoder();
let counter = 0;
const idPrefix = `${process.pid.toString(36)}-`;
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Status line for uWS `writeStatus`. */
export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

/** Serves one HTTP request. Register it as the catch-all: `app.any('/*', (res, req) => serveHttp(ctx, res, req))`. */
export function serveHttp(ctx: HttpContext, res: HttpResponse, uReq: HttpRequest): void {
  const started = process.hrtime.bigint();
  const method = uReq.getCaseSensitiveMethod().toUpperCase();
  const path = uReq.getUrl();
  const headers: Record<string, string> = {};
  uReq.forEach((k, v) => {
    headers[k] = v;
  });
  const query = new URLSearchParams(uReq.getQuery() ?? '');
  const peer = normalizeAddress(decoder.decode(res.getRemoteAddressAsText()));
  const incomingId = headers['x-request-id'];
  const id = incomingId && REQUEST_ID.test(incomingId) ? incomingId : idPrefix + (counter++).toString(36);

  const inflight = ctx.inflight;
  if (inflight) inflight.count++;
  let settled = false;
  const settle = (): void => {
    if (settled || !inflight) return;
    settled = true;
    if (--inflight.count === 0) for (const f of inflight.idle.splice(0)) f();
  };

  const abort = new AbortController();
  const state: ExchangeState = { aborted: false, done: false, onAbort: [] };
  // uWS keeps one abort handler per response, so everything that cares subscribes here.
  res.onAborted(() => {
    state.aborted = true;
    abort.abort();
    for (const f of state.onAbort) f();
    if (!state.done) {
      logRequest(ctx, request, 499, started, true);
      settle();
    }
  });

  let route = '(none)';
  let params: Record<string, string> = {};
  let handler: ((r: Request) => Reply | Promise<Reply>) | undefined;
  let bodyLimit = 0;
  let early: AppError | undefined;
  let pre: Reply | undefined;
  try {
    pre = ctx.preflight?.(method, path, headers);
    if (!pre) ({ route, params, handler, bodyLimit } = ctx.router.match(method, path));
  } catch (err) {
    early = toAppError(err);
  }

  const body = early || pre ? undefined : readBody(res, method, headers, bodyLimit, state);
  if (body?.refused) early = body.refused;

  const request: Request = {
    id,
    method,
    path,
    query,
    headers,
    params,
    route,
    peerAddress: peer,
    clientAddress: clientAddress(ctx.trust, peer, headers['x-forwarded-for'] ?? ''),
    signal: abort.signal,
    body: () => (body ? body.promise : Promise.resolve(Buffer.alloc(0))),
  };

  const finish = (reply: Reply, closeConnection = false): void => {
    if (state.aborted || state.done) return;
    state.done = true;
    const extra = ctx.extraHeaders?.(request);
    writeReply(res, reply, { 'x-request-id': id, ...extra }, state, method === 'HEAD', closeConnection)
      .then(
        () => logRequest(ctx, request, reply.status, started, state.aborted),
        (err: unknown) => {
          ctx.log.error({ err, reqId: id }, 'response write failed');
          logRequest(ctx, request, reply.status, started, true);
        },
      )
      .finally(settle);
  };

  if (pre) {
    finish(pre);
    return;
  }
  if (early) {
    // A refused body closes the connection so the client cannot keep streaming the excess at us.
    finish(errorReply(early), early.code === 'too_large');
    return;
  }
  Promise.resolve()
    .then(() => handler!(request))
    .then(
      (reply) => finish(reply),
      (err: unknown) => {
        const appErr = toAppError(err);
        if (appErr.code === 'internal') ctx.log.error({ err: (appErr as { cause?: unknown }).cause ?? err, reqId: id, route }, 'handler failed');
        if (appErr.code === 'unavailable') {
          ctx.metrics.storageErrors.inc({ backend: /redis|Connection is closed|Stream isn't/i.test(String(err)) ? 'redis' : 'mongodb' });
          ctx.log.warn({ err: (err as Error).message, reqId: id, route }, 'storage unavailable');
        }
        finish(errorReply(appErr), appErr.code === 'too_large');
      },
    );
}

interface ExchangeState {
  aborted: boolean;
  done: boolean;
  onAbort: Array<() => void>;
}

interface BodyReader {
  promise: Promise<Buffer>;
  refused?: AppError;
}

function readBody(
  res: HttpResponse,
  method: string,
  headers: Record<string, string>,
  limit: number,
  state: ExchangeState,
): BodyReader | undefined {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return undefined;
  const declared = headers['content-length'];
  if (declared !== undefined) {
    if (!/^\d+$/.test(declared)) return { promise: Promise.resolve(Buffer.alloc(0)), refused: new AppError('bad_request', 'Invalid Content-Length') };
    if (Number(declared) > limit) {
      return { promise: Promise.resolve(Buffer.alloc(0)), refused: new AppError('too_large', `Body of ${declared} bytes is over the limit of ${limit} bytes for this route`) };
    }
    if (Number(declared) === 0) return { promise: Promise.resolve(Buffer.alloc(0)) };
  } else if (!headers['transfer-encoding']) {
    return { promise: Promise.resolve(Buffer.alloc(0)) };
  }
  let resolveBody!: (b: Buffer) => void;
  let rejectBody!: (e: AppError) => void;
  const promise = new Promise<Buffer>((resolve, reject) => {
    resolveBody = resolve;
    rejectBody = reject;
  });
  // Unobserved rejections (a handler that never reads its body) must not crash the process.
  promise.catch(() => undefined);
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  res.onData((chunk, isLast) => {
    if (over || state.aborted) return;
    size += chunk.byteLength;
    if (size > limit) {
      over = true;
      chunks.length = 0;
      rejectBody(new AppError('too_large', `Body is over the limit of ${limit} bytes for this route`));
      return;
    }
    // uWS reuses the chunk's memory after this callback returns: copy it.
    chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
    if (isLast) resolveBody(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
  });
  state.onAbort.push(() => rejectBody(new AppError('bad_request', 'Client aborted the request body')));
  return { promise };
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
  if (isStream && !head) await streamBody(res, b as StreamBody, state);
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

function logRequest(ctx: HttpContext, req: Request, status: number, started: bigint, aborted: boolean): void {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  ctx.metrics.httpRequests.inc({ method: req.method, route: req.route, status: aborted ? 'aborted' : String(status) });
  ctx.metrics.httpDuration.observe({ method: req.method, route: req.route }, seconds);
  ctx.log.info(
    {
      reqId: req.id,
      method: req.method,
      route: req.route,
      path: req.path,
      status,
      aborted: aborted || undefined,
      ms: Math.round(seconds * 1e6) / 1e3,
      remote: req.clientAddress,
      peer: req.peerAddress !== req.clientAddress ? req.peerAddress : undefined,
    },
    'request',
  );
}
