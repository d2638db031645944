/**
 * The pool of ready streams: keeps Redis's ready sets in step with MongoDB. Streams enter
 * when created or started and when a lease ends; they leave when assigned, stopped, failed
 * or deleted (store/streams.ts and the lease scripts make those changes). A sweeper returns
 * streams whose lease expired (a dead node, a core that did not resume), taking over the
 * claims of a sweeper that died before finishing (leases.ts, `returning`), and the whole pool
 * is rebuilt from MongoDB at start and whenever Redis comes back without it.
 */
import type { Db } from 'mongodb';
import type { Leases } from './leases';
import { allQueuedStreams, queueEntry, queuedStreams } from './streams';
import type { Logger } from '../telemetry/log';

/** Streams a sweep claims per target in one call; a pass repeats while some target gave this many. */
const SWEEP_BATCH = 1000;

/** The pool. */
export class Pool {
  private timer: NodeJS.Timeout | undefined;
  private rebuilding: Promise<void> | undefined;

  constructor(private readonly db: Db, readonly leases: Leases, private readonly log: Logger) {}

  /** Re-reads streams from MongoDB and enqueues those that are `ok` (lease checks happen in Redis). */
  async returnStreams(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.leases.enqueue((await queuedStreams(this.db, ids)).map(queueEntry));
  }

  /** Rebuilds every ready set from MongoDB (idempotent; leased streams are skipped). */
  rebuild(): Promise<void> {
    this.rebuilding ??= (async () => {
      const started = Date.now();
      let n = 0;
      let batch: Array<{ target: string; frames: number; member: string }> = [];
      for await (const s of allQueuedStreams(this.db)) {
        batch.push(queueEntry(s));
        if (batch.length >= 2000) {
          n += await this.leases.enqueue(batch);
          batch = [];
        }
      }
      n += await this.leases.enqueue(batch);
      await this.leases.markRebuilt();
      this.log.info({ added: n, ms: Date.now() - started }, 'ready queues rebuilt from MongoDB');
    })().finally(() => {
      this.rebuilding = undefined;
    });
    return this.rebuilding;
  }

  /** One maintenance pass: rebuild when Redis lost the pool, return streams of expired leases. */
  async tick(): Promise<void> {
    if (!(await this.leases.rebuiltMarker())) await this.rebuild();
    for (;;) {
      const claims = await this.leases.sweep(SWEEP_BATCH);
      const ids = claims.flatMap((c) => c.streams);
      if (ids.length === 0) break;
      // Settled only once they are back: a process that dies in between leaves the claim to
      // run out, and a later sweep (of any process) returns the streams instead.
      await this.returnStreams(ids);
      await this.leases.settle(claims);
      this.log.info({ streams: ids.length }, 'expired leases returned to the pool');
      if (!claims.some((c) => c.streams.length >= SWEEP_BATCH)) break;
    }
  }

  /**
   * Starts the periodic maintenance: a sweep and rebuild check every `sweepS` seconds
   * (storage.poolSweepS). A pass still running when the next is due (a slow store) is
   * left to finish instead of being joined by another: overlapping passes would each
   * claim expired leases and queue one more read of their streams behind the last.
   */
  start(sweepS: number): void {
    let running = false;
    const run = (): void => {
      if (running) return;
      running = true;
      this.tick()
        .catch((err: Error) => this.log.warn({ err: err.message }, 'pool maintenance failed; retrying'))
        .finally(() => {
          running = false;
        });
    };
    run();
    this.timer = setInterval(run, sweepS * 1000);
    this.timer.unref();
  }

  /** Stops the maintenance timer. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
