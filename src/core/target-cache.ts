/**
 * Which targets a core may work on (PROTOCOL §2 "Assignment"): targets whose engines
 * include the core's engine and whose stage lets this core in — public: any core; beta:
 * cores whose donor has beta; private: only when the core names the target; disabled:
 * never. Target and manager data is cached per process and dropped when the bus says a
 * target or a weight changed, so assignment costs no MongoDB round trip.
 */
import type { Db } from 'mongodb';
import type { Bus } from '../store/bus';
import { AppError } from '../errors';
import type { Candidate } from '../store/leases';
import type { CoreIdentity, TargetDoc } from '../model';

interface CachedTarget {
  id: string;
  owner: string;
  engines: Set<string>;
  stage: TargetDoc['stage'];
  weight: number;
  options: Record<string, unknown>;
}

/** Cached targets and managers' weights. */
export class TargetCache {
  private targets = new Map<string, CachedTarget>();
  private managerWeights = new Map<string, number>();
  private loaded: Promise<void> | undefined;
  private loadedAt = 0;

  /** @param maxAgeMs reload at least this often even without bus events, so a missed message heals itself (core.targetCacheMs) */
  constructor(private readonly db: Db, bus: Bus, private readonly maxAgeMs: number) {
    bus.on('target.changed', () => this.invalidate());
  }

  /** Bumped by every invalidation; a load that started before one does not install its result. */
  private generation = 0;

  /** Drops the cache; the next use reloads it. */
  invalidate(): void {
    this.generation++;
    this.loaded = undefined;
  }

  private async ensure(): Promise<void> {
    if (this.loaded && Date.now() - this.loadedAt > this.maxAgeMs) this.loaded = undefined;
    this.loaded ??= this.load().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    await this.loaded;
  }

  private async load(): Promise<void> {
    const generation = this.generation;
    const [targets, managers] = await Promise.all([
      this.db.collection<TargetDoc>('targets').find({ stage: { $ne: 'disabled' } }).toArray(),
      this.db.collection('users').find({ role: 'manager' }, { projection: { name: 1, weight: 1 } }).toArray(),
    ]);
    if (generation !== this.generation) return; // stale: the newer load installs its own result
    this.targets = new Map(targets.map((t) => [t._id, { id: t._id, owner: t.owner, engines: new Set(t.engines), stage: t.stage, weight: t.weight, options: t.options }]));
    this.managerWeights = new Map(managers.map((m) => [m.name as string, (m.weight as number) ?? 1]));
    this.loadedAt = Date.now();
  }

  /** A target's owner, from the cache (undefined: unknown or disabled target). */
  async owner(targetId: string): Promise<string | undefined> {
    await this.ensure();
    return this.targets.get(targetId)?.owner;
  }

  /** A target's options (for the assignment message), from the cache. */
  async options(targetId: string): Promise<Record<string, unknown>> {
    await this.ensure();
    return this.targets.get(targetId)?.options ?? {};
  }

  /**
   * The candidate targets for a core. With `targetId`, only that target, or the error that
   * explains why not (target_not_found, engine_not_allowed).
   */
  async candidates(core: CoreIdentity, targetId?: string): Promise<Candidate[]> {
    await this.ensure();
    const toCandidate = (t: CachedTarget): Candidate => ({ manager: t.owner, managerWeight: this.managerWeights.get(t.owner) ?? 1, target: t.id, targetWeight: t.weight });
    if (targetId !== undefined) {
      const t = this.targets.get(targetId);
      if (!t || (t.stage === 'beta' && core.donor?.beta !== true)) throw new AppError('target_not_found', `No target ${targetId} available to this core`);
      if (!t.engines.has(core.engine)) throw new AppError('engine_not_allowed', `Target ${targetId} does not accept engine ${core.engine}`);
      return [toCandidate(t)];
    }
    const out: Candidate[] = [];
    for (const t of this.targets.values()) {
      if (!t.engines.has(core.engine)) continue;
      if (t.stage === 'public' || (t.stage === 'beta' && core.donor?.beta === true)) out.push(toCandidate(t));
    }
    return out;
  }
}
