/**
 * Engine-key authentication of cores at upgrade: the presented key's hash (hashed once per
 * upgrade, by the caller) is looked up through a short cache that revocation clears on every
 * process (the bus carries the hash).
 */
import type { Db } from 'mongodb';
import type { Bus } from '../store/bus';
import { findLiveEngineKey } from '../store/engine-keys';
import { CredentialCache } from './credential-cache';

/** A valid engine key. */
export interface EngineKey {
  keyId: string;
  engine: string;
}

/** Cached engine-key lookups. */
export class EngineKeys {
  /** Keys by hash (auth.cacheTtlS, auth.cacheMaxEntries), remembered with their key id for revocation. */
  private readonly keys: CredentialCache<EngineKey, string>;

  constructor(private readonly db: Db, bus: Bus, ttlMs: number, maxEntries: number) {
    this.keys = new CredentialCache({ ttlMs, maxEntries, load: (h) => this.load(h), remembered: (k) => k.keyId });
    bus.on('auth.invalidate', ({ tokenHash }) => this.keys.invalidate(tokenHash));
    bus.on('engine-key.revoked', ({ keyId }) => this.keys.forgetWhere((id) => id === keyId));
  }

  /**
   * What this process already knows of a key, by its hash (tokens.ts `hashToken`), without a
   * lookup: the key when cached as valid; `'recently-valid'` when it was found valid in the
   * last ten minutes and not revoked since, so its lookup is expected to succeed; undefined
   * otherwise.
   */
  recall(h: string): EngineKey | 'recently-valid' | undefined {
    return this.keys.recall(h);
  }

  /** The id and engine of the key with hash `h`, or null when unknown or revoked. */
  lookup(h: string): Promise<EngineKey | null> {
    return this.keys.lookup(h);
  }

  private async load(h: string): Promise<EngineKey | null> {
    const doc = await findLiveEngineKey(this.db, h);
    return doc ? { keyId: doc._id, engine: doc.engine } : null;
  }
}
