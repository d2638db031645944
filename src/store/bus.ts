/**
 * Cross-process events over Redis pub/sub: token revocations, engine-key revocations and
 * (later) stream stops reach every worker and node. Publishing goes through the command
 * connection; each process holds one extra subscriber connection.
 */
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../telemetry/log';
import type { RedisClient } from './redis';

/** Events carried by the bus, by name. */
export interface BusEvents {
  /** A token hash whose cached principal must be dropped ('*' drops all). */
  'auth.invalidate': { tokenHash: string };
  /** An engine key was revoked: close the core sockets that used it. */
  'engine-key.revoked': { keyId: string };
  /** Admin blocks were added or removed: reload them and close the blocked cores' sockets. */
  'blocks.changed': Record<string, never>;
  /** A target changed: drop cached target data. */
  'target.changed': { targetId: string };
  /** A target's streams were added, removed or changed status: drop cached counts. */
  'target.streams': { targetId: string };
  /** A stream must stop on whichever node holds it. */
  'stream.stop': { streamId: string; reason: 'stream_stopped' | 'stream_deleted' | 'target_disabled' | 'lease_lost' };
}

/**
 * How often each process publishes a heartbeat on the bus (ms). Its own coming back proves the
 * subscription works; everyone's, numbered like every message, lets each process find the
 * messages it lost.
 */
const HEARTBEAT_MS = 10_000;
/** A publisher not heard from for this long is forgotten (a process that stopped), ms. */
const FORGET_ORIGIN_MS = 60_000;
/** The heartbeat's name on the wire; never handed to listeners. */
const HEARTBEAT = 'bus.heartbeat';
/** Least time between two drops of every cache (ms): a flapping connection drops them once per this, not at every reconnect. */
const DROP_INTERVAL_MS = 5000;

/** The process's bus. Local listeners run for local publishes too, even while Redis is down. */
export class Bus {
  private readonly emitter = new EventEmitter();
  private readonly channel: string;
  private readonly sub: RedisClient;
  /** Identifies this process's messages so it does not handle its own publishes twice. */
  private readonly origin = crypto.randomBytes(8).toString('hex');
  /** Number of this process's last message (every publish and heartbeat takes the next). */
  private seq = 0;
  /** The last number heard from each publisher, and when. */
  private readonly heard = new Map<string, { seq: number; at: number }>();
  /** When this process last heard its own heartbeat (epoch ms). */
  private ownHeardAt = Date.now();
  /** Whether messages may have been missed and the caches not yet dropped for them. */
  private missed = false;
  private readonly heartbeat: NodeJS.Timeout;
  /** When the caches were last dropped (epoch ms), and the drop waiting for {@link DROP_INTERVAL_MS} to pass. */
  private droppedAt = 0;
  private dropLater: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly redis: RedisClient, keyPrefix: string, private readonly log: Logger) {
    this.channel = `${keyPrefix}bus`;
    this.emitter.setMaxListeners(0);
    this.sub = (redis as { duplicate(): RedisClient }).duplicate();
    this.sub.on('error', () => undefined); // the command connection already logs outages
    // Subscribed again on every connection: ioredis resubscribes by itself only a connection
    // whose SUBSCRIBE once succeeded, and a process that started (or was restarted) during an
    // outage never had one, so it would stay deaf to other processes for good.
    this.sub.on('ready', () => this.subscribe());
    this.sub.on('close', () => (this.missed = true));
    this.subscribe();
    this.sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      try {
        const { origin, seq, event, data } = JSON.parse(message) as { origin: string; seq?: number; event: keyof BusEvents | typeof HEARTBEAT; data: unknown };
        this.count(origin, seq);
        // Local listeners already ran when this process published.
        if (event !== HEARTBEAT && origin !== this.origin) this.emitter.emit(event, data);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'bad bus message ignored');
      }
    });
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private subscribe(): void {
    this.sub.subscribe(this.channel).then(
      () => {
        if (this.missed) this.dropCaches('subscribed again');
      },
      (err: Error) => {
        if (this.closed) return;
        this.missed = true;
        this.log.warn({ err: err.message }, 'bus subscribe failed; retried when Redis is reachable again');
      },
    );
  }

  /**
   * Notes a message's number. A number skipped means messages of that publisher were lost to
   * this process (one it failed to publish, or a Redis Cluster client that moved its
   * subscription to another node without a word); its own heartbeat back means the
   * subscription works again after a silence.
   */
  private count(origin: string, seq: number | undefined): void {
    if (typeof seq !== 'number') return;
    const now = Date.now();
    const last = this.heard.get(origin);
    this.heard.set(origin, { seq: Math.max(seq, last?.seq ?? 0), at: now });
    if (origin === this.origin) this.ownHeardAt = now;
    if (last !== undefined && seq > last.seq + 1) this.dropCaches('messages were lost');
    else if (origin === this.origin && this.missed) this.dropCaches('heard again');
  }

  private beat(): void {
    const now = Date.now();
    if (now - this.ownHeardAt > 2.5 * HEARTBEAT_MS) this.missed = true;
    for (const [origin, h] of this.heard) if (now - h.at > FORGET_ORIGIN_MS) this.heard.delete(origin);
    this.redis.publish(this.channel, JSON.stringify({ origin: this.origin, seq: ++this.seq, event: HEARTBEAT })).catch(() => undefined);
  }

  /**
   * What other processes announced while this one could not hear is lost: drops every cache an
   * announcement would have dropped. Stops are not replayed (a core not told works on until its
   * assignment ends, and the stopped stream is not queued again); the revocation sweep closes
   * the sockets of keys revoked meanwhile.
   */
  private dropCaches(why: string): void {
    this.missed = false;
    const wait = this.droppedAt + DROP_INTERVAL_MS - Date.now();
    if (wait > 0) {
      this.dropLater ??= setTimeout(() => {
        this.dropLater = undefined;
        this.dropCaches(why);
      }, wait);
      this.dropLater.unref();
      return;
    }
    this.droppedAt = Date.now();
    this.log.info({ why }, 'bus: caches dropped for announcements this process may have missed');
    this.emitter.emit('auth.invalidate', { tokenHash: '*' });
    this.emitter.emit('target.changed', { targetId: '*' });
    this.emitter.emit('target.streams', { targetId: '*' });
    this.emitter.emit('blocks.changed', {});
  }

  /** Subscribes to an event (from any process). */
  on<E extends keyof BusEvents>(event: E, listener: (data: BusEvents[E]) => void): void {
    this.emitter.on(event, listener);
  }

  /**
   * Publishes to every process. Local listeners run at once; other processes get it through
   * Redis. Resolves false when Redis could not take it (the caller decides whether that matters).
   */
  async publish<E extends keyof BusEvents>(event: E, data: BusEvents[E]): Promise<boolean> {
    const message = JSON.stringify({ origin: this.origin, seq: ++this.seq, event, data });
    this.emitter.emit(event, data);
    try {
      await this.redis.publish(this.channel, message);
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, event }, 'bus publish failed');
      return false;
    }
  }

  /** Stops the heartbeat and closes the subscriber connection. */
  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.dropLater);
    this.sub.disconnect();
  }
}
