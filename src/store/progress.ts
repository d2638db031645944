/**
 * Committed frames and commits per target, counted as they happen, for rates over time (the
 * dashboard's frames/s and commits/s). The live view (live.ts) holds only the streams active
 * now, so progress made by a stream that was assigned and ended between two polls of it was
 * invisible there: with short assignments most of it. These counters only grow; a reader
 * takes the difference between two reads.
 *
 * One hash per target, `<prefix>{t:<target>}:progress` (`frames`, `commits`, `owner`), in the
 * target's Redis Cluster slot, and the set of targets that have one, `<prefix>progress`
 * (not the pool's target set, which a target leaves while it has nothing queued). Commits of
 * one turn of the event loop go out as one MULTI per target. Like the live view it can be
 * lost with Redis: a reader then sees the counts drop and starts again from there.
 */
import type { RedisClient } from './redis';
import { SharedAnswer } from './shared-answer';
import { targetKeys } from './target-keys';
import { TurnBatch } from './turn-batch';

/** A target's counts since its first commit (or since Redis last lost them). */
export interface TargetProgress {
  target_id: string;
  owner: string;
  /** Frames committed. */
  frames: number;
  /** Commits (checkpoints that committed frames). */
  commits: number;
}

/** Targets whose counts one read takes at a time. */
const READ_BATCH = 100;

/** Every target's counts, and when they were read. */
export interface ProgressRead {
  /** When the counts were read (ms since the epoch): rates divide by the time between reads, not between polls of a cached answer. */
  at: number;
  targets: TargetProgress[];
}

/** Writer and reader of the per-target counters. */
export class ProgressCounters {
  /** Counts waiting for the next batched write, by target. */
  private readonly batch = new TurnBatch<TargetProgress>(async (counts) => {
    await Promise.all([...counts.values()].map((p) => this.write(p)));
  });
  private readonly shared: SharedAnswer<ProgressRead>;

  /**
   * @param cacheMs milliseconds {@link sharedAll} reuses its answer (http.activeStreamsCacheMs)
   */
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    cacheMs = 1000,
  ) {
    this.shared = new SharedAnswer(cacheMs, async () => {
      const at = Date.now();
      return { at, targets: await this.all() };
    });
  }

  /**
   * Counts one commit of `frames` frames to `targetId`. Commits of the same turn of the event
   * loop go out together; resolves once they are written.
   */
  count(targetId: string, owner: string, frames: number): Promise<void> {
    return this.batch.put(targetId, (p) => (p ? { ...p, frames: p.frames + frames, commits: p.commits + 1 } : { target_id: targetId, owner, frames, commits: 1 }));
  }

  /** Every target's counts, one read per process per `cacheMs` however many callers ask. */
  sharedAll(): Promise<ProgressRead> {
    return this.shared.get();
  }

  /** Every target's counts. */
  async all(): Promise<TargetProgress[]> {
    const targets = await this.redis.smembers(this.setKey);
    const out: TargetProgress[] = [];
    for (let i = 0; i < targets.length; i += READ_BATCH) {
      const read = await Promise.all(targets.slice(i, i + READ_BATCH).map((t) => this.redis.hgetall(this.key(t)).then((h) => ({ t, h }))));
      for (const { t, h } of read) {
        if (h.owner === undefined) continue;
        out.push({ target_id: t, owner: h.owner, frames: Number(h.frames ?? 0), commits: Number(h.commits ?? 0) });
      }
    }
    return out;
  }

  /** Drops a target's counts (the target is deleted). */
  async forget(targetId: string): Promise<void> {
    await this.redis.del(this.key(targetId));
    await this.redis.srem(this.setKey, targetId);
  }

  /** The set of targets with counts: a key of its own, outside any target's slot. */
  private get setKey(): string {
    return `${this.prefix}progress`;
  }

  private key(targetId: string): string {
    return targetKeys(this.prefix, targetId).progress;
  }

  private async write(p: TargetProgress): Promise<void> {
    const k = this.key(p.target_id);
    await Promise.all([this.redis.multi().hincrby(k, 'frames', p.frames).hincrby(k, 'commits', p.commits).hset(k, 'owner', p.owner).exec(), this.redis.sadd(this.setKey, p.target_id)]);
  }
}
