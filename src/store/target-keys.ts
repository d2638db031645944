/**
 * Names of the Redis keys kept per target (docs/scaling.md §1). Every key of one target
 * carries the hash tag `{t:<target>}`, so on Redis Cluster they share one slot and one Lua
 * script may touch them all; different targets spread over the masters.
 */

/** The keys of a target, all in the target's slot. */
export interface TargetKeys {
  /** ZSET of the target's ready streams. */
  ready: string;
  /** HASH stream → lease. */
  lease: string;
  /** ZSET stream → lease expiry. */
  expiry: string;
  /** HASH stream → manifest. */
  manifest: string;
  /** HASH stream → active record (the live view of `/v1/active-streams`). */
  active: string;
  /** ZSET stream → deadline (ms) of a sweep's claim: streams of expired leases on their way back to the pool. */
  returning: string;
  /** HASH of the target's committed frames and commits so far (progress.ts). */
  progress: string;
  /** ZSET stream → end (ms) of its withdrawal mark: stopped or deleted lately, kept out of the ready set against earlier reads (lease-scripts.ts WITHDRAW). */
  withdrawn: string;
}

/**
 * The keys of a target.
 * @param prefix redis.keyPrefix (without braces, so the hash tag takes effect)
 */
export function targetKeys(prefix: string, target: string): TargetKeys {
  const tag = `${prefix}{t:${target}}`;
  return { ready: `${tag}:ready`, lease: `${tag}:lease`, expiry: `${tag}:expiry`, manifest: `${tag}:manifest`, active: `${tag}:active`, returning: `${tag}:returning`, progress: `${tag}:progress`, withdrawn: `${tag}:withdrawn` };
}

/** The SET of targets the pool has seen (what the lease sweep and the live view walk). */
export function targetsKey(prefix: string): string {
  return `${prefix}targets`;
}
