/**
 * The transport-neutral shape of an HTTP exchange. Route handlers see only these
 * types, never uWebSockets.js objects, so the same handlers can run behind any transport.
 */
import { AppError, errorBody } from '../errors';

/** One HTTP request as handlers see it. Everything is copied out of the transport before any await. */
export interface Request {
  /** Request id, echoed as `X-Request-Id` and present in every log line about the request. */
  readonly id: string;
  /** Upper-case method. */
  readonly method: string;
  /** Path without the query string, not decoded. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Header names are lower case. */
  readonly headers: Readonly<Record<string, string>>;
  /** Path parameters of the matched route (`/v1/streams/:id` → `{id}`), percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The matched route pattern, or `(none)`; used as a low-cardinality metrics label. */
  readonly route: string;
  /** Address of the TCP peer. */
  readonly peerAddress: string;
  /** Client address: the peer, or the first untrusted X-Forwarded-For hop when the peer is a trusted proxy. */
  readonly clientAddress: string;
  /** Aborted when the client goes away; long work should stop early. */
  readonly signal: AbortSignal;
  /**
   * The whole body. Rejects with `too_large` past the route's limit (the excess is never buffered)
   * and with `bad_request` when the client aborts mid-body.
   */
  body(): Promise<Buffer>;
}

/** A streamed body with a known length (sent with Content-Length, honouring backpressure). */
export interface StreamBody {
  readonly length: number;
  readonly chunks: AsyncIterable<Uint8Array>;
  /**
   * The bytes from `offset` (0-based) to the end, without reading those before it; used
   * instead of `chunks` to answer a Range request. Optional: without it the range is cut
   * out of `chunks`.
   */
  readonly from?: (offset: number) => AsyncIterable<Uint8Array>;
  /**
   * The bytes may differ from one request to the next (an answer rebuilt now and then): a
   * Range is then not served from them, since a resumed download could splice two versions.
   * Unset: they never change (file downloads).
   */
  readonly changes?: boolean;
}

/** Whether a reply body is streamed ({@link StreamBody}) rather than held whole in memory. */
export function isStreamBody(body: Reply['body']): body is StreamBody {
  return typeof body === 'object' && body !== null && !(body instanceof Uint8Array) && 'chunks' in body;
}

/** Bytes per chunk of {@link bufferBody}. */
export const BUFFER_CHUNK_BYTES = 64 * 1024;

/**
 * Bytes already in memory as a streamed body, in chunks of {@link BUFFER_CHUNK_BYTES} that
 * share its memory: a transport then sends it one chunk at a time, so a slow client holds no
 * copy of it (e.g. a cached answer shared by many replies). No Range is served from it
 * ({@link StreamBody.changes}).
 */
export function bufferBody(bytes: Uint8Array): StreamBody {
  async function* chunks(): AsyncIterable<Uint8Array> {
    for (let at = 0; at < bytes.byteLength; at += BUFFER_CHUNK_BYTES) yield bytes.subarray(at, Math.min(at + BUFFER_CHUNK_BYTES, bytes.byteLength));
  }
  return { length: bytes.byteLength, chunks: chunks(), changes: true };
}

/** What a handler returns; the transport writes it. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array | StreamBody;
}

/** A route handler. Throw an {@link AppError} to answer with a catalogued error. */
export type Handler = (req: Request) => Reply | Promise<Reply>;

/**
 * A check run on the headers before any of the body is read (authentication). Throws (or
 * rejects with) the AppError to answer; the body is then never read and the connection closed.
 */
export type Gate = (req: { headers: Readonly<Record<string, string>>; clientAddress: string }) => void | Promise<void>;

/** Per-route options. */
export interface RouteOptions {
  /** Largest accepted body in bytes; defaults to the router's default (http.maxBodyBytes). */
  bodyLimit?: number;
  /** Runs before the body is read; see {@link Gate}. */
  gate?: Gate;
}

/** A JSON reply. */
export function json(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers }, body: JSON.stringify(value) };
}

