/**
 * Admission of a core upgrade (PROTOCOL §2 "Connecting"): the `Connection` header; the
 * per-address socket cap (core.maxSocketsPerAddress), checked before any lookup so a flood
 * from one host costs no database work; the engine key and optional donor token, each hashed
 * once and looked up through the failure budget (auth/failed-auth.ts) unless this process
 * already holds them as valid; room under server.maxConnections; and the reliability guard
 * (blocks, cooling-off). The transports render a refusal as the HTTP answer of the upgrade
 * (transport/core-socket.ts).
 */
import { AppError } from '../errors';
import type { Auth } from '../auth/principals';
import type { EngineKeys } from '../auth/engine-keys';
import { bearer, hashToken } from '../auth/tokens';
import type { CoreIdentity } from '../model';
import type { CoreHub } from './hub';

/** The headers of an upgrade request admission reads. */
export interface UpgradeHeaders {
  authorization?: string;
  /** `X-Donor-Token`. */
  donor?: string;
  /** `X-Forwarded-For`, honoured only from trusted proxies. */
  forwarded?: string;
  /** `Connection`; must list the `upgrade` token (RFC 6455 §4.1). */
  connection?: string;
}

/** What admission needs: the process's hub, and its key and token lookups. */
export interface AdmissionDeps {
  hub: CoreHub;
  engineKeys: EngineKeys;
  auth: Auth;
}

/**
 * Decides whether an upgrade may proceed: a valid engine key, an optional valid donor
 * token, and room under server.maxConnections. Throws the AppError to answer with.
 */
export async function authorizeCore(headers: UpgradeHeaders, deps: AdmissionDeps, remote: string): Promise<CoreIdentity> {
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
function recallCredentials(hashes: CredentialHashes, deps: Pick<AdmissionDeps, 'engineKeys' | 'auth'>): 'cached' | 'recently-valid' | undefined {
  const engine = hashes.key === undefined ? undefined : deps.engineKeys.recall(hashes.key);
  if (engine === undefined) return undefined;
  const donor = hashes.donor === undefined ? undefined : deps.auth.recallHash(hashes.donor);
  if (hashes.donor !== undefined && (donor === undefined || (donor !== 'recently-valid' && donor.role !== 'donor'))) return undefined;
  return engine === 'recently-valid' || donor === 'recently-valid' ? 'recently-valid' : 'cached';
}

async function identifyCore(hashes: CredentialHashes, deps: AdmissionDeps, remote: string): Promise<CoreIdentity> {
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

/** Refuses with 429 `rate_limited` when the address is at its socket cap; otherwise runs `identify`. */
async function admitCore<T>(hub: CoreHub, remote: string, identify: () => Promise<T>): Promise<T> {
  const max = hub.settings.core.maxSocketsPerAddress;
  if (hub.perAddress.count(remote) >= max) {
    throw new AppError('rate_limited', `At most ${max} core sockets per client address on this node`, {}, 30);
  }
  return identify();
}
