/**
 * Small process and network helpers shared by the provisioning modules (certificates,
 * Redis, FerretDB, mongod). They exist so tests and the `dev` command can bring up real
 * servers with nothing but system binaries, and so every child we start dies with us.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Progress callback: receives one human-readable line at a time. */
export type LogFn = (line: string) => void;

/** Options of {@link run}. */
export interface RunOptions {
  /** Working directory of the command. */
  cwd?: string;
  /** Full environment of the command (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
  /** Kill the command (SIGKILL) and reject after this many milliseconds. */
  timeoutMs?: number;
}

/** Output of a command that exited with status 0. */
export interface RunResult {
  stdout: string;
  stderr: string;
}

/** How much of a failing command's output goes into the error message. */
const TAIL_CHARS = 4000;

/** Keeps the last `max` characters: the end of a log is where the reason for a failure is. */
export function tail(text: string, max = TAIL_CHARS): string {
  const trimmed = text.trimEnd();
  return trimmed.length <= max ? trimmed : `…${trimmed.slice(trimmed.length - max)}`;
}

/** Quotes an argument only when needed, so error messages can be pasted into a shell. */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Renders a command line for messages. */
export function formatCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map(shellQuote).join(' ');
}

/**
 * Runs a command to completion and collects its output.
 *
 * @returns stdout and stderr when the command exits with status 0.
 * @throws Error naming the command, its exit status or signal, and the tail of its
 *   stderr (or stdout when stderr is empty), so a failure is diagnosable from the message.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs)
        : undefined;
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    // EPIPE when the command does not read its stdin is harmless; the exit status tells.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input);
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`${formatCommand(cmd, args)}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const why = timedOut
        ? `timed out after ${opts.timeoutMs} ms`
        : signal
          ? `killed by ${signal}`
          : `exited with status ${code}`;
      const detail = tail(stderr) || tail(stdout);
      reject(new Error(`${formatCommand(cmd, args)} ${why}${detail ? `:\n${detail}` : ''}`));
    });
  });
}

/** True when `file` is a regular file this process may execute. */
function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Finds an executable the way a shell would.
 *
 * @param name a bare command name (searched in PATH) or a path containing `/`.
 * @returns the absolute path, or null when it is not found or not executable.
 */
export function which(name: string): string | null {
  if (name.includes('/')) return isExecutable(name) ? path.resolve(name) : null;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.resolve(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

/** True when this process runs as root (and may therefore install system packages). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Asks the kernel for a currently unused TCP port on `host`.
 *
 * The port is released before returning, so another process could take it in between;
 * the window is small and callers start their server right away.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error(`no port allocated on ${host}`))));
    });
  });
}

/** One TCP connection attempt; resolves true when it connects. */
function tryConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean): void => {
      sock.removeAllListeners();
      sock.on('error', () => undefined);
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Options of {@link waitForPort}. */
export interface WaitOptions {
  /** Aborting stops the wait early (rejecting), e.g. when the server process has died. */
  signal?: AbortSignal;
  /** Delay between attempts (default 100 ms). */
  intervalMs?: number;
}

/**
 * Waits until something accepts TCP connections on host:port.
 *
 * @throws Error when `timeoutMs` passes first, or when `opts.signal` aborts.
 */
export async function waitForPort(
  host: string,
  port: number,
  timeoutMs: number,
  opts: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const interval = opts.intervalMs ?? 100;
  for (;;) {
    if (opts.signal?.aborted) throw abortError(opts.signal, `waiting for ${host}:${port}`);
    if (await tryConnect(host, port, Math.max(100, Math.min(2000, deadline - Date.now())))) return;
    if (Date.now() >= deadline) throw new Error(`nothing accepted connections on ${host}:${port} within ${timeoutMs} ms`);
    await delay(interval);
  }
}

/** Promise-based sleep. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Turns an AbortSignal's reason into an Error with context. */
function abortError(signal: AbortSignal, what: string): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`${what}: aborted${reason ? ` (${String(reason)})` : ''}`);
}

/** Formats host:port, bracketing IPv6 literals as URLs require. */
export function hostPort(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
}

// ---------------------------------------------------------------------------------------
// Long-running children (servers)

/**
 * A server process started by this module family. `stop()` is idempotent and safe to
 * call after the process has already died.
 */
export interface RunningService {
  /** Connection URL (e.g. `redis://127.0.0.1:6379`). */
  url: string;
  /** Address the server listens on. */
  host: string;
  /** TCP port the server listens on. */
  port: number;
  /** Process id of the child. */
  pid: number;
  /** SIGTERM, wait for exit; SIGKILL after 5 s. Resolves once the process is gone. */
  stop(): Promise<void>;
}

/** Children that must not outlive this process. */
const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Kills (SIGKILL) every server child still running. Synchronous so it can run inside a
 * process 'exit' handler or a signal handler, where nothing asynchronous completes.
 */
export function killAllChildrenSync(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  // One listener for all children, rather than one each, avoids MaxListeners warnings.
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', killAllChildrenSync);
  }
}

