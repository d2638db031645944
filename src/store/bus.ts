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

/** The process's bus. Local listeners run for local publishes too, even while Redis is down. */
export class Bus {
  private readonly emitter = new EventEmitter();
  private readonly channel: string;
  private readonly sub: RedisClient;
  /** Identifies this process's messages so it does not handle its own publishes twice. */
  private readonly origin = crypto.randomBytes(8).toString('hex');

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
        const { origin, event, data } = JSON.parse(message) as { origin: string; event: keyof BusEvents; data: unknown };
        // Local listeners already ran when this process published.
        if (origin !== this.origin) this.emitter.emit(event, data);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'bad bus message ignored');
      }
    });
  }

  /** Whether messages may have been missed since the last subscription (a connection was lost, or none was made yet). */
  private missed = false;

  private subscribe(): void {
    this.sub.subscribe(this.channel).then(
      () => {
        if (!this.missed) return;
        this.missed = false;
        // What other processes announced meanwhile is lost: drop every cache an announcement
        // would have dropped. Stops are not replayed (a core not told works on until its
        // assignment ends, and the stopped stream is not queued again); the revocation sweep
        // closes the sockets of keys revoked meanwhile.
        this.log.info('bus subscribed again; caches dropped for the announcements it may have missed');
        this.emitter.emit('auth.invalidate', { tokenHash: '*' });
        this.emitter.emit('target.changed', { targetId: '*' });
        this.emitter.emit('target.streams', { targetId: '*' });
        this.emitter.emit('blocks.changed', {});
      },
      (err: Error) => {
        this.missed = true;
        this.log.warn({ err: err.message }, 'bus subscribe failed; retried when Redis is reachable again');
      },
    );
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
    const message = JSON.stringify({ origin: this.origin, event, data });
    this.emitter.emit(event, data);
    try {
      await this.redis.publish(this.channel, message);
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, event }, 'bus publish failed');
      return false;
    }
  }

  /** Closes the subscriber connection. */
  close(): void {
    this.sub.disconnect();
  }
}
