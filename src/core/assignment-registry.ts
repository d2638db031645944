/**
 * The hub's stream → session registry, counting assignments per engine key and per donor as
 * it goes, so `core.maxAssignmentsPerKey` and `core.maxAssignmentsPerDonor` are checked in
 * O(1) at assign time: one donor (or one leaked key) cannot lease every public stream.
 *
 * Counted per process: the counts die with the process, so a crash can never leave a donor
 * locked out (a Redis counter would need its own lease-like expiry), and the check costs no
 * round trip on the assign path. The caps therefore hold per node: a deployment of N nodes
 * lets a donor hold up to N × the cap (docs/security.md).
 *
 * A stream whose socket closed stays leased for a resume (core.resumeGraceS): it counts as
 * "parked" here until it is resumed in this process or the grace period ends, so hanging up
 * and assigning again cannot hold more streams than the caps. Resumed on another node, it
 * is counted there too until the grace period ends here (erring strict for those seconds).
 */
import type { CoreIdentity } from '../model';
import type { CoreSession } from './session';
import { MessageError } from '../errors';

/** How often parked streams whose grace period ended stop counting (ms). */
const PARK_SWEEP_MS = 1000;

function bump(m: Map<string, number>, k: string, by: number): void {
  const n = (m.get(k) ?? 0) + by;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}

/** Streams held by this process's sessions, with per-key and per-donor counts (parked streams included). */
export class AssignmentRegistry extends Map<string, CoreSession> {
  private readonly perKey = new Map<string, number>();
  private readonly perDonor = new Map<string, number>();
  /**
   * Streams whose socket closed, kept for a resume: whose they were, and the end of their
   * grace period (performance.now() ms). In the order they were parked, which with one grace
   * period for all is the order they end in: a sweep takes them from the front.
   */
  private readonly parked = new Map<string, { who: CoreIdentity; until: number }>();
  private sweeper: NodeJS.Timeout | undefined;

  override set(stream: string, session: CoreSession): this {
    this.unpark(stream);
    const prev = super.get(stream);
    if (prev) this.count(prev.who, -1);
    super.set(stream, session);
    this.count(session.who, 1);
    return this;
  }

  /**
   * Counts `stream` for `who` while it waits `graceMs` for a resume. Called before the holding
   * session lets go of it, so the counts never dip in between.
   */
  park(stream: string, who: CoreIdentity, graceMs: number): void {
    this.unpark(stream);
    this.parked.set(stream, { who, until: performance.now() + graceMs });
    this.count(who, 1);
    // One timer for all (a timer each would cost ~230 bytes per parked stream).
    this.sweeper ??= setInterval(() => this.sweep(), PARK_SWEEP_MS).unref();
  }

  /** Stops counting a parked stream (resumed here, its lease gone, or its grace period over). */
  unpark(stream: string): void {
    const p = this.parked.get(stream);
    if (!p) return;
    this.parked.delete(stream);
    this.count(p.who, -1);
  }

  /** Unparks the streams whose grace period has ended; stops when none is left. */
  private sweep(): void {
    const now = performance.now();
    for (const [stream, p] of this.parked) {
      // A shorter grace (a detach that failed) may sit behind a longer one: it waits for it.
      if (p.until > now) break;
      this.unpark(stream);
    }
    if (this.parked.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  override delete(stream: string): boolean {
    const prev = super.get(stream);
    if (prev) this.count(prev.who, -1);
    return super.delete(stream);
  }

  override clear(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.parked.clear();
    this.perKey.clear();
    this.perDonor.clear();
    super.clear();
  }

  /** Assignments held with this engine key / by this donor, parked ones included. */
  held(who: CoreIdentity): { key: number; donor: number } {
    return { key: this.perKey.get(who.keyId) ?? 0, donor: who.donor ? (this.perDonor.get(who.donor.name) ?? 0) : 0 };
  }

  /**
   * Throws `rate_limited` (with retry_after_s) when the core's key or donor is at its cap.
   * `resuming`: the stream a resume asks for, which is not counted against it when it is
   * already counted for the same key or donor (parked, or held by its old socket).
   */
  admit(who: CoreIdentity, caps: { perKey: number; perDonor: number; retryAfterS: number }, requestId: number, resuming?: string): void {
    const h = this.held(who);
    const own = resuming === undefined ? undefined : (this.parked.get(resuming)?.who ?? super.get(resuming)?.who);
    const key = h.key - (own?.keyId === who.keyId ? 1 : 0);
    const donor = h.donor - (own?.donor && own.donor.name === who.donor?.name ? 1 : 0);
    if (key >= caps.perKey) {
      throw new MessageError(requestId, 'rate_limited', `This engine key already holds ${key} streams on this node, counting those kept for a resume (core.maxAssignmentsPerKey)`, { retry_after_s: caps.retryAfterS });
    }
    if (who.donor && donor >= caps.perDonor) {
      throw new MessageError(requestId, 'rate_limited', `Donor ${who.donor.name} already holds ${donor} streams on this node, counting those kept for a resume (core.maxAssignmentsPerDonor)`, { retry_after_s: caps.retryAfterS });
    }
  }

  private count(who: CoreIdentity, by: number): void {
    bump(this.perKey, who.keyId, by);
    if (who.donor) bump(this.perDonor, who.donor.name, by);
  }
}
