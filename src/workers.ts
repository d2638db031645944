/**
 * Process model of `serve`: one process, or a primary that forks `server.workers` workers
 * which all bind the same port (uWS uses SO_REUSEPORT, so the kernel spreads connections).
 * The primary restarts workers that die, gathers their metrics, and on SIGTERM/SIGINT
 * stops the whole group gracefully within `server.shutdownTimeoutS`.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { workerCount, type Settings } from './config/settings';
import type { Logger } from './telemetry/log';
import { serveClusterMetrics } from './telemetry/metrics';
import { startServer, type RunningServer } from './server';
import { preloadEnv, resolveMallocLibrary, type MallocChoice } from './malloc-library';
import { openSeedCacheDir, removeSeedCacheDir } from './core/seed-cache';

const SHUTDOWN = 'sc:shutdown';
/** How the primary tells its workers the seed directory they share (not a setting: made per group). */
const SEED_DIR_ENV = 'SC_WORKER_SEED_DIR';

/** Runs `serve` in this process: as a worker, as the primary of a group, or alone. Resolves when the server is up. */
export async function serve(settings: Settings, log: Logger): Promise<void> {
  if (cluster.isWorker) return runWorker(settings, log, Number(process.env.SC_WORKER_INDEX ?? 0));
  const n = workerCount(settings, os.availableParallelism());
  if (n === 1) return runWorker(settings, log, 0);
  runPrimary(settings, log, n);
}

