/**
 * Low-level helpers for core-protocol tests: a raw WebSocket core that sends arbitrary
 * text or binary and collects every reply, an upgrade probe that reports refusals, a
 * keep-alive HTTPS client pinned to one connection (so a test knows which worker serves
 * it), and a CLI-started server with the usual core fixture.
 */
import fs from 'node:fs';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config/settings';
import { encodeBinary } from '../../src/core/messages';
import { createMongo, type Mongo } from '../../src/store/mongo';
import { ApiClient } from '../../test-support/admin-api';
import { remoteCoreFixture, type RemoteCoreFixture } from './core';
import { eventually, runCli, stackOverrides, writeConfig, type CliProcess, type Overrides } from './server';
import { getStack } from '../../test-support/stack';

/** A JSON message from the server. */
export type Msg = Record<string, unknown> & { type: string };

interface Waiter {
  pred(m: Msg): boolean;
  resolve(m: Msg): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** Options of {@link RawCore.connect}. */
export interface RawOptions {
  engineKey?: string;
  donorToken?: string;
  ca?: string;
  /** Extra upgrade headers. */
  headers?: Record<string, string>;
}

/** A core speaking the wire protocol by hand. */
export class RawCore {
  /** Every message received, in order. */
  readonly received: Msg[] = [];
  /** The welcome message. */
  welcome!: Msg;
  /** Resolves with the close code and reason once the socket is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly queue: Msg[] = [];
  private waiters: Waiter[] = [];
  private nextId = 1000;
  private isClosed = false;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.isClosed = true;
        for (const w of this.waiters) {
          clearTimeout(w.timer);
          w.reject(new Error(`socket closed (${code}) while waiting for a message`));
        }
        this.waiters = [];
        resolve({ code, reason: reason.toString() });
      });
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const msg = JSON.parse(data.toString()) as Msg;
      this.received.push(msg);
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w!.timer);
        w!.resolve(msg);
      } else {
        this.queue.push(msg);
      }
    });
    ws.on('error', () => undefined);
  }

  /** Connects and waits for the welcome. */
  static connect(url: string, opts: RawOptions = {}): Promise<RawCore> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.engineKey) headers.authorization = `Bearer ${opts.engineKey}`;
    if (opts.donorToken) headers['x-donor-token'] = opts.donorToken;
    const ws = new WebSocket(url, ['coordinator.core.v1'], { headers, ca: opts.ca, maxPayload: 1 << 30 });
    const core = new RawCore(ws);
    return new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused with HTTP ${res.statusCode}`)));
      ws.once('error', reject);
      core.next((m) => m.type === 'welcome', 10000).then((w) => {
        core.welcome = w;
        resolve(core);
      }, reject);
    });
  }

  /** Whether the socket is closed. */
  get isOpen(): boolean {
    return !this.isClosed && this.ws.readyState === WebSocket.OPEN;
  }

  /** The id handed out last (the request of the latest frame or checkpoint). */
  lastId = 0;

  /** A fresh request id. */
  id(): number {
    this.lastId = this.nextId++;
    return this.lastId;
  }

  /** Sends text (a string as is, an object as JSON) or binary (a Buffer). */
  send(data: string | Buffer | Record<string, unknown>): void {
    if (Buffer.isBuffer(data)) this.ws.send(data, { binary: true });
    else this.ws.send(typeof data === 'string' ? data : JSON.stringify(data), { binary: false });
  }

  /** The next unread message matching `pred` (default: any), waiting for it if needed. */
  next(pred: (m: Msg) => boolean = () => true, timeoutMs = 5000): Promise<Msg> {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    if (this.isClosed) return Promise.reject(new Error('socket closed'));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`no matching message within ${timeoutMs} ms; received ${JSON.stringify(this.received.slice(-5))}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** The reply carrying request id `id`. */
  reply(id: number, timeoutMs = 5000): Promise<Msg> {
    return this.next((m) => m.id === id, timeoutMs);
  }

  /** Unread messages so far (and forgets them). */
  drain(): Msg[] {
    return this.queue.splice(0);
  }

  /** Sends a text request with a fresh id (unless it has one) and waits for its reply. */
  async request(msg: Record<string, unknown>, timeoutMs = 5000): Promise<Msg> {
    const id = typeof msg.id === 'number' ? msg.id : this.id();
    this.send({ ...msg, id });
    return this.reply(id, timeoutMs);
  }

