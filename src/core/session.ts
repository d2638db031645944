/**
 * One core's session (PROTOCOL §2): the protocol state machine. Its messages are taken in
 * (rate, memory budget, a queue) and parsed, then dispatched: `assign` and `resume` lease and
 * load a stream (assignment.ts) and send it; frames and checkpoints check the seq rules here
 * and go down the data path (data-path.ts); `stop` and server-initiated stops end the
 * assignment. The process's registries are the hub's, reached through {@link SessionHost}.
 * Transport-neutral: it talks to its socket through {@link CoreSocket}. Messages of one
 * session are handled strictly in order (a promise chain), so a checkpoint's commit finishes
 * before the next message is looked at.
 */
import { CLOSES, MessageError, toAppError, type CloseName, type ErrorCode } from '../errors';
import { recordStreamError } from '../store/streams';
import type { CreditWriter } from '../store/credit';
import type { ReliabilityGuard } from './reliability-guard';
import type { ActiveStream } from '../store/live';
import type { ClientLog } from '../telemetry/client-log';
import type { CoreIdentity } from '../model';
import { assignmentPayload, leaseNext, resumeLease, type AssignmentDeps, type Leased } from './assignment';
import { bufferFrames, checkpoint, pageIfDue, replayReply, settleAtEnd, type DataPathHost } from './data-path';
import { endedFragment, holdAssignment, liveRecord, type HeldAssignment } from './held-assignment';
import { epochOf } from './session-clock';
import { announcedLimits, binaryLimits } from './limits';
import { MessageRate, type Limiter } from './limiter';
import { parseBinary, parseText, peekRequestId, type DataMessage, type TextRequest } from './messages';
import { PROTOCOL_VERSION } from './protocol';
import { randomBase64url } from './random-pool';
import { assignmentEncoder, type MessageEncoder } from './assignment-message';

/** Random bytes of a session id (16 base64url characters). */
const SESSION_ID_BYTES = 12;

/** The `not_assigned` message of a checkpoint that ended its assignment, by why (data-path.ts). */
const NOT_COMMITTED = {
  stream_gone: 'The stream was deleted',
  conflict: 'The stream was committed by someone else; this assignment is over',
  landed_earlier: "This checkpoint's earlier attempt was committed, without the frames sent after it; this assignment is over, assign again",
} as const;

/** What a session needs from its process (the hub provides it). */
export interface SessionHost extends AssignmentDeps, DataPathHost {
  /** Lines a core causes (connections, assignments, refusals), within log.clientLinesPerSecond. */
  readonly clientLog: ClientLog;
  /** Assignments and resumes are prepared through this, bounded by core.maxConcurrentAssignments. */
  readonly assignments: Limiter;
  /** Writes each ended activation's fragment and credits its donor (group commit). */
  readonly credit: Pick<CreditWriter, 'record'>;
  /** Records that `session` holds `streamId`; a session of this process that held it before forgets it. */
  claim(streamId: string, session: CoreSession): void;
  /** Records that `session` no longer holds `streamId` (no-op when another session claimed it since). */
  release(streamId: string, session: CoreSession): void;
  /**
   * Throws `rate_limited` when the core's engine key or donor already holds its cap of streams
   * here; `resuming` is the stream a resume asks for (already counted for its core).
   */
  admit(who: CoreIdentity, requestId: number, resuming?: string): void;
  /** Counts a stream kept for a resume against `who`'s caps for `graceMs` (default core.resumeGraceS; called before the session lets go of it). */
  park(streamId: string, who: CoreIdentity, graceMs?: number): void;
  /** Stops counting a stream {@link park}ed (its lease was not kept after all). */
  unpark(streamId: string): void;
  /** Reliability records (core/reliability-guard.ts). */
  readonly guard: Pick<ReliabilityGuard, 'record'>;
}

/** What a session needs from its socket. */
export interface CoreSocket {
  /** Sends a JSON message (corked; backpressure is the socket's business). */
  send(message: Record<string, unknown>): void;
  /**
   * Sends a text message that `encode` writes as UTF-8 JSON into the buffer it is given. The
   * transport calls it once, when it writes the message, and may reuse the buffer afterwards.
   * `counted` is called once the transport counts the message among its unsent bytes, or has
   * dropped it: until then the caller counts it (MemoryBudget.holdSend), and both counting it
   * at once would show twice its bytes held.
   */
  sendEncoded(encode: MessageEncoder, counted: () => void): void;
  /** Closes with a WebSocket close code. */
  close(code: number, reason: string): void;
  /** Bytes of replies written but not yet taken by the core (0 once it has read them). */
  unsentBytes(): number;
}

