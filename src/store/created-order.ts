/**
 * The order the janitor walks a collection in: by creation time, then by `_id` among
 * documents created in the same millisecond. A walk remembers the last document it passed
 * as that pair (a keyset), never as a count, so documents deleted or added between its
 * pages cannot make it skip one.
 */
import type { Filter, Sort } from 'mongodb';

/** A document of a walked collection, as the walk's filter names it. */
interface Dated {
  _id: string;
  createdAt: Date;
}

/**
 * One page's place in the order: the documents created at `at` whose `_id` is after
 * `afterId` ('' for all of them), by `_id`; or those created in [`from`, `to`), by creation
 * time (documents sharing a millisecond in any order).
 */
export type CreatedRange = { at: Date; afterId: string } | { from: Date; to: Date };

/** The filter and sort of a page of {@link CreatedRange} on a collection with `createdAt` and string `_id`s. */
export function createdQuery(range: CreatedRange): { filter: Filter<Dated>; sort: Sort } {
  // A millisecond as a window closed on both sides, not an equality: the embedded store
  // narrows a query to its createdAt index for windows only (FerretDB patch 5).
  // An empty id bound is left out: the embedded store narrows `_id` bounds only by a real id.
  if ('at' in range) return { filter: { createdAt: { $gte: range.at, $lte: range.at }, ...(range.afterId ? { _id: { $gt: range.afterId } } : {}) }, sort: { _id: 1 } };
  return { filter: { createdAt: { $gte: range.from, $lt: range.to } }, sort: { createdAt: 1 } };
}
