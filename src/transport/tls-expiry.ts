/**
 * The served certificate's expiry while the server runs. Preflight refuses to start with an
 * expired certificate, but a process runs for months: without this, the first sign of a
 * renewal that failed is every client refusing the handshake.
 */
import type { Gauge } from 'prom-client';
import type { Logger } from '../telemetry/log';
import type { ServedCertificate } from './tls';

const DAY_MS = 86_400_000;
/** Twice a day: a warning shows within half a day of crossing tls.expiryWarningDays. */
const JUDGE_EVERY_MS = DAY_MS / 2;

/**
 * Sets the expiry gauge and judges the days left now and every 12 hours (`everyMs`, for
 * tests): a warning from `warningDays` before the end, an error once expired. Only `logs`
 * processes write the lines (one per worker group is enough); all set the gauge. Returns the
 * stop function.
 */
export function watchCertificateExpiry(
  served: ServedCertificate,
  warningDays: number,
  log: Logger,
  gauge: Gauge<'subject'>,
  opts: { logs?: boolean; now?: () => number; everyMs?: number } = {},
): () => void {
  gauge.set({ subject: served.subject }, served.notAfter.getTime() / 1000);
  if (opts.logs === false) return () => undefined;
  const now = opts.now ?? Date.now;
  const notAfter = served.notAfter.toISOString();
  const judge = (): void => {
    const left = served.notAfter.getTime() - now();
    if (left <= 0) log.error({ subject: served.subject, notAfter }, 'the TLS certificate (tls.cert) has expired: clients refuse every connection; renew it and restart');
    else if (left < warningDays * DAY_MS) log.warn({ subject: served.subject, notAfter, daysLeft: Math.floor(left / DAY_MS) }, 'the TLS certificate (tls.cert) expires soon; renew it and restart');
  };
  judge();
  const timer = setInterval(judge, opts.everyMs ?? JUDGE_EVERY_MS).unref();
  return () => clearInterval(timer);
}
