/**
 * The one admin-API client of the tests and the benchmarks: a plain HTTP(S) request that
 * trusts a given CA, and {@link ApiClient}, a JSON client bound to one server. Test-only
 * code (never imported by src/): it reaches servers on loopback whose certificate names
 * `localhost`.
 */
import http from 'node:http';
import https from 'node:https';

/** A response with its whole body. */
export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

/** Options of {@link request}. */
export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** PEM CA to trust for https URLs. */
  ca?: string;
  /** Use a fresh connection (no keep-alive). Default true. */
  fresh?: boolean;
  /** Fail when no answer arrives within this many milliseconds. Default: no limit. */
  timeoutMs?: number;
  /** The agent to use (overrides `fresh`), e.g. one that keeps a single connection. */
  agent?: http.Agent;
  /** Sent as the request path exactly as given (`..`, `%2e` kept), instead of the URL's normalised path. */
  path?: string;
}

/** One HTTP(S) request; resolves with any status. */
export function request(url: string, opts: RequestOptions = {}): Promise<Response> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      {
        method: opts.method ?? 'GET',
        headers: opts.headers,
        ca: opts.ca,
        agent: opts.agent ?? (opts.fresh === false ? undefined : false),
        // The test certificates name localhost; servers are reached by address.
        servername: u.hostname === '127.0.0.1' ? 'localhost' : undefined,
        timeout: opts.timeoutMs,
        ...(opts.path !== undefined ? { path: opts.path } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body.toString()) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url}: no answer within ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    // An explicit length (unless the caller set one) so bodies are never sent chunked.
    if (opts.body !== undefined && !req.hasHeader('content-length')) req.setHeader('content-length', Buffer.byteLength(opts.body));
    req.end(opts.body);
  });
}

/** Options of {@link ApiClient.call}. */
export interface CallOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Sent as JSON (with Content-Type: application/json) unless it is a string or Buffer. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Send `path` exactly as given, not normalised (for tests of `..` and percent-encoded paths). */
  exactPath?: boolean;
}

/** Options of an {@link ApiClient}. */
export interface ApiClientOptions {
  /** Reuse connections (Node's global agent) instead of one fresh connection per request. Default false. */
  keepAlive?: boolean;
  /** Per-request answer timeout in milliseconds. Default: none. */
  timeoutMs?: number;
  /**
   * Send every request over one kept-alive connection, so consecutive requests reach the
   * same server process (with several workers on one port). {@link ApiClient.close} drops it.
   */
  oneConnection?: boolean;
}

/** A JSON client for the admin API of one server. */
export class ApiClient {
  private readonly agent?: https.Agent;

  constructor(
    readonly baseUrl: string,
    readonly ca: string,
    private readonly opts: ApiClientOptions = {},
  ) {
    if (opts.oneConnection) this.agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  }

  /** Drops the kept connection of a `oneConnection` client (nothing otherwise). */
  close(): void {
    this.agent?.destroy();
  }

  /** One request; resolves with any status. */
  call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    let body: string | Buffer | undefined;
    if (opts.body !== undefined) {
      if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) body = opts.body;
      else {
        body = JSON.stringify(opts.body);
        headers['content-type'] ??= 'application/json';
      }
    }
    const common = { method, headers, body, ca: this.ca, fresh: !this.opts.keepAlive, agent: this.agent, timeoutMs: this.opts.timeoutMs };
    return opts.exactPath ? request(this.baseUrl, { ...common, path }) : request(`${this.baseUrl}${path}`, common);
  }

  /** One request that must answer `status` (otherwise it throws with the body); returns the JSON body, if any. */
  async expect<T = Record<string, unknown>>(status: number, method: string, path: string, opts: CallOptions = {}): Promise<T> {
    const res = await this.call(method, path, opts);
    if (res.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${res.status}: ${res.body.toString().slice(0, 500)}`);
    return (res.body.length > 0 && /json/.test(String(res.headers['content-type'])) ? res.json<T>() : undefined) as T;
  }

  /**
   * One JSON request as `token` (none when undefined); throws unless the status is
   * `status` (any status when undefined), with the message
   * `<method> <path>: expected <status>, got <actual> <whole body>` (tests read it back).
   * Returns the parsed body, `{}` when empty.
   */
  async json<T = Record<string, unknown>>(method: string, path: string, token: string | undefined, body?: unknown, status?: number): Promise<T> {
    const res = await this.call(method, path, { token, body });
    if (status !== undefined && res.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${res.status} ${res.body.toString()}`);
    return (res.body.length ? res.json<T>() : {}) as T;
  }
}