async function runWorker(settings: Settings, log: Logger, index: number): Promise<void> {
  const wlog = cluster.isWorker ? log.child({ worker: index }) : log;
  const seedCacheDir = cluster.isWorker ? process.env[SEED_DIR_ENV] || undefined : undefined;
  const server: RunningServer = await startServer(settings, wlog, { worker: index, ...(seedCacheDir ? { seedCacheDir } : {}) });
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    wlog.info({ why }, 'shutting down');
    // The hard stop: whatever is still running after the timeout is abandoned.
    setTimeout(() => {
      wlog.warn('shutdown timed out; exiting');
      process.exit(0);
    }, settings.server.shutdownTimeoutS * 1000).unref();
    server.close().then(
      () => process.exit(0),
      (err: Error) => {
        wlog.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  if (cluster.isWorker) {
    process.on('message', (m: unknown) => {
      if ((m as { type?: string })?.type === SHUTDOWN) stop('primary asked');
    });
    // A worker whose primary is gone has nobody to restart or stop it: stop too.
    process.on('disconnect', () => stop('primary gone'));
    process.send?.({ type: 'sc:listening', port: server.port });
  }
}

/**
 * The malloc settings a worker starts with (read once, at process start): the library
 * server.mallocLibrary names, preloaded (src/malloc-library.ts), or else glibc with a fixed mmap
 * threshold, so the hundreds of KiB of each assignment are unmapped when freed instead of
 * fragmenting the heap (server.mallocMmapThresholdBytes). An operator's own values win.
 * @throws Error when server.mallocLibrary names a file that is not there
 */
export function mallocEnv(settings: Settings, env: NodeJS.ProcessEnv = process.env, exists?: (file: string) => boolean): Record<string, string> {
  return mallocEnvFor(resolveMallocLibrary(settings.server.mallocLibrary, exists), settings, env);
}

/** {@link mallocEnv} once server.mallocLibrary is resolved to `choice`. */
function mallocEnvFor(choice: MallocChoice, settings: Settings, env: NodeJS.ProcessEnv): Record<string, string> {
  const preload = preloadEnv(choice, env);
  if (preload.LD_PRELOAD !== undefined) return preload;
  const bytes = settings.server.mallocMmapThresholdBytes;
  if (bytes === 0 || env.MALLOC_MMAP_THRESHOLD_ !== undefined) return {};
  return { MALLOC_MMAP_THRESHOLD_: String(bytes) };
}

/** The malloc a primary starts its workers on: see {@link workersMalloc}. */
export interface WorkersMalloc {
  /** Added to each worker's environment ({@link mallocEnv}). */
  env: Record<string, string>;
  /** What the workers preload (the key's library, or the operator's own LD_PRELOAD), or "glibc"; for the log. */
  library: string;
  /** Set when server.mallocLibrary names a file that is not there, so the workers start on glibc instead. */
  warning?: string;
}

/**
 * {@link mallocEnv} for the primary. A missing server.mallocLibrary file fails preflight, which
 * refuses to start in "enforce" mode; in "warn" mode the group starts anyway, so the workers
 * start on glibc and the primary says why, rather than the primary failing after preflight
 * let it through.
 */
export function workersMalloc(settings: Settings, env: NodeJS.ProcessEnv = process.env, exists?: (file: string) => boolean): WorkersMalloc {
  let choice: MallocChoice;
  let warning: string | undefined;
  try {
    choice = resolveMallocLibrary(settings.server.mallocLibrary, exists);
  } catch (err) {
    warning = `${(err as Error).message}; the workers start on glibc malloc`;
    choice = { kind: 'glibc', why: warning };
  }
  const malloc = mallocEnvFor(choice, settings, env);
  return { env: malloc, library: malloc.LD_PRELOAD ?? env.LD_PRELOAD ?? 'glibc', ...(warning === undefined ? {} : { warning }) };
}

/**
 * The V8 flags a worker starts with beyond the primary's own: the young generation's size
 * (server.maxSemiSpaceMiB), unless node was already given one. An operator's own value wins.
 */
export function workerExecArgv(settings: Settings, execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string[] {
  const mib = settings.server.maxSemiSpaceMiB;
  const given = [...execArgv, env.NODE_OPTIONS ?? ''].some((a) => /--max[-_]semi[-_]space[-_]size/.test(a));
  return mib === 0 || given ? [] : [`--max-semi-space-size=${mib}`];
}

function runPrimary(settings: Settings, log: Logger, n: number): void {
  serveClusterMetrics();
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...workerExecArgv(settings)] });
  let stopping = false;
  const restarts: number[] = [];
  // Read once: every worker, and every restarted one, starts on the same malloc.
  const malloc = workersMalloc(settings);
  if (malloc.warning) log.warn(malloc.warning);
  // One directory for the whole group, so a machine holds each seed content once.
  const seeds = openSeedCacheDir(settings.core);
  const exit = (code: number): never => {
    if (seeds) removeSeedCacheDir(seeds);
    process.exit(code);
  };
  const fork = (index: number): Worker => {
    const w = cluster.fork({ SC_WORKER_INDEX: String(index), ...(seeds ? { [SEED_DIR_ENV]: seeds } : {}), ...malloc.env });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      const now = Date.now();
      restarts.push(now);
      while (restarts.length > 0 && restarts[0]! < now - 60_000) restarts.shift();
      if (restarts.length > n * 5) {
        log.fatal({ worker: index, code, signal }, 'workers keep dying; stopping the group');
        shutdown('crash loop', 1);
        return;
      }
      log.error({ worker: index, code, signal }, 'worker died; restarting it');
      setTimeout(() => !stopping && fork(index), 500);
    });
    return w;
  };
  log.info({ workers: n, malloc: malloc.library }, 'starting workers');
  let listening = 0;
  cluster.on('message', (_w, m: { type?: string; port?: number }) => {
    if (m?.type === 'sc:listening' && ++listening === n) log.info({ workers: n, port: m.port }, 'all workers listening');
  });
  for (let i = 0; i < n; i++) fork(i);

  const shutdown = (why: string, exitCode = 0): void => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'stopping workers');
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
    const timer = setTimeout(() => {
      log.warn('workers did not stop in time; killing them');
      for (const w of alive) if (!w.isDead()) w.process.kill('SIGKILL');
      exit(exitCode);
    }, (settings.server.shutdownTimeoutS + 2) * 1000);
    let left = alive.length;
    if (left === 0) exit(exitCode);
    for (const w of alive) {
      w.once('exit', () => {
        if (--left === 0) {
          clearTimeout(timer);
          log.info('all workers stopped');
          exit(exitCode);
        }
      });
      if (w.isConnected()) w.send({ type: SHUTDOWN });
      else w.process.kill('SIGTERM');
    }
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
