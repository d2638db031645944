/**
 * The unit abuse limits count per: an IPv4 address, or an IPv6 /64 (one subscriber's
 * prefix: a host gets a whole /64 and can pick any address in it, so counting full IPv6
 * addresses would give an attacker 2^64 budgets).
 */
import net from 'node:net';
import { normalizeAddress } from '../http/client-address';

/** Expands an IPv6 address to its eight hextets (no zone id). */
function hextets(addr: string): string[] | undefined {
  const a = addr.split('%')[0]!;
  let head = a;
  let tail = '';
  const dbl = a.indexOf('::');
  if (dbl >= 0) {
    head = a.slice(0, dbl);
    tail = a.slice(dbl + 2);
  }
  const h = head ? head.split(':') : [];
  let t = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 is handled by normalizeAddress; others are rare).
  const last = t.at(-1) ?? h.at(-1);
  if (last && last.includes('.')) {
    const v4 = last.split('.').map(Number);
    const pair = [((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16)];
    if (t.length > 0) t = [...t.slice(0, -1), ...pair];
    else h.splice(h.length - 1, 1, ...pair);
  }
  const fill = 8 - h.length - t.length;
  if (fill < 0 || (dbl < 0 && fill !== 0)) return undefined;
  return [...h, ...Array<string>(fill).fill('0'), ...t];
}

/** The counting key of a client address: the IPv4 address itself, or `<first 64 bits>::/64`. */
export function addressKey(address: string): string {
  const a = normalizeAddress(address);
  // Several limits ask for the key of every connection: an address without a colon is not
  // IPv6, and skips net.isIPv6's long regular expression.
  if (!a.includes(':') || !net.isIPv6(a)) return a;
  const parts = hextets(a);
  if (!parts) return a;
  return `${parts.slice(0, 4).map((p) => parseInt(p, 16).toString(16)).join(':')}::/64`;
}
