/**
 * FerretDB v1.24.2 (MongoDB wire protocol on SQLite) as the test and dev MongoDB when no
 * `mongod` is installed. There is no package for it in the Debian registries, so it is
 * built once from the Go module proxy and cached by version outside the repository.
 * See DESIGN.md, "FerretDB recipe", for why each step exists.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cacheDir, delay, freePort, hostPort, run, spawnService, waitForPort, which, type LogFn, type RunningService } from './exec';
import { DEPENDENCY_PATCHES, patchDependency, patchSource } from './ferretdb-patches';

/** The FerretDB release used: the last v1 (SQLite backend), May 2025. */
export const FERRETDB_VERSION = 'v1.24.2';
/**
 * Our build of it: the release plus the source patches of ferretdb-patches.ts.
 * Part of the cache key, so a binary built without the patches is never picked up; bump it
 * when the patches change (`sc20` named a benchmark experiment, never a release).
 */
export const FERRETDB_BUILD = `${FERRETDB_VERSION}-sc23`;
const MODULE = 'github.com/FerretDB/FerretDB';

/** A started MongoDB-compatible server: {@link RunningService} plus its connection string. */
export interface MongoService extends RunningService {
  /** `mongodb://host:port/?tls=true`; the caller adds `tlsCAFile`. */
  uri: string;
}

/** Options of {@link ensureFerretDB}. */
export interface EnsureFerretDBOptions {
  /** Where the binary is cached (default `${XDG_CACHE_HOME:-~/.cache}/stream-coordinator/ferretdb/<FERRETDB_BUILD>`). */
  cacheDir?: string;
  log?: LogFn;
}

/** The default per-version cache directory of the FerretDB binary. */
export function defaultFerretDBCacheDir(): string {
  return cacheDir('ferretdb', FERRETDB_BUILD);
}

/** True when `bin` exists, runs, and reports the expected version. */
async function binaryWorks(bin: string): Promise<boolean> {
  if (!fs.existsSync(bin)) return false;
  try {
    const { stdout } = await run(bin, ['--version'], { timeoutMs: 30_000 });
    return stdout.includes(FERRETDB_VERSION);
  } catch {
    return false;
  }
}

/** A lock older than this is assumed abandoned (a build takes 1-2 minutes; the holder refreshes it). */
const LOCK_STALE_MS = 10 * 60_000;
const LOCK_REFRESH_MS = 30_000;

