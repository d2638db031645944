/**
 * The one error catalog. Every error the service reports — over HTTP or on a core's
 * WebSocket — has a stable `code` listed here, with the HTTP status it maps to and a
 * one-line description that docs/errors.md repeats (a test keeps the two in step). The
 * server's own closes of a core socket are listed here too ({@link CLOSES}), with their
 * WebSocket close code and reason.
 */
import { isStorageOutage } from './store/outage';

export { isStorageOutage } from './store/outage';

/** One catalog entry. */
export interface ErrorSpec {
  /** HTTP status used when the error answers an HTTP request. */
  readonly status: number;
  /** What it means, for the docs. */
  readonly doc: string;
  /**
   * Seconds a client should wait before retrying, for errors that mean "not now". Each
   * transport renders it: HTTP as `Retry-After`, a core reply as `retry_after_s`.
   */
  readonly retryAfterS?: number;
}

/** Every error code the service can emit. Codes are part of the wire contract: never rename one. */
export const ERRORS = {
  bad_request: { status: 400, doc: 'The request or message is malformed, fails validation, or names a bad file.' },
  unauthorized: { status: 401, doc: 'No token or key, or an unknown or revoked one.' },
  forbidden: { status: 403, doc: 'The token is valid but its role or ownership does not allow this.' },
  not_found: { status: 404, doc: 'No such route or resource.' },
  method_not_allowed: { status: 405, doc: 'The route exists but not with this HTTP method.' },
  conflict: { status: 409, doc: 'The request conflicts with the current state (e.g. a name already taken).' },
  request_timeout: { status: 408, doc: 'A request body did not arrive in time (`http.bodyGraceS`, then `http.minBodyBytesPerSecond`); the connection is closed.' },
  too_large: { status: 413, doc: 'A body, message or file is over its configured size limit.' },
  unsupported_media_type: { status: 415, doc: 'A JSON body was sent without `Content-Type: application/json`.' },
  range_not_satisfiable: { status: 416, doc: 'A download\'s `Range` starts at or past the end of the file; `Content-Range` gives its length.' },
  rate_limited: { status: 429, doc: 'Too many requests or messages; retry after the indicated time.' },
  not_assigned: { status: 409, doc: 'Core: frame, checkpoint or stop sent without an assignment.' },
  already_assigned: { status: 409, doc: 'Core: assign or resume sent while holding an assignment.' },
  no_streams_available: { status: 503, doc: 'Core: no ready stream matches this core; retry after `retry_after_s`.' },
  target_not_found: { status: 404, doc: 'Core: the named target does not exist or is not available to this core.' },
  engine_not_allowed: { status: 403, doc: "Core: the target does not accept this core's engine." },
  out_of_order: { status: 409, doc: 'Core: a `seq` skipped ahead of the next expected one.' },
  bad_checksum: { status: 400, doc: "Core: the payload does not match the header's `sha256`." },
  buffer_full: { status: 413, doc: "Core: the stream's uncommitted buffer would exceed `core.maxBufferBytes`; checkpoint first." },
  blocked: { status: 403, doc: 'An admin blocked this donor, engine key or client address range (`/v1/blocks`); upgrades and assignments are refused.' },
  server_busy: { status: 503, doc: 'The process is at `server.maxConnections` sessions; connect again later or elsewhere.', retryAfterS: 30 },
  unavailable: { status: 503, doc: 'Storage (MongoDB or Redis) is unreachable; retry later. Committed data is intact.', retryAfterS: 5 },
  internal: { status: 500, doc: 'An unexpected server error; it is logged with the request id.' },
} as const satisfies Record<string, ErrorSpec>;

/** One way the server closes a core socket. */
export interface CloseSpec {
  /** WebSocket close code (RFC 6455 §7.4). */
  readonly code: number;
  /** The close frame's reason text: stable, cores may match it. */
  readonly reason: string;
  /** What it means and what a core should do, for the docs. */
  readonly doc: string;
}

/**
 * Every close of a core socket the server makes itself (a refused upgrade is an HTTP answer
 * with an {@link ERRORS} code instead). Reasons are part of the wire contract: never reword one.
 */
