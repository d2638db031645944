/**
 * Wires one server process: config → logger, metrics, storage → routes → transport → listen.
 * No domain logic lives here.
 */
import cluster from 'node:cluster';
import type { Settings } from './config/settings';
import { registerApi } from './http/declared-routes';
import { TargetCache } from './core/target-cache';
import { CoreHub } from './core/hub';
import { EngineKeys } from './auth/engine-keys';
import { Leases } from './store/leases';
import { Pool } from './store/pool';
import { Streams } from './store/streams';
import { Janitor } from './store/janitor';
import { commitWindowMs } from './store/abandoned';
import { Auth } from './auth/principals';
import { Bus } from './store/bus';
import { Cors } from './http/cors';
import { FileStore } from './store/files';
import { Router, bufferBody } from './http/router';
import { LiveState } from './store/live';
import { ProgressCounters } from './store/progress';
import { SharedAnswer } from './store/shared-answer';
import { apiRoutes, openApiFor } from './http/routes';
import { publicTargetsJson } from './http/routes/targets';
import { leaderboardRows } from './http/routes/donors';
import type { TargetView } from './http/routes/common';
import { TargetAnswers } from './http/target-answers';
import { ensureIndexes } from './store/indexes';
import type { Logger } from './telemetry/log';
import { Metrics } from './telemetry/metrics';
import { ClientLog } from './telemetry/client-log';
import { guardProcess } from './telemetry/process-guards';
import { commitDurability } from './store/durability';
import { plaintextWarning } from './transport/tls-policy';
import { systemRoutes } from './http/routes/system';
import { dashboardRoutes } from './dashboard/routes';
import { Storage } from './store/storage';
import { buildChainFile, servedCertificate, tlsMode } from './transport/tls';
import { watchCertificateExpiry } from './transport/tls-expiry';
import { TrustList } from './http/client-address';
import type { HttpContext } from './http/exchange';
import type { Transport, TransportOptions } from './transport/types';
import { ConnectionLimit } from './transport/connection-limit';
import { startNodeTransport } from './transport/node-server';
import { startUwsTransport } from './transport/uws-server';
import { NODE_ID, VERSION } from './version';
import { ReliabilityGuard } from './core/reliability-guard';
import { ReliabilityStore } from './store/reliability';
import { BlockStore } from './store/blocks';
import { startMallocTrim } from './malloc-trim';
import { openSeedCacheDir, removeSeedCacheDir } from './core/seed-cache';

/** A listening server process. */
export interface RunningServer {
  /** The bound port (useful when server.port is 0). */
  readonly port: number;
  /** Base URL, https:// when TLS is on. */
  readonly url: string;
  readonly storage: Storage;
  readonly metrics: Metrics;
  /**
   * Graceful stop: stop accepting, let in-flight requests finish (up to
   * server.shutdownTimeoutS), close connections and storage. Idempotent.
   */
  close(): Promise<void>;
}

/** Options of {@link startServer}. */
export interface StartOptions {
  /** Worker index in a worker group (0 when single-process). */
  worker?: number;
  /**
   * The seed directory the group's primary made for its workers (core/seed-cache.ts); without
   * it the server makes its own and removes it when it stops.
   */
  seedCacheDir?: string;
}

