/**
 * Preflight: the checks that decide whether this machine and configuration can serve.
 * Run at start (refusing on failure unless `preflight.mode` is `warn`) and as the
 * `stream-coordinator preflight` command, which prints one ✓/✗ line per check with the fix.
 */
import fs from 'node:fs';
import net from 'node:net';
import { ConfigError, workerCount, type Settings } from './settings';
import { assertTlsUri, createMongo, pingMongo } from '../store/mongo';
import { createRedis, pingRedis } from '../store/redis';
import { checkTlsFiles, tlsMode, type CheckResult } from '../transport/tls';
import { plaintextExposure } from '../transport/tls-policy';
import os from 'node:os';
import path from 'node:path';
import { preloadedMalloc, resolveMallocLibrary } from '../malloc-library';
import { onTmpfs, seedCacheParent } from '../core/seed-cache';

export type { CheckResult } from '../transport/tls';

/** The soft and hard open-files limits of this process (RLIMIT_NOFILE), from /proc on Linux. */
export function openFilesLimit(procLimits = '/proc/self/limits'): { soft: number; hard: number } | undefined {
  try {
    const line = fs.readFileSync(procLimits, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const m = line && /Max open files\s+(\S+)\s+(\S+)/.exec(line);
    if (!m) return undefined;
    const num = (v: string): number => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
    return { soft: num(m[1]!), hard: num(m[2]!) };
  } catch {
    return undefined;
  }
}

/** Checks the soft open-files limit against core sockets plus other connections plus the reserve. */
export function checkOpenFiles(settings: Settings, limits = openFilesLimit()): CheckResult {
  const name = 'open files (RLIMIT_NOFILE)';
  const need = settings.server.maxConnections + settings.http.maxConnections + settings.preflight.fdReserve;
  const why = `server.maxConnections ${settings.server.maxConnections} + http.maxConnections ${settings.http.maxConnections} + preflight.fdReserve ${settings.preflight.fdReserve}`;
  if (!limits) return { name, ok: true, detail: `limit unknown on this platform; need ${need} (${why})` };
  if (limits.soft >= need) return { name, ok: true, detail: `soft limit ${limits.soft} ≥ ${need} (${why})` };
  const target = Math.max(need, 65536);
  // Node raises its soft limit to the hard limit at start, so the hard limit is what must grow.
  return {
    name,
    ok: false,
    detail: `soft limit ${limits.soft} < ${need} needed (${why}); hard limit ${limits.hard}`,
    fix:
      `raise the limit of the account that runs the server: add "<user> soft nofile ${target}" and "<user> hard nofile ${target}" ` +
      `to /etc/security/limits.conf (new login), or LimitNOFILE=${target} in the systemd unit (docs/deploy.md), or \`ulimit -Hn ${target}; ulimit -n ${target}\` as root before starting; or lower server.maxConnections.`,
  };
}

/** Checks that the port can be bound now (nothing else listens on it). */
export function checkPort(settings: Settings): Promise<CheckResult> {
  const { host, port } = settings.server;
  const name = `port ${host}:${port}`;
  if (port === 0) return Promise.resolve({ name, ok: true, detail: 'ephemeral port chosen at start' });
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      resolve({
        name,
        ok: false,
        detail: err.code === 'EADDRINUSE' ? 'already in use' : `${err.code ?? ''} ${err.message}`.trim(),
        fix: err.code === 'EADDRINUSE' ? 'stop the other process on this port (is a server already running?) or set server.port' : err.code === 'EACCES' ? 'ports below 1024 need CAP_NET_BIND_SERVICE (AmbientCapabilities= in the systemd unit) or use a port ≥ 1024' : 'check server.host',
      });
    });
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve({ name, ok: true, detail: 'free' })));
  });
}

async function checkMongo(settings: Settings): Promise<CheckResult> {
  const name = 'MongoDB over TLS';
  try {
    assertTlsUri(settings.mongodb.uri);
  } catch (err) {
    return { name, ok: false, detail: 'connection string without TLS', fix: (err as ConfigError).message };
  }
  let mongo;
  try {
    mongo = createMongo(settings);
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message, fix: 'check mongodb.tlsCAFile and mongodb.tlsCertificateKeyFile' };
  }
  try {
    await pingMongo(mongo, settings.health.timeoutMs + settings.mongodb.serverSelectionTimeoutMs);
    return { name, ok: true, detail: `database "${settings.mongodb.database}" answered` };
  } catch (err) {
    return {
      name,
      ok: false,
      detail: (err as Error).message,
      fix: 'start MongoDB with TLS enabled, check mongodb.uri, and set mongodb.tlsCAFile to the CA that signed its certificate',
    };
  } finally {
    await mongo.client.close().catch(() => undefined);
  }
}

/** Where the Redis check looked, without credentials (the driver's error does not say). */
function redisTarget(settings: Settings): string {
  const r = settings.redis;
  if (r.cluster.length > 0) return `cluster ${r.cluster.join(', ')}`;
  if (r.sentinels.length > 0) return `sentinels ${r.sentinels.join(', ')}`;
  try {
    const u = new URL(r.url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'redis.url';
  }
}

async function checkRedis(settings: Settings): Promise<CheckResult> {
  const name = 'Redis';
  let redis;
  try {
    redis = createRedis(settings, 'stream-coordinator-preflight');
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message, fix: 'check redis.tlsCAFile' };
  }
  redis.on('error', () => undefined);
  try {
    await pingRedis(redis, settings.health.timeoutMs + settings.redis.connectTimeoutMs);
    return { name, ok: true, detail: 'answered PING' };
  } catch (err) {
    return { name, ok: false, detail: `${redisTarget(settings)}: ${(err as Error).message}`, fix: 'start Redis and check redis.url (or redis.sentinels / redis.cluster)' };
  } finally {
    redis.disconnect();
  }
}

