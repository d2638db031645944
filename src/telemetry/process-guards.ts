/**
 * Process-wide guard against unhandled promise rejections. Node's default ends the process
 * on one; a server holding thousands of cores must not die because some fire-and-forget
 * cleanup failed. Each rejection is logged with its stack and counted
 * (`coordinator_unhandled_rejections_total`), so the bug behind it is found and fixed, and
 * the process carries on. Uncaught exceptions are not caught here: their state is unknown.
 */
import type { Logger } from '../telemetry/log';
import type { Metrics } from './metrics';

interface Sink {
  log: Logger;
  metrics: Metrics;
}

const sinks = new Set<Sink>();
let installed = false;
let total = 0;

function onRejection(reason: unknown): void {
  total++;
  const err = reason instanceof Error ? reason : new Error(String(reason));
  for (const s of sinks) {
    s.metrics.unhandledRejections.inc();
    s.log.error({ err }, 'unhandled promise rejection (a bug: please report it); the process carries on');
  }
  if (sinks.size === 0) process.stderr.write(`unhandled promise rejection: ${err.stack ?? err.message}\n`);
}

/**
 * Installs the handler (once per process) and reports rejections to this server's log and
 * metrics until the returned function is called.
 */
export function guardProcess(log: Logger, metrics: Metrics): () => void {
  if (!installed) {
    installed = true;
    process.on('unhandledRejection', onRejection);
  }
  const sink = { log, metrics };
  sinks.add(sink);
  return () => sinks.delete(sink);
}

/** Rejections seen by this process since start. */
export function unhandledRejectionCount(): number {
  return total;
}
