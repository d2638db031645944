/**
 * One core's session (PROTOCOL §2): assign, frames, checkpoints, stop, ping, resume, the
 * seq rules, limits and server-initiated stops. Transport-neutral: it talks to its socket
 * through {@link CoreSocket}. Messages of one session are handled strictly in order (a
 * promise chain), so a checkpoint's commit finishes before the next message is looked at.
 */
import crypto from 'node:crypto';
import { toAppError, type ErrorCode } from '../errors';
import { commitCheckpoint, recordFragment, recordStreamError } from '../store/commit';
import { MessageError, parseBinary, parseText, type DataMessage, type TextRequest } from './messages';
import type { CoreHub } from './hub';
import { FrameBuffer } from './frame-buffer';
import { announcedLimits, assignmentCaps, binaryLimits } from './limits';
import type { Assigned, LeaseValue } from '../store/leases';
import { hashToken } from '../auth/tokens';
import type { CoreIdentity, FileDoc, StreamDoc } from '../model';

/** What a session needs from its socket. */
export interface CoreSocket {
  /** Sends a JSON message (corked; backpressure is the socket's business). */
  send(message: Record<string, unknown>): void;
  /** Closes with a WebSocket close code. */
  close(code: number, reason: string): void;
}

/** Reasons the server stops a core's assignment (PROTOCOL §2 "Server-initiated"). */
export type StopReason = 'stream_stopped' | 'stream_deleted' | 'target_disabled' | 'lease_lost' | 'server_shutdown' | 'idle_timeout';

interface Assignment {
  streamId: string;
  targetId: string;
  owner: string;
  committed: number;
  lastSeq: number;
  buffer: FrameBuffer;
  startedAt: Date;
  framesThisActivation: number;
  resumeHash: string;
  /** The buffered and committed counts last written to the live view (-1: never). */
  publishedBuffered: number;
  publishedCommitted: number;
  /** For the stream's manifest after each commit. */
  hasSeed: boolean;
  lastPartitionId?: string;
}

/** The fields of its stream an assignment uses (from the Redis manifest or MongoDB). */
interface AssignedStream {
  _id: string;
  targetId: string;
  owner: string;
  frames: number;
  hasSeed: boolean;
  lastPartitionId?: string;
}

function fromDoc(d: StreamDoc): AssignedStream {
  return { _id: d._id, targetId: d.targetId, owner: d.owner, frames: d.frames, hasSeed: d.seedFiles.length > 0, ...(d.lastPartitionId ? { lastPartitionId: d.lastPartitionId } : {}) };
}

/**
 * What an assignment reads of its stream: not the partition lists, which grow by one entry
 * per checkpoint (a long stream's would be decoded on every assignment); `lastPartitionId`
 * names the checkpoint to hand out.
 */
const ASSIGN_PROJECTION = { partitions: 0, partitionIds: 0 } as const;

/** One core's session. */
export class CoreSession {
  readonly id = crypto.randomBytes(12).toString('base64url');
  assignment: Assignment | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private tokens: number;
  private lastRefill = Date.now();
  private rateStrikes = 0;
  private protocolErrors = 0;

  constructor(private readonly hub: CoreHub, private readonly socket: CoreSocket, readonly who: CoreIdentity) {
    this.tokens = hub.settings.core.messagesPerSecond * 2;
  }

  /** Sends the welcome (call once the socket is open). */
  welcome(): void {
    const c = this.hub.settings.core;
    this.socket.send({
      type: 'welcome',
      protocol: 1,
      session: this.id,
      node: this.hub.nodeId,
      heartbeat_s: c.heartbeatS,
      limits: announcedLimits(this.hub.settings),
    });
  }

  /** Handles one message; `data` must be a private copy. Never throws. */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (!this.takeToken()) return;
    this.chain = this.chain.then(() => this.handle(data, isBinary)).catch((err: unknown) => this.hub.log.error({ err, session: this.id }, 'session handler failed'));
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

