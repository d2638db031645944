/**
 * The whole local stack for tests and `dev`: development certificates, Redis, and a
 * TLS-only MongoDB-compatible server (`mongod` when installed, else FerretDB).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ensureDevCertificates, type DevCertificates } from './certs';
import type { LogFn, RunningService } from './exec';
import { startFerretDB, type MongoService } from './ferretdb';
import { findMongod, startMongod } from './mongod';
import { startPostgres } from './postgres';
import { startRedis } from './redis';

/** Options of {@link startStack}. */
export interface StackOptions {
  /** Holds `certs/`, `redis/` and `mongo/`. */
  baseDir: string;
  /** Certificate directory (default `<baseDir>/certs`); dev keeps it apart from data so it survives a data wipe. */
  certsDir?: string;
  /** Keep Redis data across restarts (dev); MongoDB data always lives in `<baseDir>/mongo`. */
  persist?: boolean;
  /** Fixed ports; free ones are picked otherwise. */
  ports?: { redis?: number; mongo?: number };
  /** Extra names for the server certificate. */
  hosts?: string[];
  /** FerretDB binary cache directory (see ensureFerretDB). */
  ferretdbCacheDir?: string;
  /**
   * FerretDB's backend when no mongod is installed: `sqlite` (default, the patched build) or
   * `postgresql` (a private cluster under `<baseDir>/postgres`, see postgres.ts). Default
   * from env SC_STORE_BACKEND.
   */
  storeBackend?: 'sqlite' | 'postgresql';
  log?: LogFn;
}

/** A running stack. */
export interface Stack {
  certs: DevCertificates;
  redis: RunningService;
  mongo: MongoService;
  /** Which MongoDB server runs. */
  mongoKind: 'mongod' | 'ferretdb';
  /** CA file the MongoDB client should trust (`tlsCAFile`): the dev root CA. */
  mongoCAFile: string;
  /** Stops both servers; safe to call twice or after a server has died. */
  stop(): Promise<void>;
}

/**
 * mongod wants certificate, chain and key in one file. It holds the key, so it is 0600,
 * and it lives in the certificate directory (0700).
 */
async function writeMongodPem(certs: DevCertificates): Promise<string> {
  const file = path.join(certs.dir, 'mongod.pem');
  const [full, key] = await Promise.all([fsp.readFile(certs.fullChain, 'utf8'), fsp.readFile(certs.key, 'utf8')]);
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, full + key, { mode: 0o600 });
  await fsp.rename(tmp, file);
  return file;
}

/** Options of {@link startStoreServer}. */
export interface StoreServerOptions {
  /** Holds `mongo/` (and `postgres/` with that backend); the same directory finds the same data again. */
  dir: string;
  certs: DevCertificates;
  /** TLS port (default: a free one). */
  port?: number;
  storeBackend?: StackOptions['storeBackend'];
  ferretdbCacheDir?: string;
  log?: LogFn;
}

/**
 * Starts the stack's MongoDB server alone, TLS-only with the dev certificates: `mongod`
 * when installed, else FerretDB on `storeBackend`. Started again with the same options
 * after a stop, it serves the same data on the same port (how tests make an outage).
 */
export async function startStoreServer(opts: StoreServerOptions): Promise<MongoService & { kind: Stack['mongoKind'] }> {
  const { certs, log } = opts;
  const mongod = findMongod();
  const mongoDir = path.join(opts.dir, 'mongo');
  if (mongod) {
    const server = await startMongod({ dataDir: mongoDir, port: opts.port, certKeyPem: await writeMongodPem(certs), caFile: certs.chain, binary: mongod, log });
    return { ...server, kind: 'mongod' };
  }
  const backend = opts.storeBackend ?? (process.env.SC_STORE_BACKEND === 'postgresql' ? 'postgresql' : 'sqlite');
  const pg = backend === 'postgresql' ? await startPostgres({ dir: path.join(opts.dir, 'postgres'), log }) : undefined;
  // Go's TLS stack serves exactly the certificates in the file, and clients trust only
  // the root, so FerretDB needs leaf + intermediate, not the bare leaf.
  const ferret = await startFerretDB({
    dataDir: mongoDir,
    ...(pg ? { postgresqlUrl: pg.ferretdbUrl } : {}),
    port: opts.port,
    cert: certs.fullChain,
    key: certs.key,
    cacheDir: opts.ferretdbCacheDir,
    log,
  }).catch(async (e: unknown) => {
    await pg?.stop();
    throw e;
  });
  if (!pg) return { ...ferret, kind: 'ferretdb' };
  return { ...ferret, kind: 'ferretdb', stop: async () => void (await Promise.allSettled([ferret.stop().then(() => pg.stop())])) };
}

/**
 * Starts certificates, Redis and MongoDB under `baseDir` (certificates under `certsDir`
 * when given). If either server fails, the
 * other is stopped before the error propagates, so a failed start leaves no children.
 */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const baseDir = path.resolve(opts.baseDir);
  const log = opts.log;
  const certs = await ensureDevCertificates(path.resolve(opts.certsDir ?? path.join(baseDir, 'certs')), { hosts: opts.hosts, log });
  const [redis, mongo] = await Promise.allSettled([
    startRedis({ dir: path.join(baseDir, 'redis'), port: opts.ports?.redis, persist: opts.persist, log }),
    startStoreServer({ dir: baseDir, certs, port: opts.ports?.mongo, storeBackend: opts.storeBackend, ferretdbCacheDir: opts.ferretdbCacheDir, log }),
  ]);
  if (redis.status === 'rejected' || mongo.status === 'rejected') {
    await Promise.allSettled([
      redis.status === 'fulfilled' ? redis.value.stop() : undefined,
      mongo.status === 'fulfilled' ? mongo.value.stop() : undefined,
    ]);
    throw redis.status === 'rejected' ? redis.reason : (mongo as PromiseRejectedResult).reason;
  }

  let stopping: Promise<void> | undefined;
  return {
    certs,
    redis: redis.value,
    mongo: mongo.value,
    mongoKind: mongo.value.kind,
    mongoCAFile: certs.caCert,
    stop() {
      stopping ??= Promise.allSettled([redis.value.stop(), mongo.value.stop()]).then(() => undefined);
      return stopping;
    },
  };
}
