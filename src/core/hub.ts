/**
 * The core sessions of one process: the registries (which session holds which stream, open
 * sessions by engine), batched lease renewal with the live "active streams" counts,
 * reactions to bus events (manager stops, disabled targets, revoked keys) and graceful
 * shutdown. Sessions reach it through the {@link SessionHost} interface they declare, so
 * the dependency runs one way: hub → session.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Db } from 'mongodb';
import type { TargetCache } from './target-cache';
import type { Bus } from '../store/bus';
import { workerShare, type Settings } from '../config/settings';
import type { CoreSession, SessionHost } from './session';
import { MemoryBudget, budgetOptions } from './memory-budget';
import type { FileStore } from '../store/files';
import type { Leases } from '../store/leases';
import { Limiter } from './limiter';
import type { ActiveStream, LiveState } from '../store/live';
import type { ProgressCounters } from '../store/progress';
import type { Logger } from '../telemetry/log';
import { ClientLog } from '../telemetry/client-log';
import type { Metrics } from '../telemetry/metrics';
import { Revocations } from './revocations';
import { CLOSES } from '../errors';
import { AddressSockets } from './address-sockets';
import { AssignmentRegistry } from './assignment-registry';
import { IdleAssignments } from './idle-assignments';
import { sessionClock } from './session-clock';
import type { Streams } from '../store/streams';
import type { CoreIdentity } from '../model';
import { assignmentCaps } from './limits';
import { processRunning } from './process-alive';
import { SeedCache } from './seed-cache';
import { CreditWriter } from '../store/credit';
import { FileNameCache } from '../store/name-budget';
import type { ReliabilityGuard } from './reliability-guard';

/** Everything sessions share. */
export interface CoreHubDeps {
  settings: Settings;
  db: Db;
  files: FileStore;
  leases: Leases;
  streams: Streams;
  targets: TargetCache;
  live: LiveState;
  progress: ProgressCounters;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  nodeId: string;
  /** Reliability records and admin blocks (core/reliability-guard.ts). */
  guard: ReliabilityGuard;
  /** The seed directory the server's processes share (core/seed-cache.ts); undefined when the cache is off. */
  seedCacheDir: string | undefined;
}

/** How the hub closes a session's socket. */
interface Closer {
  close(code: number, reason: string): void;
}

/** The process's core sessions. */
export class CoreHub implements SessionHost {
  readonly settings: Settings;
  readonly db: Db;
  readonly files: FileStore;
  readonly leases: Leases;
  readonly streams: Streams;
  readonly targets: TargetCache;
  readonly live: LiveState;
  /** Committed frames and commits per target. */
  readonly progress: ProgressCounters;
  readonly log: Logger;
  /** Lines cores cause (connections, assignments, closes), within log.clientLinesPerSecond. */
  readonly clientLog: ClientLog;
  /** Lines of refused upgrades, which need no key: a budget of their own (log.clientLinesPerSecond). */
  readonly upgradeLog: ClientLog;
  readonly metrics: Metrics;
  readonly nodeId: string;
  /** Directory of this process's spill files. */
  readonly spillDir: string;
  /** Commits run through this, bounded by this process's share of core.maxConcurrentCommits. */
  readonly commits: Limiter;
  /** Assignments and resumes are prepared through this, bounded by this process's share of core.maxConcurrentAssignments. */
  readonly assignments: Limiter;
  /** The process's memory budget (memory.*), shared with the HTTP exchanges. */
  readonly memory: MemoryBudget;
  /** Seed files by content (core.seedCacheBytes). */
  readonly seeds: SeedCache;
  /** The file names of recently committing streams (core.fileNameCacheNames). */
  readonly fileNames: FileNameCache;
  /** Fragments and donor credit of ended activations, by group commit (donors.credit*). */
  readonly credit: CreditWriter;
  readonly byStream = new AssignmentRegistry();
  /** The session-clock time up to which renewals have written held leases' progress into them. */
  private progressRecordedUpTo = -Infinity;
  /** Returns streams held without a commit for core.maxIdleAssignmentS to the pool. */
  readonly idle: IdleAssignments;
  private readonly sessions = new Map<CoreSession, Closer>();
  /** End-of-assignment work (lease, live view, fragment) of sessions whose socket has closed: {@link shutdown} waits for it. */
  private readonly ending = new Set<Promise<void>>();
  private readonly byEngine = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  /** Open sockets per client address (core.maxSocketsPerAddress). */
  readonly perAddress = new AddressSockets();
  /** Engine-key revocations: closes sockets on the bus event, refuses late upgrades, sweeps. */
  readonly revocations: Revocations;
  /** Reliability records and admin blocks. */
  readonly guard: ReliabilityGuard;

