/**
 * Parent side of the load generators: forks bench/loadgen.ts (or starts the Go one of
 * bench/loadgen-go, which speaks the same commands for `sessions`) and talks to them over IPC.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { SessionsCommand, SessionsResult } from '../loadgen';
import { ensureGoLoadGen } from './loadgen-go';
import { rssKiB } from './proc';

/** Which load generator: bench/loadgen.ts, or bench/loadgen-go (sessions only, far less memory per session). */
export type LoadGenKind = 'node' | 'go';

const SCRIPT = path.resolve(__dirname, '..', 'loadgen.js');

/** One forked load generator. */
export class LoadGen {
  private waiters: Array<{ types: string[]; resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }> = [];
  private exited = false;
  /** Peak VmRSS seen by {@link sampleRss}, KiB. */
  peakRssKiB = 0;
  /** Latest progress message. */
  progress: Record<string, unknown> = {};

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: Record<string, unknown>) => {
      if (m.type === 'progress') {
        this.progress = m;
        return;
      }
      if (m.type === 'fatal') {
        for (const w of this.waiters.splice(0)) w.reject(new Error(`load generator failed: ${String(m.message)}`));
        return;
      }
      const i = this.waiters.findIndex((w) => w.types.includes(String(m.type)));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error(`load generator exited (${signal ?? code})`));
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts a load generator and waits for its hello. */
  static async start(kind: LoadGenKind = 'node'): Promise<LoadGen> {
    const child =
      kind === 'go'
        ? // A non-Node child reads and writes the channel as JSON lines (NODE_CHANNEL_FD).
          spawn(await ensureGoLoadGen(), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' })
        : fork(SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
    const lg = new LoadGen(child);
    await lg.next(['hello'], 30_000);
    return lg;
  }

  /** Waits for the next message of one of `types`. */
  next<T = Record<string, unknown>>(types: string[], timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.exited) return reject(new Error('load generator is not running'));
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`load generator ${this.pid}: no ${types.join('/')} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (m: Record<string, unknown>): void => {
        clearTimeout(timer);
        resolve(m as T);
      };
      this.waiters.push({ types, resolve: done, reject: (e) => (clearTimeout(timer), reject(e)) });
    });
  }

  /** Sends a command. */
  send(m: Record<string, unknown>): void {
    if (!this.exited) this.child.send(m);
  }

  /** Records the current VmRSS into the peak. */
  sampleRss(): number {
    const r = rssKiB(this.pid);
    if (r > this.peakRssKiB) this.peakRssKiB = r;
    return r;
  }

  /** Closes its sockets and waits for it to exit (killing it after 10 s). */
  async close(): Promise<{ dropped: number }> {
    if (this.exited) return { dropped: 0 };
    const exit = new Promise<void>((r) => this.child.once('exit', () => r()));
    let dropped = 0;
    try {
      this.send({ cmd: 'close' });
      dropped = Number((await this.next(['closed'], 10_000)).dropped ?? 0);
    } catch {
      // killed below
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exit;
    clearTimeout(timer);
    return { dropped };
  }

  /** Kills it at once. */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

/** Starts `n` load generators of one kind. */
export async function startLoadGens(n: number, kind: LoadGenKind = 'node'): Promise<LoadGen[]> {
  const out: LoadGen[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(await LoadGen.start(kind));
  } catch (err) {
    for (const l of out) l.kill();
    throw err;
  }
  return out;
}

/** Closes all load generators (their sockets close as they exit). */
export async function closeLoadGens(list: LoadGen[]): Promise<number> {
  const r = await Promise.all(list.map((l) => l.close()));
  return r.reduce((n, x) => n + x.dropped, 0);
}

let sources = 0;

/**
 * A source address never handed out before in this run: 127.0.0.2, 127.0.0.3, … A load
 * generator numbers its source ports itself from 10000 up, so every one needs an address of
 * its own (and a fresh one per run: old connections linger in TIME_WAIT).
 */
export function sourceAddress(_loadgen: number): string {
  const n = 2 + sources++;
  return `127.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** Pause before a set-up is tried again, ms; the load generators add up to as much again. */
const RETRY_DELAY_MS = 1000;

/** The settings of one `sessions` phase (a section of the bench settings). */
export interface SessionsPhase {
  /** Sessions over all load generators. */
  count: number;
  /** Set-ups in flight per load generator. */
  concurrency: number;
  /** Per-session set-up timeout, ms. */
  timeoutMs: number;
  /** Deadline of the whole phase, s. */
  deadlineS: number;
  /** Times a failed set-up is tried again, as a real core reconnects (default 0: never). */
  retries?: number;
}

/** Where and how load generator `i` opens its sessions. */
export type SessionsTarget = Pick<SessionsCommand, 'url' | 'expect'> & Partial<Pick<SessionsCommand, 'key' | 'protocol' | 'centrifugo'>>;

/**
 * Runs one `sessions` phase: each load generator opens its share of `phase.count` (an equal
 * share rounded up, the last one the rest) from a source address of its own, against
 * `target(i)`, trusting `ca`. Resolves with every generator's result, or rejects when one
 * has not answered within the phase deadline plus the set-up timeout plus 30 s.
 */
export function runSessions(gens: LoadGen[], ca: string, phase: SessionsPhase, target: (i: number) => SessionsTarget): Promise<SessionsResult[]> {
  const per = Math.ceil(phase.count / gens.length);
  return Promise.all(
    gens.map((g, i) => {
      g.send({
        cmd: 'sessions',
        ...target(i),
        ca,
        localAddress: sourceAddress(i),
        count: Math.min(per, phase.count - i * per),
        concurrency: phase.concurrency,
        timeoutMs: phase.timeoutMs,
        deadlineMs: phase.deadlineS * 1000,
        retries: phase.retries ?? 0,
        retryDelayMs: RETRY_DELAY_MS,
      } satisfies SessionsCommand);
      return g.next<SessionsResult>(['sessions'], phase.deadlineS * 1000 + phase.timeoutMs + 30_000);
    }),
  );
}

/** What the load generators of one `sessions` phase did, together. */
export interface SessionsTotals {
  established: number;
  failed: number;
  /** Sessions not started before the deadline. */
  notAttempted: number;
  /** Failures by reason (after the last retry). */
  reasons: Record<string, number>;
  /** Set-ups tried again, and why the attempt before failed. */
  retried: number;
  retryReasons: Record<string, number>;
  /** From the first set-up started to the last one done, s. */
  spanS: number;
}

/** Adds up the results of {@link runSessions}. */
export function sessionsTotals(results: readonly SessionsResult[]): SessionsTotals {
  const sum = (pick: (r: SessionsResult) => Record<string, number> | undefined): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(pick(r) ?? {})) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  return {
    established: results.reduce((n, r) => n + r.ok, 0),
    failed: results.reduce((n, r) => n + r.failed, 0),
    notAttempted: results.reduce((n, r) => n + r.notAttempted, 0),
    reasons: sum((r) => r.reasons),
    retried: results.reduce((n, r) => n + (r.retried ?? 0), 0),
    retryReasons: sum((r) => r.retryReasons),
    spanS: (Math.max(...results.map((r) => r.lastDone)) - Math.min(...results.filter((r) => r.firstStart).map((r) => r.firstStart))) / 1000,
  };
}
