/**
 * A TypeScript client for cores (PROTOCOL §2), on the `ws` package: connect with an engine
 * key (and optionally a donor token), assign, send frames and checkpoints as binary
 * messages, stop, and reconnect on its own, resuming the assignment when the socket drops.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { encodeBinary } from '../core/messages';
import { SUBPROTOCOL } from '../core/protocol';

/** The subprotocol the client offers (the server's, from core/protocol.ts). */
export const CORE_SUBPROTOCOL = SUBPROTOCOL;

/** Options of {@link CoreClient}. */
export interface CoreClientOptions {
  /** `wss://host:port/core/v1` (or ws:// behind a proxy in tests). */
  url: string;
  /** The engine key (Authorization: Bearer). */
  engineKey: string;
  /** A donor token to credit the work to. */
  donorToken?: string;
  /** Extra CA certificates (PEM) to trust, e.g. a private CA. */
  ca?: string | Buffer;
  /** Reconnect (and resume) after an unexpected disconnect. Default true. */
  reconnect?: boolean;
  /** Longest wait between reconnect attempts in ms (backoff doubles from 250 ms). Default 10000. */
  maxReconnectDelayMs?: number;
  /** Milliseconds a request waits for its reply. Default 60000. */
  requestTimeoutMs?: number;
  /** Bytes queued in the socket above which sends wait for it to drain. Default 4 MiB. */
  highWaterMark?: number;
}

/** The server's greeting. */
export interface Welcome {
  type: 'welcome';
  protocol: number;
  session: string;
  node: string;
  heartbeat_s: number;
  limits: { max_message_bytes: number; max_buffer_bytes: number };
}

/** A stream assignment; `files` are decoded to bytes. */
export interface Assignment {
  streamId: string;
  targetId: string;
  /** Committed frames. */
  frames: number;
  options: Record<string, unknown>;
  files: Record<string, Buffer>;
  resumeToken: string;
}

/** Reply to a frame message. */
export interface Ack {
  seq: number;
  bufferedFrames: number;
}

/** Reply to a checkpoint. */
export interface Committed {
  seq: number;
  frames: number;
  partition: number;
}

/** A file to send. */
export interface OutFile {
  name: string;
  data: Uint8Array;
}

/** An error reply from the server (`fromServer`), or a local failure (`disconnected`, `timeout`). */
export class CoreError extends Error {
  constructor(readonly code: string, message: string, readonly retryAfterS?: number, readonly fromServer = false) {
    super(message);
    this.name = 'CoreError';
  }
}

/** The {@link CoreError} of an `error` reply. */
function serverError(msg: Record<string, unknown>): CoreError {
  return new CoreError(msg.code as string, msg.message as string, msg.retry_after_s as number | undefined, true);
}

interface Pending {
  resolve(v: Record<string, unknown>): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * A core's connection. Events: `stop` (server-initiated stop: `{reason}`), `disconnect`
 * (`{code, reason}`), `reconnect` (a new Welcome), `resumed` (the Assignment after a resume;
 * frames since the last checkpoint were discarded and must be sent again), `lost` (the
 * assignment could not be resumed), `error`.
 */
export class CoreClient extends EventEmitter {
  private ws: WebSocket | undefined;
  private nextId = 1;
  private seq = 0;
  /**
   * Counts the times numbers were given back (and assignments): a request sent before that
   * cannot give back its own, since the server refused it only because an earlier one was.
   */
  private seqEpoch = 0;
  private readonly pending = new Map<number, Pending>();
  private closing = false;
  private current: Assignment | undefined;
  /** The reconnect under way after a dropped socket: settles once connected again, its stream resumed or lost. */
  private recovering: Promise<void> | undefined;
  /** The latest welcome. */
  welcome: Welcome | undefined;

  constructor(private readonly opts: CoreClientOptions) {
    super();
  }

  /** The current assignment, if any. */
  get assignment(): Assignment | undefined {
    return this.current;
  }

  /** Connects and resolves with the welcome. Rejects with CoreError when the upgrade is refused. */
  async connect(): Promise<Welcome> {
    this.closing = false;
    return this.open();
  }

