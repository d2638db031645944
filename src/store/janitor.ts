/**
 * The janitor removes what a crash or a lost race leaves behind and no reader ever sees:
 * partitions above their stream's commit point (written, never committed), and the data of
 * a stream whose creation or deletion was interrupted (found by the small change record
 * those leave, model.ts StreamChangeDoc: seed files are never read back). It looks only at
 * documents older than a safety lag, in creation order from a watermark per collection kept
 * in Redis, so each pass costs work proportional to what was written since the last one,
 * read a page at a time.
 */
import type { Db } from 'mongodb';
import type { FileStore } from './files';
import type { Logger } from '../telemetry/log';
import type { RedisClient } from './redis';
import type { Leases } from './leases';
import { committedPartitionId, type PageCache } from './partition-pages';
import { clearCreation, commitPoint, commitPoints, fenceOut, purgeStreamData, queuedStreams, queueEntry, type CommitPoint } from './streams';
import { adoptCreation, changeRecord, changesCreated, claimChange, endExaminedChange, keepClaimed } from './stream-changes';
import { discardPartition, partitionHeadsCreated } from './partitions';
import type { PartitionDoc, StreamChangeDoc } from '../model';
import { beyondCommitPoint, storeNow } from './abandoned';
import type { CreatedRange } from './created-order';

/**
 * A walk's lower bound when there is no watermark (a first pass, or Redis lost it): no
 * document predates 2001-09-09 (server time stamps them), and a bound of 13-digit
 * milliseconds lets the embedded store walk its createdAt index for the page instead of
 * reading every document (FerretDB patch 5, docs/performance.md).
 */
const EARLIEST_MS = 1_000_000_000_000;

/**
 * Where a walk over one collection stands (store/created-order.ts): every document created
 * before `ms` is behind it, and of those created at `ms`, the ones whose `_id` is at most
 * `id` ('' for none).
 */
interface Watermark {
  ms: number;
  id: string;
}

/**
 * How many more lags the janitor keeps the record of a creation it cleared before any stream
 * document of it landed: a stream document stalled in the store may land later still.
 */
const CLAIMED_ROUNDS = 3;

/** What the janitor walks: documents with an id, in createdAt order. */
interface Dated {
  _id: string;
  createdAt: Date;
}

/** A partition as the janitor reads it. */
type PartitionHead = Dated & Pick<PartitionDoc, 'streamId' | 'n'>;

/**
 * One janitor per process. Passes are idempotent, but each costs the store a read of every
 * document it examines, so the timer's passes take turns across the deployment
 * ({@link Janitor.passInTurn}).
 */
export class Janitor {
  private readonly prefix: string;

  /**
   * @param lagMs documents younger than this are never touched: their commit may still be
   *   under way (storage.janitorLagS)
   * @param pageSize documents read per query (storage.janitorPageSize): the embedded store
   *   reads whole documents, projection or not, so this bounds its memory per query
   * @param maxPerPass documents of each collection one pass reads (storage.janitorMaxPerPass)
   * @param leases whether a stream is leased (held, or kept for a resume); and the manifest
   *   of a stream whose fence the janitor raised names the old fence: it is dropped, so the
   *   next assignment reads the stream from MongoDB
   */
  constructor(
    private readonly db: Db,
    private readonly files: FileStore,
    private readonly redis: RedisClient,
    private readonly leases: Pick<Leases, 'get' | 'dropManifest' | 'enqueue' | 'withdraw' | 'forgetManifest'>,
    prefix: string,
    private readonly log: Logger,
    private readonly lagMs: number,
    private readonly pageSize = 100,
    private readonly maxPerPass = 20_000,
  ) {
    this.prefix = `${prefix}janitor:`;
  }

  /**
   * A pass, unless another process of the deployment took the turn within `turnMs` (a Redis
   * key that expires; no release: the next turn is the next interval). Returns null when it
   * was not this process's turn.
   */
  async passInTurn(turnMs: number): Promise<{ partitions: number; streams: number } | null> {
    const mine = await this.redis.set(`${this.prefix}turn`, '1', 'PX', turnMs, 'NX');
    return mine === 'OK' ? this.pass(this.maxPerPass) : null;
  }

  /**
   * One pass over documents created between each collection's watermark and now − lag (at
   * most `limit` of each, read `pageSize` at a time). Ages are measured by the store's clock
   * (`now` defaults to MongoDB's), never a writer's: see store/abandoned.ts for why a
   * partition removed here cannot be committed any more. Returns how many partitions it
   * removed, and how many streams' interrupted creations or deletions it finished.
   */
  async pass(limit = this.maxPerPass, now?: number): Promise<{ partitions: number; streams: number }> {
    now ??= await storeNow(this.db);
    const to = now - this.lagMs;
    const partitions = await this.walk<PartitionHead>('partitions', to, limit, (...range) => partitionHeadsCreated(this.db, ...range), (page) => this.removePartitions(page, to));
    const streams = await this.walk<StreamChangeDoc>('stream_changes', to, limit, (...range) => changesCreated(this.db, ...range), (page) => this.finishChanges(page));
    if (partitions + streams > 0) this.log.info({ partitions, streams }, 'janitor removed uncommitted leftovers');
    return { partitions, streams };
  }

