/**
 * The bound on distinct frame and checkpoint file names per stream (core.maxFileNamesPerStream).
 * Each commit `$addToSet`s its names into the stream document; unbounded, one core could
 * grow that document towards MongoDB's 16 MiB limit, slowing every commit and finally
 * making the stream uncommittable. A commit that would pass the bound is refused with
 * `too_large` before anything is written.
 *
 * The names a stream already has are cached per process (they only grow while it exists);
 * a commit whose names are all known costs nothing, and only unknown names read the stream
 * document again (another process may have committed them meanwhile).
 */
import type { Db } from 'mongodb';
import { AppError } from '../errors';
import type { StreamDoc } from '../model';

const MAX_STREAMS = 10_000;
const known = new Map<string, Set<string>>();

/**
 * Resolves when committing these names keeps the stream within `max` distinct names;
 * throws `too_large` otherwise. A missing stream passes (the commit itself reports it).
 */
export async function checkFileNames(db: Db, streamId: string, names: Iterable<string>, max: number, maxTimeMS?: number): Promise<void> {
  const wanted = new Set(names);
  let have = known.get(streamId);
  if (have && [...wanted].every((n) => have!.has(n))) return;
  const doc = await db.collection<StreamDoc>('streams').findOne({ _id: streamId }, { projection: { frameFiles: 1, checkpointFiles: 1 }, ...(maxTimeMS ? { maxTimeMS } : {}) });
  if (!doc) return;
  have = new Set([...(doc.frameFiles ?? []), ...(doc.checkpointFiles ?? [])]);
  if (known.size >= MAX_STREAMS) known.delete(known.keys().next().value!);
  known.delete(streamId);
  known.set(streamId, have);
  let total = have.size;
  for (const n of wanted) if (!have.has(n)) total++;
  if (total > max) {
    throw new AppError('too_large', `This checkpoint would give the stream ${total} distinct file names; at most ${max} (max_file_names_per_stream)`);
  }
  for (const n of wanted) have.add(n);
}
