/**
 * Operational routes: liveness, readiness, Prometheus metrics and the service banner.
 */
import { AppError, ERRORS } from '../../errors';
import { json, type Router } from '../router';
import type { Metrics } from '../../telemetry/metrics';
import type { Storage } from '../../store/storage';
import { bearer, safeEqual } from '../../auth/tokens';

/** What the system routes read. */
export interface SystemDeps {
  storage: Storage;
  metrics: Metrics;
  /** `metrics.key`; empty means /metrics is open. */
  metricsKey: string;
  /** Identifies this process in the banner (node id and worker index). */
  node: { id: string; worker: number };
  version: string;
}

/** Registers `/`, `/healthz`, `/readyz` and `/metrics`. */
export function systemRoutes(router: Router, deps: SystemDeps): void {
  router.add('GET', '/', () => json(200, { service: 'stream-coordinator', version: deps.version, status: 'ok', node: deps.node.id, worker: deps.node.worker }));

  router.add('GET', '/healthz', () => json(200, { status: 'ok' }));

  router.add('GET', '/readyz', async () => {
    const r = await deps.storage.readiness();
    const ready = r.mongodb === null && r.redis === null;
    return json(ready ? 200 : 503, {
      status: ready ? 'ready' : 'unavailable',
      checks: { mongodb: r.mongodb ?? 'ok', redis: r.redis ?? 'ok' },
    }, ready ? {} : { 'retry-after': String(ERRORS.unavailable.retryAfterS) });
  });

  router.add('GET', '/metrics', async (req) => {
    if (deps.metricsKey) {
      const presented = bearer(req.headers.authorization);
      if (!presented || !safeEqual(presented, deps.metricsKey)) {
        throw new AppError('unauthorized', 'GET /metrics needs Authorization: Bearer <metrics.key>', { 'www-authenticate': 'Bearer realm="metrics"' });
      }
    }
    const text = await deps.metrics.text();
    return { status: 200, headers: { 'content-type': deps.metrics.contentType }, body: text };
  });
}