  /** A stop pushed by the server (manager action, lease lost, shutdown). */
  serverStop(reason: StopReason): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (reason !== 'server_shutdown' && !this.assignment) return;
      this.socket.send({ type: 'stop', reason, ...(reason === 'server_shutdown' ? { reconnect: true } : {}) });
      if (reason === 'server_shutdown') await this.endAssignment('detach');
      else await this.endAssignment(reason === 'lease_lost' ? 'lost' : reason === 'target_disabled' || reason === 'idle_timeout' ? 'requeue' : 'drop');
    });
    return this.chain;
  }

  private takeToken(): boolean {
    const c = this.hub.settings.core;
    const now = Date.now();
    this.tokens = Math.min(c.messagesPerSecond * 2, this.tokens + ((now - this.lastRefill) / 1000) * c.messagesPerSecond);
    this.lastRefill = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.rateStrikes = 0;
      return true;
    }
    this.hub.metrics.messages.inc({ type: 'rate_limited' });
    if (++this.rateStrikes > c.messagesPerSecond * 2) {
      this.close(1008, 'rate limit exceeded');
      return false;
    }
    this.error(null, 'rate_limited', `At most ${c.messagesPerSecond} messages per second`, { retry_after_s: 1 });
    return false;
  }

  private close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.log.warn({ session: this.id, code, reason, remote: this.who.remote }, 'closing core socket');
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
      const extra = err instanceof MessageError ? err.extra : e.code === 'unavailable' ? { retry_after_s: 5 } : {};
      this.error(id, e.code, e.message, extra);
      if (e.code === 'bad_request' || e.code === 'bad_checksum') {
        if (++this.protocolErrors >= this.hub.settings.core.maxProtocolErrors) this.close(1008, 'too many bad messages');
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
    this.hub.byStream.admit(this.who, assignmentCaps(this.hub.settings), id);
    const started = process.hrtime.bigint();
    const candidates = await this.hub.targets.candidates(this.who, targetId);
    for (let attempt = 0; attempt < 5; attempt++) {
      const secret = crypto.randomBytes(24).toString('base64url');
      const got = await this.hub.leases.assign(candidates, this.leaseFields(hashToken(secret)));
      if (!got) break;
      const stream = await this.assignedStream(got);
      if (!stream) {
        // Stopped or deleted after it was queued: drop the lease and try the next one.
        await this.hub.leases.release(got.stream, this.id, false, 0);
        continue;
      }
      await this.activate(id, stream, `${stream._id}.${secret}`, hashToken(secret));
      this.hub.metrics.assignSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      return;
    }
    throw new MessageError(id, 'no_streams_available', 'No stream is ready for this core; retry later', { retry_after_s: this.hub.settings.core.retryAfterS });
  }

  /**
   * What the assignment needs of the leased stream: from its manifest in Redis when that is
   * current (its frames match the queue score), else from MongoDB. Undefined when the stream
   * is gone or not `ok`.
   */
  private async assignedStream(got: Assigned): Promise<AssignedStream | undefined> {
    const m = got.manifest;
    if (m && m.frames === got.frames) {
      const owner = await this.hub.targets.owner(got.target);
      if (owner !== undefined) {
        return { _id: got.stream, targetId: got.target, owner, frames: m.frames, hasSeed: m.seed, ...(m.lastPartitionId ? { lastPartitionId: m.lastPartitionId } : {}) };
      }
    }
    this.hub.metrics.manifestMisses.inc();
    const doc = await this.hub.db.collection<StreamDoc>('streams').findOne({ _id: got.stream }, { projection: ASSIGN_PROJECTION });
    if (!doc || doc.status !== 'ok') return undefined;
    const stream = fromDoc(doc);
    // Repair the manifest (this session holds the lease: nobody commits meanwhile).
    if (stream.frames === 0 || stream.lastPartitionId) {
      this.hub.leases.setManifest(stream._id, { frames: stream.frames, seed: stream.hasSeed, ...(stream.lastPartitionId ? { lastPartitionId: stream.lastPartitionId } : {}) }).catch(() => undefined);
    }
    return stream;
  }

  private leaseFields(resume: string): Omit<LeaseValue, 'stream' | 'target' | 'member'> {
    return { node: this.hub.nodeId, session: this.id, engine: this.who.engine, ...(this.who.donor ? { donor: this.who.donor.name } : {}), resume };
  }

  private async resume(id: number, token: string): Promise<void> {
    if (this.assignment) throw new MessageError(id, 'already_assigned', `Already working on stream ${this.assignment.streamId}`);
    const dot = token.lastIndexOf('.');
    const streamId = token.slice(0, dot);
    const secret = token.slice(dot + 1);
    if (dot <= 0 || !secret) throw new MessageError(id, 'bad_request', 'Malformed resume_token');
    const newSecret = crypto.randomBytes(24).toString('base64url');
    const lease = await this.hub.leases.resume(streamId, hashToken(secret), {
      node: this.hub.nodeId,
      session: this.id,
      engine: this.who.engine,
      ...(this.who.donor ? { donor: this.who.donor.name } : {}),
      resume: hashToken(newSecret),
    });
    if (!lease) throw new MessageError(id, 'not_assigned', 'The resume token is unknown or its grace period has passed; assign again');
    const doc = await this.hub.db.collection<StreamDoc>('streams').findOne({ _id: streamId }, { projection: ASSIGN_PROJECTION });
    if (!doc || doc.status !== 'ok') {
      await this.hub.leases.release(streamId, this.id, false, 0);
      throw new MessageError(id, 'not_assigned', 'The stream is no longer available; assign again');
    }
    const stream = fromDoc(doc);
    // A resume on the same process may race the old socket's close handling: take the stream over.
    this.hub.byStream.get(streamId)?.forget();
    await this.activate(id, stream, `${stream._id}.${newSecret}`, hashToken(newSecret));
  }

  /** Drops the assignment without touching the lease (another session took it over). */
  forget(): void {
    const a = this.assignment;
    if (!a) return;
    this.assignment = undefined;
    this.hub.byStream.delete(a.streamId);
    void a.buffer.clear();
  }

  private async activate(id: number, stream: AssignedStream, resumeToken: string, resumeHash: string): Promise<void> {
    const files = await this.assignmentFiles(stream);
    const options = await this.hub.targets.options(stream.targetId);
    this.assignment = {
      streamId: stream._id,
      targetId: stream.targetId,
      owner: stream.owner,
      committed: stream.frames,
      lastSeq: 0,
      buffer: new FrameBuffer(this.hub.spillDir, this.hub.settings.core.memoryBufferBytes, `${this.id}-${stream._id}`, this.hub.log),
      startedAt: new Date(),
      framesThisActivation: 0,
      resumeHash,
      publishedBuffered: -1,
      publishedCommitted: -1,
      hasSeed: stream.hasSeed,
      ...(stream.lastPartitionId ? { lastPartitionId: stream.lastPartitionId } : {}),
    };
    this.hub.byStream.set(stream._id, this);
    await this.hub.publishActive(this).catch(() => undefined);
    this.hub.log.info({ session: this.id, stream: stream._id, target: stream.targetId, engine: this.who.engine, donor: this.who.donor?.name }, 'stream assigned');
    this.socket.send({ type: 'assignment', id, stream_id: stream._id, target_id: stream.targetId, frames: stream.frames, options, files, resume_token: resumeToken });
  }

  /** Seed files overlaid by the latest checkpoint's files, base64. */
  private async assignmentFiles(stream: AssignedStream): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const seeds = !stream.hasSeed ? [] : await this.hub.db.collection<FileDoc>('files').find({ streamId: stream._id, kind: 'seed' }).toArray();
    const add = async (f: { name: string; size: number; data?: { buffer: Uint8Array }; gridfsId?: unknown }): Promise<void> => {
      const chunks: Buffer[] = [];
      for await (const c of this.hub.files.chunks(f as never)) chunks.push(Buffer.from(c));
      out[f.name] = Buffer.concat(chunks).toString('base64');
    };
    for (const f of seeds) await add(f);
    const last = await this.lastPartitionId(stream);
    if (last !== undefined) {
      const p = await this.hub.db.collection('partitions').findOne({ _id: last as never });
      for (const f of (p?.checkpoint ?? []) as FileDoc[]) await add(f);
    }
    return out;
  }

  /** The committed partition the stream continues from (the list is read only for streams committed before `lastPartitionId` existed). */
  private async lastPartitionId(stream: AssignedStream): Promise<string | undefined> {
    if (stream.lastPartitionId !== undefined || stream.frames === 0) return stream.lastPartitionId;
    const full = await this.hub.db.collection<StreamDoc>('streams').findOne({ _id: stream._id }, { projection: { partitionIds: 1 } });
    return full?.partitionIds.at(-1);
  }

  private async onData(msg: DataMessage): Promise<void> {
    const a = this.assignment;
    if (!a) throw new MessageError(msg.id, 'not_assigned', `No assignment: send "assign" before "${msg.type}"`);
    if (msg.seq <= a.lastSeq) {
      // Replay after a lost reply: acknowledge again, change nothing.
      this.socket.send(msg.type === 'frame' ? { type: 'ack', id: msg.id, seq: msg.seq, buffered_frames: a.buffer.frames } : { type: 'committed', id: msg.id, seq: msg.seq, frames: a.committed, partition: a.committed });
      return;
    }
    if (msg.seq !== a.lastSeq + 1) throw new MessageError(msg.id, 'out_of_order', `Expected seq ${a.lastSeq + 1}, got ${msg.seq}`);
    if (msg.type === 'frame') {
      if (a.buffer.bytes + msg.payloadBytes > this.hub.settings.core.maxBufferBytes) {
        throw new MessageError(msg.id, 'buffer_full', `Buffering ${msg.payloadBytes} more bytes would exceed ${this.hub.settings.core.maxBufferBytes}; send a checkpoint first`);
      }
      await a.buffer.append(msg.files, msg.frames);
      a.lastSeq = msg.seq;
      this.hub.metrics.framesReceived.inc(msg.frames);
      this.socket.send({ type: 'ack', id: msg.id, seq: msg.seq, buffered_frames: a.buffer.frames });
      return;
    }
    await this.checkpoint(a, msg);
  }

  private async checkpoint(a: Assignment, msg: DataMessage): Promise<void> {
    const started = process.hrtime.bigint();
    const buffered = a.buffer.frames;
    const frameFiles = buffered > 0 ? await a.buffer.drain() : [];
    const result = await this.hub.commits.run(() => commitCheckpoint(this.hub.db, this.hub.files, a.streamId, a.committed, buffered, frameFiles, msg.files, { maxFileNames: this.hub.settings.core.maxFileNamesPerStream }));
    if (!result.ok) {
      this.socket.send({ type: 'stop', reason: result.reason === 'stream_gone' ? 'stream_deleted' : 'lease_lost' });
      await this.endAssignment('lost');
      throw new MessageError(msg.id, 'not_assigned', result.reason === 'stream_gone' ? 'The stream was deleted' : 'The stream was committed by someone else; this assignment is over');
    }
    a.framesThisActivation += result.frames - a.committed;
    a.committed = result.frames;
    a.lastSeq = msg.seq;
    if (result.partitionId) {
      a.lastPartitionId = result.partitionId;
      // Issued before any release that requeues the stream (same connection, in order). If it
      // is lost, the manifest's frames no longer match the queue and assignments read MongoDB.
      this.hub.leases.setManifest(a.streamId, { frames: a.committed, seed: a.hasSeed, lastPartitionId: a.lastPartitionId }).catch(() => undefined);
    }
    await a.buffer.clear();
    this.hub.metrics.framesCommitted.inc(buffered);
    this.hub.metrics.commitSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    this.socket.send({ type: 'committed', id: msg.id, seq: msg.seq, frames: result.frames, partition: result.frames });
    this.hub.publishActive(this).catch(() => undefined);
  }

  private async stop(id: number, error?: string): Promise<void> {
    const a = this.assignment;
    if (!a) throw new MessageError(id, 'not_assigned', 'Nothing to stop');
    let requeue = true;
    if (error !== undefined) {
      const text = Buffer.from(error).subarray(0, this.hub.settings.core.maxErrorTextBytes).toString('utf8');
      const status = await recordStreamError(this.hub.db, a.streamId, text, this.who.engine, this.who.donor?.name, this.hub.settings.core.maxStreamErrors);
      if (status !== 'ok') requeue = false;
      if (status === 'failed') this.hub.log.warn({ stream: a.streamId }, 'stream failed: too many consecutive errors');
    }
    await this.endAssignment(requeue ? 'requeue' : 'drop');
    this.socket.send({ type: 'stopped', id });
  }

  /**
   * Ends the assignment. `requeue`: release the lease and put the stream back; `drop`:
   * release without requeue (stopped, deleted, failed); `detach`: keep the lease for a
   * resume; `lost`: the lease is not ours any more.
   */
  private async endAssignment(how: 'requeue' | 'drop' | 'detach' | 'lost'): Promise<void> {
    const a = this.assignment;
    if (!a) return;
    this.assignment = undefined;
    this.hub.byStream.delete(a.streamId);
    await a.buffer.clear();
    const leases = this.hub.leases;
    try {
      if (how === 'requeue' || how === 'drop') await leases.release(a.streamId, this.id, how === 'requeue', a.committed);
      else if (how === 'detach') await leases.detach(a.streamId, this.id, this.hub.settings.core.resumeGraceS * 1000);
      await this.hub.live.clearActive(a.streamId);
    } catch (err) {
      // Redis down: the lease expires on its own and the sweeper returns the stream.
      this.hub.log.warn({ err: (err as Error).message, stream: a.streamId }, 'could not release lease; it will expire');
    }
    try {
      await recordFragment(this.hub.db, {
        streamId: a.streamId,
        targetId: a.targetId,
        engine: this.who.engine,
        ...(this.who.donor ? { donor: this.who.donor.name } : {}),
        start: a.startedAt,
        end: new Date(),
        frames: a.framesThisActivation,
      });
    } catch (err) {
      this.hub.log.error({ err: (err as Error).message, stream: a.streamId }, 'could not record fragment');
    }
    this.hub.log.info({ session: this.id, stream: a.streamId, how, frames: a.framesThisActivation }, 'assignment ended');
  }
}