export const CLOSES = {
  server_shutdown: { code: 1001, reason: 'server shutdown', doc: 'The node is stopping; the assignment is kept: reconnect (to another node behind the same address) and `resume`.' },
  rate_limit_exceeded: { code: 1008, reason: 'rate limit exceeded', doc: 'More than 2 × `core.messagesPerSecond` messages refused in a row.' },
  too_many_bad_messages: { code: 1008, reason: 'too many bad messages', doc: '`core.maxProtocolErrors` `bad_request` or `bad_checksum` errors on this socket.' },
  engine_key_revoked: { code: 1008, reason: 'engine key revoked', doc: "An admin revoked the socket's engine key; do not reconnect with it." },
  blocked: { code: 1008, reason: 'blocked', doc: 'An admin blocked the donor, engine key or address range (`/v1/blocks`).' },
  message_too_large: { code: 1009, reason: 'message too large', doc: 'A message over `core.maxMessageBytes` (uws: one over twice that is cut off at the TCP level, seen as 1006; node: `ws` closes with this code and no reason).' },
  memory_budget: { code: 1013, reason: 'memory budget exhausted; try again later', doc: 'Messages queued behind a slow one passed `memory.sessionQueueBytes` or the process budget; reconnect and `resume`.' },
  replies_unread: { code: 1013, reason: 'replies not read while this node holds too many; try again later', doc: 'The core sent a message with more than `core.unreadRepliesBytes` of its replies unread while the process held more than `memory.unsentBytes`; closed without the handshake (often seen as 1006). Read replies; reconnect and `resume`.' },
  partial_messages: { code: 1013, reason: 'partial messages over their memory share; try again later', doc: 'Messages received in part, all sockets of the process together, passed `memory.partialMessagesBytes` (on uws the vendored build closes with the same code and reason); reconnect and `resume`.' },
} as const satisfies Record<string, CloseSpec>;

/** A server close of a core socket from {@link CLOSES}. */
export type CloseName = keyof typeof CLOSES;

/** A stable error code from {@link ERRORS}. */
export type ErrorCode = keyof typeof ERRORS;

/** The catalog's retry delay of a code in seconds, if it has one. */
export function retryAfterS(code: ErrorCode): number | undefined {
  return (ERRORS[code] as ErrorSpec).retryAfterS;
}

/**
 * An error meant for the client: handlers throw it and the transport turns it into
 * `{"error":{"code","message"}}` with the catalog's status (or a core `error` message).
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers, e.g. `WWW-Authenticate`. */
  readonly headers: Record<string, string>;
  /** Seconds to wait before retrying, if the client should: the catalog's unless given (server_busy: server.busyRetryAfterS). */
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, message: string, headers: Record<string, string> = {}, retryAfter: number | undefined = retryAfterS(code)) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.headers = headers;
    this.retryAfterS = retryAfter;
  }
}

/**
 * An error answering one core message (PROTOCOL §2): the request id it answers (null when
 * none could be read) and extra fields of the `error` reply, e.g. `retry_after_s`.
 */
export class MessageError extends AppError {
  constructor(readonly requestId: number | null, code: ErrorCode, message: string, readonly extra: Record<string, unknown> = {}) {
    super(code, message);
  }
}

/**
 * Whether the store refused a document over its size limit (MongoDB code 10334
 * BSONObjectTooLarge, 17419/17420 on updates, the driver's own check before sending, or
 * its serializer running out of buffer on a command far over the limit).
 * A client's data caused it, so it is `too_large`, never `internal`.
 */
export function isDocumentTooLarge(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (code === 10334 || code === 17419 || code === 17420) return true;
  if (/larger than the maximum|document is too large|object to insert too large|BSONObjectTooLarge/i.test(err.message)) return true;
  // The driver's BSON serializer overruns its fixed buffer on a command far over the limit.
  return err instanceof RangeError && /serialize\w*.*bson|bson.*serialize/is.test(err.stack ?? '');
}

/**
 * Converts anything thrown into an AppError: storage outages become `unavailable`
 * (with Retry-After), a document over the store's size limit `too_large`, other unknown errors `internal` (the original is kept as `cause`).
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = isStorageOutage(err)
    ? new AppError('unavailable', 'Storage is unavailable; retry later')
    : isDocumentTooLarge(err)
      ? new AppError('too_large', 'The data would make a stored document larger than the store allows')
      : new AppError('internal', 'Internal server error');
  (e as { cause?: unknown }).cause = err;
  return e;
}

/** The JSON body of an HTTP error (PROTOCOL §3). */
export function errorBody(err: AppError): string {
  return JSON.stringify({ error: { code: err.code, message: err.message } });
}
