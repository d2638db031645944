/**
 * The process-wide memory budget (issue 12 item 2): every byte a client can make this
 * process hold — buffered frames in memory, core messages queued behind a slow one or still
 * arriving, request bodies being read, replies not yet sent, checkpoints being committed — is
 * counted here against one limit, so
 * RSS stays within `memory.budgetBytes` plus a fixed overhead whatever clients do.
 *
 * Refusals are cheap and local: a reservation that does not fit fails at once (the caller
 * answers `buffer_full`, 429 or closes with 1013), except a commit's, which waits its turn
 * (honest cores keep committing, just later). Spilled frames count against a disk budget.
 */
import client from 'prom-client';
import type { Settings } from '../config/settings';

/** What the bytes are held for. */
export type BudgetKind = 'frames' | 'queues' | 'bodies' | 'replies' | 'commits';

/**
 * What the transport holds and reports here (uws: natively): `partial`, core messages received
 * in part, until whole (it enforces memory.partialMessagesBytes itself); `unsent`, messages to
 * cores written but not yet taken by the kernel (memory.unsentBytes, which assign and resume
 * check).
 */
export type TransportKind = 'partial' | 'unsent';

/** Every kind the budget counts. */
export type CountedKind = BudgetKind | TransportKind;

/** The limits of a budget (from config: see {@link budgetOptions}). */
export interface BudgetOptions {
  /** Total bytes for all kinds together (memory.budgetBytes). */
  limitBytes: number;
  /** Frame bytes in memory for all streams past which frames spill (memory.spillAtBytes). */
  spillAtBytes: number;
  /** Spilled bytes on disk for all streams (memory.diskBudgetBytes). */
  diskBytes: number;
  /** Queued message bytes per core socket (memory.sessionQueueBytes). */
  sessionQueueBytes: number;
  /** Request body bytes for all requests together (memory.bodiesBytes); the whole budget when unset. */
  bodiesBytes?: number;
  /** HTTP reply bytes not yet handed to the kernel, all replies together (memory.repliesBytes); the whole budget when unset. */
  repliesBytes?: number;
}

/** The budget options from config. */
export function budgetOptions(s: Settings): BudgetOptions {
  const m = s.memory;
  return { limitBytes: m.budgetBytes, spillAtBytes: Math.min(m.spillAtBytes, m.budgetBytes), diskBytes: m.diskBudgetBytes, sessionQueueBytes: m.sessionQueueBytes, bodiesBytes: Math.min(m.bodiesBytes, m.budgetBytes), repliesBytes: Math.min(m.repliesBytes, m.budgetBytes) };
}

const KINDS: CountedKind[] = ['frames', 'queues', 'bodies', 'replies', 'commits', 'partial', 'unsent'];

/** One per process; shared by the core hub and the HTTP exchanges. */
export class MemoryBudget {
  private readonly held: Record<BudgetKind, number> = { frames: 0, queues: 0, bodies: 0, replies: 0, commits: 0 };
  private disk = 0;
  private readonly transport: Record<TransportKind, () => number> = { partial: () => 0, unsent: () => 0 };
  /** Bytes of messages to cores admitted but not yet handed to the transport (see {@link holdSend}). */
  private sending = 0;
  private readonly waiting: Array<{ bytes: number; resolve: () => void }> = [];
  private readonly refusals: client.Counter<'kind'> | undefined;

  /** @param registry where the budget's gauges and refusal counter go (the process's metrics registry) */
  constructor(readonly options: BudgetOptions, registry?: client.Registry) {
    if (!registry) return;
    const gauge: client.Gauge<'kind'> = new client.Gauge({
      name: 'coordinator_memory_budget_used_bytes',
      help: 'Bytes counted against the memory budget, by kind (frames, queues, bodies, replies, commits; partial: core messages received in part; unsent: messages to cores not yet taken by the kernel).',
      labelNames: ['kind'] as const,
      registers: [registry],
      collect: () => {
        for (const k of KINDS) gauge.set({ kind: k }, this.used(k));
      },
    });
    const opts = this.options;
    new client.Gauge({ name: 'coordinator_memory_budget_limit_bytes', help: 'The memory budget (memory.budgetBytes).', registers: [registry], collect() { this.set(opts.limitBytes); } });
    const disk = (): number => this.disk;
    new client.Gauge({ name: 'coordinator_spill_budget_used_bytes', help: 'Spilled frame bytes on disk, against memory.diskBudgetBytes.', registers: [registry], collect() { this.set(disk()); } });
    this.refusals = new client.Counter({ name: 'coordinator_memory_budget_refusals_total', help: 'Reservations refused by the memory or disk budget, by kind (frames, disk, queues, bodies, replies).', labelNames: ['kind'] as const, registers: [registry] });
  }

  /** Bytes held now, in all or of one kind. */
  used(kind?: CountedKind): number {
    if (kind === 'partial') return this.transport.partial();
    if (kind === 'unsent') return this.transport.unsent() + this.sending;
    if (kind) return this.held[kind];
    return this.held.frames + this.held.queues + this.held.bodies + this.held.replies + this.held.commits + this.transport.partial() + this.transport.unsent() + this.sending;
  }

