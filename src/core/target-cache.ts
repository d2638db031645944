/**
 * Which targets a core may work on (PROTOCOL §2 "Assignment"): targets whose engines
 * include the core's engine and whose stage lets this core in — public: any core; beta:
 * cores whose donor has beta; private: only when the core names the target; disabled:
 * never. Target and manager data is cached per process, so assignment costs no MongoDB
 * round trip: a change to one target (the bus names it) re-reads that target by `_id`
 * before the next use, a change of managers' weights (`*`) reloads everything, and so does
 * age (a missed bus message heals itself).
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

function cached(t: TargetDoc): CachedTarget {
  return { id: t._id, owner: t.owner, engines: new Set(t.engines), stage: t.stage, weight: t.weight, options: t.options };
}

/** Cached targets and managers' weights. */
export class TargetCache {
  private targets = new Map<string, CachedTarget>();
  private managerWeights = new Map<string, number>();
  private loaded: Promise<void> | undefined;
  private loadedAt = 0;
  /**
   * Targets changed since they were read, with a count of the changes: a re-read installs its
   * result only if no change came while it ran, so the last change is never lost.
   */
  private readonly changed = new Map<string, number>();
  private refreshing: Promise<void> | undefined;

  /** @param maxAgeMs reload at least this often even without bus events, so a missed message heals itself (core.targetCacheMs) */
  constructor(private readonly db: Db, bus: Bus, private readonly maxAgeMs: number) {
    bus.on('target.changed', ({ targetId }) => (targetId === '*' ? this.invalidate() : this.targetChanged(targetId)));
  }

  /** Bumped by every invalidation; a load that started before one does not install its result. */
  private generation = 0;

  /** Drops the cache; the next use reloads it. */
  invalidate(): void {
    this.generation++;
    this.loaded = undefined;
    this.changed.clear();
  }

  /** One target changed: the next use re-reads it (by `_id`) first. */
  targetChanged(targetId: string): void {
    this.changed.set(targetId, (this.changed.get(targetId) ?? 0) + 1);
  }

  private async ensure(): Promise<void> {
    if (this.loaded && Date.now() - this.loadedAt > this.maxAgeMs) this.invalidate();
    this.loaded ??= this.load().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    await this.loaded;
    while (this.changed.size > 0) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
      await this.refreshing;
    }
  }

  /** Re-reads the changed targets in one query by `_id`; one changed again meanwhile stays marked. */
  private async refresh(): Promise<void> {
    const generation = this.generation;
    const seen = new Map(this.changed);
    const found = await this.db.collection<TargetDoc>('targets').find({ _id: { $in: [...seen.keys()] } }).toArray();
    if (generation !== this.generation) return; // a full load replaced everything meanwhile
    const byId = new Map(found.map((t) => [t._id, t]));
    for (const [id, count] of seen) {
      if (this.changed.get(id) !== count) continue;
      this.changed.delete(id);
      const t = byId.get(id);
      if (t && t.stage !== 'disabled') this.targets.set(id, cached(t));
      else this.targets.delete(id);
    }
  }

  private async load(): Promise<void> {
    const generation = this.generation;
    const [targets, managers] = await Promise.all([
      this.db.collection<TargetDoc>('targets').find({ stage: { $ne: 'disabled' } }).toArray(),
      this.db.collection('users').find({ role: 'manager' }, { projection: { name: 1, weight: 1 } }).toArray(),
    ]);
    if (generation !== this.generation) return; // stale: the newer load installs its own result
    this.targets = new Map(targets.map((t) => [t._id, cached(t)]));
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