/** Reasons the server stops a core's assignment (PROTOCOL §2 "Server-initiated"). */
export type StopReason = 'stream_stopped' | 'stream_deleted' | 'target_disabled' | 'lease_lost' | 'server_shutdown' | 'idle_timeout';

/** The chain of a session with nothing queued: shared, so an idle session holds no promise of its own. */
const SETTLED: Promise<void> = Promise.resolve();

/** How an assignment ends ({@link CoreSession} `endAssignment`). */
type EndHow = 'requeue' | 'drop' | 'stopped' | 'detach' | 'lost';

/**
 * How a stop pushed by the server ends the assignment: a disabled target or an idle one goes
 * back to the pool; a stopped stream goes back only if it was started again meanwhile (its
 * lease says so: store/leases.ts `withdraw`); a deleted one never; a lost lease is not ours.
 */
function endOnStop(reason: Exclude<StopReason, 'server_shutdown'>): EndHow {
  switch (reason) {
    case 'lease_lost':
      return 'lost';
    case 'target_disabled':
    case 'idle_timeout':
      return 'requeue';
    case 'stream_stopped':
      return 'stopped';
    case 'stream_deleted':
      return 'drop';
  }
}

/** One core's session. */
export class CoreSession {
  readonly id = randomBase64url(SESSION_ID_BYTES);
  /** The current assignment (read by the hub's idle sweep). */
  assignment: HeldAssignment | undefined;
  private chain: Promise<void> = SETTLED;
  private closed = false;
  private readonly rate: MessageRate;
  private protocolErrors = 0;
  /** Bytes of this socket's messages waiting behind the one being handled (MemoryBudget.admitQueued). */
  private queuedBytes = 0;

  constructor(private readonly hub: SessionHost, private readonly socket: CoreSocket, readonly who: CoreIdentity) {
    this.rate = new MessageRate(hub.settings.core.messagesPerSecond);
  }