/** True when the lock's owner is a process on this host that no longer exists. */
function ownerGone(lockDir: string): boolean {
  try {
    const [host, pidText] = fs.readFileSync(path.join(lockDir, 'owner'), 'utf8').trim().split(' ');
    if (host !== os.hostname()) return false;
    process.kill(Number(pidText), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Takes the build lock (a directory: mkdir is atomic), or returns null once another
 * process has produced a working binary while we waited.
 */
async function acquireLock(lockDir: string, bin: string, log?: LogFn): Promise<(() => Promise<void>) | null> {
  let told = false;
  for (;;) {
    try {
      await fsp.mkdir(lockDir);
      await fsp.writeFile(path.join(lockDir, 'owner'), `${os.hostname()} ${process.pid}\n`);
      // Keep the lock fresh so a slow build is not mistaken for an abandoned one.
      const refresh = setInterval(() => {
        const now = new Date();
        fsp.utimes(lockDir, now, now).catch(() => undefined);
      }, LOCK_REFRESH_MS);
      refresh.unref();
      return async () => {
        clearInterval(refresh);
        await fsp.rm(lockDir, { recursive: true, force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let stale = false;
    try {
      const st = await fsp.stat(lockDir);
      stale = Date.now() - st.mtimeMs > LOCK_STALE_MS || ownerGone(lockDir);
    } catch {
      continue; // released between mkdir and stat: try again at once
    }
    if (stale) {
      log?.(`Removing a stale FerretDB build lock (${lockDir})`);
      await fsp.rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (!told) {
      log?.(`Waiting for another process to finish building FerretDB ${FERRETDB_VERSION} (lock ${lockDir})…`);
      told = true;
    }
    await delay(1000);
    if (await binaryWorks(bin)) return null;
  }
}

/** Makes a copied tree writable: the Go module cache stores sources read-only. */
async function makeWritable(dir: string): Promise<void> {
  const addWrite = async (p: string): Promise<void> => fsp.chmod(p, (await fsp.stat(p)).mode | 0o200);
  await addWrite(dir);
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await makeWritable(p);
    else if (entry.isFile()) await addWrite(p);
  }
}

/** Environment for the go tool: the user's own GOPATH/GOMODCACHE/GOPROXY, plus two flags we need. */
function goEnv(): NodeJS.ProcessEnv {
  const flags = (process.env.GOFLAGS ?? '').split(/\s+/).filter((f) => f && !f.startsWith('-mod='));
  // -mod=mod lets go record missing go.sum lines itself; -buildvcs=false because the
  // cache may sit inside someone's git checkout, whose state is irrelevant to this build.
  flags.push('-mod=mod');
  if (!flags.some((f) => f.startsWith('-buildvcs'))) flags.push('-buildvcs=false');
  return { ...process.env, GOFLAGS: flags.join(' '), GOWORK: 'off' };
}

async function build(cacheDir: string, bin: string, go: string, log?: LogFn): Promise<void> {
  log?.(`Building FerretDB ${FERRETDB_VERSION} from the Go module proxy (first run only, about 1-2 minutes)…`);
  const started = Date.now();
  const env = goEnv();
  const work = path.join(cacheDir, 'build');
  await fsp.rm(work, { recursive: true, force: true });
  const mod = path.join(work, 'mod');
  await fsp.mkdir(mod, { recursive: true });
  // A throwaway module: `go install …@v1.24.2` fails because the proxy refuses this
  // module's version list, while `go get` of the exact version works.
  await run(go, ['mod', 'init', 'stream-coordinator.local/ferretdb-build'], { cwd: mod, env });
  await run(go, ['get', `${MODULE}/cmd/ferretdb@${FERRETDB_VERSION}`], { cwd: mod, env, timeoutMs: 15 * 60_000 });
  const { stdout } = await run(go, ['list', '-m', '-f', '{{.Dir}}', MODULE], { cwd: mod, env });
  const moduleDir = stdout.trim();
  if (!moduleDir || !fs.existsSync(moduleDir)) throw new Error(`go list did not report a source directory for ${MODULE}`);

  // The published module lacks the generated build/version/version.txt and the binary
  // panics at start without it, so build from a writable copy that has it.
  const src = path.join(work, 'src');
  await fsp.cp(moduleDir, src, { recursive: true });
  await makeWritable(src);
  await fsp.writeFile(path.join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);
  await patchSource(src);
  // As the recipe does: the throwaway module now resolves FerretDB to the patched copy.
  await run(go, ['mod', 'edit', `-replace=${MODULE}=${src}`], { cwd: mod, env });

  // The modules SQLite runs on (patches 14 and 15), also from patched copies; FerretDB is
  // the main module of the build below, so its go.mod carries the replacements.
  for (const dep of DEPENDENCY_PATCHES) {
    const depDir = (await run(go, ['list', '-m', '-f', '{{.Dir}}', dep.module], { cwd: mod, env })).stdout.trim();
    if (!depDir || !fs.existsSync(depDir)) throw new Error(`go list did not report a source directory for ${dep.module}`);
    const copy = path.join(work, dep.overlay);
    await fsp.cp(depDir, copy, { recursive: true });
    await makeWritable(copy);
    await patchDependency(copy, dep);
    await run(go, ['mod', 'edit', `-replace=${dep.module}=${copy}`], { cwd: src, env });
  }

  // Built inside the copy (FerretDB is then the main module, whose build info the
  // version package checks before embedding version.txt); the copy carries its own
  // go.sum, and every dependency is already in the module cache from `go get`.
  const tmpBin = `${bin}.tmp-${process.pid}`;
  await run(go, ['build', '-o', tmpBin, './cmd/ferretdb'], { cwd: src, env, timeoutMs: 30 * 60_000 });
  if (!(await binaryWorks(tmpBin))) {
    await fsp.rm(tmpBin, { force: true });
    throw new Error(`the freshly built FerretDB (${tmpBin}) does not report ${FERRETDB_VERSION} with --version`);
  }
  await fsp.rename(tmpBin, bin);
  await fsp.rm(work, { recursive: true, force: true });
  log?.(`Built FerretDB ${FERRETDB_VERSION} in ${((Date.now() - started) / 1000).toFixed(0)} s: ${bin}`);
}

/**
 * Returns the path of a working FerretDB v1.24.2 binary, building it on first use
 * (≈ 75 s on 2 cores) and caching it. Concurrent callers (parallel test files) share one
 * build through a lock directory.
 *
 * @throws Error explaining the alternatives when `go` is not installed.
 */
export async function ensureFerretDB(opts: EnsureFerretDBOptions = {}): Promise<string> {
  const cacheDir = path.resolve(opts.cacheDir ?? defaultFerretDBCacheDir());
  const bin = path.join(cacheDir, 'ferretdb');
  if (await binaryWorks(bin)) return bin;
  const go = which('go');
  if (!go) {
    throw new Error(
      `No MongoDB server available: mongod is not on PATH and FerretDB ${FERRETDB_VERSION} is not built yet, ` +
        'which needs Go ≥ 1.24 (FerretDB v1.24.2 declares go 1.24; Debian 12\'s golang package is 1.19, too old): ' +
        'install Go from https://go.dev/dl/ and put it on PATH, or install MongoDB so that mongod is on PATH.',
    );
  }
  await fsp.mkdir(cacheDir, { recursive: true });
  const release = await acquireLock(path.join(cacheDir, '.build.lock'), bin, opts.log);
  if (!release) return bin;
  try {
    // Another process may have finished between our first check and taking the lock.
    if (!(await binaryWorks(bin))) await build(cacheDir, bin, go, opts.log);
  } finally {
    await release();
  }
  return bin;
}

/** Options of {@link startFerretDB}. */
export interface StartFerretDBOptions {
  /** SQLite data directory (created); with `postgresqlUrl`, only the working directory. */
  dataDir: string;
  /** Use the `postgresql` handler on this cluster (see postgres.ts) instead of SQLite. */
  postgresqlUrl?: string;
  /** FerretDB state directory (default `<dataDir>/state`). */
  stateDir?: string;
  /** TLS port (default: a free one). */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Certificate file served: leaf followed by its intermediates (Go sends every certificate in it). */
  cert: string;
  /** Private key of the leaf. */
  key: string;
  /** Binary to run (default: {@link ensureFerretDB}). */
  binary?: string;
  /** Cache directory for {@link ensureFerretDB}. */
  cacheDir?: string;
  startTimeoutMs?: number;
  log?: LogFn;
}

/**
 * Starts FerretDB TLS-only (the plaintext listener is off, so a plaintext client is
 * refused), with telemetry off, the debug HTTP listener off (unless SC_FERRETDB_DEBUG_ADDR
 * names an address) and logs at error level.
 *
 * @returns a handle with `uri` = `mongodb://host:port/?tls=true`.
 */
export async function startFerretDB(opts: StartFerretDBOptions): Promise<MongoService> {
  const bin = opts.binary ?? (await ensureFerretDB({ cacheDir: opts.cacheDir, log: opts.log }));
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const dataDir = path.resolve(opts.dataDir);
  const stateDir = path.resolve(opts.stateDir ?? path.join(dataDir, 'state'));
  await fsp.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await fsp.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const args = [
    ...(opts.postgresqlUrl
      ? ['--handler=postgresql', `--postgresql-url=${opts.postgresqlUrl}`]
      : // FerretDB wants a directory URI; the trailing slash is what marks it as one.
        ['--handler=sqlite', `--sqlite-url=file:${dataDir}/`]),
    // Empty turns the plaintext listener (default 127.0.0.1:27017) off.
    '--listen-addr=',
    `--listen-tls=${hostPort(host, port)}`,
    `--listen-tls-cert-file=${path.resolve(opts.cert)}`,
    `--listen-tls-key-file=${path.resolve(opts.key)}`,
    '--telemetry=disable',
    `--state-dir=${stateDir}`,
    '--log-level=error',
    // "-" disables the debug/metrics HTTP listener, whose fixed default 127.0.0.1:8088
    // would make a second instance on the same host fail to start. SC_FERRETDB_DEBUG_ADDR
    // turns it on at an address of one's choosing (Go's pprof: where the store's time goes).
    `--debug-addr=${process.env.SC_FERRETDB_DEBUG_ADDR || '-'}`,
  ];
  // FerretDB reads FERRETDB_* variables as flag defaults; a developer's own settings must not leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERRETDB_')));
  const svc = await spawnService({
    name: 'ferretdb',
    cmd: bin,
    args,
    cwd: dataDir,
    env,
    host,
    port,
    url: `mongodb://${hostPort(host, port)}/?tls=true`,
    ready: (signal) => waitForPort(host, port, opts.startTimeoutMs ?? 30_000, { signal }),
    startTimeoutMs: opts.startTimeoutMs,
    log: opts.log,
  });
  return { ...svc, uri: svc.url };
}
