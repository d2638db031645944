/**
 * Load generator, forked by the benchmarks (child_process.fork). Driven by IPC messages:
 *
 * - `sessions`: open `count` core sessions, at most `concurrency` being set up at once.
 *   A session is: TLS + WebSocket upgrade with `Authorization: Bearer <engine key>` →
 *   the server's first message (welcome) → `{"type":"assign","id":1}` → the assignment.
 *   Established sessions stay open until `close`. Uses the raw `ws` client (not
 *   CoreClient) and one shared TLS context to keep the load generator's memory low.
 *   With `centrifugo` set, the same count of Centrifugo v5 sessions instead (the peer of
 *   bench/README.md): TLS + upgrade → `{"id":1,"connect":{"token":<HS256 JWT>}}` → connect
 *   reply → `{"id":2,"subscribe":{"channel":…}}` → subscribe reply; held sessions answer the
 *   server's protocol pings (`{}`) with pongs (`{}`).
 * - `work`: `cores` sessions that, after `go`, send binary frame messages of `frameBytes`
 *   with a checkpoint every `framesPerCheckpoint` frames, keeping up to `window` messages
 *   unanswered per core, until each core has sent its share of `frames`.
 * - `http`: one autocannon run (HTTP/1.1 keep-alive over TLS).
 * - `stats`: how many sessions are open and how many dropped since being established.
 * - `close`: closes everything and exits.
 *
 * All traffic goes to 127.0.0.0/8; each load generator connects from its own source
 * address (`localAddress`) and numbers its source ports itself, so no address runs out of
 * ports and the kernel never searches for one. Every phase has a deadline.
 */
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import WebSocket from 'ws';
import { connectionToken, STATE_NAMESPACE } from '../src/provision/centrifugo';
import { noise } from './lib/noise';
import { sleep } from './lib/stats';

/** Options of a `sessions` command. */
export interface SessionsCommand {
  cmd: 'sessions';
  url: string;
  /** Engine key (omitted for the echo server). */
  key?: string;
  protocol?: string;
  ca: string;
  localAddress: string;
  count: number;
  concurrency: number;
  /** Per-session set-up timeout. */
  timeoutMs: number;
  /** Deadline for the whole phase; sessions not started by then are counted as not attempted. */
  deadlineMs: number;
  /** 'assignment': the reply to assign must be an assignment; 'any': any reply (echo). */
  expect: 'assignment' | 'any';
  /** A failed set-up is tried again this many times, as a real core reconnects (default 0). */
  retries?: number;
  /**
   * Pause before a retry, ms, plus a random part up to as much again; a refusal that names
   * its own delay (`retry_after_s`, `Retry-After`) is waited out instead, as a real core does.
   */
  retryDelayMs?: number;
  /** Speak Centrifugo's JSON protocol v2 instead (`expect` is then not used). */
  centrifugo?: CentrifugoSession;
}

/** How a load generator opens Centrifugo sessions. */
export interface CentrifugoSession {
  /** HMAC secret of connection tokens: each session gets its own HS256 JWT, made here. */
  tokenSecret: string;
  /** Prefix of user ids (`sub`) and channel names, unique per load generator and run. */
  prefix: string;
  /**
   * Subscribe instead to channel `state:<n mod stateChannels>` (`STATE_NAMESPACE`) with recovery, and count the
   * session only when the reply carries that channel's publication (the peer then sends as
   * many bytes per session as an assignment; bench/lib/centrifugo-peer.ts fills them).
   */
  stateChannels?: number;
}

/** Options of a `work` command. */
export interface WorkCommand {
  cmd: 'work';
  url: string;
  key: string;
  ca: string;
  localAddress: string;
  cores: number;
  frameBytes: number;
  /** Frames per checkpoint; 0: one checkpoint only, after the last frame. */
  framesPerCheckpoint: number;
  /** Bytes of the one checkpoint file sent with each checkpoint. */
  checkpointBytes: number;
  /** Frames each core sends in total (a final checkpoint commits any remainder). */
  framesPerCore: number;
  /** Most unanswered messages per core. */
  window: number;
  timeoutMs: number;
  deadlineMs: number;
}

