/**
 * Client addresses behind proxies. X-Forwarded-For is believed only when the TCP peer is
 * in `server.trustProxy`; then the hops are read right to left and the first address that
 * is not itself a trusted proxy is the client. Anything else could be forged by the client.
 */
import net from 'node:net';
import { rangeList } from '../ip-ranges';

/** Normalises a textual address: IPv4-mapped IPv6 becomes plain IPv4, IPv6 is lower-cased. */
export function normalizeAddress(addr: string): string {
  const a = addr.trim().toLowerCase();
  const mapped = /^(?:0{0,4}:){5}ffff:(\d+\.\d+\.\d+\.\d+)$|^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return (mapped[1] ?? mapped[2])!;
  const hexMapped = /^(?:0{1,4}:){5}ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (hexMapped) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return a;
}

/** A compiled list of trusted proxy addresses and ranges. */
export class TrustList {
  private readonly list: net.BlockList;
  readonly empty: boolean;

  /** @param entries IP addresses or CIDR ranges (validated by the config schema). */
  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    this.list = rangeList(entries);
  }

  /** Whether an address is a trusted proxy. */
  has(addr: string): boolean {
    if (this.empty) return false;
    const a = normalizeAddress(addr);
    const type = net.isIPv6(a) ? 'ipv6' : net.isIPv4(a) ? 'ipv4' : undefined;
    return type !== undefined && this.list.check(a, type);
  }
}

/**
 * The client address of a request.
 * @param peer address of the TCP peer
 * @param forwardedFor the X-Forwarded-For header, or '' when absent
 */
export function clientAddress(trust: TrustList, peer: string, forwardedFor: string): string {
  const p = normalizeAddress(peer);
  if (!forwardedFor || !trust.has(p)) return p;
  const hops = forwardedFor.split(',').map((h) => normalizeAddress(h)).filter((h) => net.isIP(h) !== 0);
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!trust.has(hops[i]!)) return hops[i]!;
  }
  return hops[0] ?? p;
}
