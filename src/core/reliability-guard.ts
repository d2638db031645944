/**
 * Reliability records and admin blocks as one process applies them to its cores.
 *
 * Hot path without store round trips: events are tallied in memory and written to Redis in
 * one pipeline per record every `reliability.refreshMs`; the same background pass re-reads
 * the records of the donors and addresses connected here and keeps their cooling-off state
 * in a local cache, which `admit` consults at assignment time. A donor can therefore get up
 * to one refresh interval of assignments past the threshold, which is fine for a measure
 * that is statistical anyway. Blocks are matched against {@link Blocklist}, reloaded on the
 * bus, so they act on every node within a second.
 */
import type { Bus } from '../store/bus';
import { AppError, CLOSES, MessageError } from '../errors';
import type { CoreIdentity } from '../model';
import { addressKey } from '../auth/address-key';
import { zero, type Counts, type RecordKind, type ReliabilityEvent, type ReliabilityStore } from '../store/reliability';
import type { BlockDoc, BlockStore } from '../store/blocks';
import type { Logger } from '../telemetry/log';
import { Blocklist } from './blocklist';

/** A tracked session: its identity and how to close its socket. */
interface Tracked {
  who: CoreIdentity;
}
interface Closer {
  close(code: number, reason: string): void;
}

/** Every how many refresh passes all connected cores' records are re-read. */
const FULL_EVERY = 10;

/** The per-process guard. */
export class ReliabilityGuard {
  readonly blocklist: Blocklist;
  /** The process's open sessions, owned by the hub ({@link ReliabilityGuard.watch}): one map, not a copy per session. */
  private sessions: ReadonlyMap<Tracked, Closer> = new Map();
  private tally = new Map<string, { kind: RecordKind; id: string; counts: Counts }>();
  /** Record key (`donor:<name>` / `address:<key>`) → end of its cooling-off (ms epoch). */
  private cooling = new Map<string, number>();
  private timers: NodeJS.Timeout[] = [];
  private passing = false;
  private passes = 0;

  constructor(
    private readonly store: ReliabilityStore,
    blocks: BlockStore,
    bus: Bus,
    private readonly log: Logger,
    private readonly refreshMs: number,
  ) {
    this.blocklist = new Blocklist(blocks);
    bus.on('blocks.changed', () => void this.reload());
  }

  /** Loads the blocks, then starts the refresh pass and the block sweep (every `sweepMs`). */
  start(sweepMs: number): void {
    void this.reload();
    const every = (ms: number, fn: () => Promise<unknown>, what: string): void => {
      const t = setInterval(() => fn().catch((err: Error) => this.log.warn({ err: err.message }, `${what} failed; will retry`)), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.refreshMs, () => this.pass(), 'reliability refresh');
    every(sweepMs, () => this.reload(), 'block reload');
  }

  /** Stops the timers and writes the last tally. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.flush().catch(() => undefined);
  }

  /** The open sessions the guard closes when a block applies and whose records it re-reads (the hub's own map). */
  watch(sessions: ReadonlyMap<Tracked, Closer>): void {
    this.sessions = sessions;
  }

  /** Closes a session that just opened if a block applies to it (it raced the block). */
  opened(session: Tracked, socket: Closer): void {
    if (this.blocklist.match(session.who)) socket.close(CLOSES.blocked.code, CLOSES.blocked.reason);
  }

  /** Throws 403 `blocked` when a block applies to an upgrading core. */
  refuse<T extends CoreIdentity>(who: T): T {
    const b = this.blocklist.match(who);
    if (b) throw new AppError('blocked', blockedMessage(b));
    return who;
  }

  /** At assign time: `blocked` when blocked, `rate_limited` (retry after the rest of it) while cooling off. */
  admit(who: CoreIdentity, requestId: number): void {
    const b = this.blocklist.match(who);
    if (b) throw new MessageError(requestId, 'blocked', blockedMessage(b));
    const now = Date.now();
    for (const k of recordKeys(who)) {
      const until = this.cooling.get(`${k.kind}:${k.id}`);
      if (until !== undefined && until > now) {
        throw new MessageError(requestId, 'rate_limited', `Too many failed assignments or protocol errors from this ${k.kind === 'donor' ? 'donor' : 'client address'}; cooling off (reliability.coolingOffS)`, {
          retry_after_s: Math.ceil((until - now) / 1000),
        });
      }
    }
  }

  /** Counts an event for the core's donor and address (in memory; written by the next pass). */
  record(who: CoreIdentity, event: ReliabilityEvent): void {
    for (const k of recordKeys(who)) {
      const key = `${k.kind}:${k.id}`;
      let t = this.tally.get(key);
      if (!t) this.tally.set(key, (t = { ...k, counts: zero() }));
      t.counts[event]++;
    }
  }

  /** Reloads the blocks and closes the sessions a block now applies to. */
  async reload(): Promise<void> {
    if (!(await this.blocklist.reload())) return;
    let n = 0;
    for (const [s, socket] of this.sessions) {
      if (!this.blocklist.match(s.who)) continue;
      // The hub forgets the session when its socket reports the close.
      socket.close(CLOSES.blocked.code, CLOSES.blocked.reason);
      n++;
    }
    if (n > 0) this.log.info({ sockets: n }, 'closed the sockets of blocked cores');
  }

  /**
   * One background pass: write the tally and re-judge the records it changed. Every
   * {@link FULL_EVERY}th pass re-reads every connected core's records too, to learn of
   * cooling-offs judged on other nodes: a pass costs one pipeline per active record, not
   * one per connected core.
   */
  async pass(): Promise<void> {
    if (this.passing) return;
    this.passing = true;
    try {
      const keys = new Map<string, { kind: RecordKind; id: string }>();
      for (const [key, t] of await this.flush()) keys.set(key, t);
      if (++this.passes % FULL_EVERY === 0) {
        for (const s of this.sessions.keys()) for (const k of recordKeys(s.who)) keys.set(`${k.kind}:${k.id}`, k);
      }
      const now = Date.now();
      for (const [key, until] of this.cooling) if (until <= now) this.cooling.delete(key);
      const records = await Promise.all([...keys.values()].map((k) => this.store.read(k.kind, k.id, true)));
      for (const r of records) {
        if (r.coolingUntil) this.cooling.set(`${r.kind}:${r.id}`, r.coolingUntil);
        else this.cooling.delete(`${r.kind}:${r.id}`);
      }
    } finally {
      this.passing = false;
    }
  }

  /** Writes the tally to Redis; returns what it wrote. */
  private async flush(): Promise<Map<string, { kind: RecordKind; id: string; counts: Counts }>> {
    const batch = this.tally;
    if (batch.size === 0) return batch;
    this.tally = new Map();
    await this.store.add(batch);
    return batch;
  }
}

/** The records an identity counts towards: its donor (if any) and its address key. */
function recordKeys(who: CoreIdentity): Array<{ kind: RecordKind; id: string }> {
  const keys: Array<{ kind: RecordKind; id: string }> = [{ kind: 'address', id: addressKey(who.remote) }];
  if (who.donor) keys.push({ kind: 'donor', id: who.donor.name });
  return keys;
}

function blockedMessage(b: BlockDoc): string {
  const what = b.kind === 'donor' ? `Donor ${b.value}` : b.kind === 'engine_key' ? 'This engine key' : `Client address range ${b.value}`;
  return `${what} is blocked by an administrator${b.reason ? `: ${b.reason}` : ''}`;
}