/** Options of an `http` command (autocannon). */
export interface HttpCommand {
  cmd: 'http';
  url: string;
  ca: string;
  connections: number;
  durationS: number;
  headers?: Record<string, string>;
}

type Command = SessionsCommand | WorkCommand | HttpCommand | { cmd: 'go' } | { cmd: 'stats' } | { cmd: 'close' };

/** Result of a `sessions` command. */
export interface SessionsResult {
  type: 'sessions';
  ok: number;
  failed: number;
  notAttempted: number;
  reasons: Record<string, number>;
  /** Set-ups tried again, and why the attempt before failed. */
  retried: number;
  retryReasons: Record<string, number>;
  /** Per session, from its first attempt to the assignment. */
  latenciesMs: number[];
  firstStart: number;
  lastDone: number;
  cpuMs: number;
}

/** Result of a `work` command. */
export interface WorkResult {
  type: 'work';
  cores: number;
  frameAcks: number;
  commits: number;
  bytesAcked: number;
  commitLatenciesMs: number[];
  errors: Record<string, number>;
  elapsedMs: number;
  /** From go to the last frame ack (before the final checkpoint's commit). */
  framesElapsedMs: number;
  timedOut: boolean;
  cpuMs: number;
}

const send = (m: unknown): void => {
  process.send?.(m);
};

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** An all-zero mask: ws then skips masking (saves load-generator CPU; servers unmask as always). */
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

const open: WebSocket[] = [];
let context: tls.SecureContext | undefined;

function secureContext(ca: string): tls.SecureContext {
  context ??= tls.createSecureContext({ ca });
  return context;
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

/** Opens one session; resolves with the socket or a failure reason. */
/**
 * Source ports are chosen here, one after the other, instead of by the kernel: a bind() to a
 * source address with port 0 makes Linux search the port range for a free port, and with
 * tens of thousands of bound sockets that search (inet_csk_get_port) took most of the
 * machine's CPU. Every load generator gets its own fresh source address, so these ports are
 * free.
 */
let nextPort = 10_000;
const MAX_PORT = 65_000;

/** One set-up attempt: the socket, or why not and the delay the server asked for (seconds). */
interface Attempt {
  ws?: WebSocket;
  reason?: string;
  retryAfterS?: number;
}

function openSession(o: { url: string; key?: string; protocol?: string; ca: string; localAddress: string; timeoutMs: number; expect: 'assignment' | 'any'; centrifugo?: CentrifugoSession }): Promise<Attempt> {
  if (nextPort > MAX_PORT) return Promise.resolve({ reason: 'out of source ports' });
  if (o.centrifugo) return openCentrifugo({ ...o, centrifugo: o.centrifugo });
  return new Promise((resolve) => {
    const ws = new WebSocket(o.url, o.protocol ? [o.protocol] : [], { ...socketOptions(o), headers: o.key ? { authorization: `Bearer ${o.key}` } : {} });
    const { finish, settled } = settleOnce(ws, o.timeoutMs, resolve);
    let stage = 0;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (settled()) return;
      if (stage === 0) {
        stage = 1;
        ws.send('{"type":"assign","id":1}');
        return;
      }
      if (o.expect === 'any') return finish();
      let msg: { type?: string; code?: string; retry_after_s?: number };
      try {
        msg = JSON.parse(isBinary ? '' : data.toString()) as typeof msg;
      } catch {
        return finish('bad reply');
      }
      if (msg.type === 'assignment') return finish();
      finish(msg.type === 'error' ? `error ${msg.code}` : `unexpected ${msg.type}`, msg.retry_after_s);
    });
  });
}

/**
 * How every session attempt ends, once: with the socket, or with a reason (the socket is then
 * terminated) — a timeout, an HTTP refusal of the upgrade, a socket error or a close.
 */
