/**
 * The hub's stream → session registry, counting assignments per engine key and per donor as
 * it goes, so `core.maxAssignmentsPerKey` and `core.maxAssignmentsPerDonor` are checked in
 * O(1) at assign time: one donor (or one leaked key) cannot lease every public stream.
 *
 * Counted per process: the counts die with the process, so a crash can never leave a donor
 * locked out (a Redis counter would need its own lease-like expiry), and the check costs no
 * round trip on the assign path. The caps therefore hold per node: a deployment of N nodes
 * lets a donor hold up to N × the cap (docs/security.md).
 */
import type { CoreIdentity } from '../model';
import type { CoreSession } from './session';
import { MessageError } from '../errors';

function bump(m: Map<string, number>, k: string, by: number): void {
  const n = (m.get(k) ?? 0) + by;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}

/** Streams held by this process's sessions, with per-key and per-donor counts. */
export class AssignmentRegistry extends Map<string, CoreSession> {
  private readonly perKey = new Map<string, number>();
  private readonly perDonor = new Map<string, number>();

  override set(stream: string, session: CoreSession): this {
    const prev = super.get(stream);
    if (prev) this.count(prev.who, -1);
    super.set(stream, session);
    this.count(session.who, 1);
    return this;
  }

  override delete(stream: string): boolean {
    const prev = super.get(stream);
    if (prev) this.count(prev.who, -1);
    return super.delete(stream);
  }

  override clear(): void {
    this.perKey.clear();
    this.perDonor.clear();
    super.clear();
  }

  /** Assignments held with this engine key / by this donor. */
  held(who: CoreIdentity): { key: number; donor: number } {
    return { key: this.perKey.get(who.keyId) ?? 0, donor: who.donor ? (this.perDonor.get(who.donor.name) ?? 0) : 0 };
  }

  /** Throws `rate_limited` (with retry_after_s) when the core's key or donor is at its cap. */
  admit(who: CoreIdentity, caps: { perKey: number; perDonor: number; retryAfterS: number }, requestId: number): void {
    const h = this.held(who);
    if (h.key >= caps.perKey) {
      throw new MessageError(requestId, 'rate_limited', `This engine key already holds ${h.key} streams on this node (core.maxAssignmentsPerKey)`, { retry_after_s: caps.retryAfterS });
    }
    if (who.donor && h.donor >= caps.perDonor) {
      throw new MessageError(requestId, 'rate_limited', `Donor ${who.donor.name} already holds ${h.donor} streams on this node (core.maxAssignmentsPerDonor)`, { retry_after_s: caps.retryAfterS });
    }
  }

  private count(who: CoreIdentity, by: number): void {
    bump(this.perKey, who.keyId, by);
    if (who.donor) bump(this.perDonor, who.donor.name, by);
  }
}