  private open(): Promise<Welcome> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { authorization: `Bearer ${this.opts.engineKey}` };
      if (this.opts.donorToken) headers['x-donor-token'] = this.opts.donorToken;
      const ws = new WebSocket(this.opts.url, [CORE_SUBPROTOCOL], { headers, ca: this.opts.ca, maxPayload: 1 << 30 });
      this.ws = ws;
      let welcomed = false;
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => {
          let code = 'unauthorized';
          let message = `upgrade refused with HTTP ${res.statusCode}`;
          try {
            const e = (JSON.parse(body) as { error: { code: string; message: string } }).error;
            code = e.code;
            message = e.message;
          } catch {
            // not JSON: keep the status text
          }
          reject(new CoreError(code, message));
        });
      });
      ws.on('error', (err) => {
        if (!welcomed) reject(new CoreError('disconnected', err.message));
        else this.emit('error', err);
      });
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const msg = JSON.parse(data.toString()) as Record<string, unknown>;
        if (msg.type === 'welcome') {
          welcomed = true;
          this.welcome = msg as unknown as Welcome;
          resolve(this.welcome);
          return;
        }
        this.onMessage(msg);
      });
      ws.on('close', (code, reason) => {
        for (const [, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new CoreError('disconnected', `socket closed (${code})`));
        }
        this.pending.clear();
        if (!welcomed) reject(new CoreError('disconnected', `socket closed (${code}) before welcome`));
        this.emit('disconnect', { code, reason: reason.toString() });
        if (welcomed && !this.closing && this.opts.reconnect !== false) {
          const loop: Promise<void> = this.reconnectLoop().finally(() => {
            if (this.recovering === loop) this.recovering = undefined;
          });
          this.recovering = loop;
        }
      });
    });
  }

  private async reconnectLoop(): Promise<void> {
    let delay = 250;
    while (!this.closing) {
      await new Promise((r) => setTimeout(r, delay));
      if (this.closing) return;
      try {
        const w = await this.open();
        this.emit('reconnect', w);
        if (this.current) {
          const token = this.current.resumeToken;
          this.current = undefined;
          try {
            const a = await this.resume(token);
            this.emit('resumed', a);
          } catch (err) {
            this.emit('lost', err);
          }
        }
        return;
      } catch {
        delay = Math.min(delay * 2, this.opts.maxReconnectDelayMs ?? 10_000);
      }
    }
  }

  /**
   * Resolves once the client is connected again after its socket dropped (a node restarting or
   * draining, a network cut), with its stream resumed (`assignment`, from its last checkpoint:
   * frames sent since were discarded) or lost (`assignment` undefined). What a caller whose
   * request failed with `disconnected` waits for before going on. Resolves at once while
   * connected; rejects with `disconnected` when the client does not reconnect (closed, or
   * `reconnect: false`).
   */
  async reconnected(): Promise<void> {
    for (;;) {
      const ws = this.ws;
      // The server's close frame has arrived, the close event (which starts the reconnect) not yet.
      if (ws?.readyState === WebSocket.CLOSING) await new Promise((resolve) => ws.once('close', resolve));
      // A socket that drops again while resuming starts another reconnect: wait for the last.
      else if (this.recovering) await this.recovering;
      else break;
    }
    if (this.ws?.readyState === WebSocket.OPEN) return;
    throw new CoreError('disconnected', this.closing ? 'closed' : 'not connected, and not reconnecting');
  }

  private onMessage(msg: Record<string, unknown>): void {
    const id = msg.id as number | null | undefined;
    if (msg.type === 'stop' && (id === undefined || id === null)) {
      // A draining node keeps the lease for a resume (PROTOCOL "Server-initiated"): keep the
      // assignment so the reconnect that follows the 1001 close resumes it on another node.
      if (msg.reconnect !== true) this.current = undefined;
      this.emit('stop', { reason: msg.reason, reconnect: msg.reconnect === true });
      return;
    }
    if (typeof id !== 'number') {
      if (msg.type !== 'error') return;
      const err = serverError(msg);
      // The server names the id of a message it refuses over core.messagesPerSecond only when
      // the message (or its binary header) is small. Without it, with one request in flight
      // that message is known, and its caller may wait and send it again.
      const only = this.pending.size === 1 ? [...this.pending][0] : undefined;
      if (err.code === 'rate_limited' && only) {
        this.pending.delete(only[0]);
        clearTimeout(only[1].timer);
        only[1].reject(err);
      } else this.emit('error', err);
      return;
    }
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (msg.type === 'error') p.reject(serverError(msg));
    else p.resolve(msg);
  }

  /**
   * A request that took sequence number `seq`. The server takes a seq only with its `ack` or
   * `committed`: refused by an `error` reply (or unread, rate_limited), the number is given
   * back, with those of the requests sent after it (the server refuses them `out_of_order`),
   * so the same messages sent again in order (after `retryAfterS`) are next. Not after a
   * timeout or a drop: the server may have taken it, and a resume starts again from 1.
   */
  private async sequenced(seq: number, message: (id: number) => Buffer): Promise<Record<string, unknown>> {
    const epoch = this.seqEpoch;
    try {
      return await this.request(message);
    } catch (err) {
      if (err instanceof CoreError && err.fromServer && epoch === this.seqEpoch) {
        this.seq = seq - 1;
        this.seqEpoch++;
      }
      throw err;
    }
  }

  private async request(message: Record<string, unknown> | ((id: number) => Buffer)): Promise<Record<string, unknown>> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new CoreError('disconnected', 'not connected');
    const id = this.nextId++;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CoreError('timeout', `no reply to request ${id}`));
      }, this.opts.requestTimeoutMs ?? 60_000);
      this.pending.set(id, { resolve, reject, timer });
    });
    const data = typeof message === 'function' ? message(id) : JSON.stringify({ ...message, id });
    await new Promise<void>((resolve, reject) => {
      ws.send(data, { binary: typeof message === 'function' }, (err) => (err ? reject(new CoreError('disconnected', err.message)) : resolve()));
      // Flow control: only wait for the write when the socket's queue is long.
      if (ws.bufferedAmount < (this.opts.highWaterMark ?? 4 * 1024 * 1024)) resolve();
    });
    return reply;
  }

  private toAssignment(m: Record<string, unknown>): Assignment {
    const files: Record<string, Buffer> = {};
    for (const [k, v] of Object.entries(m.files as Record<string, string>)) files[k] = Buffer.from(v, 'base64');
    const a = { streamId: m.stream_id as string, targetId: m.target_id as string, frames: m.frames as number, options: m.options as Record<string, unknown>, files, resumeToken: m.resume_token as string };
    this.current = a;
    this.seq = 0;
    this.seqEpoch++;
    return a;
  }

  /** Asks for a stream (optionally of one target). Rejects with CoreError `no_streams_available` (see retryAfterS) and others. */
  async assign(targetId?: string): Promise<Assignment> {
    return this.toAssignment(await this.request({ type: 'assign', ...(targetId ? { target_id: targetId } : {}) }));
  }

  /** Takes back a stream after a reconnect (done automatically when `reconnect` is on). */
  async resume(resumeToken: string): Promise<Assignment> {
    return this.toAssignment(await this.request({ type: 'resume', resume_token: resumeToken }));
  }

  /** Sends frames; resolves when the server has buffered them. */
  async sendFrames(files: OutFile[], frames = 1): Promise<Ack> {
    const seq = ++this.seq;
    const m = await this.sequenced(seq, (id) => encodeBinary({ type: 'frame', id, seq, frames }, files.map((f) => ({ name: f.name, bytes: f.data }))));
    return { seq: m.seq as number, bufferedFrames: m.buffered_frames as number };
  }

  /** Commits the buffered frames with these checkpoint files; resolves once durable. */
  async checkpoint(files: OutFile[]): Promise<Committed> {
    const seq = ++this.seq;
    const m = await this.sequenced(seq, (id) => encodeBinary({ type: 'checkpoint', id, seq }, files.map((f) => ({ name: f.name, bytes: f.data }))));
    if (this.current) this.current.frames = m.frames as number;
    return { seq: m.seq as number, frames: m.frames as number, partition: m.partition as number };
  }

  /** Releases the stream; with `error`, reports a failure (counted towards max_stream_errors). */
  async stop(error?: string): Promise<void> {
    await this.request({ type: 'stop', ...(error !== undefined ? { error } : {}) });
    this.current = undefined;
  }

  /** Round trip to the server. */
  async ping(): Promise<void> {
    await this.request({ type: 'ping' });
  }

  /** Sends raw data (tests and tools): a JSON object or binary bytes. */
  sendRaw(data: string | Buffer): void {
    this.ws?.send(data);
  }

  /** Closes without reconnecting. */
  async close(): Promise<void> {
    this.closing = true;
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000);
    });
  }

  /** Drops the connection abruptly (tests of resume); reconnects when enabled. */
  terminate(): void {
    this.ws?.terminate();
  }
}
