/**
 * Engine-key revocation on this process: the bus event closes the sockets that use the key
 * at once, a key revoked while one of its upgrades was still in flight is refused when that
 * session registers, and a sweep every `auth.cacheTtlS` catches revocations whose bus message
 * was lost (Redis down), so a revoked key never keeps a socket longer than that.
 */
import type { Db } from 'mongodb';
import type { Bus } from '../store/bus';
import { revokedEngineKeys } from '../store/engine-keys';
import type { Logger } from '../telemetry/log';

/** What the watcher needs from the hub. */
export interface RevocationTarget {
  /** Closes every session of the key; returns how many. */
  closeKey(keyId: string): number;
  /** Key ids of the open sessions. */
  keyIds(): Iterable<string>;
}

/** Watches revocations for one process. */
export class Revocations {
  /** Recently revoked key ids → when to forget them (ms epoch). */
  private readonly recent = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param rememberMs how long a revocation is remembered for late upgrades: longer than any
   *   upgrade's key lookup can take (the lookup cache TTL is the bound)
   * @param maxTimeMS server-side time limit of the sweep's query (mongodb.opTimeoutMs)
   */
  constructor(
    bus: Bus,
    private readonly db: Db,
    private readonly hub: RevocationTarget,
    private readonly log: Logger,
    private readonly rememberMs: number,
    private readonly maxTimeMS: number,
  ) {
    bus.on('engine-key.revoked', ({ keyId }) => this.revoked(keyId));
  }

  /** Whether a key was revoked recently (a session with it must not open). */
  isRevoked(keyId: string): boolean {
    const until = this.recent.get(keyId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.recent.delete(keyId);
    return false;
  }

  /** Starts the safety-net sweep (every `everyMs`). */
  start(everyMs: number): void {
    this.timer = setInterval(() => {
      this.sweep().catch((err: Error) => this.log.warn({ err: err.message }, 'revocation sweep failed; will retry'));
    }, everyMs);
    this.timer.unref();
  }

  /** Stops the sweep. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One sweep: closes sessions whose key MongoDB says is revoked. Returns the keys found revoked. */
  async sweep(): Promise<string[]> {
    const ids = [...new Set(this.hub.keyIds())];
    if (ids.length === 0) return [];
    const gone = await revokedEngineKeys(this.db, ids, this.maxTimeMS);
    for (const k of gone) this.revoked(k);
    return gone;
  }

  private revoked(keyId: string): void {
    const now = Date.now();
    for (const [k, until] of this.recent) if (until <= now) this.recent.delete(k);
    this.recent.set(keyId, now + this.rememberMs);
    const n = this.hub.closeKey(keyId);
    if (n > 0) this.log.info({ keyId, sockets: n }, 'closed the sockets of a revoked engine key');
  }
}
