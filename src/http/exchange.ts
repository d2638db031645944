/**
 * The transport-neutral half of serving an HTTP request: request ids, routing, CORS
 * preflight, body-limit decisions, calling the handler, mapping errors, in-flight tracking,
 * the access log line and metrics. Each transport (uws-http.ts, node-http.ts) supplies an
 * {@link ExchangeIO} that reads the body and writes the reply its own way.
 */
import { AppError, toAppError } from '../errors';
import { outageBackend } from '../store/outage';
import type { Gate, Reply, Request, Router } from './router';
import { errorReply } from './router';
import { clientAddress, type TrustList } from './client-address';
import { withRange } from './range';
import { bodyDecision, BodySink, keepPace, type BodyPace } from './request-body';
import type { Logger } from '../telemetry/log';
import type { ClientLog } from '../telemetry/client-log';
import type { Metrics } from '../telemetry/metrics';

/** What serving needs from the server. */
export interface HttpContext {
  router: Router;
  trust: TrustList;
  log: Logger;
  /** Request lines and other lines clients cause, within log.clientLinesPerSecond. */
  clientLog: ClientLog;
  metrics: Metrics;
  /** Requests being served; `idle` callbacks run (once) when the count drops to zero. Used by graceful shutdown. */
  inflight?: { count: number; idle: Array<() => void> };
  /** Headers added to every response (e.g. CORS); may inspect the request. */
  extraHeaders?: (req: Request) => Record<string, string>;
  /** Answers a request before routing when it returns a reply (CORS preflight). */
  preflight?: (method: string, path: string, headers: Record<string, string>) => Reply | undefined;
  /**
   * The process's memory budget (core/memory-budget.ts): bodies being read and replies not yet
   * taken by the kernel count against it.
   */
  /** How fast a request body must arrive (http.bodyGraceS, http.minBodyBytesPerSecond); unpaced without it. */
  bodyPace?: BodyPace;
  memory?: {
    tryTake(kind: 'bodies' | 'replies', bytes: number): boolean;
    take(kind: 'replies', bytes: number): void;
    give(kind: 'bodies' | 'replies', bytes: number): void;
  };
}

/** Per-exchange state shared with the transport. */
export interface ExchangeState {
  aborted: boolean;
  done: boolean;
  /** Run once when the client goes away. */
  onAbort: Array<() => void>;
}

/** The transport's side of one exchange. */
export interface ExchangeIO {
  method: string;
  path: string;
  query: string;
  /** Lower-case names. */
  headers: Record<string, string>;
  peer: string;
  /**
   * Starts reading a body into `sink` (called synchronously, before any await), rejecting
   * with the sink's refusal. With `gate`, nothing is buffered until it resolves; when it
   * rejects the body is never read.
   */
  readBody(sink: BodySink, state: ExchangeState, gate?: Promise<void>): Promise<Buffer>;
  /**
   * Writes the reply; resolves once the kernel has taken all of it (a client that does not
   * read keeps it pending), or when it is abandoned after an abort.
   */
  write(reply: Reply, headers: Record<string, string>, state: ExchangeState, head: boolean, closeConnection: boolean): Promise<void>;
}

/**
 * The methods served. Any other is refused before routing and logged and counted as
 * `OTHER`: uWS accepts any token as a method, and a client choosing label values would
 * grow the metrics without bound.
 */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

let counter = 0;
const idPrefix = `${process.pid.toString(36)}-`;
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;


function repliesFull(): AppError {
  return new AppError('rate_limited', "The node's memory budget for replies being sent is exhausted; retry later", {}, 1);
}

/**
 * The reply with a text body encoded once, here: its length is then known without another
 * pass over it, and the transport would encode it anyway.
 */
function encoded(reply: Reply): Reply {
  return typeof reply.body === 'string' ? { ...reply, body: Buffer.from(reply.body) } : reply;
}

/** Bytes of a reply body held in memory until sent: a streamed body (one chunk at a time) counts 0. */
function heldLength(body: Reply['body']): number {
  return body instanceof Uint8Array ? body.byteLength : 0;
}

