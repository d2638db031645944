/**
 * The two storage connections of a process, opened together and closed together, with the
 * readiness probe used by /readyz and preflight.
 */
import type { Settings } from '../config/settings';
import type { Logger } from '../telemetry/log';
import { createMongo, pingMongo, type Mongo } from './mongo';
import { withTimeout } from './outage';
import { createRedis, pingRedis, type RedisClient } from './redis';

/** Readiness of each backend: `null` when it answered, else the reason it did not. */
export interface Readiness {
  mongodb: string | null;
  redis: string | null;
}

/** MongoDB and Redis clients of one process. */
export class Storage {
  readonly mongo: Mongo;
  readonly redis: RedisClient;
  private redisDown = false;

  constructor(private readonly settings: Settings, private readonly log: Logger) {
    this.mongo = createMongo(settings);
    this.redis = createRedis(settings);
    // ioredis emits an error per failed reconnect; log the transitions, not every attempt.
    this.redis.on('error', (err: Error) => {
      if (!this.redisDown) log.warn({ err: err.message }, 'Redis unreachable; reconnecting');
      this.redisDown = true;
    });
    this.redis.on('ready', () => {
      if (this.redisDown) log.info('Redis reachable again');
      this.redisDown = false;
    });
  }

  /**
   * Starts connecting. Never rejects: a backend that is down now is retried by its driver,
   * and /readyz reports it meanwhile.
   */
  async connect(): Promise<void> {
    try {
      await this.mongo.client.connect();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'MongoDB unreachable at start; the driver keeps trying');
    }
  }

  /** Pings both backends in parallel. */
  async readiness(timeoutMs = this.settings.health.timeoutMs): Promise<Readiness> {
    const [m, r] = await Promise.allSettled([pingMongo(this.mongo, timeoutMs), pingRedis(this.redis, timeoutMs)]);
    return {
      mongodb: m.status === 'fulfilled' ? null : reason(m.reason),
      redis: r.status === 'fulfilled' ? null : reason(r.reason),
    };
  }

  /** Closes both connections. */
  async close(): Promise<void> {
    // QUIT waits for a reply a dead or hung Redis never sends: bound it, then drop the socket.
    const quit = withTimeout(this.redis.quit(), 1000, 'redis', 'Redis QUIT').catch(() => this.redis.disconnect());
    await Promise.allSettled([this.mongo.client.close(), quit]);
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