/** Options of {@link spawnService}. */
export interface SpawnServiceOptions {
  /** Short name used in messages, e.g. "redis-server". */
  name: string;
  cmd: string;
  args: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  host: string;
  port: number;
  url: string;
  /** Resolves once the server is ready to serve; gets a signal that aborts if the child dies. */
  ready: (signal: AbortSignal) => Promise<void>;
  /** Overall start-up timeout (default 30 s). */
  startTimeoutMs?: number;
  log?: LogFn;
}

/** Grace period between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 5000;

/**
 * Starts a server as a child of this process, waits until `ready` resolves and returns a
 * handle. The child is not detached (it stays in our process group, so a terminal's
 * Ctrl-C reaches it) and is SIGKILLed on this process's 'exit'.
 *
 * @throws Error with the tail of the child's output when it exits or fails to become ready.
 */
export async function spawnService(opts: SpawnServiceOptions): Promise<RunningService> {
  const spawnOpts: SpawnOptions = {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    // stdin ignored so the server never waits on a terminal; output kept for diagnostics.
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: false,
  };
  const child = spawn(opts.cmd, opts.args, spawnOpts);
  let output = '';
  const keep = (b: Buffer): void => {
    output = (output + b.toString('utf8')).slice(-TAIL_CHARS * 2);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const died = new AbortController();
  let spawnError: Error | undefined;
  child.once('error', (e) => {
    spawnError = e;
    died.abort(new Error(`${opts.name} could not be started (${formatCommand(opts.cmd, opts.args)}): ${e.message}`));
  });
  child.once('exit', (code, signal) => {
    if (!died.signal.aborted) {
      died.abort(
        new Error(
          `${opts.name} exited during start-up (${signal ?? `status ${code}`}); command: ` +
            `${formatCommand(opts.cmd, opts.args)}${output ? `\n${tail(output)}` : ''}`,
        ),
      );
    }
  });
  if (child.pid !== undefined) track(child);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null || spawnError) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };

  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  const guard = AbortSignal.any([died.signal, AbortSignal.timeout(timeoutMs)]);
  let onAbort: (() => void) | undefined;
  const failed = new Promise<never>((_, reject) => {
    onAbort = (): void => {
      reject(
        died.signal.aborted
          ? (died.signal.reason as Error)
          : new Error(
              `${opts.name} was not ready on ${hostPort(opts.host, opts.port)} within ${timeoutMs} ms` +
                `${output ? `; its output:\n${tail(output)}` : ''}`,
            ),
      );
    };
    if (guard.aborted) onAbort();
    else guard.addEventListener('abort', onAbort, { once: true });
  });
  // The loser of the race below must never surface as an unhandled rejection.
  failed.catch(() => undefined);
  const readied = opts.ready(guard);
  readied.catch(() => undefined);
  try {
    await Promise.race([readied, failed]);
  } catch (e) {
    await stop();
    throw e;
  } finally {
    if (onAbort) guard.removeEventListener('abort', onAbort);
  }
  opts.log?.(`${opts.name} ready on ${hostPort(opts.host, opts.port)} (pid ${child.pid})`);
  return { url: opts.url, host: opts.host, port: opts.port, pid: child.pid!, stop };
}

/**
 * Installs a Debian package with apt-get, trying each alternative name in turn (packages get
 * renamed between releases), and running `apt-get update` once if nothing installs (a fresh
 * machine has no package lists). The caller checks that it runs as root with apt-get.
 */
export async function aptInstall(alternatives: string[], log?: LogFn): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const attempt = async (): Promise<void> => {
    let last: unknown;
    for (const pkg of alternatives) {
      try {
        await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env, timeoutMs: 10 * 60_000 });
        return;
      } catch (err) {
        last = err;
      }
    }
    throw last;
  };
  log?.(`installing ${alternatives[0]} with apt-get`);
  try {
    await attempt();
  } catch {
    log?.('apt-get install failed; running apt-get update and retrying');
    await run('apt-get', ['update'], { env, timeoutMs: 10 * 60_000 });
    await attempt();
  }
}

/** A directory of this project's per-user cache: `${XDG_CACHE_HOME:-~/.cache}/stream-coordinator/<parts>`. */
export function cacheDir(...parts: string[]): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'stream-coordinator', ...parts);
}

/**
 * Environment of the go tool for a static build of pinned sources: the user's own proxy and
 * caches, `-mod=mod` (go records go.sum lines itself), no VCS stamping, no workspace, no cgo.
 */
export function staticGoEnv(): NodeJS.ProcessEnv {
  const flags = (process.env.GOFLAGS ?? '').split(/\s+/).filter((f) => f && !f.startsWith('-mod=') && !f.startsWith('-buildvcs'));
  flags.push('-mod=mod', '-buildvcs=false');
  return { ...process.env, GOFLAGS: flags.join(' '), GOWORK: 'off', CGO_ENABLED: '0' };
}
