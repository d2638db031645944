/**
 * Which malloc the server's processes run on (server.mallocLibrary).
 *
 * A set-up allocates and frees hundreds of KiB in native memory (the TLS handshake, the upgrade,
 * uWS's copy of a 270 KiB assignment) between the small allocations that every held session
 * keeps (BoringSSL's and uWS's per-socket state). glibc's malloc serves both from the same
 * heap, so the freed pages stay resident, pinned by the small blocks around them, until
 * malloc_trim finds them (src/malloc-trim.ts); jemalloc keeps each size class in slabs of its
 * own and reuses its large extents. Measured here: about a fifth less server CPU per set-up, and
 * about the same memory per held session (docs/performance.md, "Trade-offs of the defaults").
 *
 * A process picks its allocator when the dynamic linker starts it, so the primary preloads the
 * library into the workers it forks (LD_PRELOAD), and a single process (server.workers 1) gets
 * it from its own environment (deploy/stream-coordinator.service, docs/deploy.md).
 */
import fs from 'node:fs';

/** Where Linux distributions install jemalloc's shared library; "auto" takes the first that exists. */
export const JEMALLOC_PATHS: readonly string[] = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  '/usr/lib64/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
  '/usr/local/lib/libjemalloc.so.2',
];

/**
 * jemalloc's options for the workers, unless the environment has MALLOC_CONF: a background
 * thread returns unused pages while the process is idle (without it, only a later allocation
 * does), and two arenas instead of four per CPU, since one thread (the event loop) does
 * nearly all the allocating.
 */
export const JEMALLOC_CONF = 'background_thread:true,narenas:2';

/** What server.mallocLibrary resolves to on this machine. */
export type MallocChoice = { kind: 'glibc'; why: string } | { kind: 'preload'; library: string };

/**
 * Resolves server.mallocLibrary: "glibc" keeps the system's malloc; "auto" preloads jemalloc
 * when it is installed at one of {@link JEMALLOC_PATHS}; a path preloads that library.
 * @throws Error when a path is given and no file is there (a start-up check fails on it)
 */
export function resolveMallocLibrary(setting: string, exists: (file: string) => boolean = fs.existsSync): MallocChoice {
  if (setting === 'glibc') return { kind: 'glibc', why: 'server.mallocLibrary is "glibc"' };
  if (setting === 'auto') {
    const library = JEMALLOC_PATHS.find((p) => exists(p));
    return library ? { kind: 'preload', library } : { kind: 'glibc', why: 'jemalloc is not installed (Debian/Ubuntu: apt-get install libjemalloc2)' };
  }
  if (!exists(setting)) throw new Error(`server.mallocLibrary: no file at ${setting}`);
  return { kind: 'preload', library: setting };
}

/**
 * The environment a process starts with to run on `choice`, given the environment it would
 * otherwise get: an operator's own LD_PRELOAD and MALLOC_CONF win.
 */
export function preloadEnv(choice: MallocChoice, env: NodeJS.ProcessEnv): Record<string, string> {
  if (choice.kind === 'glibc' || env.LD_PRELOAD) return {};
  return { LD_PRELOAD: choice.library, ...(env.MALLOC_CONF === undefined && /jemalloc/.test(choice.library) ? { MALLOC_CONF: JEMALLOC_CONF } : {}) };
}

/**
 * The malloc library preloaded into this process (its path, read from /proc/self/maps), or
 * undefined when the process runs on the C library's own malloc (or the map cannot be read).
 */
export function preloadedMalloc(maps = '/proc/self/maps'): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(maps, 'utf8');
  } catch {
    return undefined;
  }
  return /\s(\/\S*\/lib(?:jemalloc|tcmalloc\w*|mimalloc)[^/\s]*\.so[^/\s]*)$/m.exec(text)?.[1];
}
