/**
 * Admission of a core upgrade beyond its credentials: the per-address socket cap
 * (core.maxSocketsPerAddress), checked before the key lookup so a flood from one host costs
 * no database work. Failed-authentication limits are applied by the caller (auth/failed-auth.ts).
 */
import { AppError } from '../errors';
import type { CoreHub } from './hub';

/** Refuses with 429 `rate_limited` when the address is at its socket cap; otherwise runs `identify`. */
export async function admitCore<T>(hub: CoreHub, remote: string, identify: () => Promise<T>): Promise<T> {
  const max = hub.settings.core.maxSocketsPerAddress;
  if (hub.perAddress.count(remote) >= max) {
    throw new AppError('rate_limited', `At most ${max} core sockets per client address on this node`, {}, 30);
  }
  return identify();
}
