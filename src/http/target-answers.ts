/**
 * Answers about one target that a process may reuse for a while (the target view, the
 * stream list's total): counting a target's streams reads all of its index entries (57 ms
 * at 100,000 streams on the embedded store), and dashboards ask the same again and again.
 */
import type { Bus } from '../store/bus';

/** Buckets of {@link TargetAnswers}' change counts (a power of two). */
const CHANGE_BUCKETS = 256;

/** The change bucket of a target id (FNV-1a over its UTF-16 code units). */
function bucketOf(targetId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < targetId.length; i++) h = Math.imul(h ^ targetId.charCodeAt(i), 0x01000193);
  return h & (CHANGE_BUCKETS - 1);
}

/**
 * A per-process cache by target id. An entry lives `ttlMs`, and is dropped at once when the
 * bus says the target changed or a stream was created, deleted, stopped or started in it
 * (`target.changed`, `target.streams`), so it lags only by a missed bus message or a change
 * that publishes none; at most `maxEntries`, the oldest dropped first, and expired ones
 * as new ones come. An answer is kept only if no change to its target arrived while it was
 * computed (see {@link TargetAnswers.since}). Callers that miss while an answer is being
 * computed wait for it rather than compute their own, so a burst of requests for a target
 * costs one computation; the computation must therefore not depend on who asks.
 */
export class TargetAnswers<V> {
  /** In insertion order, which is expiry order (one ttl for all; a re-set moves to the end). */
  private readonly entries = new Map<string, { value: V; expires: number }>();
  /** Computations running, by target; a change to the target drops its entry, so later callers start afresh. */
  private readonly running = new Map<string, Promise<V>>();
  /**
   * Changes seen so far, counted in buckets by target id: a bounded stand-in for a count per
   * target, so a burst of changes to other targets (a bulk import) seldom keeps this one's
   * answers from being kept.
   */
  private readonly changes = new Uint32Array(CHANGE_BUCKETS);

  constructor(bus: Bus, private readonly ttlMs: number, private readonly maxEntries: number) {
    const drop = ({ targetId }: { targetId: string }): void => {
      if (targetId === '*') {
        for (let i = 0; i < CHANGE_BUCKETS; i++) this.changes[i]!++;
        this.entries.clear();
        this.running.clear();
      } else {
        this.changes[bucketOf(targetId)]!++;
        this.entries.delete(targetId);
        this.running.delete(targetId);
      }
    };
    bus.on('target.changed', drop);
    bus.on('target.streams', drop);
  }

  /** Answers held now (live or not yet swept). */
  get size(): number {
    return this.entries.size;
  }

  /** The live answer for the target, if any. */
  get(targetId: string): V | undefined {
    const hit = this.entries.get(targetId);
    if (!hit) return undefined;
    if (hit.expires > Date.now()) return hit.value;
    this.entries.delete(targetId);
    return undefined;
  }

  /**
   * The target's live answer, else `compute()`'s, kept (see {@link TargetAnswers.set}). A
   * failed computation keeps nothing.
   */
  answer(targetId: string, compute: () => Promise<V>): Promise<V> {
    const hit = this.get(targetId);
    if (hit !== undefined) return Promise.resolve(hit);
    const joined = this.running.get(targetId);
    if (joined) return joined;
    const mark = this.since(targetId);
    const run = compute().then(
      (value) => {
        this.set(targetId, value, mark);
        return value;
      },
    );
    this.running.set(targetId, run);
    const done = (): void => {
      if (this.running.get(targetId) === run) this.running.delete(targetId);
    };
    run.then(done, done);
    return run;
  }

  /** A mark to take before computing the target's answer, and to hand to {@link TargetAnswers.set}. */
  since(targetId: string): number {
    return this.changes[bucketOf(targetId)]!;
  }

  /**
   * Keeps an answer computed after `since(targetId)` returned `mark`, unless a change to the
   * target arrived meanwhile: the answer may have been read before that change, and would
   * then be kept stale.
   */
  set(targetId: string, value: V, mark: number): void {
    if (mark !== this.changes[bucketOf(targetId)]) return;
    const now = Date.now();
    this.entries.delete(targetId);
    // Expired answers would otherwise stay until their target is asked for again.
    for (const [id, e] of this.entries) {
      if (e.expires > now) break;
      this.entries.delete(id);
    }
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(targetId, { value, expires: now + this.ttlMs });
  }
}
