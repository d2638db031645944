/**
 * Answers about one target that a process may reuse for a while (the target view, the
 * stream list's total): counting a target's streams reads all of its index entries (57 ms
 * at 100,000 streams on the embedded store), and dashboards ask the same again and again.
 */
import type { Bus } from '../store/bus';

/**
 * A per-process cache by target id. An entry lives `ttlMs`, and is dropped at once when the
 * bus says the target changed or a stream was created, deleted, stopped or started in it
 * (`target.changed`, `target.streams`), so it lags only by a missed bus message or a change
 * that publishes none; at most `maxEntries`, the oldest dropped first. An answer is kept
 * only if no change arrived while it was computed (see {@link TargetAnswers.since}).
 */
export class TargetAnswers<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  /** Changes seen so far (any target). */
  private changes = 0;

  constructor(bus: Bus, private readonly ttlMs: number, private readonly maxEntries: number) {
    const drop = ({ targetId }: { targetId: string }): void => {
      this.changes++;
      if (targetId === '*') this.entries.clear();
      else this.entries.delete(targetId);
    };
    bus.on('target.changed', drop);
    bus.on('target.streams', drop);
  }

  /** The live answer for the target, if any. */
  get(targetId: string): V | undefined {
    const hit = this.entries.get(targetId);
    if (!hit) return undefined;
    if (hit.expires > Date.now()) return hit.value;
    this.entries.delete(targetId);
    return undefined;
  }

  /** A mark to take before computing an answer, and to hand to {@link TargetAnswers.set}. */
  since(): number {
    return this.changes;
  }

  /**
   * Keeps an answer computed after `since()` returned `mark`, unless a change arrived
   * meanwhile: it may have been read before that change, and would then be kept stale.
   */
  set(targetId: string, value: V, mark: number): void {
    if (mark !== this.changes) return;
    this.entries.delete(targetId);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(targetId, { value, expires: Date.now() + this.ttlMs });
  }
}