/** Starts a server process. Rejects when the port cannot be bound or TLS files are unusable. */
export async function startServer(settings: Settings, log: Logger, opts: StartOptions = {}): Promise<RunningServer> {
  const mode = tlsMode(settings);
  const metrics = new Metrics();
  const unguard = guardProcess(log, metrics);
  const storage = new Storage(settings, log);
  await storage.connect();
  // Awaited so requests never race index builds (FerretDB drops connections on concurrent DDL).
  await ensureIndexes(storage.mongo.db).then(
    ({ created, dropped }) => (created.length > 0 || dropped.length > 0) && log.info({ created, dropped }, 'created missing MongoDB indexes, dropped retired ones'),
    (err: Error) => log.warn({ err: err.message }, 'could not check MongoDB indexes; will work without until MongoDB is back'),
  );

  const router = new Router(settings.http.maxBodyBytes);
  systemRoutes(router, {
    storage,
    metrics,
    metricsKey: settings.metrics.key,
    node: { id: NODE_ID, worker: opts.worker ?? 0 },
    version: VERSION,
  });

  const prefix = settings.redis.keyPrefix;
  const bus = new Bus(storage.redis, prefix, log);
  const auth = new Auth(storage.mongo.db, bus, settings.auth.cacheTtlS * 1000, settings.auth.cacheMaxEntries, settings.auth.failuresPerMinute);
  const progress = new ProgressCounters(storage.redis, prefix, settings.http.activeStreamsCacheMs);
  const live = new LiveState(storage.redis, prefix, settings.server.nodeHeartbeatS, settings.http.activeCoresCacheMs, settings.http.activeStreamsCacheMs);
  const files = new FileStore(storage.mongo.db, settings.storage.inlineMaxBytes, settings.storage.maxInlineBytesPerDocument, commitDurability(settings));
  const db = storage.mongo.db;
  const leases = new Leases(storage.redis, prefix, settings.core.leaseTtlS * 1000, settings.storage.poolReturnS * 1000, settings.storage.janitorLagS * 1000);
  const pool = new Pool(db, leases, log);
  const streams = new Streams(db, files, leases, bus, commitWindowMs(settings));
  const targets = new TargetCache(db, bus, settings.core.targetCacheMs, log);
  const guard = new ReliabilityGuard(new ReliabilityStore(storage.redis, prefix, settings.reliability), new BlockStore(db, settings.mongodb.opTimeoutMs), bus, log, settings.reliability.refreshMs);
  const ownSeeds = opts.seedCacheDir === undefined ? openSeedCacheDir(settings.core) : undefined;
  const seedCacheDir = opts.seedCacheDir ?? ownSeeds;
  const hub = new CoreHub({ settings, db, files, leases, streams, targets, live, progress, bus, log, metrics, nodeId: NODE_ID, guard, seedCacheDir });
  const engineKeys = new EngineKeys(db, bus, settings.auth.cacheTtlS * 1000, settings.auth.cacheMaxEntries);
  const targetViews = new TargetAnswers<TargetView>(bus, settings.http.targetCacheMs, settings.http.targetCacheMaxEntries);
  const streamTotals = new TargetAnswers<number>(bus, settings.http.streamTotalCacheMs, settings.http.targetCacheMaxEntries);
  const publicTargets = new SharedAnswer(settings.http.publicTargetsCacheMs, () => publicTargetsJson(db, settings.limits.maxListItems));
  bus.on('target.changed', () => publicTargets.invalidate());
  const leaderboard = new SharedAnswer(settings.http.leaderboardCacheMs, () => leaderboardRows(db, settings.donors.leaderboardMax));
  registerApi(router, auth, apiRoutes(settings), { settings, db, redis: storage.redis, bus, auth, files, live, progress, streams, leases, log, targetViews, streamTotals, publicTargets, leaderboard });
  const openapi = Buffer.from(JSON.stringify(openApiFor(settings)));
  router.add('GET', '/openapi.json', () => ({ status: 200, headers: { 'content-type': 'application/json; charset=utf-8' }, body: bufferBody(openapi) }));
  dashboardRoutes(router, log);

  const cors = new Cors(settings.cors.allowedOrigins);
  // Request lines have a budget of their own: a flood of requests does not silence the cores' lines.
  const httpLog = new ClientLog(log, settings.log.clientLinesPerSecond, metrics.logLinesSkipped, 'http');
  const inflight = { count: 0, idle: [] as Array<() => void> };
  const trust = new TrustList(settings.server.trustProxy);
  const ctx: HttpContext = {
    router,
    trust,
    log,
    clientLog: httpLog,
    metrics,
    inflight,
    memory: hub.memory,
    bodyPace: { graceMs: settings.http.bodyGraceS * 1000, minBytesPerSecond: settings.http.minBodyBytesPerSecond },
    extraHeaders: (req) => cors.headers(req),
    preflight: (method, path, headers) => cors.preflight(router, method, path, headers),
  };

  const chain = mode.enabled ? buildChainFile(mode) : undefined;
  const transportOptions: TransportOptions = {
    host: settings.server.host,
    port: settings.server.port,
    tls: mode,
    ...(chain ? { chainFile: chain.file } : {}),
    http: ctx,
    core: { hub, engineKeys, auth, trust },
    connections: new ConnectionLimit(settings.http.maxConnectionsPerAddress, settings.http.maxConnections, trust, metrics.registry),
  };
  let transport: Transport;
  try {
    transport = settings.server.transport === 'node' ? await startNodeTransport(transportOptions) : await startUwsTransport(transportOptions);
  } catch (err) {
    if (ownSeeds) removeSeedCacheDir(ownSeeds);
    bus.close();
    await storage.close();
    throw err;
  } finally {
    // Both transports read the file once, as they start: it goes now, so a process that is
    // killed or crashes leaves no directory behind.
    chain?.remove();
  }
  const port = transport.port;
  const hostForUrl = settings.server.host === '0.0.0.0' || settings.server.host === '::' ? 'localhost' : settings.server.host;
  const url = `${mode.enabled ? 'https' : 'http'}://${hostForUrl.includes(':') ? `[${hostForUrl}]` : hostForUrl}:${port}`;
  // The process's shares of the server's store budgets (core.maxConcurrentCommits, core.maxConcurrentAssignments).
  const slots = { commits: hub.commits.limit, assignments: hub.assignments.limit };
  // A forked worker's logger already carries its `worker` number.
  log.info({ url, tls: mode.enabled, transport: settings.server.transport, ...(cluster.isWorker ? {} : { worker: opts.worker ?? 0 }), node: NODE_ID, slots }, 'listening');
  const plain = plaintextWarning(mode.enabled, settings.server.host, settings.server.trustProxy);
  if (plain) log.warn({ host: settings.server.host }, plain);
  live.startHeartbeat({ node: NODE_ID, worker: opts.worker ?? 0, url }, () => hub.sessionsByEngine());
  pool.start(settings.storage.poolSweepS);
  hub.start();
  const janitor = new Janitor(storage.mongo.primary, files, storage.redis, leases, prefix, log, settings.storage.janitorLagS * 1000, settings.storage.janitorPageSize, settings.storage.janitorMaxPerPass);
  const janitorMs = settings.storage.janitorIntervalS * 1000;
  const janitorTimer = setInterval(() => {
    // The turn lasts a little less than the interval, so timer drift never skips one.
    janitor.passInTurn(Math.max(1000, janitorMs - 1000)).catch((err: Error) => log.warn({ err: err.message }, 'janitor pass failed; will retry'));
  }, janitorMs);
  janitorTimer.unref();
  const trimmer = startMallocTrim(settings.server.mallocTrimIntervalS, log, metrics);
  // One worker of a group writes the lines; every worker reports the gauge.
  const stopExpiryWatch = mode.enabled
    ? watchCertificateExpiry(servedCertificate(mode), settings.tls.expiryWarningDays, log, metrics.tlsCertificateExpiry, { logs: (opts.worker ?? 0) === 0 })
    : undefined;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      transport.stopAccepting();
      const deadline = settings.server.shutdownTimeoutS * 1000;
      pool.stop();
      clearInterval(janitorTimer);
      trimmer?.stop();
      stopExpiryWatch?.();
      await hub.shutdown(deadline);
      if (inflight.count > 0) {
        log.info({ inflight: inflight.count }, 'waiting for in-flight requests');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadline);
          inflight.idle.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      transport.closeAll();
      await live.stopHeartbeat(NODE_ID);
      bus.close();
      await storage.close();
      if (ownSeeds) removeSeedCacheDir(ownSeeds);
      hub.clientLog.close();
      hub.upgradeLog.close();
      httpLog.close();
      log.info('stopped');
      unguard();
    })());

  return { port, url, storage, metrics, close };
}