  /** Sends the welcome (call once the socket is open). */
  welcome(): void {
    const c = this.hub.settings.core;
    this.socket.send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      session: this.id,
      node: this.hub.nodeId,
      heartbeat_s: c.heartbeatS,
      limits: announcedLimits(this.hub.settings),
    });
  }

  /** Handles one message; `data` must be a private copy. Never throws. */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (!this.takeToken(data, isBinary)) return;
    // A core that sends but does not read, while the process holds more unread replies than
    // memory.unsentBytes: whatever it asks, its answer would only add to them.
    // This socket's count first: it is seldom past the bound, and the process's is a sum.
    if (this.socket.unsentBytes() > this.hub.settings.core.unreadRepliesBytes && this.hub.memory.used('unsent') > this.hub.settings.memory.unsentBytes) {
      this.close('replies_unread');
      return;
    }
    // A message waiting behind a slow one is held in memory: past the budgets, close with
    // 1013 (PROTOCOL "try again later"; the core resumes) rather than queue without bound.
    if (!this.hub.memory.admitQueued(this.queuedBytes, data.length)) {
      this.close('memory_budget');
      return;
    }
    this.queuedBytes += data.length;
    const done = (): void => {
      this.queuedBytes -= data.length;
      this.hub.memory.give('queues', data.length);
    };
    const next = this.chain.then(() => this.handle(data, isBinary).finally(done)).catch((err: unknown) => this.hub.log.error({ err, session: this.id }, 'session handler failed'));
    this.chain = next;
    // Nothing queued behind it: let the settled promise go.
    void next.then(() => {
      if (this.chain === next) this.chain = SETTLED;
    });
  }

  /** The socket closed: drop the buffer, keep the lease for a resume, record the fragment. */
  onClose(): Promise<void> {
    this.closed = true;
    this.chain = this.chain.then(() => this.endAssignment('detach')).catch((err: unknown) => this.hub.log.error({ err, session: this.id }, 'session close failed'));
    return this.chain;
  }

  /** Waits until every queued message has been handled. */
  idle(): Promise<void> {
    return this.chain;
  }

  /**
   * A stop pushed by the server (manager action, lease lost, shutdown). With `streamId`, only
   * while the session still works on that stream when its turn comes: queued behind the core's
   * own stop and assign, it must not end the next one.
   */
  serverStop(reason: StopReason, streamId?: string): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (reason !== 'server_shutdown' && (!this.assignment || (streamId !== undefined && this.assignment.streamId !== streamId))) return;
      this.socket.send({ type: 'stop', reason, ...(reason === 'server_shutdown' ? { reconnect: true } : {}) });
      if (reason === 'server_shutdown') await this.endAssignment('detach');
      else await this.endAssignment(endOnStop(reason));
    });
    return this.chain;
  }

  /** Takes a token for `data`; refuses it unread (only its id is looked for) when there is none. */
  private takeToken(data: Buffer, isBinary: boolean): boolean {
    const verdict = this.rate.take();
    if (verdict === 'ok') return true;
    this.hub.metrics.messages.inc({ type: 'rate_limited' });
    if (verdict === 'exceeded') this.close('rate_limit_exceeded');
    else this.error(peekRequestId(data, isBinary), 'rate_limited', `At most ${this.hub.settings.core.messagesPerSecond} messages per second`, { retry_after_s: 1 });
    return false;
  }

  private close(why: CloseName): void {
    if (this.closed) return;
    this.closed = true;
    const { code, reason } = CLOSES[why];
    this.hub.clientLog.warn({ session: this.id, code, reason, remote: this.who.remote }, 'closing core socket');
    this.socket.close(code, reason);
  }

  private error(id: number | null, code: ErrorCode, message: string, extra: Record<string, unknown> = {}): void {
    this.socket.send({ type: 'error', id, code, message, ...extra });
  }

  private async handle(data: Buffer, isBinary: boolean): Promise<void> {
    let requestId: number | null = null;
    try {
      if (isBinary) {
        const msg = parseBinary(data, binaryLimits(this.hub.settings));
        requestId = msg.id;
        this.hub.metrics.messages.inc({ type: msg.type });
        this.hub.metrics.bytesReceived.inc(msg.payloadBytes);
        await this.onData(msg);
      } else {
        const req = parseText(data.toString('utf8'));
        requestId = req.id;
        this.hub.metrics.messages.inc({ type: req.type });
        await this.onText(req);
      }
    } catch (err) {
      const e = err instanceof MessageError ? err : toAppError(err);
      const id = err instanceof MessageError ? err.requestId : requestId;
      if (e.code === 'internal') this.hub.log.error({ err: (e as { cause?: unknown }).cause ?? err, session: this.id }, 'core message failed');
      // A core reply renders the error's retry delay (the catalog's) as `retry_after_s`.
      const extra = err instanceof MessageError ? err.extra : e.retryAfterS !== undefined ? { retry_after_s: e.retryAfterS } : {};
      this.error(id, e.code, e.message, extra);
      if (e.code === 'bad_request' || e.code === 'bad_checksum') {
        this.hub.guard.record(this.who, 'protocol_errors');
        if (++this.protocolErrors >= this.hub.settings.core.maxProtocolErrors) this.close('too_many_bad_messages');
      }
    }
  }

  private async onText(req: TextRequest): Promise<void> {
    switch (req.type) {
      case 'ping':
        this.socket.send({ type: 'pong', id: req.id });
        return;
      case 'assign':
        return this.assign(req.id, req.target_id);
      case 'resume':
        return this.resume(req.id, req.resume_token);
      case 'stop':
        return this.stop(req.id, req.error);
    }
  }

  private async assign(id: number, targetId?: string): Promise<void> {
    if (this.assignment) throw new MessageError(id, 'already_assigned', `Already working on stream ${this.assignment.streamId}; stop it first`);
    this.admitReplies(id);
    const started = process.hrtime.bigint();
    await this.hub.assignments.run(async () => {
      // Hung up while this request waited its turn: no lease, no store read.
      if (this.closed) return void this.hub.metrics.assignAbandoned.inc();
      // The per-key and per-donor caps are checked after the wait, next to the claim they
      // count: checked before it, every request queued meanwhile would pass the same count.
      this.hub.admit(this.who, id);
      const leased = await leaseNext(this.hub, this.who, this.id, id, targetId);
      try {
        await this.holdWhileLoading(leased, () => this.activate(id, leased, false));
      } catch (err) {
        // Not activated: the lease expires on its own; the record the lease script wrote goes now.
        if (leased.recordedFrames !== undefined && !this.assignment) this.hub.live.clearActive(leased.stream._id, leased.stream.targetId).catch(() => undefined);
        throw err;
      }
      this.hub.metrics.assignSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    });
  }

  /**
   * Runs `activate` with the stream already claimed, so the hub renews its lease while the
   * seed and checkpoint files load (a slow store could otherwise outlast core.leaseTtlS) and
   * a resume racing the old socket's close makes the old session let go first. Not
   * activated: the claim is dropped, the lease expires and the stream returns to the pool.
   */
  private async holdWhileLoading(leased: Leased, activate: () => Promise<void>): Promise<void> {
    this.hub.claim(leased.stream._id, this);
    try {
      await activate();
    } catch (err) {
      if (!this.assignment) this.hub.release(leased.stream._id, this);
      throw err;
    }
  }

  /**
   * A fresh assignment whose core hung up before it was sent (a core that gave up waiting on
   * a busy store): the core never saw its resume token, so the stream goes straight back to
   * the pool instead of being held for core.resumeGraceS, and its files are not read for
   * nobody. Redis down: the lease expires on its own and the sweeper returns the stream.
   */
  private async giveBack({ stream, recordedFrames }: Leased): Promise<void> {
    this.hub.release(stream._id, this);
    this.hub.metrics.assignAbandoned.inc();
    await this.hub.leases.release(stream._id, this.id, true, stream.frames).catch(() => undefined);
    if (recordedFrames !== undefined) await this.hub.live.clearActive(stream._id, stream.targetId).catch(() => undefined);
  }

  /**
   * Refuses a new assignment while earlier replies wait unread: this socket's
   * (core.maxUnsentBeforeAssignBytes), or all sockets' of the process together
   * (memory.unsentBytes), since an assignment or a resume sends hundreds of KiB or more.
   */
  private admitReplies(id: number): void {
    const unsent = this.socket.unsentBytes();
    const max = this.hub.settings.core.maxUnsentBeforeAssignBytes;
    if (unsent > max) throw new MessageError(id, 'rate_limited', `${unsent} bytes of earlier replies are not read yet (at most ${max} before an assignment); read them, then ask again`, { retry_after_s: 1 });
    if (this.hub.memory.used('unsent') > this.hub.settings.memory.unsentBytes) throw this.unsentRefusal(id);
  }

  /** The refusal of an assign or resume while the process holds more than memory.unsentBytes. */
  private unsentRefusal(id: number): MessageError {
    const share = this.hub.settings.memory.unsentBytes;
    return new MessageError(id, 'rate_limited', `this node holds ${this.hub.memory.used('unsent')} bytes of replies cores have not read yet (at most ${share}); try again later`, { retry_after_s: 1 });
  }

  private async resume(id: number, token: string): Promise<void> {
    if (this.assignment) throw new MessageError(id, 'already_assigned', `Already working on stream ${this.assignment.streamId}`);
    this.admitReplies(id);
    await this.hub.assignments.run(async () => {
      // Hung up while waiting: the lease stays as it was, for a resume from the next socket.
      if (this.closed) return;
      // A resumed stream counts against the key's and donor's caps like an assigned one:
      // otherwise a core could hold more by hanging up and resuming. Parked, it is counted
      // already.
      this.hub.admit(this.who, id, token.slice(0, Math.max(0, token.lastIndexOf('.'))));
      const leased = await resumeLease(this.hub, this.who, this.id, id, token);
      await this.holdWhileLoading(leased, () => this.activate(id, leased, true));
    });
  }

  /**
   * Drops the assignment without touching the lease (another session of this process resumed
   * it, e.g. the same core from a new socket while this one is half-open), and tells this
   * socket, as a renewal that finds the lease gone would.
   */
  forget(): void {
    const a = this.assignment;
    if (!a) return;
    this.assignment = undefined;
    this.hub.release(a.streamId, this);
    void a.buffer?.clear();
    this.socket.send({ type: 'stop', reason: 'lease_lost' });
    void this.recordEnd(a, 'lost');
  }

  private async activate(id: number, leased: Leased, resumed: boolean): Promise<void> {
    const { stream, resumeToken, recordedFrames } = leased;
    if (!resumed && this.closed) return this.giveBack(leased);
    const { files, options } = await assignmentPayload(this.hub, stream);
    if (!resumed && this.closed) return this.giveBack(leased);
    const encode = assignmentEncoder({ type: 'assignment', id, stream_id: stream._id, target_id: stream.targetId, frames: stream.frames, options, resume_token: resumeToken }, files);
    // Checked again here, with this message counted: assigns admitted together all saw the
    // count from before any was answered. A resumed stream keeps its lease for the retry.
    if (!this.hub.memory.holdSend(encode.bytes, this.hub.settings.memory.unsentBytes)) {
      if (!resumed) await this.giveBack(leased);
      throw this.unsentRefusal(id);
    }
    this.assignment = holdAssignment(leased);
    this.hub.claim(stream._id, this);
    // The resume raised the fence: later assignments from the manifest must carry the new one.
    if (resumed) this.hub.streams.setManifest(stream).catch(() => undefined);
    this.hub.guard.record(this.who, 'assignments');
    // Resumed (no record yet), or the queue's count was stale (the stream was read from MongoDB).
    if (recordedFrames !== stream.frames) await this.publishActive().catch(() => undefined);
    this.hub.clientLog.info({ session: this.id, stream: stream._id, target: stream.targetId, engine: this.who.engine, donor: this.who.donor?.name }, 'stream assigned');
    this.socket.sendEncoded(encode, () => this.hub.memory.sendDone(encode.bytes));
  }

  /**
   * The epoch ms of this session's assignment's last progress, if it is at or after `since`
   * (session clock) and not its start, which the lease got from the assign script.
   */
  progressSince(since: number): number | undefined {
    const a = this.assignment;
    return a && a.progressAt >= since && a.progressAt !== a.startedAt ? epochOf(a.progressAt) : undefined;
  }

  /**
   * The live-view record of this session's assignment, or undefined when there is none or
   * (with `onlyChanged`) its counts are already published (see {@link liveRecord}).
   */
  activeRecord(onlyChanged = false): ActiveStream | undefined {
    return this.assignment && liveRecord(this.assignment, this.who, this.hub.nodeId, onlyChanged);
  }

  /** Writes this session's assignment to the live view. */
  private async publishActive(): Promise<void> {
    const record = this.activeRecord();
    if (record) await this.hub.live.setActive(record);
  }

  private async onData(msg: DataMessage): Promise<void> {
    const a = this.assignment;
    if (!a) throw new MessageError(msg.id, 'not_assigned', `No assignment: send "assign" before "${msg.type}"`);
    if (msg.seq <= a.lastSeq) return this.socket.send(replayReply(a, msg));
    if (msg.seq !== a.lastSeq + 1) throw new MessageError(msg.id, 'out_of_order', `Expected seq ${a.lastSeq + 1}, got ${msg.seq}`);
    if (msg.type === 'frame') return this.socket.send(await bufferFrames(this.hub, this.id, a, msg));
    const outcome = await checkpoint(this.hub, a, msg);
    if (!outcome.ok) {
      const gone = outcome.reason === 'stream_gone';
      this.socket.send({ type: 'stop', reason: gone ? 'stream_deleted' : 'lease_lost' });
      // The stream is still this session's when its own earlier attempt landed: it goes back to the pool at once.
      await this.endAssignment(outcome.reason === 'landed_earlier' ? 'requeue' : 'lost');
      throw new MessageError(msg.id, 'not_assigned', NOT_COMMITTED[outcome.reason]);
    }
    this.hub.guard.record(this.who, 'commits');
    this.socket.send(outcome.reply);
    this.publishActive().catch(() => undefined);
    await pageIfDue(this.hub, a);
  }

  private async stop(id: number, error?: string): Promise<void> {
    const a = this.assignment;
    if (!a) throw new MessageError(id, 'not_assigned', 'Nothing to stop');
    let requeue = true;
    let how: EndHow | undefined;
    if (error !== undefined) {
      const text = Buffer.from(error).subarray(0, this.hub.settings.core.maxErrorTextBytes).toString('utf8');
      const status = await recordStreamError(this.hub.db, a.streamId, text, this.who.engine, this.who.donor?.name, this.hub.settings.core.maxStreamErrors);
      if (status !== 'ok') requeue = false;
      this.hub.guard.record(this.who, 'stream_errors');
      if (status === 'failed') {
        this.hub.log.warn({ stream: a.streamId }, 'stream failed: too many consecutive errors');
        // Out of the pool like a stopped one, kept out against earlier reads; a start since the
        // failure is redone, flagging the lease so that the release puts it back. Should that
        // fail, the lease is left to expire: the sweeper reads MongoDB before requeuing.
        try {
          await this.hub.leases.withdrawHeld(a.streamId, 'stopped');
          await this.hub.streams.reinstateIfOk(a.streamId);
        } catch (err) {
          this.hub.log.warn({ err: (err as Error).message, stream: a.streamId }, 'could not withdraw a failed stream; its lease will expire');
          how = 'lost';
        }
      }
    }
    await this.endAssignment(how ?? (requeue ? 'requeue' : 'drop'));
    this.socket.send({ type: 'stopped', id });
  }

  /**
   * Ends the assignment. `requeue`: release the lease and put the stream back; `drop`:
   * release without requeue (deleted, failed); `stopped`: release, and put the stream back
   * only if it was started again since the stop; `detach`: keep the lease for a resume;
   * `lost`: the lease is not ours any more.
   */
  private async endAssignment(how: EndHow): Promise<void> {
    const a = this.assignment;
    if (!a) return;
    this.assignment = undefined;
    // Kept for a resume, it still counts against the caps (core/assignment-registry.ts).
    if (how === 'detach') this.hub.park(a.streamId, this.who);
    this.hub.release(a.streamId, this);
    await a.buffer?.clear();
    const released = how === 'requeue' || how === 'drop' || how === 'stopped';
    await settleAtEnd(this.hub, a, released);
    const leases = this.hub.leases;
    try {
      // The live-view record is cleared only while it is this session's: after a lost lease
      // (or a detach that finds the lease taken) it is the next holder's, or the sweeper's
      // to clear. Left in place, a disabled target would not stop that holder.
      if (released) {
        // Cleared before the release: after it, the next holder may write its own record.
        await this.hub.live.clearActive(a.streamId, a.targetId).catch(() => undefined);
        const freed = await leases.release(a.streamId, this.id, how === 'stopped' ? 'if_started' : how === 'requeue', a.committed);
        // Told of a stop its lease knows nothing of (not this lease's, or made through a node of
        // an earlier release): kept, it goes back as MongoDB says. A stop landing meanwhile
        // flags it, which the release respects; a store that cannot say leaves it to expire.
        if (freed === 'unflagged') await leases.release(a.streamId, this.id, await this.hub.streams.isOk(a.streamId, this.hub.settings.mongodb.opTimeoutMs), a.committed);
      } else if (how === 'detach' && (await this.detach(a))) await this.hub.live.clearActive(a.streamId, a.targetId);
    } catch (err) {
      // Redis down (or MongoDB, asked whether a stopped stream goes back): the lease expires on
      // its own and the sweeper returns the stream.
      this.hub.log.warn({ err: (err as Error).message, stream: a.streamId }, 'could not release lease; it will expire');
    }
    await this.recordEnd(a, how);
  }

  /**
   * Keeps the lease for a resume; returns whether it was still this session's. The stream,
   * parked by the caller, stops counting when it was not, and counts only until the lease
   * expires (core.leaseTtlS) when Redis could not be told.
   */
  private async detach(a: HeldAssignment): Promise<boolean> {
    try {
      const kept = await this.hub.leases.detach(a.streamId, this.id, this.hub.settings.core.resumeGraceS * 1000, epochOf(a.progressAt));
      if (!kept) this.hub.unpark(a.streamId);
      return kept;
    } catch (err) {
      this.hub.park(a.streamId, this.who, this.hub.settings.core.leaseTtlS * 1000);
      throw err;
    }
  }

  /** The activation's credit fragment (its commits are its donor's, however it ended) and the log line. */
  private async recordEnd(a: HeldAssignment, how: EndHow): Promise<void> {
    try {
      await this.hub.credit.record(endedFragment(a, this.who));
    } catch (err) {
      this.hub.log.error({ err: (err as Error).message, stream: a.streamId }, 'could not record fragment');
    }
    this.hub.clientLog.info({ session: this.id, stream: a.streamId, how, frames: a.framesThisActivation }, 'assignment ended');
  }
}
