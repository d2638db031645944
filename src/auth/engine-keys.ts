/**
 * Engine-key authentication of cores at upgrade: the presented key is hashed and looked up,
 * through a short cache that revocation clears on every process (the bus carries the hash).
 */
import type { Db } from 'mongodb';
import type { Bus } from '../store/bus';
import { hashToken } from './tokens';
import { findLiveEngineKey } from '../store/engine-keys';

/** A valid engine key. */
export interface EngineKey {
  keyId: string;
  engine: string;
}

/** Cached engine-key lookups. */
export class EngineKeys {
  private readonly cache = new Map<string, { key: EngineKey | null; expires: number }>();
  /**
   * Bumped by every invalidation and revocation: a lookup that started before one may have
   * read the key as valid, so its result is returned but not cached.
   */
  private generation = 0;

  constructor(private readonly db: Db, bus: Bus, private readonly ttlMs: number, private readonly maxEntries: number) {
    bus.on('auth.invalidate', ({ tokenHash }) => {
      this.generation++;
      if (tokenHash === '*') this.cache.clear();
      else this.cache.delete(tokenHash);
    });
    bus.on('engine-key.revoked', ({ keyId }) => {
      this.generation++;
      for (const [h, e] of this.cache) if (e.key?.keyId === keyId) this.cache.delete(h);
    });
  }

  /** The key, when this process has it cached as valid (no lookup); undefined otherwise. */
  known(key: string): EngineKey | undefined {
    const hit = this.cache.get(hashToken(key));
    return hit && hit.expires > Date.now() && hit.key ? hit.key : undefined;
  }

  /** The key's id and engine, or null when unknown or revoked. */
  async lookup(key: string): Promise<EngineKey | null> {
    const h = hashToken(key);
    const now = Date.now();
    const hit = this.cache.get(h);
    if (hit && hit.expires > now) return hit.key;
    const generation = this.generation;
    const doc = await findLiveEngineKey(this.db, h);
    const found = doc ? { keyId: doc._id, engine: doc.engine } : null;
    if (generation !== this.generation) return found;
    this.cache.delete(h);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(h, { key: found, expires: now + this.ttlMs });
    return found;
  }
}