  /**
   * Walks `collection` in creation order (store/created-order.ts) from its watermark up to
   * `to` (ms), a page at a time (`read`: its store module's query of a page), handing each
   * page to `visit`, which returns how many things it cleaned up. The documents created in
   * the watermark's millisecond come first, by `_id`; then the window after it, by creation
   * time. A window's page may end inside a millisecond whose other documents it did not
   * get, so the watermark moves to the start of that millisecond, which the next page reads
   * whole by `_id` (visiting again the few a page already saw: a judgement is idempotent).
   * The watermark is saved after each page. Returns the sum of what the pages cleaned up.
   */
  private async walk<D extends Dated>(collection: string, to: number, limit: number, read: (range: CreatedRange, limit: number) => Promise<D[]>, visit: (page: D[]) => Promise<number>): Promise<number> {
    const key = `${this.prefix}walk:${collection}`;
    let mark = await this.readWatermark(key, collection);
    let examined = 0;
    let cleaned = 0;
    const save = (m: Watermark) => this.redis.set(key, `${m.ms}:${m.id}`);
    while (examined < limit) {
      const want = Math.min(this.pageSize, limit - examined);
      if (mark.ms >= EARLIEST_MS && mark.ms < to) {
        const page = await read({ at: new Date(mark.ms), afterId: mark.id }, want);
        examined += page.length;
        cleaned += await visit(page);
        if (page.length === want) {
          mark = { ms: mark.ms, id: page[page.length - 1]!._id };
          await save(mark);
          continue;
        }
        if (examined >= limit) break;
      }
      const from = Math.max(mark.ms + 1, EARLIEST_MS);
      if (to <= from) break;
      const size = Math.min(this.pageSize, limit - examined);
      const page = await read({ from: new Date(from), to: new Date(to) }, size);
      examined += page.length;
      cleaned += await visit(page);
      mark = page.length < size ? { ms: to, id: '' } : { ms: page[page.length - 1]!.createdAt.getTime(), id: '' };
      await save(mark);
      if (page.length < size) break;
    }
    return cleaned;
  }

  /**
   * The walk's watermark. Releases before 2026-12-07 kept a creation time and a count of the
   * documents seen at it (`watermark:<collection>`; before 2026-12-03 one plain time for
   * partitions, `watermark`): the walk resumes at the start of that millisecond.
   */
  private async readWatermark(key: string, collection: string): Promise<Watermark> {
    const raw = await this.redis.get(key);
    if (raw !== null) {
      const colon = raw.indexOf(':');
      const ms = Number(raw.slice(0, colon));
      if (colon > 0 && Number.isFinite(ms)) return { ms, id: raw.slice(colon + 1) };
    }
    const legacy = (await this.redis.get(`${this.prefix}watermark:${collection}`)) ?? (collection === 'partitions' ? await this.redis.get(`${this.prefix}watermark`) : null);
    const ms = Number((legacy ?? '0').split(':')[0]);
    return { ms: Number.isFinite(ms) ? ms : 0, id: '' };
  }

  /** Removes the partitions of a page that are not, and can no longer become, committed; returns how many. */
  private async removePartitions(page: PartitionHead[], to: number): Promise<number> {
    const streams = await commitPoints(this.db, [...new Set(page.map((p) => p.streamId))]);
    const pages: PageCache = new Map();
    let removed = 0;
    for (const p of page) {
      if (!(await this.abandoned(p, streams.get(p.streamId), to, pages))) continue;
      if (await discardPartition(this.db, this.files, p._id)) removed++;
    }
    return removed;
  }

  /**
   * Whether partition `p` is not committed and can never be (store/abandoned.ts), given its
   * stream as read (undefined: gone). Above the commit point and older than the lag: when
   * nobody leases the stream, it is fenced first so that its writer's commit point cannot
   * land after all (if the stream moved meanwhile it is read again, a few times, and `p`
   * judged anew); a leased stream is not fenced, which would end its holder (a fresh
   * assignment keeps the fence of the writer that left `p`), and `p` is judged by its age.
   */
  private async abandoned(p: PartitionHead, read: CommitPoint | undefined, to: number, pages: PageCache): Promise<boolean> {
    let stream = read;
    for (let tries = 0; tries < 3; tries++) {
      // At or below the commit point, committed only if the stream's lists name this very
      // document; left alone when its page is gone (null: the stream is being deleted).
      const committed = stream && p.n <= stream.frames ? await committedPartitionId(this.db, stream, p.n, pages) : undefined;
      if (committed === p._id || committed === null) return false;
      if (beyondCommitPoint(p.n, stream)) return true;
      if (p.createdAt.getTime() >= to) return false;
      if ((await this.leases.get(p.streamId)) !== undefined) return true;
      if (await fenceOut(this.db, p.streamId, stream!)) {
        await this.leases.dropManifest(p.streamId);
        return true;
      }
      stream = (await commitPoint(this.db, p.streamId)) ?? undefined;
    }
    this.log.warn({ stream: p.streamId, partition: p._id }, 'a leftover partition was not removed: its stream kept moving');
    return false;
  }

