/**
 * Engine-key authentication of cores at upgrade: the presented key's hash (hashed once per
 * upgrade, by the caller) is looked up through a short cache that revocation clears on every
 * process (the bus carries the hash).
 */
import type { Db } from 'mongodb';
import type { Bus } from '../store/bus';
import { findLiveEngineKey } from '../store/engine-keys';
import { RecentlyValid } from './recently-valid';
import { SingleFlight } from './single-flight';

/** A valid engine key. */
export interface EngineKey {
  keyId: string;
  engine: string;
}

/** Cached engine-key lookups. */
export class EngineKeys {
  private readonly cache = new Map<string, { key: EngineKey | null; expires: number }>();
  /** Hashes of keys found valid in the last minutes, with their key id. */
  private readonly recentlyValid: RecentlyValid<string>;
  /** Lookups in progress by hash, shared by the upgrades that present the same key meanwhile. */
  private readonly loading = new SingleFlight<EngineKey | null>();
  /**
   * Bumped by every invalidation and revocation: a lookup that started before one may have
   * read the key as valid, so its result is returned but not cached.
   */
  private generation = 0;

  constructor(private readonly db: Db, bus: Bus, private readonly ttlMs: number, private readonly maxEntries: number) {
    this.recentlyValid = new RecentlyValid(maxEntries);
    bus.on('auth.invalidate', ({ tokenHash }) => {
      this.generation++;
      this.loading.clear();
      this.recentlyValid.forget(tokenHash);
      if (tokenHash === '*') this.cache.clear();
      else this.cache.delete(tokenHash);
    });
    bus.on('engine-key.revoked', ({ keyId }) => {
      this.generation++;
      this.loading.clear();
      for (const [h, e] of this.cache) if (e.key?.keyId === keyId) this.cache.delete(h);
      this.recentlyValid.forgetWhere((id) => id === keyId);
    });
  }

  /**
   * What this process already knows of a key, by its hash (tokens.ts `hashToken`), without a
   * lookup: the key when cached as valid; `'recently-valid'` when it was found valid in the
   * last ten minutes and not revoked since, so its lookup is expected to succeed; undefined
   * otherwise.
   */
  recall(h: string): EngineKey | 'recently-valid' | undefined {
    const hit = this.cache.get(h);
    if (hit && hit.expires > Date.now() && hit.key) return hit.key;
    return this.recentlyValid.has(h) ? 'recently-valid' : undefined;
  }

  /** The id and engine of the key with hash `h`, or null when unknown or revoked. */
  async lookup(h: string): Promise<EngineKey | null> {
    const now = Date.now();
    const hit = this.cache.get(h);
    if (hit && hit.expires > now) return hit.key;
    return this.loading.run(h, () => this.load(h, now));
  }

  private async load(h: string, now: number): Promise<EngineKey | null> {
    const generation = this.generation;
    const doc = await findLiveEngineKey(this.db, h);
    const found = doc ? { keyId: doc._id, engine: doc.engine } : null;
    if (generation !== this.generation) return found;
    if (found) this.recentlyValid.remember(h, found.keyId);
    else this.recentlyValid.forget(h);
    this.cache.delete(h);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(h, { key: found, expires: now + this.ttlMs });
    return found;
  }
}