  /**
   * Counts a large message to a core (an assignment) as unsent from before it is handed to the
   * transport, if all unsent bytes stay within `share` (memory.unsentBytes) or none are held;
   * false otherwise.
   * Admitted together, such messages would each see the count from before any was sent.
   * {@link sendDone} takes it out once the transport counts it itself.
   */
  holdSend(bytes: number, share: number): boolean {
    // One message larger than the share still goes when nothing else is held, as commits do.
    const held = this.used('unsent');
    if (held > 0 && held + bytes > share) {
      this.refusals?.inc({ kind: 'unsent' });
      return false;
    }
    this.sending += bytes;
    return true;
  }

  /** The transport has the message of {@link holdSend} (and counts it while it holds it). */
  sendDone(bytes: number): void {
    this.sending = Math.max(0, this.sending - bytes);
  }

  /**
   * Counts bytes of a kind the transport holds and bounds or reports itself: `read` returns
   * them now (called on every reservation, so cheap).
   */
  countTransport(kind: TransportKind, read: () => number): void {
    this.transport[kind] = read;
  }

  /** Spilled bytes on disk now. */
  get diskUsed(): number {
    return this.disk;
  }

  /** Takes `bytes` of `kind` if they fit; false (and counted as a refusal) otherwise. */
  tryTake(kind: Exclude<BudgetKind, 'commits'>, bytes: number): boolean {
    if (this.shareFull(kind, bytes) || this.used() + bytes > this.options.limitBytes) {
      this.refusals?.inc({ kind });
      return false;
    }
    this.held[kind] += bytes;
    return true;
  }

  /** Whether `bytes` more of a kind with its own share (bodies, replies) would pass that share. */
  private shareFull(kind: BudgetKind, bytes: number): boolean {
    const share = kind === 'bodies' ? this.options.bodiesBytes : kind === 'replies' ? this.options.repliesBytes : undefined;
    return share !== undefined && this.held[kind] + bytes > share;
  }

  /**
   * Takes `bytes` of `kind` whether or not they fit: for bytes already produced that must be
   * held anyway (the reply to a request that has had its effect), so later reservations see them.
   */
  take(kind: Exclude<BudgetKind, 'commits'>, bytes: number): void {
    this.held[kind] += bytes;
  }

  /**
   * Takes `bytes` of frames to keep in memory when the global spill threshold allows it
   * (false: spill them instead; no refusal is counted, spilling is the normal path).
   */
  tryKeepFrames(bytes: number): boolean {
    if (this.held.frames + bytes > this.options.spillAtBytes || this.used() + bytes > this.options.limitBytes) return false;
    this.held.frames += bytes;
    return true;
  }

  /** Takes `bytes` of disk for spilled frames if they fit. */
  tryTakeDisk(bytes: number): boolean {
    if (this.disk + bytes > this.options.diskBytes) {
      this.refusals?.inc({ kind: 'disk' });
      return false;
    }
    this.disk += bytes;
    return true;
  }

  /** Gives back disk bytes. */
  giveDisk(bytes: number): void {
    this.disk = Math.max(0, this.disk - bytes);
  }

  /** Gives back bytes of a kind (wakes waiting commits). */
  give(kind: BudgetKind, bytes: number): void {
    if (bytes <= 0) return;
    this.held[kind] = Math.max(0, this.held[kind] - bytes);
    this.wake();
  }

  /**
   * Counts in a core message of `bytes` that waits behind the one its socket is handling (a
   * slow commit holds the whole chain), `queued` bytes of that socket's already waiting: bounded
   * per socket by memory.sessionQueueBytes and in all by the budget. False when it does not fit
   * (the caller closes with 1013). The socket keeps its own count, a number rather than an
   * object per held session.
   */
  admitQueued(queued: number, bytes: number): boolean {
    return queued + bytes <= this.options.sessionQueueBytes && this.tryTake('queues', bytes);
  }

  /**
   * Waits until `bytes` more fit, then takes them as `commits`; resolves with the function
   * that gives them back. Waiters are served in order. A commit is let through when no other
   * commit holds bytes even if it does not fit, so a commit larger than what frames, queues
   * and bodies leave free still makes progress (the overshoot is bounded by
   * core.maxBufferBytes: size memory.budgetBytes above it).
   */
  async takeCommit(bytes: number): Promise<() => void> {
    // Taken here when it fits at once, else by wake() when its turn comes.
    if (this.waiting.length === 0 && this.commitFits(bytes)) this.held.commits += bytes;
    else await new Promise<void>((resolve) => this.waiting.push({ bytes, resolve }));
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.give('commits', bytes);
    };
  }

  private commitFits(bytes: number): boolean {
    return this.held.commits === 0 || this.used() + bytes <= this.options.limitBytes;
  }

  private wake(): void {
    while (this.waiting.length > 0 && this.commitFits(this.waiting[0]!.bytes)) {
      const w = this.waiting.shift()!;
      // Counted now, so the next waiter's check sees it.
      this.held.commits += w.bytes;
      w.resolve();
    }
  }
}
