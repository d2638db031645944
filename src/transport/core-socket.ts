/**
 * The `/core/v1` endpoint as both transports serve it: the client address of an upgrade, its
 * decision (core/admission.ts: who may upgrade), the subprotocol, the refusal a denied upgrade
 * gets (status + JSON error body, no upgrade), connect/close logging and hub registration,
 * and the backpressure limit of a core socket. Each transport keeps only its socket glue
 * (uws-core.ts for uWebSockets.js, node-server.ts for `ws`).
 */
import { STATUS_CODES } from 'node:http';
import { AppError, toAppError } from '../errors';
import { clientAddress } from '../http/client-address';
import { errorReply } from '../http/router';
import { CoreSession, type CoreSocket } from '../core/session';
import { authorizeCore, type UpgradeHeaders } from '../core/admission';
import { SUBPROTOCOL } from '../core/protocol';
import type { Settings } from '../config/settings';
import type { CoreIdentity } from '../model';
import type { TransportOptions } from './types';

export { SUBPROTOCOL } from '../core/protocol';

/** What the endpoint needs (the hub, key and token lookups, the proxy trust list). */
export type CoreEndpoint = TransportOptions['core'];


/** The HTTP answer to a refused upgrade. */
export interface Refusal {
  status: number;
  /** `<status> <reason>` for the status line. */
  statusLine: string;
  headers: Record<string, string>;
  body: string;
}

/** The outcome of an upgrade request. */
export type UpgradeDecision = { ok: true; identity: CoreIdentity } | { ok: false; refusal: Refusal; remote: string };

/** The subprotocol to echo: ours when the client offered it, else none (the client then closes). */
export function chooseSubprotocol(offered: Iterable<string>): string | undefined {
  for (const p of offered) if (p.trim() === SUBPROTOCOL) return SUBPROTOCOL;
  return undefined;
}

/**
 * Bytes of unsent replies a core socket may queue before it is dropped: a core that does
 * not read its replies is dropped rather than buffered without bound.
 */
export function maxBackpressureBytes(settings: Settings): number {
  return Math.max(settings.core.maxMessageBytes * 2, settings.core.minBackpressureBytes);
}

/** Authorizes an upgrade from `peer` (already normalized); a refusal is logged and comes with its HTTP answer. */
export async function decideUpgrade(deps: CoreEndpoint, headers: UpgradeHeaders, peer: string): Promise<UpgradeDecision> {
  const remote = clientAddress(deps.trust, peer, headers.forwarded ?? '');
  try {
    return { ok: true, identity: await authorizeCore(headers, deps, remote) };
  } catch (err) {
    const e = toAppError(err);
    if (e.code === 'internal') deps.hub.log.error({ err, remote }, 'core upgrade failed');
    deps.hub.upgradeLog.info({ remote, status: e.status, code: e.code }, 'core upgrade refused');
    return { ok: false, remote, refusal: refusalOf(e) };
  }
}

/** The HTTP answer to an upgrade refused with `e`: its status and the catalog's JSON error body. */
export function refusalOf(e: AppError): Refusal {
  const { status, headers, body } = errorReply(e);
  return { status, statusLine: `${status} ${STATUS_CODES[status] ?? 'Unknown'}`, headers: headers ?? {}, body };
}

/** A socket's session has opened: registers it with the hub, logs it and sends the welcome. */
export function openSession(deps: CoreEndpoint, socket: CoreSocket, identity: CoreIdentity): CoreSession {
  const { hub } = deps;
  const session = new CoreSession(hub, socket, identity);
  hub.add(session, socket);
  hub.clientLog.info({ session: session.id, engine: identity.engine, donor: identity.donor?.name, remote: identity.remote }, 'core connected');
  session.welcome();
  return session;
}

/** A socket closed: unregisters its session, logs it, and lets the session end its assignment (the lease waits for a resume). */
export function closeSession(deps: CoreEndpoint, session: CoreSession, code: number): void {
  deps.hub.clientLog.info({ session: session.id, code }, 'core disconnected');
  deps.hub.closed(session);
}
