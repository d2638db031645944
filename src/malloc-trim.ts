/**
 * Hands the free pages inside glibc's malloc heaps back to the system, every
 * `server.mallocTrimIntervalS`. free() returns memory only from the top of a heap; what a
 * set-up allocates and frees in between (a TLS handshake's state, the upgrade request, copies
 * of the assignment) stays resident, pinned by the small allocations of the sessions held
 * around it. malloc_trim(0) walks the free chunks of every arena and releases their whole
 * pages. The call is one glibc function, in a Node-API module of our own
 * (vendor/malloc-trim: source, build and checks in its BUILD.md).
 */
import path from 'node:path';
import type { Logger } from './telemetry/log';
import type { Metrics } from './telemetry/metrics';
import { preloadedMalloc } from './malloc-library';

/** The vendored module's binary for this platform, relative to the package root. */
const BINARY = path.join('vendor', 'malloc-trim', `malloc_trim_${process.platform}_${process.arch}.node`);

/** malloc_trim(0): true when memory was returned. */
export type TrimFunction = () => boolean;

/**
 * Loads the module, or says why it cannot work here (not linux x64, or not glibc: musl has
 * no malloc_trim).
 */
export function loadMallocTrim(root = path.resolve(__dirname, '..', '..')): { trim: TrimFunction } | { reason: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64') return { reason: `no build for ${process.platform} ${process.arch}` };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(root, BINARY)) as { trim?: unknown };
    if (typeof mod.trim !== 'function') return { reason: `${BINARY} exports no trim()` };
    return { trim: mod.trim as TrimFunction };
  } catch (err) {
    return { reason: (err as Error).message };
  }
}

/** A running trim timer. */
export interface MallocTrimmer {
  stop(): void;
}

/**
 * Starts trimming every `intervalS` seconds (0: never, and undefined is returned). The timer
 * does not keep the process alive. A process running on a preloaded malloc (jemalloc: see
 * src/malloc-library.ts) does not trim: glibc's heaps are then nearly empty, and the library
 * returns its own pages.
 */
export function startMallocTrim(intervalS: number, log: Logger, metrics: Metrics, preloaded = preloadedMalloc()): MallocTrimmer | undefined {
  if (preloaded !== undefined) {
    log.info({ malloc: preloaded }, 'running on a preloaded malloc; malloc_trim is not needed (server.mallocLibrary)');
    return undefined;
  }
  if (intervalS === 0) return undefined;
  const loaded = loadMallocTrim();
  if ('reason' in loaded) {
    log.warn({ reason: loaded.reason }, 'malloc_trim is not available; memory freed inside the malloc heap stays resident (server.mallocTrimIntervalS)');
    return undefined;
  }
  const timer = setInterval(() => {
    const before = process.memoryUsage.rss();
    const stopClock = metrics.mallocTrimSeconds.startTimer();
    loaded.trim();
    stopClock();
    metrics.mallocTrimReleased.inc(Math.max(0, before - process.memoryUsage.rss()));
  }, intervalS * 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
