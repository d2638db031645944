/**
 * Admin blocks of a donor, an engine key or a client address range, in the MongoDB `blocks`
 * collection (this module is its only reader and writer). MongoDB is the truth; every
 * process caches the whole list (see core/blocklist.ts), reloaded on the `blocks.changed`
 * bus event and by a periodic sweep.
 */
import type { Db } from 'mongodb';
import { AppError } from '../errors';
import { newId, type BlockDoc, type BlockKind } from '../model';
import { parseRange } from '../ip-ranges';

export type { BlockDoc, BlockKind } from '../model';

/**
 * Canonical CIDR of an address or range (a bare address is a /32 or /128). Throws
 * `bad_request` for anything else, so the cache never meets a range it cannot load.
 */
export function canonicalRange(value: string): string {
  const r = parseRange(value.trim());
  if (!r) throw new AppError('bad_request', `"${value}" is not an IP address or CIDR range`);
  return `${r.addr.toLowerCase()}/${r.prefix}`;
}

/** The `blocks` collection. */
export class BlockStore {
  /** @param maxTimeMS server-side time limit of its reads (mongodb.opTimeoutMs) */
  constructor(private readonly db: Db, private readonly maxTimeMS: number) {}

  private get col() {
    return this.db.collection<BlockDoc>('blocks');
  }

  /** Every block (the list is small: an admin tool, not a reputation database). */
  all(): Promise<BlockDoc[]> {
    return this.col.find({}, { sort: { createdAt: 1 }, maxTimeMS: this.maxTimeMS }).toArray();
  }

  /** Adds a block, or returns the existing one for the same kind and value. */
  async add(kind: BlockKind, value: string, reason: string, by: string): Promise<{ block: BlockDoc; created: boolean }> {
    const v = kind === 'address' ? canonicalRange(value) : value;
    const existing = await this.col.findOne({ kind, value: v });
    if (existing) return { block: existing, created: false };
    const block: BlockDoc = { _id: newId(), kind, value: v, reason, createdAt: new Date(), createdBy: by };
    try {
      await this.col.insertOne(block);
    } catch (err) {
      // A concurrent request blocked the same thing first (unique kind + value).
      const winner = (err as { code?: number }).code === 11000 ? await this.col.findOne({ kind, value: v }) : null;
      if (!winner) throw err;
      return { block: winner, created: false };
    }
    return { block, created: true };
  }

  /** Removes a block; false when there was none. */
  async remove(id: string): Promise<boolean> {
    return (await this.col.deleteOne({ _id: id })).deletedCount === 1;
  }
}
