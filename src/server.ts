/**
 * Wires one server process: config → logger, metrics, storage → routes → transport → listen.
 * No domain logic lives here.
 */
import uws from 'uWebSockets.js';
import type { Settings } from './config';
import { Router } from './http';
import { ensureIndexes } from './indexes';
import type { Logger } from './log';
import { Metrics } from './metrics';
import { systemRoutes } from './routes/system';
import { Storage } from './storage';
import { buildChainFile, tlsMode } from './tls';
import { TrustList } from './client-address';
import { serveHttp, type HttpContext } from './uws-http';
import { NODE_ID, VERSION } from './version';

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
}

/** Starts a server process. Rejects when the port cannot be bound or TLS files are unusable. */
export async function startServer(settings: Settings, log: Logger, opts: StartOptions = {}): Promise<RunningServer> {
  const mode = tlsMode(settings);
  const metrics = new Metrics();
  const storage = new Storage(settings, log);
  await storage.connect();
  ensureIndexes(storage.mongo.db).then(
    (created) => created.length > 0 && log.info({ created }, 'created missing MongoDB indexes'),
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

  const inflight = { count: 0, idle: [] as Array<() => void> };
  const ctx: HttpContext = { router, trust: new TrustList(settings.server.trustProxy), log, metrics, inflight };

  let chain: ReturnType<typeof buildChainFile> | undefined;
  let app: uws.TemplatedApp;
  if (mode.enabled) {
    chain = buildChainFile(mode);
    try {
      app = uws.SSLApp({ key_file_name: mode.key, cert_file_name: chain.file, passphrase: mode.passphrase || undefined });
    } catch (err) {
      chain.remove();
      await storage.close();
      throw new Error(`TLS setup failed for tls.cert ${mode.cert} / tls.key ${mode.key}: ${(err as Error).message}. Run 'stream-coordinator preflight' for details.`);
    }
  } else {
    app = uws.App();
  }
  app.any('/*', (res, req) => serveHttp(ctx, res, req));

  const listenSocket = await new Promise<uws.us_listen_socket | false>((resolve) => {
    app.listen(settings.server.host, settings.server.port, resolve);
  });
  if (!listenSocket) {
    chain?.remove();
    await storage.close();
    throw new Error(`cannot listen on ${settings.server.host}:${settings.server.port} (address in use or not permitted)`);
  }
  const port = uws.us_socket_local_port(listenSocket);
  const hostForUrl = settings.server.host === '0.0.0.0' || settings.server.host === '::' ? 'localhost' : settings.server.host;
  const url = `${mode.enabled ? 'https' : 'http'}://${hostForUrl.includes(':') ? `[${hostForUrl}]` : hostForUrl}:${port}`;
  log.info({ url, tls: mode.enabled, worker: opts.worker ?? 0, node: NODE_ID }, 'listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      uws.us_listen_socket_close(listenSocket);
      const deadline = settings.server.shutdownTimeoutS * 1000;
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
      app.close();
      await storage.close();
      chain?.remove();
      log.info('stopped');
    })());

  return { port, url, storage, metrics, close };
}
