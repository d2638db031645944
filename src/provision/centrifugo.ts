/**
 * Centrifugo v5.4.9, the peer the sessions and set-up benchmarks measure the coordinator
 * against (bench/README.md, "The Centrifugo peer"). Like FerretDB (ferretdb.ts) it has no
 * Debian package, so it is built once from the Go module proxy and cached by version
 * outside the repository. Nothing in the product uses it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { cacheDir, freePort, hostPort, run, spawnService, staticGoEnv, waitForPort, which, type LogFn, type RunningService } from './exec';

/** The Centrifugo release measured: the last v5 (protocol v2, JSON over WebSocket). */
export const CENTRIFUGO_VERSION = 'v5.4.9';
const MODULE = 'github.com/centrifugal/centrifugo/v5';

/** The default per-version cache directory (`${XDG_CACHE_HOME:-~/.cache}/stream-coordinator/centrifugo/v5.4.9`). */
export function defaultCentrifugoCacheDir(): string {
  return cacheDir('centrifugo', CENTRIFUGO_VERSION);
}

/** True when `bin` exists, runs, and reports the expected version. */
async function binaryWorks(bin: string): Promise<boolean> {
  if (!fs.existsSync(bin)) return false;
  try {
    const { stdout } = await run(bin, ['version'], { timeoutMs: 30_000 });
    return stdout.includes(`Centrifugo ${CENTRIFUGO_VERSION}`);
  } catch {
    return false;
  }
}

async function build(cacheDir: string, bin: string, go: string, log?: LogFn): Promise<void> {
  log?.(`Building Centrifugo ${CENTRIFUGO_VERSION} from the Go module proxy (first run only, about 3 minutes on 2 cores)…`);
  const started = Date.now();
  const env = staticGoEnv();
  // A work directory per process: two builders never share files, and the last rename wins.
  const work = path.join(cacheDir, `build-${process.pid}`);
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true });
  try {
    // `go install …/v5@v5.4.9` fails here: it first reads the module's version list
    // (…/@v/list), which the proxy answers with 403. `go get` of the exact version in a
    // throwaway module fetches only that version. The module has no replace directives, so
    // minimal version selection picks exactly the dependencies of its own go.mod.
    await run(go, ['mod', 'init', 'stream-coordinator.local/centrifugo-build'], { cwd: work, env });
    const get = async (): Promise<void> => {
      await run(go, ['get', `${MODULE}@${CENTRIFUGO_VERSION}`], { cwd: work, env, timeoutMs: 15 * 60_000 });
    };
    try {
      await get();
    } catch (first) {
      log?.(`go get ${MODULE}@${CENTRIFUGO_VERSION} failed, trying once more: ${(first as Error).message.split('\n')[0]}`);
      await get();
    }
    const tmpBin = `${bin}.tmp-${process.pid}`;
    // The version is stamped as the release CI does (internal/build.Version).
    const ldflags = `-s -w -X ${MODULE}/internal/build.Version=${CENTRIFUGO_VERSION.slice(1)}`;
    await run(go, ['build', '-trimpath', '-ldflags', ldflags, '-o', tmpBin, MODULE], { cwd: work, env, timeoutMs: 30 * 60_000 });
    if (!(await binaryWorks(tmpBin))) {
      await fsp.rm(tmpBin, { force: true });
      throw new Error(`the freshly built Centrifugo (${tmpBin}) does not report ${CENTRIFUGO_VERSION} with "version"`);
    }
    await fsp.rename(tmpBin, bin);
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
  log?.(`Built Centrifugo ${CENTRIFUGO_VERSION} in ${((Date.now() - started) / 1000).toFixed(0)} s: ${bin}`);
}

/**
 * Returns the path of a working Centrifugo v5.4.9 binary, building it on first use and
 * caching it in `cacheDir` (default {@link defaultCentrifugoCacheDir}). Concurrent first
 * uses each build in their own directory (only the benchmark uses it, one run at a time).
 *
 * @throws Error when `go` is not on PATH, or when the proxy refuses the version twice
 *   (the go tool's message is kept: no other version is substituted).
 */
export async function ensureCentrifugo(opts: { cacheDir?: string; log?: LogFn } = {}): Promise<string> {
  const cacheDir = path.resolve(opts.cacheDir ?? defaultCentrifugoCacheDir());
  const bin = path.join(cacheDir, 'centrifugo');
  if (await binaryWorks(bin)) return bin;
  const go = which('go');
  if (!go) throw new Error(`Centrifugo ${CENTRIFUGO_VERSION} is not built yet and go is not on PATH: install Go (https://go.dev/dl/) to build it.`);
  await fsp.mkdir(cacheDir, { recursive: true });
  await build(cacheDir, bin, go, opts.log);
  return bin;
}

