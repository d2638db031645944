/**
 * Open core sockets per client address (IPv4, or IPv6 /64) on this process, for
 * `core.maxSocketsPerAddress`: one host cannot take a node's whole connection budget.
 */
import { addressKey } from '../auth/address-key';

/** Counts of open sockets by address key. */
export class AddressSockets {
  private readonly counts = new Map<string, number>();
  private sum = 0;

  /** Open sockets of all addresses. */
  get total(): number {
    return this.sum;
  }

  /** Open sockets of the address's key. */
  count(address: string): number {
    return this.counts.get(addressKey(address)) ?? 0;
  }

  /** A socket of this address opened. */
  add(address: string): void {
    this.addIfUnder(address, Infinity);
  }

  /** Counts a socket of this address in if it has fewer than `max` open; false otherwise. */
  addIfUnder(address: string, max: number): boolean {
    const k = addressKey(address);
    const n = this.counts.get(k) ?? 0;
    if (n >= max) return false;
    this.counts.set(k, n + 1);
    this.sum++;
    return true;
  }

  /** A socket of this address closed. */
  remove(address: string): void {
    const k = addressKey(address);
    const had = this.counts.get(k);
    if (had === undefined) return;
    this.sum--;
    if (had > 1) this.counts.set(k, had - 1);
    else this.counts.delete(k);
  }
}
