/**
 * Reads for downloads of long streams, at a cost that does not grow with the
 * stream's length per byte served:
 *
 * - Content-Length of a whole frame file comes from the names and sizes each commit records
 *   in the stream's lists and pages (store/partition-pages.ts), so no partition document is
 *   read before the first byte; only partitions committed before streams recorded them are
 *   looked up.
 * - Partition documents are read one by one by `_id` (the only lookup every embedded store
 *   answers from an index; `$in` is a table scan on FerretDB's PostgreSQL backend), a few
 *   ahead of the one being written, so round trips overlap with sending while memory stays
 *   bounded.
 */
import type { Db } from 'mongodb';
import type { StreamBody } from '../http/router';
import type { FileStore } from './files';
import { partitionFile, partitionIndex } from './partitions';
import type { CommittedPartition, StoredFile } from '../model';

/** Partition documents read ahead of the one being sent (each holds ≤ storage.inlineMaxBytes inline). */
export const READ_AHEAD = 4;
/** Concurrent single-document reads when looking up partitions committed before their frame files were recorded. */
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

/**
 * The partitions of `committed` (a stream's, in order) that hold frame file `name`, with
 * sizes. Reads only the partitions whose frame files were not recorded (by `_id`, projected
 * to their index).
 */
export async function framePartsOf(db: Db, committed: CommittedPartition[], name: string): Promise<FramePart[]> {
  const sizes = await mapLimit(committed, PARALLEL_OPS, async (e) => {
    if (e.files) return e.files.find((f) => f.name === name)?.size;
    const index = await partitionIndex(db, e.id);
    return index?.find((f) => f.kind === 'frame' && f.name === name)?.size;
  });
  return committed.flatMap((e, i) => (sizes[i] === undefined ? [] : [{ docId: e.id, n: e.n, size: sizes[i]! }]));
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
