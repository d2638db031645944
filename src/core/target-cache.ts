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
import type { Logger } from '../telemetry/log';
import { enabledTargets, targetsByIds } from '../store/targets';
import { managerWeights } from '../store/users';

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
  /** Whether a load has installed its result: until then, uses wait for one. */
  private installed = false;
  private loading: Promise<void> | undefined;
  /** When the installed load is due to be replaced (0: now, after `*`). */
  private reloadAt = 0;
  /** `*` events so far: a load during which one came is due again at once. */
  private invalidations = 0;
  /**
   * Targets changed since they were read, with a count of the changes: a re-read installs its
   * result only if no change came while it ran, so the last change is never lost.
   */
  private readonly changed = new Map<string, number>();
  /** Targets changed while a full load ran: its read may predate the change. */
  private readonly changedWhileLoading = new Set<string>();
  private refreshing: Promise<void> | undefined;

  /**
   * @param maxAgeMs reload at least this often even without bus events, so a missed message heals itself (core.targetCacheMs)
   * @param log where a read in the background that failed is reported (the next change or use retries it)
   */
  constructor(
    private readonly db: Db,
    bus: Bus,
    private readonly maxAgeMs: number,
    private readonly log?: Logger,
  ) {
    bus.on('target.changed', ({ targetId }) => (targetId === '*' ? this.invalidate() : this.targetChanged(targetId)));
  }

  /** A read in the background failed: what is installed stays, and the next change or use tries again. */
  private readonly failed = (err: unknown): void => {
    this.log?.warn({ err: (err as Error).message }, 'target cache: reading targets failed; retried at the next change or assignment');
  };

  /** Everything is due to be read again (managers' weights changed). */
  invalidate(): void {
    this.invalidations++;
    this.reloadAt = 0;
  }

  /**
   * One target changed: it is re-read (by `_id`) at once in the background, and a use that
   * comes before that is done waits for it.
   */
  targetChanged(targetId: string): void {
    this.changed.set(targetId, (this.changed.get(targetId) ?? 0) + 1);
    if (this.loading) this.changedWhileLoading.add(targetId);
    // Before the first load there is nothing to correct: that load reads it.
    if (this.installed) this.refreshNow().catch(this.failed);
  }

  /**
   * Makes the cache usable: the first use waits for a full load; later ones use what is
   * installed while a due reload (age, or `*`) runs in the background, so an assignment never
   * waits for a read of all targets after the first, and changed targets are re-read by `_id`
   * before it goes on.
   */
  private async ensure(): Promise<void> {
    while (!this.installed) await this.reload();
    if (Date.now() >= this.reloadAt) this.reload().catch(this.failed);
    if (this.changed.size === 0) return;
    // The re-read in flight may have started before some of the changes this use must see;
    // the next one starts after them. Changes that come later do not hold this use up.
    await this.refreshNow();
    if (this.changed.size > 0) await this.refreshNow();
  }

  /** The re-read in flight, or a new one; after a successful one, the changes that came meanwhile get theirs. */
  private refreshNow(): Promise<void> {
    this.refreshing ??= this.refresh().then(
      () => {
        this.refreshing = undefined;
        if (this.changed.size > 0) this.refreshNow().catch(this.failed);
      },
      (err: unknown) => {
        this.refreshing = undefined;
        throw err;
      },
    );
    return this.refreshing;
  }

  private reload(): Promise<void> {
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /** Re-reads the changed targets in one query by `_id`; one changed again meanwhile stays marked. */
  private async refresh(): Promise<void> {
    const seen = new Map(this.changed);
    const found = await targetsByIds(this.db, [...seen.keys()]);
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
    this.changedWhileLoading.clear();
    const invalidations = this.invalidations;
    const [targets, weights] = await Promise.all([enabledTargets(this.db), managerWeights(this.db)]);
    this.targets = new Map(targets.map((t) => [t._id, cached(t)]));
    this.managerWeights = weights;
    this.installed = true;
    // A `*` that came while it ran leaves the next load due at once.
    if (this.invalidations === invalidations) this.reloadAt = Date.now() + this.maxAgeMs;
    // What changed while it ran may be older in its read than in the store: re-read by `_id`.
    for (const id of this.changedWhileLoading) this.targetChanged(id);
    this.changedWhileLoading.clear();
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