  /**
   * Finishes the changes of a page. A deletion whose stream still exists had not begun (the
   * document goes first); one whose stream is gone is completed. A creation's record
   * (store/stream-changes.ts) is one of:
   * - standing: marked done, or of an earlier release (no `v`) with its stream there. Its
   *   stream is queued (it may have stopped before: a crash, Redis unreachable; a no-op for a
   *   stream queued or leased), and the record removed.
   * - done but its stream gone: the creation undid itself; its files are cleared.
   * - never stood (not done, or legacy without a stream): claimed first, so that a creation
   *   still under way cannot stand any more (a miss: the record changed, left for later),
   *   then abandoned. Unless its stream has committed frames (a pool rebuild queued it):
   *   that one is marked done and kept.
   * - abandoned (claimed): its stream document, queue entry, manifest and files go. When no
   *   stream document was there, this release's record is kept for {@link CLAIMED_ROUNDS}
   *   more lags: a stalled one may still land, and its creation looks at the record.
   * Returns how many streams' data it cleared.
   */
  private async finishChanges(page: StreamChangeDoc[]): Promise<number> {
    const streams = await commitPoints(this.db, page.map((c) => c._id));
    const standing: StreamChangeDoc[] = [];
    let cleaned = 0;
    for (const c of page) {
      const s = streams.get(c._id);
      switch (judgeChange(c, s)) {
        case 'finish':
          if (!s) {
            await purgeStreamData(this.db, this.files, c._id);
            cleaned++;
          }
          await endExaminedChange(this.db, c);
          break;
        case 'standing':
          standing.push(c);
          break;
        case 'adopt':
          if (await adoptCreation(this.db, c)) standing.push(c);
          break;
        case 'claim':
          if (await claimChange(this.db, c)) cleaned += await this.dropCreation(c);
          // Marked done meanwhile (the creation stood as this page was read): standing, or the
          // walk would pass it for good; anything else changed it: its own stamp is newer.
          else if (await this.markedSince(c)) standing.push(c);
          break;
        case 'drop':
          cleaned += await this.dropCreation(c);
      }
    }
    if (standing.length > 0) await this.leases.enqueue((await queuedStreams(this.db, standing.map((c) => c._id))).map(queueEntry));
    for (const c of standing) await endExaminedChange(this.db, c);
    return cleaned;
  }

  /** Whether record `c`, as read, has been marked done since (and nothing else changed it). */
  private async markedSince(c: StreamChangeDoc): Promise<boolean> {
    const now = await changeRecord(this.db, c._id);
    return now?.done === true && !now.claimed && now.createdAt.getTime() === c.createdAt.getTime();
  }

  /** Clears an abandoned (claimed) creation (streams.ts `clearCreation`); returns 1. */
  private async dropCreation(c: StreamChangeDoc): Promise<number> {
    const dropped = await clearCreation(this.db, this.files, this.leases, c._id, c.queue);
    // Earlier releases' creations never look at their record: nothing to keep it for.
    if (!dropped && c.v === 2 && (c.rounds ?? 0) < CLAIMED_ROUNDS) await keepClaimed(this.db, c);
    else await endExaminedChange(this.db, c);
    return 1;
  }
}

/**
 * What the janitor does with a change record, given its stream as read (undefined: gone):
 * `finish` a deletion (or clear the files of a creation marked done that undid itself: its
 * stream is gone), queue a `standing` creation's stream, `adopt` a creation that never stood
 * but whose stream has committed frames, `claim` one that never stood and drop it, or `drop`
 * one claimed already. Records of earlier releases (no `v`) have no mark: a stream of theirs
 * that exists stands.
 */
function judgeChange(c: StreamChangeDoc, s: CommitPoint | undefined): 'finish' | 'standing' | 'adopt' | 'claim' | 'drop' {
  if (c.op === 'delete') return 'finish';
  if (c.claimed) return 'drop';
  if (c.v === 2 ? c.done : s !== undefined) return s ? 'standing' : 'finish';
  return s && s.frames > 0 ? 'adopt' : 'claim';
}
