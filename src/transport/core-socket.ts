/**
 * The `/core/v1` endpoint as both transports serve it: who may upgrade (engine key, donor
 * token, room under server.maxConnections), the subprotocol, the refusal a denied upgrade
 * gets (status + JSON error body, no upgrade), connect/close logging and hub registration,
 * and the backpressure limit of a core socket. Each transport keeps only its socket glue
 * (uws-core.ts for uWebSockets.js, node-server.ts for `ws`).
 */
import { STATUS_CODES } from 'node:http';
import { AppError, toAppError } from '../errors';
import { bearer, hashToken } from '../auth/tokens';
import { clientAddress } from '../http/client-address';
import { errorReply } from '../http/router';
import { CoreSession, type CoreSocket } from '../core/session';
import { admitCore } from '../core/admission';
import { SUBPROTOCOL } from '../core/protocol';
import type { Settings } from '../config/settings';
import type { CoreIdentity } from '../model';
import type { TransportOptions } from './types';

export { SUBPROTOCOL } from '../core/protocol';

/** What the endpoint needs (the hub, key and token lookups, the proxy trust list). */
export type CoreEndpoint = TransportOptions['core'];

/** The headers of an upgrade request the endpoint reads. */
export interface UpgradeHeaders {
  authorization?: string;
  /** `X-Donor-Token`. */
  donor?: string;
  /** `X-Forwarded-For`, honoured only from trusted proxies. */
  forwarded?: string;
  /** `Connection`; must list the `upgrade` token (RFC 6455 §4.1). */
  connection?: string;
}

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

/**
 * Decides whether an upgrade may proceed: a valid engine key, an optional valid donor
 * token, and room under server.maxConnections. Throws the AppError to answer with.
 */
export async function authorizeCore(headers: UpgradeHeaders, deps: Pick<CoreEndpoint, 'engineKeys' | 'auth' | 'hub'>, remote: string): Promise<CoreIdentity> {
  if (!connectionUpgrades(headers.connection)) {
    throw new AppError('bad_request', 'A WebSocket upgrade must send "Connection: Upgrade"');
  }
  const credentials = hashCredentials(headers);
  const identify = (): Promise<CoreIdentity> => identifyCore(credentials, deps, remote);
  // Credentials this process holds as valid cost no lookup: the address's failure budget does
  // not apply. Nor to ones found valid a few minutes ago, whose cache entries have expired:
  // they are looked up, and count as a failure only if revoked since. So a NAT shared with a
  // client sending bad keys does not lock out the cores behind it that hold good ones.
  const known = recallCredentials(credentials, deps);
  const failures = deps.auth.failures;
  const lookUp = known === 'cached' ? identify : known === 'recently-valid' ? () => failures.counted(remote, identify) : () => failures.guard(remote, identify);
  const who = await admitCore(deps.hub, remote, lookUp);
  return deps.hub.guard.refuse(who);
}

/**
 * Whether a `Connection` header lists `upgrade`, as RFC 6455 requires of a handshake. Node's
 * HTTP parser never offers anything else as an upgrade, while uWS would upgrade it; checking
 * here makes both transports refuse it alike, before any lookup.
 */
function connectionUpgrades(value: string | undefined): boolean {
  return (value ?? '').split(',').some((token) => token.trim().toLowerCase() === 'upgrade');
}

/** An upgrade's credentials as their hashes (tokens.ts `hashToken`): each is hashed once per upgrade. */
interface CredentialHashes {
  /** The engine key's (`Authorization: Bearer`); undefined when none is sent. */
  key?: string;
  /** The donor token's (`X-Donor-Token`); undefined when none is sent. */
  donor?: string;
}

function hashCredentials(headers: UpgradeHeaders): CredentialHashes {
  const key = bearer(headers.authorization);
  return { ...(key ? { key: hashToken(key) } : {}), ...(headers.donor ? { donor: hashToken(headers.donor.trim()) } : {}) };
}

/**
 * What this process knows of an upgrade's credentials without a lookup: `'cached'` when the
 * engine key, and the donor token if one is sent, are cached as valid; `'recently-valid'` when
 * each is cached or was found valid in the last ten minutes; undefined otherwise.
 */
function recallCredentials(hashes: CredentialHashes, deps: Pick<CoreEndpoint, 'engineKeys' | 'auth'>): 'cached' | 'recently-valid' | undefined {
  const engine = hashes.key === undefined ? undefined : deps.engineKeys.recall(hashes.key);
  if (engine === undefined) return undefined;
  const donor = hashes.donor === undefined ? undefined : deps.auth.recallHash(hashes.donor);
  if (hashes.donor !== undefined && (donor === undefined || (donor !== 'recently-valid' && donor.role !== 'donor'))) return undefined;
  return engine === 'recently-valid' || donor === 'recently-valid' ? 'recently-valid' : 'cached';
}

async function identifyCore(hashes: CredentialHashes, deps: Pick<CoreEndpoint, 'engineKeys' | 'auth' | 'hub'>, remote: string): Promise<CoreIdentity> {
  if (hashes.key === undefined) throw new AppError('unauthorized', 'Cores authenticate with Authorization: Bearer <engine key>', { 'www-authenticate': 'Bearer' });
  const found = await deps.engineKeys.lookup(hashes.key);
  if (!found) throw new AppError('unauthorized', 'Unknown or revoked engine key', { 'www-authenticate': 'Bearer' });
  let donor: CoreIdentity['donor'];
  if (hashes.donor !== undefined) {
    const p = await deps.auth.lookup(hashes.donor);
    if (!p || p.role !== 'donor') throw new AppError('unauthorized', 'Unknown donor token');
    donor = { name: p.name, beta: p.beta === true, ...(p.donorId ? { id: p.donorId } : {}) };
  }
  if (deps.hub.size >= deps.hub.settings.server.maxConnections) {
    throw new AppError('server_busy', 'This node is at its session limit; retry later or elsewhere', {}, deps.hub.settings.server.busyRetryAfterS);
  }
  return { engine: found.engine, keyId: found.keyId, ...(donor ? { donor } : {}), remote };
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