/** Options of {@link startCentrifugo}. */
export interface StartCentrifugoOptions {
  /** Directory for the config file (created, mode 0700). */
  dir: string;
  /** Certificate file served: leaf followed by its intermediates. */
  cert: string;
  key: string;
  /** HMAC secret of connection tokens (HS256); default: 32 random bytes, hex. */
  tokenSecret?: string;
  /** Server ping interval, seconds (default 30, the coordinator's `core.heartbeatS` default). */
  pingIntervalS?: number;
  /** Seconds a client has to answer a ping before it is disconnected (default 8, Centrifugo's; below the ping interval). */
  pongTimeoutS?: number;
  host?: string;
  /** TLS port (default: a free one). */
  port?: number;
  /** Binary to run (default: {@link ensureCentrifugo}). */
  binary?: string;
  log?: LogFn;
}

/** A started Centrifugo: {@link RunningService} plus what clients need. */
export interface CentrifugoService extends RunningService {
  /** `wss://host:port/connection/websocket` (JSON protocol v2). */
  wsUrl: string;
  /** The HMAC secret of connection tokens. */
  tokenSecret: string;
  /** Key of the server API (`POST /api/…` with `X-API-Key`), random per start. */
  apiKey: string;
  /** The configuration it runs with (what bench/README.md describes). */
  config: Record<string, unknown>;
}

/**
 * Namespace of channels that keep their latest publication and hand it to each new
 * subscriber in the subscribe reply (Centrifugo's cache recovery): how the peer delivers
 * as many bytes per session as a coordinator's assignment carries.
 */
export const STATE_NAMESPACE = 'state';

/**
 * The configuration of a production single node serving mostly idle clients: TLS, HMAC
 * connection tokens, clients with a valid token may subscribe to channels (the stand-in for
 * being assigned), memory engine, no debug, no admin UI, no metrics or health listeners,
 * logs at error level, and the write buffer pool Centrifugo's docs recommend for many idle
 * connections. Channels of {@link STATE_NAMESPACE} keep one publication for a day and
 * send it with the subscribe reply to a client that asks to recover.
 */
export function centrifugoConfig(o: { host: string; port: number; cert: string; key: string; tokenSecret: string; apiKey: string; pingIntervalS: number; pongTimeoutS: number }): Record<string, unknown> {
  return {
    address: o.host,
    port: String(o.port),
    tls: true,
    tls_cert: path.resolve(o.cert),
    tls_key: path.resolve(o.key),
    token_hmac_secret_key: o.tokenSecret,
    allow_subscribe_for_client: true,
    engine: 'memory',
    ping_interval: `${o.pingIntervalS}s`,
    pong_timeout: `${o.pongTimeoutS}s`,
    websocket_use_write_buffer_pool: true,
    log_level: 'error',
    admin: false,
    debug: false,
    prometheus: false,
    health: false,
    // Centrifugo reports anonymous usage statistics to its authors by default; the bench
    // talks to loopback only.
    usage_stats_disable: true,
    namespaces: [
      {
        name: STATE_NAMESPACE,
        allow_subscribe_for_client: true,
        history_size: 1,
        history_ttl: '24h',
        force_recovery: true,
        force_recovery_mode: 'cache',
      },
    ],
    // Random per start: only the benchmark that publishes the state channels knows it.
    api_key: o.apiKey,
  };
}

/** Starts Centrifugo with {@link centrifugoConfig} on loopback and waits for its TLS port. */
export async function startCentrifugo(opts: StartCentrifugoOptions): Promise<CentrifugoService> {
  const bin = opts.binary ?? (await ensureCentrifugo({ log: opts.log }));
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const tokenSecret = opts.tokenSecret ?? crypto.randomBytes(32).toString('hex');
  const dir = path.resolve(opts.dir);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const apiKey = crypto.randomBytes(24).toString('hex');
  const config = centrifugoConfig({ host, port, cert: opts.cert, key: opts.key, tokenSecret, apiKey, pingIntervalS: opts.pingIntervalS ?? 30, pongTimeoutS: opts.pongTimeoutS ?? 8 });
  const file = path.join(dir, 'centrifugo.json');
  await fsp.writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // Centrifugo reads CENTRIFUGO_* variables as settings; a developer's own must not leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CENTRIFUGO_')));
  const svc = await spawnService({
    name: 'centrifugo',
    cmd: bin,
    args: ['--config', file],
    cwd: dir,
    env,
    host,
    port,
    url: `https://${hostPort(host, port)}`,
    ready: (signal) => waitForPort(host, port, 30_000, { signal }),
    log: opts.log,
  });
  return { ...svc, wsUrl: `wss://${hostPort(host, port)}/connection/websocket`, tokenSecret, apiKey, config };
}

/** An HS256 connection token (JWT) for user `sub`, valid `ttlS` seconds (default one hour). */
export function connectionToken(secret: string, sub: string, ttlS = 3600): string {
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + ttlS })}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}