  constructor(d: CoreHubDeps) {
    this.settings = d.settings;
    this.db = d.db;
    this.files = d.files;
    this.leases = d.leases;
    this.streams = d.streams;
    this.targets = d.targets;
    this.live = d.live;
    this.progress = d.progress;
    this.log = d.log;
    this.clientLog = new ClientLog(d.log, d.settings.log.clientLinesPerSecond, d.metrics.logLinesSkipped, 'core');
    this.upgradeLog = new ClientLog(d.log, d.settings.log.clientLinesPerSecond, d.metrics.logLinesSkipped, 'upgrade');
    this.metrics = d.metrics;
    this.nodeId = d.nodeId;
    this.guard = d.guard;
    this.guard.watch(this.sessions);
    // Both budgets are the server's: its workers share one store, and a store given more
    // queries than it runs at once (FerretDB on SQLite hands a freed connection to a waiter
    // at random) serves some of them many times later than the rest.
    const cpus = os.availableParallelism();
    this.commits = new Limiter(workerShare(d.settings.core.maxConcurrentCommits, d.settings, cpus));
    this.assignments = new Limiter(workerShare(d.settings.core.maxConcurrentAssignments, d.settings, cpus));
    this.memory = new MemoryBudget(budgetOptions(d.settings), d.metrics.registry);
    this.seeds = new SeedCache(d.seedCacheDir, d.settings.core.seedCacheBytes, {
      hit: () => d.metrics.seedCacheLookups.inc({ result: 'hit' }),
      miss: () => d.metrics.seedCacheLookups.inc({ result: 'miss' }),
      bytes: (held) => d.metrics.seedCacheBytes.set(held),
    });
    this.fileNames = new FileNameCache(d.settings.core.fileNameCacheNames);
    this.credit = new CreditWriter(d.db, {
      batchMax: d.settings.donors.creditBatchMax,
      maxQueued: d.settings.donors.creditMaxQueued,
      onQueued: (n) => d.metrics.creditQueued.set(n),
    });
    this.spillDir = path.join(d.settings.dataDir, 'spill', String(process.pid));
    removeStaleSpills(path.join(d.settings.dataDir, 'spill'));

    d.bus.on('stream.stop', ({ streamId, reason }) => {
      void this.byStream.get(streamId)?.serverStop(reason, streamId);
    });
    this.idle = new IdleAssignments(this, d.settings.core.maxIdleAssignmentS * 1000);
    this.revocations = new Revocations(d.bus, d.db, this, d.log, Math.max(60_000, d.settings.auth.cacheTtlS * 3000), d.settings.mongodb.opTimeoutMs);
  }

  /** Number of open sessions. */
  get size(): number {
    return this.sessions.size;
  }

  /** Registers an open session. */
  add(session: CoreSession, socket: Closer): void {
    this.sessions.set(session, socket);
    this.byEngine.set(session.who.engine, (this.byEngine.get(session.who.engine) ?? 0) + 1);
    this.metrics.openSockets.inc({ engine: session.who.engine });
    this.perAddress.add(session.who.remote);
    this.guard.opened(session, socket);
    // Its key was revoked while the upgrade was in flight (after the lookup, before the open).
    if (this.revocations.isRevoked(session.who.keyId)) socket.close(CLOSES.engine_key_revoked.code, CLOSES.engine_key_revoked.reason);
  }

  /** Closes every session of an engine key (revocation); returns how many. */
  closeKey(keyId: string): number {
    let n = 0;
    for (const [session, socket] of this.sessions) {
      if (session.who.keyId !== keyId) continue;
      socket.close(CLOSES.engine_key_revoked.code, CLOSES.engine_key_revoked.reason);
      n++;
    }
    return n;
  }

  /** Engine-key ids of the open sessions (with repeats). */
  *keyIds(): Iterable<string> {
    for (const session of this.sessions.keys()) yield session.who.keyId;
  }

  /**
   * A session's socket closed: unregisters it and lets it end its assignment (the lease waits
   * for a resume, the fragment credits the donor). Storage stays open until that is done
   * ({@link shutdown}), or a shutdown just after many cores hung up would lose their credit.
   */
  closed(session: CoreSession): void {
    if (!this.sessions.delete(session)) return;
    this.perAddress.remove(session.who.remote);
    const n = (this.byEngine.get(session.who.engine) ?? 1) - 1;
    if (n > 0) this.byEngine.set(session.who.engine, n);
    else this.byEngine.delete(session.who.engine);
    this.metrics.openSockets.dec({ engine: session.who.engine });
    const done = session.onClose();
    this.ending.add(done);
    void done.then(() => this.ending.delete(done));
  }

  /** Open sessions by engine (for the node registry). */
  sessionsByEngine(): Record<string, number> {
    return Object.fromEntries(this.byEngine);
  }

