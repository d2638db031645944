/**
 * The pool of ready streams: keeps Redis's ready sets in step with MongoDB. Streams enter
 * when created or started and when a lease ends; they leave when assigned, stopped, failed
 * or deleted. A sweeper returns streams whose lease expired (a dead node, a core that did
 * not resume), and the whole pool is rebuilt from MongoDB at start and whenever Redis comes
 * back without it.
 */
import type { Db } from 'mongodb';
import { Leases, readyMember, type StreamManifest } from './leases';
import type { Logger } from '../telemetry/log';
import type { StreamDoc } from '../model';

/** The fields of a stream its queue entry and manifest are made of. */
type QueuedFields = Pick<StreamDoc, '_id' | 'targetId' | 'frames' | 'createdAt' | 'seedFiles' | 'lastPartitionId'>;

const QUEUED_PROJECTION = { _id: 1, targetId: 1, frames: 1, createdAt: 1, seedFiles: 1, lastPartitionId: 1 } as const;

/**
 * A stream's ready-set entry and manifest. No manifest for a committed stream without
 * `lastPartitionId` (written before the field existed): its assignment reads MongoDB.
 */
function queueItem(s: QueuedFields): { target: string; frames: number; member: string; manifest?: StreamManifest } {
  const item = { target: s.targetId, frames: s.frames, member: readyMember(s.createdAt, s._id) };
  if (s.frames > 0 && !s.lastPartitionId) return item;
  return { ...item, manifest: { frames: s.frames, seed: s.seedFiles.length > 0, ...(s.lastPartitionId ? { lastPartitionId: s.lastPartitionId } : {}) } };
}

/** The pool. */
export class Pool {
  private timer: NodeJS.Timeout | undefined;
  private rebuilding: Promise<void> | undefined;

  constructor(private readonly db: Db, readonly leases: Leases, private readonly log: Logger) {}

  /** Puts one stream in the pool if it is `ok` and nobody holds it. */
  async enqueueStream(s: QueuedFields & Pick<StreamDoc, 'status'>): Promise<void> {
    if (s.status !== 'ok') return;
    await this.leases.enqueue([queueItem(s)]);
  }

  /** Takes one stream out of the pool. */
  async dequeueStream(s: Pick<StreamDoc, '_id' | 'targetId' | 'createdAt'>): Promise<void> {
    await this.leases.dequeue(s.targetId, readyMember(s.createdAt, s._id));
  }

  /** Forgets everything the pool keeps of a deleted stream. */
  async deleteStream(s: Pick<StreamDoc, '_id' | 'targetId' | 'createdAt'>): Promise<void> {
    await this.dequeueStream(s);
    await this.leases.forgetManifest(s._id);
  }

  /** Re-reads streams from MongoDB and enqueues those that are `ok` (lease checks happen in Redis). */
  async returnStreams(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const docs = await this.db
      .collection<StreamDoc>('streams')
      .find({ _id: { $in: ids }, status: 'ok' }, { projection: QUEUED_PROJECTION })
      .toArray();
    await this.leases.enqueue(docs.map(queueItem));
  }

  /** Rebuilds every ready set from MongoDB (idempotent; leased streams are skipped). */
  rebuild(): Promise<void> {
    this.rebuilding ??= (async () => {
      const started = Date.now();
      let n = 0;
      let batch: Array<{ target: string; frames: number; member: string }> = [];
      const cursor = this.db.collection<StreamDoc>('streams').find({ status: 'ok' }, { projection: QUEUED_PROJECTION, batchSize: 2000 });
      for await (const s of cursor) {
        batch.push(queueItem(s));
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
      const expired = await this.leases.sweep(1000);
      if (expired.length === 0) break;
      await this.returnStreams(expired);
      this.log.info({ streams: expired.length }, 'expired leases returned to the pool');
      if (expired.length < 1000) break;
    }
  }

  /** Starts the periodic maintenance: a sweep and rebuild check every `sweepS` seconds (storage.poolSweepS). */
  start(sweepS: number): void {
    const run = (): void => {
      this.tick().catch((err: Error) => this.log.warn({ err: err.message }, 'pool maintenance failed; retrying'));
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