function settleOnce(ws: WebSocket, timeoutMs: number, resolve: (r: Attempt) => void): { finish: (reason?: string, retryAfterS?: number) => void; settled: () => boolean } {
  let done = false;
  const finish = (reason?: string, retryAfterS?: number): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    if (reason) {
      ws.removeAllListeners('message');
      ws.on('error', () => undefined);
      ws.terminate();
      resolve(typeof retryAfterS === 'number' && retryAfterS > 0 ? { reason, retryAfterS } : { reason });
    } else {
      resolve({ ws });
    }
  };
  const timer = setTimeout(() => finish('timeout'), timeoutMs);
  ws.on('unexpected-response', (_req, res) => finish(`http ${res.statusCode}`, Number(res.headers['retry-after'])));
  ws.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message.slice(0, 60)));
  ws.on('close', (code) => finish(`closed ${code}`));
  return { finish, settled: () => done };
}

/** Sessions opened by {@link openCentrifugo}: numbers user ids and channels. */
let centrifugoSessions = 0;

/** The socket options every session shares (see {@link openSession}). */
function socketOptions(o: { ca: string; localAddress: string; timeoutMs: number }): WebSocket.ClientOptions {
  return {
    secureContext: secureContext(o.ca),
    servername: 'localhost',
    rejectUnauthorized: process.env.LG_VERIFY === '1',
    localAddress: o.localAddress,
    localPort: nextPort++,
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: o.timeoutMs,
    maxPayload: 64 * 1024 * 1024,
    ...(process.env.LG_MASK === 'random' ? {} : { generateMask: zeroMask }),
  } as WebSocket.ClientOptions;
}

/**
 * One Centrifugo session (protocol v2, JSON): connect with a connection token, then
 * subscribe to a channel of its own, as a client SDK does, or to a state channel whose
 * publication must come with the reply. Replies may come several to a
 * frame, one JSON object per line. An empty object is the server's ping: it is answered
 * with an empty object for as long as the socket is open, or Centrifugo disconnects the
 * client after ping interval + pong timeout.
 */
function openCentrifugo(o: { url: string; ca: string; localAddress: string; timeoutMs: number; centrifugo: CentrifugoSession }): Promise<Attempt> {
  const n = ++centrifugoSessions;
  const user = `${o.centrifugo.prefix}-${n}`;
  const state = o.centrifugo.stateChannels;
  return new Promise((resolve) => {
    const ws = new WebSocket(o.url, [], socketOptions(o));
    const { finish, settled } = settleOnce(ws, o.timeoutMs, resolve);
    ws.on('open', () => {
      ws.send(JSON.stringify({ id: 1, connect: { token: connectionToken(o.centrifugo.tokenSecret, user) } }));
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      for (const line of (isBinary ? '' : data.toString()).split('\n')) {
        if (!line) continue;
        if (line === '{}') {
          if (ws.readyState === WebSocket.OPEN) ws.send('{}');
          continue;
        }
        if (settled()) continue;
        let m: { id?: number; connect?: unknown; subscribe?: { recovered?: boolean; publications?: unknown[] }; error?: { code?: number } };
        try {
          m = JSON.parse(line) as typeof m;
        } catch {
          return finish('bad reply');
        }
        if (m.error) return finish(`error ${m.error.code}`);
        if (m.id === 1 && m.connect) {
          ws.send(JSON.stringify({ id: 2, subscribe: state ? { channel: `${STATE_NAMESPACE}:${n % state}`, recover: true } : { channel: `stream-${user}` } }));
        } else if (m.id === 2 && m.subscribe) {
          if (state && !(m.subscribe.recovered === true && m.subscribe.publications?.length === 1)) return finish('no state');
          finish();
        } else {
          return finish(`unexpected ${line.slice(0, 40)}`);
        }
      }
    });
  });
}

let dropped = 0;

/** The pause before a retry: the delay plus up to as much again, so cores refused together do not all return together. */
function retryPause(delayMs: number): number {
  return delayMs + Math.random() * delayMs;
}