/** Options of {@link runPreflight}. */
export interface PreflightOptions {
  /** Skip the port check (the server already holds the port). */
  skipPort?: boolean;
}

/**
 * Which malloc the server will run on (server.mallocLibrary): fails when the key names a file
 * that is not there; says so when a single process was started without the library that the
 * key resolves to (it can only come from the process's own environment).
 */
export function checkMalloc(settings: Settings, workers: number, own = preloadedMalloc(), exists?: (file: string) => boolean, env: NodeJS.ProcessEnv = process.env): CheckResult {
  const name = 'malloc';
  let choice;
  try {
    choice = resolveMallocLibrary(settings.server.mallocLibrary, exists);
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message, fix: 'install the library there, or set server.mallocLibrary to "auto" or "glibc"' };
  }
  if (workers > 1 && env.LD_PRELOAD) return { name, ok: true, detail: `workers keep this environment's LD_PRELOAD (${env.LD_PRELOAD})` };
  if (workers > 1) return { name, ok: true, detail: choice.kind === 'glibc' ? `workers use glibc malloc: ${choice.why}` : `workers preload ${choice.library}` };
  if (own) return { name, ok: true, detail: `this process runs on ${own}` };
  if (choice.kind === 'glibc') return { name, ok: true, detail: `glibc malloc: ${choice.why}` };
  return { name, ok: true, detail: `glibc malloc: a single process cannot preload ${choice.library} itself; start it with LD_PRELOAD=${choice.library} (docs/deploy.md)` };
}

/**
 * Where the seed cache will keep its files (core.seedCacheDir): fails when the server could
 * not make its directory there; says when it is not tmpfs, where a hit may wait for a disk.
 */
export function checkSeedCache(settings: Settings): CheckResult {
  const name = 'seed cache';
  if (settings.core.seedCacheBytes === 0) return { name, ok: true, detail: 'off (core.seedCacheBytes 0)' };
  const parent = seedCacheParent(settings.core.seedCacheDir);
  try {
    fs.rmdirSync(fs.mkdtempSync(path.join(parent, 'stream-coordinator-preflight-')));
  } catch (err) {
    return { name, ok: false, detail: `cannot make a directory in ${parent}: ${(err as Error).message}`, fix: 'set core.seedCacheDir to a directory this user may write, or core.seedCacheBytes to 0' };
  }
  const where = onTmpfs(parent) ? 'tmpfs' : 'not tmpfs: a hit may wait for the disk';
  return { name, ok: true, detail: `${parent} (${where}), up to ${settings.core.seedCacheBytes} bytes per process` };
}

/**
 * TLS off is for a listener behind a TLS-terminating proxy: on loopback, or on an address other
 * machines reach only when the proxy is named (server.trustProxy). Anything else would take
 * tokens and engine keys in clear from whoever connects: `serve` with no configuration at all
 * would otherwise do just that on 0.0.0.0.
 */
export function checkPlaintext(settings: Settings): CheckResult {
  const { host, trustProxy } = settings.server;
  const exposure = plaintextExposure(host, trustProxy);
  if (exposure === 'loopback') return { name: 'TLS', ok: true, detail: `off, on ${host} (only behind a TLS-terminating proxy on this machine)` };
  if (exposure === 'behind-proxy') return { name: 'TLS', ok: true, detail: `off, on ${host} behind the proxy ${trustProxy.join(', ')} (server.trustProxy), which must terminate TLS and be the only way in` };
  return {
    name: 'TLS',
    ok: false,
    detail: `off (tls.cert, tls.key and tls.ca are empty) and the listener on ${host} is reachable from other machines, with no TLS-terminating proxy on another machine named${trustProxy.length > 0 ? ` (server.trustProxy names only this machine: ${trustProxy.join(', ')})` : ''}: tokens and engine keys would travel in clear`,
    fix: 'set tls.cert, tls.key and tls.ca; or name the proxy that terminates TLS in server.trustProxy; or listen on 127.0.0.1 behind a proxy on this machine',
  };
}

/** Runs every check. Never throws; each problem is one failed result. */
export async function runPreflight(settings: Settings, opts: PreflightOptions = {}): Promise<CheckResult[]> {
  const results: CheckResult[] = [checkOpenFiles(settings)];
  try {
    const mode = tlsMode(settings);
    if (mode.enabled) results.push(...checkTlsFiles(mode));
    else results.push(checkPlaintext(settings));
  } catch (err) {
    results.push({ name: 'TLS', ok: false, detail: (err as Error).message, fix: 'set tls.cert, tls.key and tls.ca together, or none of them' });
  }
  const workers = workerCount(settings, os.availableParallelism());
  const [mongo, redis, port] = await Promise.all([
    checkMongo(settings),
    checkRedis(settings),
    opts.skipPort ? undefined : checkPort(settings),
  ]);
  results.push(mongo, redis);
  if (port) results.push(port);
  if (workers > 1) results.push({ name: 'workers', ok: true, detail: `${workers} processes will share the port` });
  results.push(checkMalloc(settings, workers));
  results.push(checkSeedCache(settings));
  return results;
}

/** Formats results one per line: `✓ name: detail` or `✗ name: detail` with an indented `fix:` line. */
export function formatResults(results: CheckResult[]): string {
  return results
    .map((r) => (r.ok ? `✓ ${r.name}: ${r.detail}` : `✗ ${r.name}: ${r.detail}${r.fix ? `\n    fix: ${r.fix}` : ''}`))
    .join('\n');
}
