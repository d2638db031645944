/**
 * IP addresses and CIDR ranges as configuration (server.trustProxy) and admin blocks write
 * them: one parser, and one way to match addresses against a list of them.
 */
import net from 'node:net';

/** An address or range, parsed: a bare address is its own /32 or /128. */
export interface IpRange {
  addr: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** `value` as an address or a CIDR range, or undefined when it is neither. */
export function parseRange(value: string): IpRange | undefined {
  const [addr, bits, extra] = value.split('/');
  const family = net.isIP(addr ?? '');
  if (!addr || family === 0 || extra !== undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max)) return undefined;
  return { addr, prefix: bits === undefined ? max : Number(bits), family: family === 4 ? 'ipv4' : 'ipv6' };
}

/** A matcher of the addresses and ranges among `entries` (entries that are neither are left out). */
export function rangeList(entries: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const e of entries) {
    const r = parseRange(e);
    if (r) list.addSubnet(r.addr, r.prefix, r.family);
  }
  return list;
}
