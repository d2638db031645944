/**
 * The `partition_pages` collection, and the one way to read which partitions of a stream
 * are committed.
 *
 * A stream document lists its newest committed partitions itself (`partitions`,
 * `partitionIds`, `frameIndex`: pushed by the commit point). Every
 * `storage.partitionsPerPage` commits, the oldest of them move to a page of their own
 * (store/commit.ts `pagePartitions`), and the stream keeps only where each page ends
 * (`pageEnds`). So the commit point's update, which rewrites the whole stream document on
 * the embedded store, costs the same at the thousandth commit as at the first: 2.1–2.5 ms,
 * where it took 24 ms at 1,000 listed partitions and 48 ms at 2,000 (docs/performance.md),
 * and a stream's view stays small. Readers take the pages (by `_id`), then the stream's own list.
 */
import type { Db } from 'mongodb';
import type { Durability } from './files';
import type { CommittedPartition, PartitionPageDoc, StreamDoc } from '../model';

const PAGES = 'partition_pages';

/** The fields of a stream that say which partitions are committed (with `_id`). */
export const COMMITTED_FIELDS = ['partitions', 'partitionIds', 'frameIndex', 'pageEnds'] as const;
/** What readers of a stream's committed partitions read of it ({@link COMMITTED_FIELDS}). */
export type CommittedLists = Pick<StreamDoc, '_id' | (typeof COMMITTED_FIELDS)[number]>;

/** The stream fields a page of entries replaces: the lists the stream document keeps. */
export type Listed = Pick<StreamDoc, 'partitions' | 'partitionIds' | 'frameIndex'>;

/** Pages read while answering one question (several partitions of one stream share them). */
export type PageCache = Map<string, Promise<CommittedPartition[] | undefined>>;

/** The `_id` of the page of a stream's committed partitions after `start` up to `end`. */
export function pageId(streamId: string, start: number, end: number): string {
  return `${streamId}:p${start}-${end}`;
}

/** The partitions the stream document lists itself, oldest first. */
export function listedPartitions(s: Listed): CommittedPartition[] {
  const known = s.frameIndex ?? [];
  // frameIndex covers the newest entries (streams older than it lack the first ones).
  const first = s.partitions.length - known.length;
  return s.partitions.map((n, i) => {
    const files = i >= first ? known[i - first]?.files : undefined;
    return { n, id: s.partitionIds[i]!, ...(files ? { files } : {}) };
  });
}

/** The stream document's lists made of `entries` (the inverse of {@link listedPartitions}). */
export function listsOf(entries: CommittedPartition[]): Listed {
  return {
    partitions: entries.map((e) => e.n),
    partitionIds: entries.map((e) => e.id),
    // Entries without files are a prefix (committed before frameIndex existed), so the rest line up from the end.
    frameIndex: entries.flatMap((e) => (e.files ? [{ files: e.files }] : [])),
  };
}

/** The page of `entries` (committed partitions after `start`), as {@link writePage} writes it. */
export function pageOf(streamId: string, start: number, entries: CommittedPartition[]): PartitionPageDoc {
  return {
    _id: pageId(streamId, start, entries.at(-1)!.n),
    streamId,
    partitions: entries.map((e) => e.n),
    partitionIds: entries.map((e) => e.id),
    frameFiles: entries.map((e) => (e.files ? JSON.stringify(e.files.map(({ name, size }) => ({ name, size }))) : '')),
    createdAt: new Date(),
  };
}

/** The last partition number of a page (its end, an entry of the stream's `pageEnds`). */
export function pageEnd(page: Pick<PartitionPageDoc, 'partitions'>): number {
  return page.partitions.at(-1)!;
}

/**
 * The full pages of `pageSize` that `listed` (a stream's listed partitions, oldest first, the
 * first after `start`) fills, and the partitions left listed: the one rule of a move to pages,
 * shared with the benchmarks' bulk loader.
 */
export function pagesOf(streamId: string, start: number, listed: CommittedPartition[], pageSize: number): { pages: PartitionPageDoc[]; rest: CommittedPartition[] } {
  const pages: PartitionPageDoc[] = [];
  let at = 0;
  for (; at + pageSize <= listed.length; at += pageSize) {
    const page = pageOf(streamId, start, listed.slice(at, at + pageSize));
    pages.push(page);
    start = pageEnd(page);
  }
  return { pages, rest: listed.slice(at) };
}