async function runSessions(c: SessionsCommand): Promise<void> {
  const cpu0 = cpuNow();
  const deadline = Date.now() + c.deadlineMs;
  const latencies: number[] = [];
  const reasons: Record<string, number> = {};
  const retryReasons: Record<string, number> = {};
  let retried = 0;
  let ok = 0;
  let failed = 0;
  let started = 0;
  let firstStart = 0;
  let lastDone = 0;
  const progress = setInterval(() => send({ type: 'progress', ok, failed }), 1000);
  const worker = async (): Promise<void> => {
    while (started < c.count && Date.now() < deadline) {
      started++;
      const t0 = performance.now();
      if (!firstStart) firstStart = Date.now();
      const attempt = (): ReturnType<typeof openSession> => openSession({ ...c, timeoutMs: Math.min(c.timeoutMs, Math.max(1000, deadline - Date.now())) });
      let r = await attempt();
      for (let n = 0; !r.ws && n < (c.retries ?? 0); n++) {
        const pause = retryPause(r.retryAfterS !== undefined ? r.retryAfterS * 1000 : (c.retryDelayMs ?? 0));
        if (Date.now() + pause >= deadline) break;
        retried++;
        bump(retryReasons, r.reason!);
        await sleep(pause);
        r = await attempt();
      }
      lastDone = Date.now();
      if (r.ws) {
        latencies.push(performance.now() - t0);
        ok++;
        open.push(r.ws);
        r.ws.on('close', () => dropped++);
        r.ws.on('error', () => undefined);
      } else {
        failed++;
        bump(reasons, r.reason!);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, c.count) }, worker));
  clearInterval(progress);
  const result: SessionsResult = { type: 'sessions', ok, failed, notAttempted: c.count - started, reasons, retried, retryReasons, latenciesMs: latencies, firstStart, lastDone, cpuMs: cpuNow() - cpu0 };
  send(result);
}

/** The binary message layout of PROTOCOL §2: 4-byte header length, JSON header, payload. */
function dataMessage(header: string, payload: Buffer): Buffer {
  const h = Buffer.from(header);
  const out = Buffer.allocUnsafe(4 + h.length + payload.length);
  out.writeUInt32BE(h.length, 0);
  h.copy(out, 4);
  payload.copy(out, 4 + h.length);
  return out;
}

let go: (() => void) | undefined;

