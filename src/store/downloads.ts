/**
 * Reads for downloads of long streams, at a cost that does not grow with the
 * stream's length per byte served:
 *
 * - Content-Length of a whole frame file comes from the stream document's `frameIndex`
 *   (names and sizes pushed with every commit), so no partition document is read before
 *   the first byte; only partitions committed before `frameIndex` existed are looked up.
 * - Partition documents are read one by one by `_id` (the only lookup every embedded store
 *   answers from an index; `$in` is a table scan on FerretDB's PostgreSQL backend), a few
 *   ahead of the one being written, so round trips overlap with sending while memory stays
 *   bounded.
 */
import type { Db } from 'mongodb';
import type { StreamBody } from '../http/router';
import type { FileStore } from './files';
import { partitionFile } from './partitions';
import type { PartitionDoc, StoredFile, StreamDoc } from '../model';

/** Partition documents read ahead of the one being sent (each holds ≤ storage.inlineMaxBytes inline). */
export const READ_AHEAD = 4;
/** Concurrent single-document reads when looking up partitions older than `frameIndex`. */
export const PARALLEL_OPS = 8;

/** A committed partition holding a given frame file. */
export interface FramePart {
  docId: string;
  n: number;
  size: number;
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

type Committed = Pick<StreamDoc, '_id' | 'partitions' | 'partitionIds' | 'frameIndex'>;

/**
 * The committed partitions that hold frame file `name`, in order, with sizes. Reads only
 * partitions older than the stream's `frameIndex` (by `_id`, projected to their index).
 */
export async function framePartsOf(db: Db, stream: Committed, name: string): Promise<FramePart[]> {
  const count = stream.partitions.length;
  const known = stream.frameIndex ?? [];
  // frameIndex is pushed with partitions and partitionIds, so it covers the newest entries.
  const firstKnown = Math.max(0, count - known.length);
  const older = await mapLimit(stream.partitionIds.slice(0, firstKnown), PARALLEL_OPS, async (id) => {
    const doc = await db.collection<PartitionDoc>('partitions').findOne({ _id: id }, { projection: { index: 1 } });
    return doc?.index.find((e) => e.kind === 'frame' && e.name === name)?.size;
  });
  const parts: FramePart[] = [];
  for (let i = 0; i < count; i++) {
    const size = i < firstKnown ? older[i] : known[i - (count - known.length)]?.files.find((e) => e.name === name)?.size;
    if (size !== undefined) parts.push({ docId: stream.partitionIds[i], n: stream.partitions[i], size });
  }
  return parts;
}

/**
 * The concatenation of frame file `name` over `parts`, with Content-Length, reading up to
 * `readAhead` partition documents ahead of the one being sent; `from(offset)` answers a
 * Range request without reading the partitions wholly before `offset`. A partition that
 * vanished or changed size ends the body early (the client sees a short read, never wrong
 * bytes).
 */
export function frameFileBody(db: Db, files: FileStore, parts: FramePart[], name: string, readAhead = READ_AHEAD): StreamBody {
  const from = async function* (offset: number): AsyncGenerator<Uint8Array> {
    let first = 0;
    while (first < parts.length && offset >= parts[first].size) offset -= parts[first++].size;
    const pending: Array<Promise<StoredFile | undefined>> = [];
    let next = first;
    const fill = (): void => {
      while (pending.length < readAhead && next < parts.length) {
        const p = partitionFile(db, parts[next++].docId, 'frame', name);
        p.catch(() => undefined); // surfaced when awaited; never unhandled if the client leaves first
        pending.push(p);
      }
    };
    for (let i = first; i < parts.length; i++) {
      fill();
      const f = await pending.shift()!;
      fill();
      if (!f || f.size !== parts[i].size) return;
      yield* files.chunks(f, offset);
      offset = 0;
    }
  };
  return { length: parts.reduce((a, p) => a + p.size, 0), chunks: from(0), from };
}