/**
 * Serves one exchange. Must be called synchronously from the transport's request callback
 * (after it has registered its abort hook that calls the returned `abort`).
 * @returns the function the transport calls when the client aborts
 */
export function serveExchange(ctx: HttpContext, io: ExchangeIO): () => void {
  const started = process.hrtime.bigint();
  const { path, headers, peer } = io;
  const method = METHODS.has(io.method) ? io.method : 'OTHER';
  const incomingId = headers['x-request-id'];
  const id = incomingId && REQUEST_ID.test(incomingId) ? incomingId : idPrefix + (counter++).toString(36);

  const inflight = ctx.inflight;
  if (inflight) inflight.count++;
  let settled = false;
  let bodyBytes = 0;
  let replyBytes = 0;
  let sink: BodySink | undefined;
  const settle = (): void => {
    if (settled) return;
    settled = true;
    // Bytes of a body that arrive after the answer are refused, not counted: nothing would give them back.
    sink?.close();
    if (bodyBytes > 0) ctx.memory?.give('bodies', bodyBytes);
    if (replyBytes > 0) ctx.memory?.give('replies', replyBytes);
    if (!inflight) return;
    if (--inflight.count === 0) for (const f of inflight.idle.splice(0)) f();
  };

  const abort = new AbortController();
  const state: ExchangeState = { aborted: false, done: false, onAbort: [] };

  let route = '(none)';
  let params: Record<string, string> = {};
  let handler: ((r: Request) => Reply | Promise<Reply>) | undefined;
  let bodyLimit = 0;
  let gateFn: Gate | undefined;
  let early: AppError | undefined;
  let pre: Reply | undefined;
  try {
    if (method === 'OTHER') throw new AppError('method_not_allowed', 'Unknown HTTP method', { allow: [...METHODS].join(', ') });
    pre = ctx.preflight?.(method, path, headers);
    if (!pre) ({ route, params, handler, bodyLimit, gate: gateFn } = ctx.router.match(method, path));
  } catch (err) {
    early = toAppError(err);
  }
  const client = clientAddress(ctx.trust, peer, headers['x-forwarded-for'] ?? '');

  let body: Promise<Buffer> | undefined;
  /** Whether the body to read has all arrived: an answer sent before then closes the connection. */
  let bodyRead = false;
  let gate: Promise<void> | undefined;
  let decision: ReturnType<typeof bodyDecision> = 'none';
  if (!early && !pre) {
    decision = bodyDecision(method, headers, bodyLimit);
    if (decision instanceof AppError) early = decision;
  }
  if (!early && !pre && gateFn) {
    try {
      const r = gateFn({ headers, clientAddress: client });
      if (r) {
        gate = r;
        gate.catch(() => undefined);
      }
    } catch (err) {
      early = toAppError(err);
    }
  }
  if (!early && !pre && decision === 'read') {
    // Counted as it arrives: a declared length that never comes holds nothing.
    const memory = ctx.memory;
    sink = new BodySink(bodyLimit, (n) => {
      if (memory && !memory.tryTake('bodies', n)) return false;
      if (memory) bodyBytes += n;
      return true;
    });
    body = io.readBody(sink, state, gate);
    if (ctx.bodyPace) body = keepPace(body, sink, ctx.bodyPace, gate);
    // Unobserved rejections (a handler that never reads its body) must not crash the process.
    body.then(
      () => (bodyRead = true),
      () => undefined,
    );
  }
  // A refusal with a body on its way closes the connection: the client cannot keep streaming it at us.
  const bodyPending = decision === 'read' || (decision instanceof AppError && method !== 'GET' && method !== 'HEAD');

  const request: Request = {
    id,
    method,
    path,
    query: new URLSearchParams(io.query),
    headers,
    params,
    route,
    peerAddress: peer,
    clientAddress: client,
    signal: abort.signal,
    body: () => body ?? Promise.resolve(Buffer.alloc(0)),
  };

  const finish = (reply: Reply, closeConnection = false): void => {
    if (state.aborted || state.done) return;
    state.done = true;
    // One merged header set (the reply's own values win): a preflight already carries its CORS headers.
    const extra = reply === pre ? {} : ctx.extraHeaders?.(request);
    reply = encoded(reply);
    // Held until the kernel takes it, so a client that does not read holds it: counted. Only
    // a GET is refused for it (retrying one changes nothing); the reply to a request that has
    // had its effect is sent anyway. The refusal's own few hundred bytes are not counted.
    const held = method === 'HEAD' ? 0 : heldLength(reply.body);
    if (held > 0 && ctx.memory) {
      if (ctx.memory.tryTake('replies', held)) replyBytes = held;
      else if (method === 'GET') reply = encoded(errorReply(repliesFull()));
      else {
        ctx.memory.take('replies', held);
        replyBytes = held;
      }
    }
    const headers = { 'x-request-id': id, ...extra, ...reply.headers };
    const write = (close: boolean): void => {
      io.write({ status: reply.status, body: reply.body }, headers, state, method === 'HEAD', close)
        .then(
          () => logRequest(ctx, request, reply.status, started, state.aborted),
          (err: unknown) => {
            ctx.log.error({ err, reqId: id }, 'response write failed');
            logRequest(ctx, request, reply.status, started, true);
          },
        )
        .finally(settle);
    };
    if (closeConnection || decision !== 'read' || bodyRead) return write(closeConnection);
    // Answered before its body was read (a refusal, a handler that does not read it): judged a
    // turn later, once a body that came with its head has been taken in. One still arriving
    // then is not read, and the connection closes, so a client cannot hold it by sending the
    // rest slowly.
    setImmediate(() => {
      if (state.aborted) return settle();
      write(!bodyRead);
    });
  };

  const onAbort = (): void => {
    if (state.aborted) return;
    state.aborted = true;
    abort.abort();
    for (const f of state.onAbort) f();
    if (!state.done) {
      logRequest(ctx, request, 499, started, true);
      settle();
    }
  };

  if (pre) finish(pre);
  else if (early) {
    // An unknown method's body, if any, is not read: the connection closes with the refusal.
    finish(errorReply(early), early.code === 'too_large' || bodyPending || method === 'OTHER');
  } else {
    let refusedByGate = false;
    const run = gate
      ? gate.then(
          () => handler!(request),
          (err: unknown) => {
            refusedByGate = true;
            throw err;
          },
        )
      : Promise.resolve().then(() => handler!(request));
    run.then((reply) => withRange(request, reply)).then(
      (reply) => finish(reply),
      (err: unknown) => {
        const appErr = toAppError(err);
        if (appErr.code === 'internal') ctx.log.error({ err: (appErr as { cause?: unknown }).cause ?? err, reqId: id, route }, 'handler failed');
        if (appErr.code === 'unavailable') {
          ctx.metrics.storageErrors.inc({ backend: outageBackend(err) ?? 'mongodb' });
          ctx.clientLog.warn({ err: (err as Error).message, reqId: id, route }, 'storage unavailable');
        }
        // The rest of a body refused as too large or too slow is not read: the connection closes.
        finish(errorReply(appErr), appErr.code === 'too_large' || appErr.code === 'request_timeout' || (refusedByGate && bodyPending));
      },
    );
  }
  return onAbort;
}

/**
 * Characters of a request's path a log line keeps: the client chooses the path, and the line
 * budget (log.clientLinesPerSecond) bounds lines, not their length.
 */
const LOGGED_PATH_CHARS = 256;

function logRequest(ctx: HttpContext, req: Request, status: number, started: bigint, aborted: boolean): void {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  ctx.metrics.httpRequests.inc({ method: req.method, route: req.route, status: aborted ? 'aborted' : String(status) });
  ctx.metrics.httpDuration.observe({ method: req.method, route: req.route }, seconds);
  ctx.clientLog.info(
    {
      reqId: req.id,
      method: req.method,
      route: req.route,
      path: req.path.length > LOGGED_PATH_CHARS ? `${req.path.slice(0, LOGGED_PATH_CHARS)}…` : req.path,
      status,
      aborted: aborted || undefined,
      ms: Math.round(seconds * 1e6) / 1e3,
      remote: req.clientAddress,
      peer: req.peerAddress !== req.clientAddress ? req.peerAddress : undefined,
    },
    'request',
  );
}
