/**
 * The janitor removes what a crash or a lost race leaves behind and no reader ever sees:
 * partitions above their stream's commit point (written, never committed), and seed/tag
 * files and GridFS blobs of streams that were never created or have been deleted. It looks
 * only at documents older than a safety lag, in creation order from a watermark kept in
 * Redis, so each pass costs work proportional to what was written since the last one.
 */
import type { Db, ObjectId } from 'mongodb';
import type { FileStore } from './files';
import type { Logger } from '../telemetry/log';
import type { RedisClient } from './redis';
import { commitPoints } from './streams';
import type { PartitionDoc, StoredFile } from '../model';
import { beyondCommitPoint, storeNow } from './abandoned';

/** One janitor per process; passes are cheap and idempotent, so several processes may run them. */
/**
 * The window's lower bound when there is no watermark (a first pass, or Redis lost it): no
 * document predates 2001-09-09 (server time stamps them), and a bound of 13-digit
 * milliseconds lets the embedded store walk its createdAt index for the page instead of
 * reading every partition (FerretDB patch 5, docs/performance.md).
 */
const EARLIEST_MS = 1_000_000_000_000;

export class Janitor {
  private readonly watermarkKey: string;

  /**
   * @param lagMs documents younger than this are never touched: their commit may still be
   *   under way (storage.janitorLagS)
   */
  constructor(
    private readonly db: Db,
    private readonly files: FileStore,
    private readonly redis: RedisClient,
    prefix: string,
    private readonly log: Logger,
    private readonly lagMs: number,
  ) {
    this.watermarkKey = `${prefix}janitor:watermark`;
  }

  /**
   * One pass over documents created between the watermark and now − lag (at most `limit`).
   * Ages are measured by the store's clock (`now` defaults to MongoDB's), never a writer's:
   * see store/abandoned.ts for why a partition removed here cannot be committed any more.
   * Returns what it removed.
   */
  async pass(limit = 5000, now?: number): Promise<{ partitions: number; files: number }> {
    now ??= await storeNow(this.db);
    const from = new Date(Math.max(Number((await this.redis.get(this.watermarkKey)) ?? 0), EARLIEST_MS));
    const to = new Date(now - this.lagMs);
    if (to <= from) return { partitions: 0, files: 0 };
    const window = { createdAt: { $gte: from, $lt: to } };

    const parts = await this.db
      .collection<PartitionDoc>('partitions')
      .find(window, { projection: { _id: 1, streamId: 1, n: 1, createdAt: 1 }, sort: { createdAt: 1 }, limit })
      .toArray();
    const files = await this.db
      .collection<{ _id: string; streamId: string; createdAt: Date }>('files')
      .find(window, { projection: { _id: 1, streamId: 1, createdAt: 1 }, sort: { createdAt: 1 }, limit })
      .toArray();
    const ids = [...new Set([...parts.map((p) => p.streamId), ...files.map((f) => f.streamId)])];
    const streams = await commitPoints(this.db, ids);

    let removedParts = 0;
    for (const p of parts) {
      const stream = streams.get(p.streamId);
      if (stream?.ids.has(p._id)) continue;
      // Above the commit point only when older than the lag by the store's clock (this
      // window); at or below it (or with the stream gone) it can never be committed.
      if (!beyondCommitPoint(p.n, stream) && p.createdAt.getTime() >= to.getTime()) continue;
      const full = await this.db.collection<PartitionDoc>('partitions').findOneAndDelete({ _id: p._id });
      if (full) {
        await this.files.removeBlobs([...full.frames, ...full.checkpoint] as StoredFile[]);
        removedParts++;
      }
    }
    const orphanFiles = files.filter((f) => !streams.has(f.streamId));
    for (const f of orphanFiles) {
      // By `_id` (one shard of a sharded `files`, docs/scaling.md), and only while it names the stream judged gone above.
      const full = await this.db.collection<StoredFile & { _id: string; streamId: string }>('files').findOneAndDelete({ _id: f._id, streamId: f.streamId });
      if (full?.gridfsId) await this.files.bucket.delete(full.gridfsId as ObjectId).catch(() => undefined);
    }

    // Advance to the newest document examined, or to the window's end when both lists were short.
    const full = parts.length === limit || files.length === limit;
    const newest = Math.max(...parts.map((p) => p.createdAt.getTime()), ...files.map((f) => f.createdAt.getTime()), 0);
    await this.redis.set(this.watermarkKey, String(full ? newest : to.getTime()));
    if (removedParts + orphanFiles.length > 0) this.log.info({ partitions: removedParts, files: orphanFiles.length }, 'janitor removed uncommitted leftovers');
    return { partitions: removedParts, files: orphanFiles.length };
  }
}