  /** Records that `session` holds `streamId`; another session of this process that held it forgets it. */
  claim(streamId: string, session: CoreSession): void {
    const before = this.byStream.get(streamId);
    if (before === session) return;
    before?.forget();
    this.byStream.set(streamId, session);
  }

  /** Records that `session` no longer holds `streamId` (no-op when another session claimed it since). */
  release(streamId: string, session: CoreSession): void {
    if (this.byStream.get(streamId) === session) this.byStream.delete(streamId);
  }

  /** {@link SessionHost.park}. */
  park(streamId: string, who: CoreIdentity, graceMs = this.settings.core.resumeGraceS * 1000): void {
    this.byStream.park(streamId, who, graceMs);
  }

  /** {@link SessionHost.unpark}. */
  unpark(streamId: string): void {
    this.byStream.unpark(streamId);
  }

  /** Throws `rate_limited` when the core's engine key or donor already holds its cap of streams here (parked ones included). */
  admit(who: CoreIdentity, requestId: number, resuming?: string): void {
    this.byStream.admit(who, assignmentCaps(this.settings), requestId, resuming);
    this.guard.admit(who, requestId);
  }

  /** Starts batched lease renewal (every core.leaseRenewS). */
  start(): void {
    const tick = (): void => {
      this.renew().catch((err: Error) => this.log.warn({ err: err.message }, 'lease renewal failed; will retry'));
    };
    this.timer = setInterval(tick, this.settings.core.leaseRenewS * 1000);
    this.timer.unref();
    this.revocations.start(this.settings.auth.cacheTtlS * 1000);
    this.idle.start();
    this.guard.start(this.settings.auth.cacheTtlS * 1000);
  }

  /**
   * One renewal pass: all leases of this process in one script call per 500, with the
   * progress a resume from another socket reads (core.maxIdleAssignmentS) where it moved since
   * the last pass; lost ones and withdrawn ones stopped; then the live view's counts that changed.
   */
  async renew(): Promise<void> {
    if (this.byStream.size === 0) return;
    const since = this.progressRecordedUpTo;
    const upTo = sessionClock();
    // Progress from `upTo` on is written again at the next pass: twice at worst, never missed.
    const held = [...this.byStream].map(([stream, s]) => ({ stream, session: s.id, progressMs: s.progressSince(since) }));
    const { lost, withdrawn } = await this.leases.renew(held);
    this.progressRecordedUpTo = upTo;
    for (const stream of lost) {
      this.log.warn({ stream }, 'lease lost');
      void this.byStream.get(stream)?.serverStop('lease_lost', stream);
    }
    // Stopped or deleted since the session got it, and the bus's stop did not reach it (a stop
    // racing its assignment, a lost pub/sub message): its lease says so.
    for (const { stream, why } of withdrawn) void this.byStream.get(stream)?.serverStop(why === 'deleted' ? 'stream_deleted' : 'stream_stopped', stream);
    // Rewritten only where they changed (an idle session costs nothing here): the live view's
    // buffered/committed counts, in one command per 1,000 sessions.
    const ending = new Set([...lost, ...withdrawn.map((w) => w.stream)]);
    const records: ActiveStream[] = [];
    for (const [stream, s] of this.byStream) {
      if (ending.has(stream)) continue;
      const r = s.activeRecord(true);
      if (r) records.push(r);
    }
    for (let i = 0; i < records.length; i += 1000) await this.live.setActiveMany(records.slice(i, i + 1000));
  }

  /**
   * Shutdown: tell every core to reconnect elsewhere, let in-flight commits finish, keep
   * leases for a resume, then close sockets with 1001.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.revocations.stop();
    this.idle.stop();
    await this.guard.stop();
    const deadline = Date.now() + timeoutMs;
    const all = [...this.sessions];
    await settledBy(Promise.all(all.map(([session]) => session.serverStop('server_shutdown'))), deadline);
    for (const [, socket] of all) socket.close(CLOSES.server_shutdown.code, CLOSES.server_shutdown.reason);
    // The uWS transport writes queued replies and closes on the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    // Sessions whose socket closed, before the shutdown or just now, may still be recording
    // their fragments; the caller closes storage next.
    await settledBy(Promise.all(this.ending), deadline);
  }
}

/** Waits for `work`, but not past `deadline` (epoch ms). */
async function settledBy(work: Promise<unknown>, deadline: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
  await Promise.race([work, late]);
  clearTimeout(timer);
}

/** Removes spill directories of processes that no longer run (their frames were never committed). */
function removeStaleSpills(root: string): void {
  if (!fs.existsSync(root)) return;
  for (const dir of fs.readdirSync(root)) {
    // A directory of this pid was left by an earlier process that had it.
    const pid = Number(dir);
    if (pid === process.pid || !processRunning(pid)) fs.rmSync(path.join(root, dir), { recursive: true, force: true });
  }
}