  /** A ping round trip; resolves with the pong. */
  ping(): Promise<Msg> {
    return this.request({ type: 'ping' });
  }

  /** Sends a binary frame message and waits for its reply. */
  frame(seq: number, opts: { frames?: number; files?: Array<{ name: string; bytes: Uint8Array }>; sha256?: string } = {}): Promise<Msg> {
    const id = this.id();
    const header: Record<string, unknown> = { type: 'frame', id, seq, ...(opts.frames !== undefined ? { frames: opts.frames } : {}), ...(opts.sha256 ? { sha256: opts.sha256 } : {}) };
    this.send(encodeBinary(header, opts.files ?? [{ name: 'frames.xtc', bytes: Buffer.from(`frame ${seq}`) }]));
    return this.reply(id);
  }

  /** Sends a binary checkpoint message and waits for its reply. */
  checkpoint(seq: number, files: Array<{ name: string; bytes: Uint8Array }> = [{ name: 'state.xml', bytes: Buffer.from(`checkpoint ${seq}`) }]): Promise<Msg> {
    const id = this.id();
    this.send(encodeBinary({ type: 'checkpoint', id, seq }, files));
    return this.reply(id, 15000);
  }

  /** Closes normally and waits for the close. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(1000);
    await this.closed;
  }
}

/** What an upgrade attempt got. */
export interface UpgradeOutcome {
  opened: boolean;
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: string;
}

/** Attempts an upgrade and reports whether it opened, or the HTTP refusal. Closes an opened socket. */
export function tryUpgrade(url: string, headers: Record<string, string>, ca?: string): Promise<UpgradeOutcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['coordinator.core.v1'], { headers, ca });
    ws.once('open', () => {
      ws.terminate();
      resolve({ opened: true });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ opened: false, status: res.statusCode, headers: res.headers, body }));
    });
    ws.once('error', (err) => reject(err));
  });
}

/** An HTTPS client that keeps one connection alive, so consecutive requests reach the same process. */
export class PinnedClient {
  private readonly api: ApiClient;

  constructor(base: string, ca: string) {
    this.api = new ApiClient(base, ca, { oneConnection: true });
  }

  /** One request; resolves with status and parsed JSON body (or undefined). */
  async call<T = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await this.api.call(method, path, { token, body });
    return { status: res.status, body: (res.body.length ? res.json<T>() : undefined) as T };
  }

  /** Drops the kept connection. */
  destroy(): void {
    this.api.close();
  }
}

/** A server started through the CLI, with the core fixture made against it. */
export interface CliServer {
  p: CliProcess;
  port: number;
  ca: string;
  overrides: Overrides;
  mongo: Mongo;
  f: RemoteCoreFixture;
  /** The server process's resident memory now (VmRSS), bytes. */
  rss(): number;
  /** A raw core on this server with the fixture's engine key and donor token. */
  connect(): Promise<RawCore>;
  /** SIGTERM (if still running), then closes the test's MongoDB client. */
  stop(): Promise<void>;
}

/**
 * Runs `serve` in a child process on `port` with these overrides and waits until it
 * listens (`waitFor` matches its output), then creates admin, manager, engine key and donor.
 */
export async function cliServer(port: number, extra: Overrides, waitFor: RegExp): Promise<CliServer> {
  const overrides = await stackOverrides({ 'server.port': port, ...extra });
  const p = runCli(['serve', '--config', writeConfig(overrides)]);
  await eventually(async () => waitFor.test(p.output()), 30000, `${waitFor} in:\n${p.output()}`);
  const ca = fs.readFileSync((await getStack()).certs.caCert, 'utf8');
  const settings = loadConfig({ env: {}, overrides });
  const mongo = createMongo(settings);
  const f = await remoteCoreFixture(`https://127.0.0.1:${port}`, ca, mongo.db);
  return {
    p,
    port,
    ca,
    overrides,
    mongo,
    f,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p.child.pid}/status`, 'utf8'))![1]) * 1024,
    connect: () => RawCore.connect(f.wsUrl, { engineKey: f.engineKey, donorToken: f.donor, ca }),
    stop: async () => {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGTERM');
        await p.exited;
      }
      await mongo.client.close();
    },
  };
}