/**
 * An error's HTTP headers: its own, plus `Retry-After` when the error says when to retry
 * (an explicit header of its own wins).
 */
export function errorHeaders(err: AppError): Record<string, string> {
  return err.retryAfterS === undefined ? err.headers : { 'retry-after': String(err.retryAfterS), ...err.headers };
}

/**
 * The reply for an error (PROTOCOL §3 body, catalog status, {@link errorHeaders}): of every
 * HTTP request, and of a refused core upgrade.
 */
export function errorReply(err: AppError): Reply & { body: string } {
  return {
    status: err.status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...errorHeaders(err) },
    body: errorBody(err),
  };
}

/** A route match. */
export interface Match {
  route: string;
  handler: Handler;
  params: Record<string, string>;
  bodyLimit: number;
  gate?: Gate;
}

interface Route {
  pattern: string;
  segments: string[];
  methods: Map<string, { handler: Handler; bodyLimit: number; gate?: Gate }>;
}

/**
 * A small router: exact segments and `:name` parameters, one handler per method. It answers
 * 404 for unknown paths and 405 (with `Allow`) for known paths with another method.
 */
export class Router {
  private readonly routes: Route[] = [];
  private readonly exact = new Map<string, Route>();

  constructor(private readonly defaultBodyLimit: number) {}

  /** Registers a handler. Patterns are `/a/:param/b`. */
  add(method: string, pattern: string, handler: Handler, opts: RouteOptions = {}): this {
    let route = this.routes.find((r) => r.pattern === pattern);
    if (!route) {
      route = { pattern, segments: pattern.split('/').slice(1), methods: new Map() };
      this.routes.push(route);
      if (!pattern.includes(':')) this.exact.set(pattern, route);
    }
    if (route.methods.has(method)) throw new Error(`duplicate route ${method} ${pattern}`);
    route.methods.set(method, { handler, bodyLimit: opts.bodyLimit ?? this.defaultBodyLimit, ...(opts.gate ? { gate: opts.gate } : {}) });
    return this;
  }

  /** Finds the handler for a request or throws `not_found` / `method_not_allowed`. */
  match(method: string, path: string): Match {
    const exact = this.exact.get(path);
    const found = exact ? { route: exact, params: {} } : this.findPattern(path);
    if (!found) throw new AppError('not_found', `No route for ${path}`);
    const { route, params } = found;
    const m = route.methods.get(method) ?? (method === 'HEAD' ? route.methods.get('GET') : undefined);
    if (!m) {
      const allow = [...route.methods.keys()].join(', ');
      throw new AppError('method_not_allowed', `${method} is not allowed on ${route.pattern}; allowed: ${allow}`, { allow });
    }
    return { route: route.pattern, handler: m.handler, params, bodyLimit: m.bodyLimit, ...(m.gate ? { gate: m.gate } : {}) };
  }

  /** Methods registered for a path (empty when no route matches it). */
  methodsFor(path: string): string[] {
    const exact = this.exact.get(path);
    const route = exact ?? this.findPattern(path)?.route;
    return route ? [...route.methods.keys()] : [];
  }

  /** Largest body limit of any route, for transports that need a global cap. */
  maxBodyLimit(): number {
    let max = this.defaultBodyLimit;
    for (const r of this.routes) for (const m of r.methods.values()) max = Math.max(max, m.bodyLimit);
    return max;
  }

  private findPattern(path: string): { route: Route; params: Record<string, string> } | undefined {
    const parts = path.split('/').slice(1);
    for (const route of this.routes) {
      if (route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const seg = route.segments[i]!;
        const part = parts[i]!;
        if (seg.startsWith(':')) {
          if (part === '') ok = false;
          else params[seg.slice(1)] = decodeParam(part);
        } else if (seg !== part) ok = false;
      }
      if (ok) return { route, params };
    }
    return undefined;
  }
}

function decodeParam(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new AppError('bad_request', 'Malformed percent-encoding in the path');
  }
}
