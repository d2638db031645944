/**
 * Prometheus metrics (prom-client). Each process keeps its own registry; with several
 * workers, /metrics on any worker returns the sum over all of them, gathered by the
 * primary process (see workers.ts).
 */
import cluster from 'node:cluster';
import os from 'node:os';
import client from 'prom-client';
import { NODE_ID } from '../version';

/**
 * The `node` label every metric carries: this process's node id, or for a cluster worker the
 * id of its primary (`host:pid`), so the summed metrics of a worker group share one label set.
 */
export const METRICS_NODE_ID = cluster.isWorker ? `${os.hostname()}:${process.ppid}` : NODE_ID;

/** The metrics of one process. */
export class Metrics {
  readonly registry = new client.Registry();
  /** HTTP requests by method, route pattern and status. */
  readonly httpRequests = new client.Counter({
    name: 'coordinator_http_requests_total',
    help: 'HTTP requests by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  /** HTTP request duration in seconds, by method and route pattern. */
  readonly httpDuration = new client.Histogram({
    name: 'coordinator_http_request_duration_seconds',
    help: 'HTTP request duration in seconds, by method and route pattern.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  /** Open WebSocket sessions, by engine. */
  readonly openSockets = new client.Gauge({
    name: 'coordinator_open_sockets',
    help: 'Open core WebSocket sessions, by engine.',
    labelNames: ['engine'] as const,
    registers: [this.registry],
  });
  /** Failed storage operations, by backend. */
  readonly storageErrors = new client.Counter({
    name: 'coordinator_storage_errors_total',
    help: 'Storage operations that failed, by backend (mongodb, redis).',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  /** Core messages by type (and rate-limited ones). */
  readonly messages = new client.Counter({
    name: 'coordinator_core_messages_total',
    help: 'Core WebSocket messages received, by type.',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  /** Fragments waiting for the store (donors.creditMaxQueued). */
  readonly creditQueued = new client.Gauge({ name: 'coordinator_credit_queued', help: 'Fragments of ended activations waiting to be written with their donors\' credit.', registers: [this.registry] });
  /** Frames received from cores (buffered). */
  readonly framesReceived = new client.Counter({ name: 'coordinator_frames_received_total', help: 'Frames received from cores.', registers: [this.registry] });
  /** Frames committed by checkpoints. */
  readonly framesCommitted = new client.Counter({ name: 'coordinator_frames_committed_total', help: 'Frames durably committed.', registers: [this.registry] });
  /** Payload bytes of frame and checkpoint messages. */
  readonly bytesReceived = new client.Counter({ name: 'coordinator_core_bytes_received_total', help: 'Payload bytes of frame and checkpoint messages.', registers: [this.registry] });
  /** Time from assign to assignment sent. */
  readonly assignSeconds = new client.Histogram({
    name: 'coordinator_assign_duration_seconds',
    help: 'Seconds from an assign request to the assignment being sent.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  /** Assignments that read their stream from MongoDB because its Redis manifest was missing or stale. */
  readonly manifestMisses = new client.Counter({
    name: 'coordinator_assign_manifest_misses_total',
    help: 'Assignments that read the stream from MongoDB (no current manifest in Redis).',
    registers: [this.registry],
  });
  /** Seed files of assignments by where their bytes came from: the process's seed cache (`hit`) or the store (`miss`). */
  readonly seedCacheLookups = new client.Counter({
    name: 'coordinator_seed_cache_lookups_total',
    help: 'Seed files of assignments with a recorded digest, by result: hit (bytes from the seed cache) or miss (read from MongoDB).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  /**
   * Bytes of seed content the process's index names (core.seedCacheBytes). The files are the
   * server's, shared by its processes, so a worker group reports the largest index, not the sum.
   */
  readonly seedCacheBytes = new client.Gauge({
    name: 'coordinator_seed_cache_bytes',
    help: "Bytes of seed files the seed cache indexes (core.seedCacheBytes); a worker group reports its largest worker's, since the workers share the files.",
    aggregator: 'max',
    registers: [this.registry],
  });
  /**
   * When the served certificate (tls.cert) expires, by its subject; no series with TLS off.
   * Every worker serves the same file, so a worker group reports the earliest, not the sum.
   */
  readonly tlsCertificateExpiry = new client.Gauge({
    name: 'coordinator_tls_certificate_expiry_timestamp_seconds',
    help: 'Unix time (seconds) at which the served TLS certificate (tls.cert) expires, by subject; absent with TLS off. Alert well before it: clients refuse an expired certificate.',
    labelNames: ['subject'] as const,
    aggregator: 'min',
    registers: [this.registry],
  });
  /** Assign requests whose core hung up before the assignment was sent (a leased stream went straight back to the pool). */
  readonly assignAbandoned = new client.Counter({
    name: 'coordinator_assign_abandoned_total',
    help: 'Assign requests dropped because the core closed its socket before the assignment was sent.',
    registers: [this.registry],
  });
  /** Time of a checkpoint commit. */
  readonly commitSeconds = new client.Histogram({
    name: 'coordinator_commit_duration_seconds',
    help: 'Seconds a checkpoint commit takes (partition write + conditional stream update).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  /** How long each malloc_trim call blocked the process (src/malloc-trim.ts), seconds. */
  readonly mallocTrimSeconds = new client.Histogram({
    name: 'coordinator_malloc_trim_seconds',
    help: 'Time each malloc_trim call blocked the process (server.mallocTrimIntervalS).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [this.registry],
  });

  /** Bytes of RSS the malloc_trim calls handed back (RSS before a call less after it). */
  readonly mallocTrimReleased = new client.Counter({
    name: 'coordinator_malloc_trim_released_bytes_total',
    help: 'Resident memory that malloc_trim calls handed back to the system (RSS before less after).',
    registers: [this.registry],
  });

  /** Client-caused log lines not written, past log.clientLinesPerSecond (telemetry/client-log.ts). */
  readonly logLinesSkipped = new client.Counter({
    name: 'coordinator_log_lines_skipped_total',
    help: 'Client-caused log lines not written, the process being past log.clientLinesPerSecond, by message.',
    labelNames: ['msg'] as const,
    registers: [this.registry],
  });

  /** Promise rejections nobody handled (each is a bug; the process carries on). */
  readonly unhandledRejections = new client.Counter({
    name: 'coordinator_unhandled_rejections_total',
    help: 'Promise rejections that nothing handled; logged and survived (each one is a bug).',
    registers: [this.registry],
  });

  constructor() {
    // Several nodes feed one Prometheus: each series says which node it came from.
    this.registry.setDefaultLabels({ node: METRICS_NODE_ID });
    client.collectDefaultMetrics({ register: this.registry, prefix: 'coordinator_' });
    // A series with no sample yet is absent, and a dashboard shows "no data" instead of 0.
    for (const backend of ['mongodb', 'redis']) this.storageErrors.labels(backend).inc(0);
    if (cluster.isWorker) {
      // Answers the primary's aggregation requests with this registry.
      client.AggregatorRegistry.setRegistries([this.registry]);
      new client.AggregatorRegistry();
    }
  }

  /** Content type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** This process's metrics, or the whole worker group's when running as a cluster worker. */
  async text(): Promise<string> {
    if (!cluster.isWorker || !process.send) return this.registry.metrics();
    return requestFromPrimary();
  }
}

const METRICS_REQ = 'sc:metrics-req';
const METRICS_RES = 'sc:metrics-res';
let nextRequest = 0;
const pending = new Map<number, (text: string | Error) => void>();

function requestFromPrimary(): Promise<string> {
  if (pending.size === 0) process.on('message', onPrimaryMessage);
  const id = nextRequest++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => settle(new Error('metrics aggregation timed out')), 5000);
    const settle = (v: string | Error): void => {
      clearTimeout(timer);
      pending.delete(id);
      if (pending.size === 0) process.off('message', onPrimaryMessage);
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    pending.set(id, settle);
    process.send!({ type: METRICS_REQ, id });
  });
}

function onPrimaryMessage(msg: unknown): void {
  const m = msg as { type?: string; id?: number; text?: string; error?: string };
  if (m?.type !== METRICS_RES || typeof m.id !== 'number') return;
  pending.get(m.id)?.(m.error !== undefined ? new Error(m.error) : (m.text ?? ''));
}

/**
 * In the primary: answers workers' requests for the aggregated metrics of the group.
 * Call once after forking.
 */
export function serveClusterMetrics(): void {
  const aggregator = new client.AggregatorRegistry();
  cluster.on('message', (worker, msg: { type?: string; id?: number }) => {
    if (msg?.type !== METRICS_REQ) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: METRICS_RES, id: msg.id, text }),
      (err: Error) => worker.send({ type: METRICS_RES, id: msg.id, error: err.message }),
    );
  });
}
