/**
 * The bound on distinct frame and checkpoint file names per stream (core.maxFileNamesPerStream).
 * Each commit `$addToSet`s its names into the stream document; unbounded, one core could
 * grow that document towards MongoDB's 16 MiB limit, slowing every commit and finally
 * making the stream uncommittable. A commit that would pass the bound is refused with
 * `too_large` before anything is written.
 *
 * The names a stream already has are cached per process ({@link FileNameCache}; they only
 * grow while it exists); a commit whose names are all known costs nothing, and only unknown
 * names read the stream document again (another process may have committed them meanwhile).
 */
import type { Db } from 'mongodb';
import { AppError } from '../errors';
import type { StreamDoc } from '../model';

/**
 * The file names of recently committing streams, at most `maxNames` in all
 * (core.fileNameCacheNames), each stream counting one more than its names (a stream without
 * names still takes an entry): cores choose the names (up to 128 characters, up to
 * core.maxFileNamesPerStream per stream), so the cache is bounded by names, not streams. The
 * least recently checked streams go first; a stream whose names alone pass the bound is not
 * kept (its commits read its document).
 */
export class FileNameCache {
  /** Map order is use order: the first entry is the least recently checked stream. */
  private readonly streams = new Map<string, Set<string>>();
  private held = 0;

  constructor(private readonly maxNames: number) {}

  /** What the cache holds now: names, all streams together, plus one per stream. */
  get size(): number {
    return this.held;
  }

  /** The stream's names, if cached (it becomes the most recently used). */
  get(streamId: string): Set<string> | undefined {
    const names = this.streams.get(streamId);
    if (names) {
      this.streams.delete(streamId);
      this.streams.set(streamId, names);
    }
    return names;
  }

  /** Caches the stream's names (the set may grow later by {@link add}). */
  set(streamId: string, names: Set<string>): void {
    this.forget(streamId);
    if (cost(names) > this.maxNames) return;
    this.makeRoom(cost(names));
    this.streams.set(streamId, names);
    this.held += cost(names);
  }

  /** Adds names to a cached stream's set. */
  add(streamId: string, names: Iterable<string>): void {
    const have = this.streams.get(streamId);
    if (!have) return;
    for (const n of names) {
      if (have.has(n)) continue;
      have.add(n);
      this.held++;
    }
    if (this.held > this.maxNames) {
      // This stream is the most recent: make room from the others, or let it go too.
      this.forget(streamId);
      if (cost(have) <= this.maxNames) this.set(streamId, have);
    }
  }

  private forget(streamId: string): void {
    const names = this.streams.get(streamId);
    if (!names) return;
    this.streams.delete(streamId);
    this.held -= cost(names);
  }

  private makeRoom(needed: number): void {
    for (const [id, names] of this.streams) {
      if (this.held + needed <= this.maxNames) return;
      this.streams.delete(id);
      this.held -= cost(names);
    }
  }
}

/** What a stream's entry counts against the bound: its names, and one for the entry itself. */
function cost(names: Set<string>): number {
  return names.size + 1;
}

/**
 * Resolves when committing these names keeps the stream within `max` distinct names;
 * throws `too_large` otherwise. A missing stream passes (the commit itself reports it).
 */
export async function checkFileNames(db: Db, cache: FileNameCache, streamId: string, names: Iterable<string>, max: number, maxTimeMS?: number): Promise<void> {
  const wanted = new Set(names);
  const cached = cache.get(streamId);
  if (cached && [...wanted].every((n) => cached.has(n))) return;
  const doc = await db.collection<StreamDoc>('streams').findOne({ _id: streamId }, { projection: { frameFiles: 1, checkpointFiles: 1 }, ...(maxTimeMS ? { maxTimeMS } : {}) });
  if (!doc) return;
  const have = new Set([...(doc.frameFiles ?? []), ...(doc.checkpointFiles ?? [])]);
  cache.set(streamId, have);
  let total = have.size;
  for (const n of wanted) if (!have.has(n)) total++;
  if (total > max) {
    throw new AppError('too_large', `This checkpoint would give the stream ${total} distinct file names; at most ${max} (max_file_names_per_stream)`);
  }
  cache.add(streamId, wanted);
}
