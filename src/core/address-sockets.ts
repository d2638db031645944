/**
 * Open core sockets per client address (IPv4, or IPv6 /64) on this process, for
 * `core.maxSocketsPerAddress`: one host cannot take a node's whole connection budget.
 */
import { addressKey } from '../auth/address-key';

/** Counts of open sockets by address key. */
export class AddressSockets {
  private readonly counts = new Map<string, number>();

  /** Open sockets of the address's key. */
  count(address: string): number {
    return this.counts.get(addressKey(address)) ?? 0;
  }

  /** A socket of this address opened. */
  add(address: string): void {
    const k = addressKey(address);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  /** A socket of this address closed. */
  remove(address: string): void {
    const k = addressKey(address);
    const n = (this.counts.get(k) ?? 1) - 1;
    if (n > 0) this.counts.set(k, n);
    else this.counts.delete(k);
  }
}
