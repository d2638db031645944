/**
 * Who is calling: bearer tokens of users (admin, manager) and donors, looked up by their
 * SHA-256 hash. Results are cached per process for `auth.cacheTtlS`; a rotation, deletion
 * or role change publishes the old hash on the bus so every process drops it at once.
 */
import type { Db, ObjectId } from 'mongodb';
import type { Bus } from '../store/bus';
import { AppError } from '../errors';
import type { Role } from '../http/api-schemas';
import { bearer, hashToken } from './tokens';
import { FailedAuth } from './failed-auth';
import { CredentialCache } from './credential-cache';
import { donorByTokenHash } from '../store/donors';
import { userByTokenHash } from '../store/users';

/** Roles (PROTOCOL §3), as the API's schemas name them. */
export type { Role };

/** An authenticated caller. */
export interface Principal {
  role: Role;
  name: string;
  /** Donors only: may receive `beta` targets. */
  beta?: boolean;
  /** Donors only: the donor document's `_id`. */
  donorId?: ObjectId;
}

/** Token authentication with a short-lived, bus-invalidated cache. */
export class Auth {
  /** Principals by token hash (auth.cacheTtlS, auth.cacheMaxEntries); rotation and removal forget them. */
  private readonly principals: CredentialCache<Principal>;
  /** Failed authentications per client address (HTTP tokens and core upgrades share it). */
  readonly failures: FailedAuth;

  /**
   * @param ttlMs how long a lookup (found or not) is reused
   * @param maxEntries bound of the lookup cache, and of the addresses the failure budget tracks; the oldest entries go first
   * @param failuresPerMinute failed authentications allowed per client address per minute (auth.failuresPerMinute)
   */
  constructor(private readonly db: Db, private readonly bus: Bus, ttlMs: number, maxEntries: number, failuresPerMinute = 30) {
    this.failures = new FailedAuth(failuresPerMinute, maxEntries);
    this.principals = new CredentialCache({ ttlMs, maxEntries, load: (h) => this.load(h), remembered: () => true as const });
    bus.on('auth.invalidate', ({ tokenHash }) => this.principals.invalidate(tokenHash));
  }

  /**
   * The caller of a request. No Authorization header: undefined. A malformed, unknown or
   * revoked token: `unauthorized` (even on routes open to anyone, so a client learns its token is bad).
   */
  async fromHeader(header: string | undefined): Promise<Principal | undefined> {
    if (header === undefined || header === '') return undefined;
    const token = bearer(header);
    if (!token) throw new AppError('unauthorized', 'Authorization must be "Bearer <token>"', { 'www-authenticate': 'Bearer' });
    const principal = await this.lookup(hashToken(token));
    if (!principal) throw new AppError('unauthorized', 'Unknown or revoked token', { 'www-authenticate': 'Bearer' });
    return principal;
  }

  /**
   * What this process already knows of the header's token, without a lookup (one hash): its
   * principal when cached as valid; `'recently-valid'` when it was found valid in the last ten
   * minutes and not rotated or removed since, so its lookup is expected to succeed (an address
   * past its failure budget may still make it: only a token someone already had passes this);
   * undefined otherwise, a malformed header included.
   */
  recall(header: string): Principal | 'recently-valid' | undefined {
    const token = bearer(header);
    return token ? this.recallHash(hashToken(token)) : undefined;
  }

  /** {@link recall} for a token hash. */
  recallHash(tokenHash: string): Principal | 'recently-valid' | undefined {
    return this.principals.recall(tokenHash);
  }

  /** Finds the principal of a token hash, through the cache. */
  lookup(tokenHash: string): Promise<Principal | null> {
    return this.principals.lookup(tokenHash);
  }

  /** Drops a token hash from every process's cache. */
  async invalidate(tokenHash: string): Promise<void> {
    await this.bus.publish('auth.invalidate', { tokenHash });
  }

  private async load(tokenHash: string): Promise<Principal | null> {
    const user = await userByTokenHash(this.db, tokenHash);
    if (user) return { role: user.role, name: user.name };
    const donor = await donorByTokenHash(this.db, tokenHash);
    if (donor) return { role: 'donor', name: donor.name, beta: donor.beta === true, donorId: donor._id };
    return null;
  }
}