async function runWork(c: WorkCommand): Promise<void> {
  // Incompressible bytes, as real trajectories and states are (bench/lib/fixtures.ts RECIPE).
  const payload = noise(1, c.frameBytes);
  const ckpt = noise(2, c.checkpointBytes);
  const deadline = Date.now() + c.deadlineMs;
  const errors: Record<string, number> = {};
  const sockets: WebSocket[] = [];
  for (let i = 0; i < c.cores; i++) {
    const r = await openSession({ ...c, protocol: 'coordinator.core.v1', expect: 'assignment' });
    if (!r.ws) {
      bump(errors, `setup: ${r.reason}`);
      continue;
    }
    r.ws.on('error', () => undefined);
    sockets.push(r.ws);
    open.push(r.ws);
  }
  send({ type: 'ready', cores: sockets.length, errors });
  await new Promise<void>((resolve) => {
    go = resolve;
  });
  const cpu0 = cpuNow();
  const t0 = performance.now();
  let frameAcks = 0;
  let lastAck = t0;
  let commits = 0;
  const perCheckpoint = c.framesPerCheckpoint > 0 ? c.framesPerCheckpoint : Number.MAX_SAFE_INTEGER;
  const commitLatencies: number[] = [];
  let timedOut = false;

  const core = (ws: WebSocket): Promise<void> =>
    new Promise((resolve) => {
      let seq = 0;
      let inflight = 0;
      let framesSent = 0;
      let sinceCheckpoint = 0;
      let finished = false;
      const ckptSent = new Map<number, number>();
      const finish = (): void => {
        if (finished) return;
        finished = true;
        ws.off('message', onMessage);
        resolve();
      };
      const allSent = (): boolean => framesSent >= c.framesPerCore && sinceCheckpoint === 0;
      const pump = (): void => {
        while (inflight < c.window && !allSent()) {
          if (Date.now() > deadline) {
            timedOut = true;
            break;
          }
          seq++;
          inflight++;
          if (sinceCheckpoint >= perCheckpoint || (framesSent >= c.framesPerCore && sinceCheckpoint > 0)) {
            ckptSent.set(seq, performance.now());
            ws.send(dataMessage(`{"type":"checkpoint","id":${seq},"seq":${seq},"files":[{"name":"state.xml","size":${ckpt.length}}]}`, ckpt));
            sinceCheckpoint = 0;
          } else {
            ws.send(dataMessage(`{"type":"frame","id":${seq},"seq":${seq},"frames":1,"files":[{"name":"frames.xtc","size":${payload.length}}]}`, payload));
            framesSent++;
            sinceCheckpoint++;
          }
        }
        if (inflight === 0 && (allSent() || timedOut)) finish();
      };
      const onMessage = (data: Buffer): void => {
        let m: { type?: string; id?: number; code?: string };
        try {
          m = JSON.parse(data.toString()) as typeof m;
        } catch {
          bump(errors, 'bad reply');
          return;
        }
        if (m.type === 'ack') {
          inflight--;
          frameAcks++;
          lastAck = performance.now();
        } else if (m.type === 'committed') {
          inflight--;
          commits++;
          const t = ckptSent.get(m.id!);
          if (t !== undefined) {
            commitLatencies.push(performance.now() - t);
            ckptSent.delete(m.id!);
          }
        } else if (m.type === 'error') {
          inflight--;
          bump(errors, `error ${m.code}`);
          // A failed message breaks the seq chain: this core stops here.
          framesSent = c.framesPerCore;
          sinceCheckpoint = 0;
        } else {
          bump(errors, `unexpected ${m.type}`);
          if (m.type === 'stop') {
            finish();
            return;
          }
        }
        pump();
      };
      ws.on('message', onMessage);
      ws.once('close', (code: number, reason: Buffer) => {
        bump(errors, `closed ${code} ${reason.toString().slice(0, 60)}`.trim());
        finish();
      });
      pump();
    });

  const all = Promise.all(sockets.map(core));
  const guard = new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - Date.now()) + 30_000).unref());
  await Promise.race([all, guard]);
  const elapsedMs = performance.now() - t0;
  const result: WorkResult = {
    type: 'work',
    cores: sockets.length,
    frameAcks,
    commits,
    bytesAcked: frameAcks * c.frameBytes,
    commitLatenciesMs: commitLatencies,
    errors,
    elapsedMs,
    framesElapsedMs: lastAck - t0,
    timedOut,
    cpuMs: cpuNow() - cpu0,
  };
  send(result);
}

async function runHttp(c: HttpCommand): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const autocannon = require('autocannon') as (opts: Record<string, unknown>) => Promise<Record<string, unknown>>;
  const cpu0 = cpuNow();
  const r = await autocannon({
    url: c.url,
    connections: c.connections,
    pipelining: 1,
    duration: c.durationS,
    headers: c.headers ?? {},
    servername: 'localhost',
    // autocannon 8 always sets rejectUnauthorized: false on its TLS sockets, whatever is
    // passed here: the certificate is not verified (loopback only). The CA is passed anyway.
    tlsOptions: { ca: c.ca },
  });
  const lat = r.latency as Record<string, number>;
  const req = r.requests as Record<string, number>;
  send({
    type: 'http',
    requestsPerSec: req.average,
    total: req.total,
    p50: lat.p50,
    p99: lat.p99,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    durationS: r.duration,
    cpuMs: cpuNow() - cpu0,
  });
}

process.on('message', (m: Command) => {
  const fail = (err: unknown): void => {
    send({ type: 'fatal', message: (err as Error)?.stack ?? String(err) });
  };
  switch (m.cmd) {
    case 'sessions':
      runSessions(m).catch(fail);
      break;
    case 'work':
      runWork(m).catch(fail);
      break;
    case 'http':
      runHttp(m).catch(fail);
      break;
    case 'go':
      go?.();
      break;
    case 'stats':
      send({ type: 'stats', open: open.filter((w) => w.readyState === WebSocket.OPEN).length, dropped });
      break;
    case 'close': {
      for (const ws of open) ws.terminate();
      send({ type: 'closed', dropped });
      setTimeout(() => process.exit(0), 200);
      break;
    }
  }
});

// The parent's death must not leave sockets (and this process) behind.
process.on('disconnect', () => process.exit(0));
send({ type: 'hello', pid: process.pid });
