/**
 * A local Redis for tests and the `dev` stack: Debian's `redis-server` run as a child
 * process with everything on the command line (no config file to drift).
 */
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { aptInstall, delay, freePort, hostPort, isRoot, spawnService, which, type LogFn, type RunningService } from './exec';

export type { RunningService } from './exec';

/** Options of {@link ensureRedisServer}. */
export interface EnsureRedisOptions {
  log?: LogFn;
}

/**
 * Returns the path of `redis-server`. When it is missing and this process runs as root,
 * installs Debian's `redis-server` package with apt-get (running `apt-get update` first
 * if the package lists are missing or stale).
 *
 * @throws Error saying what to install when it is missing and cannot be installed here.
 */
export async function ensureRedisServer(opts: EnsureRedisOptions = {}): Promise<string> {
  const found = which('redis-server');
  if (found) return found;
  if (!isRoot() || !which('apt-get')) {
    throw new Error(
      'redis-server not found on PATH. Install Redis ≥ 6 (Debian/Ubuntu: sudo apt-get install redis-server; ' +
        'macOS: brew install redis) or point redis.url at an existing server.',
    );
  }
  await aptInstall(['redis-server'], opts.log);
  const installed = which('redis-server') ?? (await fileIfExecutable('/usr/bin/redis-server'));
  if (!installed) throw new Error('apt-get installed redis-server but it is still not on PATH');
  return installed;
}

async function fileIfExecutable(file: string): Promise<string | null> {
  try {
    await fsp.access(file, fsp.constants.X_OK);
    return file;
  } catch {
    return null;
  }
}

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** Working and data directory (created, mode 0700). */
  dir: string;
  /** TCP port (default: a free one). */
  port?: number;
  /** Bind address (default 127.0.0.1). */
  host?: string;
  /** Keep data across restarts with an append-only file in `dir` (dev); default false (tests). */
  persist?: boolean;
  /** Start-up timeout (default 30 s; loading a large append-only file can take a while). */
  startTimeoutMs?: number;
  /** More `--option value` arguments (cluster mode, replication). */
  extraArgs?: readonly string[];
  log?: LogFn;
}

/**
 * One PING over a raw socket. Redis answers `-LOADING` while it replays its data, so only
 * `+PONG` counts as ready.
 */
export function pingOnce(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    const done = (ok: boolean): void => {
      sock.removeAllListeners();
      sock.on('error', () => undefined);
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (b: Buffer) => {
      buf += b.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

/** Polls PING until Redis answers PONG or `signal` aborts. */
async function waitForPong(host: string, port: number, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    if (await pingOnce(host, port, 1000)) return;
    await delay(50);
  }
}

/**
 * Starts `redis-server` as a child process bound to `host` only and waits until it
 * answers PING.
 *
 * @returns a handle whose `url` is `redis://host:port`; `stop()` shuts it down.
 */
export async function startRedis(opts: StartRedisOptions): Promise<RunningService> {
  const bin = await ensureRedisServer({ log: opts.log });
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const dir = path.resolve(opts.dir);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const args = [
    '--port', String(port),
    '--bind', host,
    '--dir', dir,
    // Foreground, logging to stdout (kept for error messages), no pid file outside our dir.
    '--daemonize', 'no',
    '--logfile', '',
    '--loglevel', 'warning',
    '--pidfile', path.join(dir, 'redis.pid'),
    // Unix socket off: the port is the interface, and socket paths have length limits in temp dirs.
    '--unixsocket', '',
    ...(opts.persist
      ? ['--appendonly', 'yes']
      : ['--save', '', '--appendonly', 'no']),
    ...(opts.extraArgs ?? []),
  ];
  return spawnService({
    name: 'redis-server',
    cmd: bin,
    args,
    cwd: dir,
    host,
    port,
    url: `redis://${hostPort(host, port)}`,
    ready: (signal) => waitForPong(host, port, signal),
    startTimeoutMs: opts.startTimeoutMs,
    log: opts.log,
  });
}