/** The entries of a page (the inverse of {@link pageOf}). */
function entriesOf(page: Pick<PartitionPageDoc, 'partitions' | 'partitionIds' | 'frameFiles'>): CommittedPartition[] {
  return page.partitions.map((n, i) => {
    const files = page.frameFiles[i];
    return { n, id: page.partitionIds[i]!, ...(files ? { files: JSON.parse(files) as CommittedPartition['files'] } : {}) };
  });
}

/** The ids of a stream's pages, oldest first. */
function pageIds(s: Pick<CommittedLists, '_id' | 'pageEnds'>): string[] {
  const ends = s.pageEnds ?? [];
  return ends.map((end, i) => pageId(s._id, i === 0 ? 0 : ends[i - 1]!, end));
}

/**
 * Pages by `_id`, in the order asked; undefined when one is missing (the stream was deleted
 * after its document was read). `$in` on `_id` is answered from the primary key on every
 * store the project runs on; a long stream has one page per `storage.partitionsPerPage` partitions.
 */
async function readPages(db: Db, ids: string[]): Promise<CommittedPartition[][] | undefined> {
  if (ids.length === 0) return [];
  const docs = await db.collection<PartitionPageDoc>(PAGES).find({ _id: { $in: ids } }, { projection: { partitions: 1, partitionIds: 1, frameFiles: 1 } }).toArray();
  const byId = new Map(docs.map((d) => [d._id, entriesOf(d)]));
  const pages = ids.map((id) => byId.get(id));
  return pages.every((p) => p !== undefined) ? (pages as CommittedPartition[][]) : undefined;
}

/**
 * Every committed partition of a stream, oldest first: its pages, then its own list.
 * Undefined when the stream was deleted while being read.
 */
export async function committedPartitions(db: Db, s: CommittedLists): Promise<CommittedPartition[] | undefined> {
  const pages = await readPages(db, pageIds(s));
  return pages && [...pages.flat(), ...listedPartitions(s)];
}

/**
 * The document id of committed partition `n`: from the stream's own list, or from the one
 * page that covers `n`, read by `_id` (once per `cache`, when given). Undefined when `n` is
 * not committed; null when the page is gone, so nobody can tell (the stream was deleted
 * after `s` was read): a caller about to remove something must then leave it.
 */
export async function committedPartitionId(db: Db, s: CommittedLists, n: number, cache?: PageCache): Promise<string | undefined | null> {
  const ends = s.pageEnds ?? [];
  const page = ends.findIndex((end) => n <= end);
  if (page < 0) {
    const i = s.partitions.indexOf(n);
    return i < 0 ? undefined : s.partitionIds[i];
  }
  const id = pageIds(s)[page]!;
  let entries = cache?.get(id);
  if (!entries) {
    entries = readPages(db, [id]).then((p) => p?.[0]);
    cache?.set(id, entries);
  }
  const found = await entries;
  return found ? found.find((e) => e.n === n)?.id : null;
}

/**
 * Writes a page ({@link pageOf}) and returns its end. Step one of moving partitions out of
 * the stream document; it changes nothing a reader sees. A page written before (a move that
 * missed, or raced) is replaced by the same entries.
 */
export async function writePage(db: Db, page: PartitionPageDoc, durable: Durability = {}): Promise<number> {
  await db.collection<PartitionPageDoc>(PAGES).replaceOne({ _id: page._id }, page, { upsert: true, ...durable });
  return pageEnd(page);
}

/** Deletes pages by `_id` (those a move wrote for a stream deleted meanwhile). */
export async function deletePagesById(db: Db, ids: string[]): Promise<void> {
  if (ids.length > 0) await db.collection<PartitionPageDoc>(PAGES).deleteMany({ _id: { $in: ids } });
}

/** Deletes a stream's pages (with its other data; off the hot path, by `streamId`). */
export async function deletePages(db: Db, streamId: string): Promise<void> {
  await db.collection<PartitionPageDoc>(PAGES).deleteMany({ streamId });
}
