/**
 * Durability of the commit path from config: write concern `majority` with journal by
 * default (an acknowledged commit must survive a replica-set failover; w:1 can be rolled
 * back), and a server-side time limit on each operation so a slow write fails rather than
 * landing after the janitor has judged its partition abandoned. FerretDB accepts both on a
 * standalone server (there the majority is the one server).
 */
import type { Settings } from '../config/settings';
import type { Durability } from './files';

/** The commit path's durability options. */
export function commitDurability(s: Settings): Durability {
  const w = s.mongodb.commitWriteConcern;
  return {
    writeConcern: { w: w === 'majority' ? 'majority' : Number(w), journal: s.mongodb.commitJournal },
    maxTimeMS: s.mongodb.opTimeoutMs,
  };
}
