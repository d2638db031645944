/**
 * A small client of the admin API on node:https: JSON calls that turn error replies into
 * {@link CliError}s with the matching exit code, and file downloads that resume from a
 * partial file with an HTTP Range request.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { CliError, EXIT, exitForStatus } from './exit';
import type { Connection } from './config';

/** Seconds a JSON call may take. */
const CALL_TIMEOUT_MS = 30_000;
/** Seconds a download may go without receiving a byte. */
const IDLE_TIMEOUT_MS = 60_000;

/** Progress of a download: bytes held (including resumed ones) and the total, when known. */
export type Progress = (done: number, total: number | undefined) => void;

/** What {@link ApiClient.download} did. */
export interface DownloadResult {
  /** Size of the complete file in bytes. */
  bytes: number;
  /** Bytes already held that were kept (0 when the download started from scratch). */
  resumedFrom: number;
}

/** A client bound to one server and token. */
export class ApiClient {
  private readonly base: URL;
  private readonly ca: string | undefined;
  private readonly agent: http.Agent;

  constructor(private readonly conn: Connection) {
    this.base = new URL(conn.url);
    if (conn.ca) {
      try {
        this.ca = fs.readFileSync(conn.ca, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read the CA file ${conn.ca}: ${(err as Error).message}`, EXIT.usage);
      }
    }
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true, ca: this.ca }) : new http.Agent({ keepAlive: true });
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private open(method: string, path: string, headers: Record<string, string>, timeoutMs: number): { req: http.ClientRequest; res: Promise<http.IncomingMessage> } {
    const url = new URL(`${this.base.pathname.replace(/\/$/, '')}${path}`, this.base);
    const mod = url.protocol === 'https:' ? https : http;
    const all: Record<string, string> = { accept: 'application/json', ...headers };
    if (this.conn.token) all.authorization = `Bearer ${this.conn.token}`;
    const req = mod.request(url, { method, headers: all, agent: this.agent });
    const res = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', (err) => reject(networkError(err, this.conn.url)));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    return { req, res };
  }

  /**
   * One JSON call. Resolves with the parsed body (undefined for 204); rejects with a
   * CliError carrying the server's error code and message for any non-2xx status.
   */
  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { req, res } = this.open(method, path, payload === undefined ? {} : { 'content-type': 'application/json' }, CALL_TIMEOUT_MS);
    req.end(payload);
    const r = await res;
    const text = (await readAll(r)).toString('utf8');
    if (r.statusCode! >= 300) throw replyError(r.statusCode!, text);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`the server answered ${method} ${path} with something that is not JSON`, EXIT.server);
    }
  }

  /**
   * Downloads `path` into `file`. When `file` already holds bytes (an interrupted earlier
   * download) and `resume` is set, asks for the rest with `Range: bytes=<size>-` and
   * appends; a server that answers 200 instead gets the file rewritten from the start.
   * The file is complete when this resolves; a failure leaves what was received in place.
   */
  async download(path: string, file: string, opts: { resume: boolean; progress?: Progress }): Promise<DownloadResult> {
    // The path the partial file came from (its stream and file) sits beside it: a `.part`
    // left by another stream's file of the same name, or by a client that wrote none, is not
    // a prefix of this one and is started again.
    const source = `${file}.source`;
    const from = `${path}\n`;
    let held = 0;
    if (opts.resume) {
      try {
        held = fs.readFileSync(source, 'utf8') === from ? fs.statSync(file).size : 0;
      } catch {
        held = 0;
      }
    }
    if (held === 0) {
      // Whatever is there is not this file's: gone before anything is asked, so an attempt that
      // fails before its first byte leaves neither it nor a record that would claim it.
      fs.rmSync(file, { force: true });
      fs.rmSync(source, { force: true });
    }
    const { req, res } = this.open('GET', path, held > 0 ? { range: `bytes=${held}-`, accept: '*/*' } : { accept: '*/*' }, IDLE_TIMEOUT_MS);
    req.end();
    const r = await res;
    const status = r.statusCode!;
    if (status === 416) {
      r.resume();
      const total = Number(/^bytes \*\/(\d+)$/.exec(String(r.headers['content-range']))?.[1]);
      if (total === held) {
        fs.rmSync(source, { force: true });
        return { bytes: held, resumedFrom: held };
      }
      // The partial file is longer than the file now is: it is not a prefix of it; start again.
      fs.truncateSync(file, 0);
      return this.download(path, file, { ...opts, resume: false });
    }
    if (status !== 200 && status !== 206) throw replyError(status, (await readAll(r)).toString('utf8'));
    let start = 0;
    let total = r.headers['content-length'] !== undefined ? Number(r.headers['content-length']) : undefined;
    if (status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(r.headers['content-range']));
      if (!m || Number(m[1]) !== held) {
        r.destroy();
        throw new CliError(`the server answered the resume of ${path} with an unexpected range (${String(r.headers['content-range'])})`, EXIT.server);
      }
      start = held;
      total = Number(m[3]);
    }
    // The record goes first: a file whose bytes are there always has one.
    if (start === 0) fs.writeFileSync(source, from, { mode: 0o644 });
    const out = fs.createWriteStream(file, { flags: start > 0 ? 'a' : 'w', mode: 0o644 });
    let done = start;
    opts.progress?.(done, total);
    try {
      await new Promise<void>((resolve, reject) => {
        r.on('data', (chunk: Buffer) => {
          done += chunk.length;
          opts.progress?.(done, total);
          if (!out.write(chunk)) {
            r.pause();
            out.once('drain', () => r.resume());
          }
        });
        r.once('end', () => (r.complete ? resolve() : reject(new Error('the connection closed before the end of the file'))));
        r.once('close', () => (r.complete ? undefined : reject(new Error('the connection closed before the end of the file'))));
        r.once('error', reject);
        out.once('error', reject);
      });
    } catch (err) {
      await new Promise((resolve) => out.end(resolve));
      throw new CliError(`download of ${path} interrupted after ${done} bytes: ${(err as Error).message}; run the same command again to resume`, EXIT.server);
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (total !== undefined && done !== total) {
      throw new CliError(`download of ${path} ended at ${done} of ${total} bytes; run the same command again to resume`, EXIT.server);
    }
    fs.rmSync(source, { force: true });
    return { bytes: done, resumedFrom: start };
  }
}

function readAll(r: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    r.on('data', (c: Buffer) => chunks.push(c));
    r.once('end', () => resolve(Buffer.concat(chunks)));
    r.once('error', reject);
  });
}

/** The CliError for an HTTP error reply, with the server's code and message when it sent them. */
function replyError(status: number, text: string): CliError {
  let code: string | undefined;
  let message = text.slice(0, 300) || `HTTP ${status}`;
  try {
    const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
    if (e?.code) code = e.code;
    if (e?.message) message = e.message;
  } catch {
    // Not our JSON (a proxy's error page): keep the start of the text.
  }
  return new CliError(`${status}${code ? ` ${code}` : ''}: ${message}`, exitForStatus(status), status, code);
}

function networkError(err: Error, url: string): CliError {
  const code = (err as NodeJS.ErrnoException).code;
  const hint = code && /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(code) ? ' (is the CA right? pass --ca FILE to login or set STREAM_COORDINATOR_CA)' : '';
  return new CliError(`cannot reach ${url}: ${err.message}${hint}`, EXIT.server);
}
