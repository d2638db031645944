/**
 * This process's copy of the admin blocks (store/blocks.ts): matched in memory on every
 * upgrade and assignment, so a block costs no store round trip on the hot path. The copy is
 * reloaded whenever any process announces `blocks.changed` on the bus (under a second on
 * every node) and by a sweep every `auth.cacheTtlS`, which catches announcements lost while
 * Redis was down.
 */
import net from 'node:net';
import type { BlockDoc, BlockStore } from '../store/blocks';
import type { CoreIdentity } from '../model';
import { rangeList } from '../ip-ranges';

/** The loaded blocks, indexed for matching. */
export class Blocklist {
  private donors = new Map<string, BlockDoc>();
  private keys = new Map<string, BlockDoc>();
  private ranges: Array<{ list: net.BlockList; block: BlockDoc }> = [];
  /** Bumped by every reload request; an older load never overwrites a newer one. */
  private generation = 0;

  constructor(private readonly store: BlockStore) {}

  /** Reloads from MongoDB. Resolves true when this load became current. */
  async reload(): Promise<boolean> {
    const gen = ++this.generation;
    const all = await this.store.all();
    if (gen !== this.generation) return false;
    this.donors = new Map(all.filter((b) => b.kind === 'donor').map((b) => [b.value, b]));
    this.keys = new Map(all.filter((b) => b.kind === 'engine_key').map((b) => [b.value, b]));
    this.ranges = all
      .filter((b) => b.kind === 'address')
      .map((block) => ({ list: rangeList([block.value]), block }));
    return true;
  }

  /** The block that applies to a core, if any (donor, then key, then address). */
  match(who: CoreIdentity): BlockDoc | undefined {
    const d = who.donor ? this.donors.get(who.donor.name) : undefined;
    if (d) return d;
    const k = this.keys.get(who.keyId);
    if (k) return k;
    return this.matchAddress(who.remote);
  }

  /** The address-range block containing an address, if any. */
  matchAddress(address: string): BlockDoc | undefined {
    // Checked at every upgrade and assignment: without ranges, skip parsing the address.
    if (this.ranges.length === 0) return undefined;
    const family = net.isIPv6(address) ? 'ipv6' : net.isIPv4(address) ? 'ipv4' : undefined;
    if (!family) return undefined;
    return this.ranges.find((r) => r.list.check(address, family))?.block;
  }
}
