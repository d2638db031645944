/**
 * The source patches of our FerretDB build (ferretdb.ts builds it): what v1.24.2 gets wrong
 * for the coordinator, and the edits, applied to a writable copy of its module before
 * `go build`. Changing anything here or in `ferretdb-go/` means bumping `FERRETDB_BUILD` in
 * ferretdb.ts, which keys the binary's cache.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/** A source edit: every `from` in `file` becomes `to`, and `from` must occur exactly `count` times. */
export interface SourcePatch {
  file: string;
  from: string;
  to: string;
  count: number;
}

/**
 * Source edits applied before building. Patches 1 and 2 make lookups by `_id` use an index
 * on every table of every database, including tables created later (see
 * docs/performance.md, "Embedded store at scale"); patch 3 makes conditional updates
 * atomic, which the commit point depends on:
 *
 * 1. v1.24.2 filters on `_ferretdb_sjson->'$._id'` while the unique `_id_` index it creates
 *    with every table is on `_ferretdb_sjson->"_id"`: the same value, but SQLite's planner
 *    matches index expressions by their form, so every `_id` lookup was a full table scan.
 *    The query now uses the index's own form.
 * 2. v1.24.2 pushes a filter down to SQLite only when `_id` is its sole key, so a
 *    conditional update `{_id, frames}` scanned the table. Any filter with a scalar `_id` is
 *    now narrowed by `_id` in SQL; FerretDB still applies the whole filter to what SQL
 *    returns (find, update, findAndModify and delete all do), so results are unchanged.
 * 3. v1.24.2 runs `update`, `findAndModify` and `delete` as read, filter in Go, then write
 *    by `_id`, with nothing held in between: two conditional updates of one document
 *    (`{_id, frames: committed}`, the commit point) could both match and both be
 *    acknowledged, the second overwriting the first — an acknowledged commit lost. Each of
 *    these commands now holds a per-collection lock from its read to its write
 *    (`internal/handler/sc_collection_lock.go` in the `ferretdb-go` overlay, {@link goOverlayDir}), so they apply one
 *    after another as on MongoDB. Inserts and
 *    reads do not take it.
 * 4. v1.24.2 narrows nothing but `_id` in SQL, so every query by another field scanned and
 *    decoded the whole table (a target's streams, a stream's partitions, files and errors,
 *    GridFS chunks by `files_id`). A filter without a scalar `_id` is now narrowed by its
 *    first field compared for equality with a string or ObjectId, in the form of the indexes
 *    FerretDB creates (`_ferretdb_sjson->"field"`), so SQLite uses the index `init` made on
 *    that field; FerretDB still applies the whole filter afterwards. Only for the fields
 *    named in the patch, which the coordinator always stores as a string or ObjectId: on a
 *    field holding an array, MongoDB's equality also matches an element, which this SQL
 *    comparison would miss. Without such a field, a `createdAt` range (the janitor's window)
 *    is narrowed the same way: FerretDB stores a date as its milliseconds, which the index
 *    holds as text, and for dates between 2001 and 2286 (13 digits) text order is time
 *    order; bounds outside that range are left to FerretDB's own filter.
 * 5. v1.24.2 sorts, skips, limits and counts in Go after reading every matching document, so
 *    the first page of a target's streams, or their count, read and decoded every stream of
 *    the target (48–50 s for a target of 100,000 streams). When every condition of a filter
 *    can be written exactly in SQL (equality with a string or ObjectId on `_id` or on a
 *    patch 4 field, and `$gt`/`$gte`/`$lt`/`$lte` on `_id` with an ObjectId or a plain id
 *    string), the WHERE clause is that exact one, a sort by `_id` and the limit (plus skip)
 *    of a `find` go to SQLite, and `count` counts the rows SQLite selects without reading
 *    the documents. With the `{targetId, _id}` index `init` creates, a page of a target's
 *    streams reads only that page. A `createdAt` window bounded on both sides by dates of
 *    13-digit milliseconds is exact too, and may be sorted by `createdAt` in SQL: the
 *    janitor's page then walks the `createdAt` index for its 5,000 rows instead of reading
 *    the whole window. SQLite backend only (the PostgreSQL one is left as is).
 * 6. A target's committed frames, `[{$match: {targetId}}, {$group: {_id: null, frames:
 *    {$sum: '$frames'}}}]`, decoded every stream of the target in Go (143 s at 100,000).
 *    That pipeline shape, with an exact `$match` and a `$sum` of a field the coordinator
 *    always stores as an integer in that collection (`streams.frames`; a partition's `frames`
 *    is a list of files), is now one SQL `sum()`; the result document is the one `$group`
 *    gives (none when nothing matches). Such a field is indexed as an SQL value
 *    (`->>'$.frames'`, `internal/backends/sqlite/metadata/sc_index.go`) rather than as
 *    FerretDB's `->"frames"`, whose JSON subtype keeps SQLite (3.45+) from reading it out of
 *    the index; the sum names the same expression, so with the `{targetId, frames}` index
 *    `init` creates SQLite sums the index alone (3.5–6.3 s at 100,000 streams when it read
 *    every stream's document). `test/store-patch-fields.test.ts` checks the field lists of
 *    patches 4–6 against what the coordinator writes.
 * 7. With such a filter and sort, a find's skip is SQLite's OFFSET too, so a deep page of a
 *    target's streams by offset (the dashboard's pages) steps over index entries instead of
 *    decoding every stream before it (42.7 s for offset 50,000 of 100,000 with patch 5 alone).
 * 8. An `_id: {$in: [...]}` list (the pool returning expired leases' streams, the janitor's
 *    check of which streams still exist, a revocation check) was narrowed by nothing, or by
 *    `status`, so each such query read and decoded every stream: with 200,000 streams, the
 *    pool's sweeps in every worker kept FerretDB busy enough that set-ups timed out. A `$in`
 *    of strings and ObjectIds (at most 10,000) on `_id` or on a patch 4 field is now an SQL
 *    `IN` list, exact (patch 5 rules) and answered from the index. An empty list is the
 *    constant false, answered without reading a row (it, too, read every document).
 * 9. v1.24.2 decodes a stored document level by level through encoding/json's Decoder, so a
 *    value n levels deep went through its byte-at-a-time scanner about 2n times: reading a
 *    partition (a 1 MiB frame file three levels down) cost about 60 ms of FerretDB's CPU,
 *    which capped downloads near 32 MB/s and made deleting a long stream slow (a delete reads
 *    what it removes). An object or array is now split into its raw values in one pass that
 *    skips strings with `bytes.IndexByte`, and a binary's base64 is decoded directly
 *    (`internal/handler/sjson/sc_fast_decode.go`); input it cannot split exactly (a key with
 *    an escape, a repeated key, anything malformed) goes through encoding/json as before,
 *    with the same errors.
 * 10. A find with an inclusion projection still decoded each whole document before
 *    projecting it. A stream's document grows by three list entries per committed
 *    partition, so a page of a target's streams (which asks for six fields) took 3.6 s for
 *    100 streams of 1,000 partitions. When a find's projection includes at least one field
 *    and excludes none but perhaps `_id`, and its filter and sort have no top-level
 *    operator, the SQLite
 *    backend now cuts each stored document down to the top-level fields the projection,
 *    the filter and the sort name (FerretDB still filters, sorts and projects what it gets,
 *    so the result is unchanged) before decoding it (`internal/handler/sc_projection.go`,
 *    `internal/handler/sjson/sc_keep.go`); a document it cannot split exactly is decoded
 *    whole, as before.
 * 11. A target's streams sorted by `frames` or `errorCount` (then `_id`: the stream list's
 *    sorts) were sorted in Go after decoding every stream of the target: 8.9 s for the
 *    first page at 100,000 streams, even with patch 10. With an exact filter, a sort by an
 *    integer field of the collection (`SCIntFields`, in the SQL form of patch 6) and then
 *    `_id` goes to SQLite with its limit and skip, which walks the `target_frames_id` or
 *    `target_errors_id` index `init` creates. `test/store-queries.test.ts` checks the order, ties and pages
 *    against MongoDB's.
 * 12. The stream list's other two sorts, by `status` and by `createdAt` (then `_id`), were
 *    still sorted in Go: about 9 s for a page at 100,000 streams. They go to SQLite as in
 *    patch 11, for the fields the coordinator always stores with an SQL order equal to
 *    MongoDB's: a date (`SCDateFields`, which FerretDB keeps as its milliseconds, so it is
 *    indexed and sorted as that integer, like `SCIntFields`) and a word of
 *    [0-9A-Za-z_.:~-] (`SCWordFields`, whose JSON text in FerretDB's own index form sorts
 *    as the string does). SQLite walks the `target_created_id` or `target_status_id` index
 *    `init` creates; the latter replaces `target_status`, whose counts it answers as well.
 * 13. The public leaderboard, `find({}, {sort: {frames: -1, name: 1}, limit})`, decoded and
 *    sorted every donor in Go, because an empty filter was not "exact". It is now (no WHERE
 *    clause selects every document), and a sort by two such fields goes to SQLite too:
 *    `donors.frames` is an integer and `donors.name` a word, so SQLite walks the
 *    `frames_name` index `init` creates for the page alone. A count of a whole collection
 *    also counts rows without decoding them.
 * 16. An `update` command with 100 or more statements (a driver's `bulkWrite` of updates)
 *    never answered, and held the collection (patch 3's lock) and the database's SQLite
 *    connections while it waited. v1.24.2 keeps each statement's query open until the
 *    command ends, and its SQLite pool opens at most 100 connections per database, so the
 *    hundredth statement waited for a connection only the command itself could free. Each
 *    statement's query is now closed as soon as that statement is done. The coordinator sends
 *    one statement per command, but an operator's script may not; `test/store-queries.test.ts`
 *    sends 250.
 * 17. v1.24.2 wrote each document an update changed in a SQLite transaction of its own, and
 *    each commit waits for the disk, so a bulk write of updates (the donors' credit of a batch
 *    of ended activations, store/credit.ts) cost about 0.5 ms a document however it was sent
 *    (0.46 ms even as one `updateMany`). The documents the statements of one `update` command
 *    change are now written together in one transaction when the command ends
 *    (`internal/handler/sc_deferred_update.go`), within patch 3's collection lock. A statement
 *    that could match a document still waiting (its filter has no `_id` that is a string or
 *    ObjectId none of them has) writes them first, so it reads what the earlier statements
 *    wrote, as on MongoDB. When a statement fails, those before it are still written and the
 *    command fails as before; when the write itself fails, none of them is. Upserts insert
 *    at once, as before.
 * 18. v1.24.2 ignores an update's `maxTimeMS`, so a commit point held up in FerretDB (behind
 *    patch 3's lock, or in SQLite) could land long after its writer gave up, after the
 *    janitor had judged its partition abandoned by age (src/store/abandoned.ts). An update
 *    with `maxTimeMS` now runs under a context cancelled when it is spent: the wait for the
 *    collection's lock ends with it (the lock is a channel of one slot,
 *    `internal/handler/sc_collection_lock.go`), and so do the statements' reads and the write
 *    of patch 17, whose SQLite transaction a cancelled context rolls back, so nothing of the
 *    command lands afterwards (upserts already inserted stay, as when a later statement
 *    fails). The command then fails with MaxTimeMSExpired (code 50), as `find` does.
 *
 * Patches 14 and 15 are in the modules SQLite runs on rather than in FerretDB:
 * {@link DEPENDENCY_PATCHES}.
 */
export const FERRETDB_PATCHES: SourcePatch[] = [
  {
    file: 'internal/backends/sqlite/metadata/metadata.go',
    from: `IDColumn = DefaultColumn + "->'$._id'"`,
    to: 'IDColumn = DefaultColumn + `->"_id"`',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/collection.go',
    from: 'if params.Filter.Len() == 1 {',
    to: 'if params.Filter.Len() > 0 {',
    count: 2,
  },
  {
    file: 'internal/backends/sqlite/collection.go',
    from: '\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n',
    to: '\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n\t\tif w, a, ok := scExactWhere(params.Filter); ok {\n\t\t\twhereClause, args = w, a\n\t\t} else if whereClause == "" {\n\t\t\twhereClause, args = scNarrow(params.Filter)\n\t\t}\n',
    count: 2,
  },
  {
    file: 'internal/handler/msg_update.go',
    from: '\tmatched, modified, upserted, err := h.updateDocument(connCtx, params)\n',
    to: '\tmatched, modified, upserted, err := func() (int32, int32, *types.Array, error) {\n\t\tdefer scLockCollection(params.DB, params.Collection)()\n\t\treturn h.updateDocument(connCtx, params)\n\t}()\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_findandmodify.go',
    from: '\tres, err := h.findAndModifyDocument(connCtx, params)\n',
    to: '\tres, err := func() (*findAndModifyResult, error) {\n\t\tdefer scLockCollection(params.DB, params.Collection)()\n\t\treturn h.findAndModifyDocument(connCtx, params)\n\t}()\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_delete.go',
    from: '\t\td, err = h.execDelete(connCtx, c, &p)\n',
    to: '\t\td, err = func() (int32, error) {\n\t\t\tdefer scLockCollection(params.DB, params.Collection)()\n\t\t\treturn h.execDelete(connCtx, c, &p)\n\t\t}()\n',
    count: 1,
  },
  {
    file: 'internal/backends/collection.go',
    from: '\t\tsortValue := params.Sort.Map()["$natural"].(int64)\n',
    to: '\t\tsortValue, _ := params.Sort.Map()["$natural"].(int64)\n\t\tfor _, k := range params.Sort.Keys() {\n\t\t\tif v, ok := params.Sort.Map()[k].(int64); ok && k != "$natural" {\n\t\t\t\tsortValue = v\n\t\t\t}\n\t\t}\n',
    count: 2,
  },
  {
    file: 'internal/backends/collection.go',
    from: '\t\tmust.BeTrue(params.Sort.Len() == 1)\n',
    to: '\t\tmust.BeTrue(params.Sort.Len() == 1 || params.Sort.Len() == 2)\n',
    count: 2,
  },
  {
    file: 'internal/backends/sqlite/query.go',
    from: 'func prepareOrderByClause(sort *types.Document) string {\n',
    to: 'func prepareOrderByClause(sort *types.Document) string {\n\tif o := scOrderBy(sort); o != "" {\n\t\treturn o\n\t}\n\n',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/query.go',
    from: '\treturn fmt.Sprintf(`SELECT %s %s FROM %q`, comment, metadata.DefaultColumn, table)\n',
    to: '\tif onlyRecordIDs {\n\t\treturn fmt.Sprintf(`SELECT %s 0 AS %s FROM %q`, comment, metadata.RecordIDColumn, table)\n\t}\n\n\treturn fmt.Sprintf(`SELECT %s %s FROM %q`, comment, metadata.DefaultColumn, table)\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_find.go',
    from: '\t\tqp.Limit = params.Limit\n\t}\n',
    to: '\t\tqp.Limit = params.Limit\n\t}\n\n\tif !h.DisablePushdown && !cInfo.Capped() {\n\t\tif sort, ok := scSortPushdown(params.Collection, params.Filter, params.Sort); ok {\n\t\t\tqp.Sort, qp.Limit, qp.SCOffset = sort, params.Limit, params.Skip\n\t\t\tparams.Skip = 0\n\t\t}\n\t}\n\n\tqp.SCKeep = scKeepKeys(params.Filter, params.Sort, params.Projection)\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_explain.go',
    from: '\t\tqp.Limit = params.Limit\n\t}\n',
    to: '\t\tqp.Limit = params.Limit\n\t}\n\n\tif !h.DisablePushdown && !cInfo.Capped() {\n\t\tif sort, ok := scSortPushdown(params.Collection, params.Filter, params.Sort); ok && (params.Limit > 0 || params.Skip == 0) {\n\t\t\tqp.Sort, qp.Limit = sort, params.Limit+params.Skip\n\t\t}\n\t}\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_count.go',
    from: '\tif !h.DisablePushdown {\n\t\tqp.Filter = params.Filter\n\t}\n',
    to: '\tif !h.DisablePushdown {\n\t\tqp.Filter = params.Filter\n\t}\n\n\tscCountOnly := !h.DisablePushdown && scExactPushdown(params.Filter)\n\tqp.OnlyRecordIDs = scCountOnly\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_count.go',
    from: '\titer = common.FilterIterator(iter, closer, params.Filter)\n',
    to: '\tif !scCountOnly {\n\t\titer = common.FilterIterator(iter, closer, params.Filter)\n\t}\n',
    count: 1,
  },
  {
    file: 'internal/backends/collection.go',
    from: '\tOnlyRecordIDs bool\n\tComment       string\n}\n',
    to: '\tOnlyRecordIDs bool\n\tComment       string\n\n\t// SCSumField, when set, makes Query return one row whose record ID is the sum of this\n\t// integer field over the filter\'s rows, or no row when none match (patch 6).\n\tSCSumField string\n\n\t// SCOffset rows are skipped by SQLite (patch 7: only with an exact filter).\n\tSCOffset int64\n\n\t// SCKeep, when set, names the only top-level fields of each document the query needs\n\t// (patch 10: SQLite backend only).\n\tSCKeep []string\n}\n',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/metadata/registry.go',
    from: '\t\t\tfields := strings.Split(key.Field, ".")\n\t\t\tfor j, f := range fields {\n\t\t\t\tfields[j] = fmt.Sprintf("%q", f)\n\t\t\t}\n\n\t\t\tcolumns[i] = fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(fields, "->"))\n',
    to: '\t\t\tcolumns[i] = scIndexColumn(collectionName, key.Field)\n',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/collection.go',
    from: '\tq += whereClause\n\tq += prepareOrderByClause(params.Sort)\n',
    to: '\tif params.SCSumField != "" {\n\t\tq = scSumSelect(meta.TableName, params.SCSumField)\n\t\twhereClause += " HAVING count(*) > 0"\n\t}\n\tq += whereClause\n\tq += prepareOrderByClause(params.Sort)\n',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/collection.go',
    from: '\t\targs = append(args, params.Limit)\n\t}\n\n\trows, err := db.QueryContext(ctx, q, args...)\n',
    to: '\t\targs = append(args, params.Limit)\n\t}\n\n\tif params.SCOffset != 0 {\n\t\tif params.Limit == 0 {\n\t\t\tq += ` LIMIT -1`\n\t\t}\n\t\tq += ` OFFSET ?`\n\t\targs = append(args, params.SCOffset)\n\t}\n\n\trows, err := db.QueryContext(ctx, q, args...)\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_aggregate.go',
    from: '\t\titer, err = processStagesDocuments(ctx, closer, &stagesDocumentsParams{c, qp, stagesDocuments})\n',
    to: '\t\tif sum, ok := scSumPipeline(cName, aggregationStages); ok && !h.DisablePushdown && !cInfo.Capped() {\n\t\t\titer, err = scSumQuery(ctx, c, sum)\n\t\t} else {\n\t\t\titer, err = processStagesDocuments(ctx, closer, &stagesDocumentsParams{c, qp, stagesDocuments})\n\t\t}\n',
    count: 1,
  },
  {
    file: 'internal/handler/registry/sqlite.go',
    from: '\t\th, err := handler.New(handlerOpts)\n',
    to: '\t\thandler.SCSQLite = true\n\t\th, err := handler.New(handlerOpts)\n',
    count: 1,
  },
  {
    file: 'internal/handler/sjson/sjson.go',
    from: '\tvar v map[string]json.RawMessage\n\tr := bytes.NewReader(data)\n\tdec := json.NewDecoder(r)\n\n\terr := dec.Decode(&v)\n\tif err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n\n\tif err = checkConsumed(dec, r); err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n',
    to: '\tv, err := scDecodeObject(data)\n\tif err != nil {\n\t\treturn nil, lazyerrors.Error(err)\n\t}\n',
    count: 1,
  },
  {
    file: 'internal/handler/sjson/sjson.go',
    from: '\tr = bytes.NewReader(jsch)\n\tdec = json.NewDecoder(r)\n',
    to: '\tr := bytes.NewReader(jsch)\n\tdec := json.NewDecoder(r)\n',
    count: 1,
  },
  {
    file: 'internal/handler/sjson/document.go',
    from: '\tr := bytes.NewReader(data)\n\tdec := json.NewDecoder(r)\n\n\tvar rawMessages map[string]json.RawMessage\n\tif err := dec.Decode(&rawMessages); err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n\n\tif err := checkConsumed(dec, r); err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n',
    to: '\trawMessages, err := scDecodeObject(data)\n\tif err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n',
    count: 1,
  },
  {
    file: 'internal/handler/sjson/array.go',
    from: '\tr := bytes.NewReader(data)\n\tdec := json.NewDecoder(r)\n\n\tvar rawMessages []json.RawMessage\n\tif err := dec.Decode(&rawMessages); err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n\n\tif err := checkConsumed(dec, r); err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n',
    to: '\trawMessages, err := scDecodeArray(data)\n\tif err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n',
    count: 1,
  },
  {
    file: 'internal/handler/sjson/array.go',
    from: '\t"bytes"\n\t"encoding/json"\n',
    to: '\t"bytes"\n',
    count: 1,
  },
  {
    file: 'internal/handler/sjson/binary.go',
    from: '\tr := bytes.NewReader(data)\n\tdec := json.NewDecoder(r)\n\tdec.DisallowUnknownFields()\n\n\tvar o []byte\n\n\terr := dec.Decode(&o)\n\tif err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n\n\tif err = checkConsumed(dec, r); err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n',
    to: '\to, err := scDecodeBinary(data)\n\tif err != nil {\n\t\treturn lazyerrors.Error(err)\n\t}\n',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/query_iterator.go',
    from: '\tonlyRecordIDs bool\n}\n',
    to: '\tonlyRecordIDs bool\n\tscKeep        []string\n}\n',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/query_iterator.go',
    from: '\t\tif doc, err = sjson.Unmarshal(b); err != nil {\n',
    to: '\t\tif doc, err = sjson.Unmarshal(sjson.SCKeep(b, iter.scKeep)); err != nil {\n',
    count: 1,
  },
  {
    file: 'internal/backends/sqlite/collection.go',
    from: '\t\tIter: newQueryIterator(ctx, rows, params.OnlyRecordIDs),\n',
    to: '\t\tIter: scWithKeep(newQueryIterator(ctx, rows, params.OnlyRecordIDs), params.SCKeep),\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_update.go',
    from: '\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n',
    // Patches 16 and 17. The deferred Close stays: closing twice is harmless, and it still covers the returns above.
    to: '\t\tresult, err := common.UpdateDocument(ctx, deferred.wrap(c), "update", iter, &u)\n\t\tcloser.Close()\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_update.go',
    from: 'func (h *Handler) updateDocument(ctx context.Context, params *common.UpdateParams) (int32, int32, *types.Array, error) {\n',
    to: 'func (h *Handler) updateDocument(ctx context.Context, params *common.UpdateParams, deferred *scDeferredUpdates) (int32, int32, *types.Array, error) {\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_update.go',
    from: '\t\tres, err := c.Query(ctx, &qp)\n',
    to: '\t\tif deferred.mustFlushBefore(u.Filter) {\n\t\t\tif err = deferred.flush(ctx); err != nil {\n\t\t\t\treturn 0, 0, nil, lazyerrors.Error(err)\n\t\t\t}\n\t\t}\n\n\t\tres, err := c.Query(ctx, &qp)\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_update.go',
    // Patch 3's call, inside the collection lock: the statements' documents are written
    // before the lock is let go, also when a statement failed (those before it stay applied).
    from: '\t\treturn h.updateDocument(connCtx, params)\n',
    to: '\t\tdeferred := new(scDeferredUpdates)\n\t\tm, n, up, err := h.updateDocument(connCtx, params, deferred)\n\t\tif ferr := deferred.flush(connCtx); ferr != nil && err == nil {\n\t\t\terr = ferr\n\t\t}\n\t\treturn m, n, up, err\n',
    count: 1,
  },
  // Patch 18: an update's maxTimeMS, from its wait for patch 3's lock to patch 17's write.
  {
    file: 'internal/handler/common/update_params.go',
    from: '\tMaxTimeMS int64  `ferretdb:"maxTimeMS,ignored"`\n',
    to: '\tMaxTimeMS int64  `ferretdb:"maxTimeMS,opt,wholePositiveNumber"`\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_update.go',
    from: '\t\tdefer scLockCollection(params.DB, params.Collection)()\n\t\tdeferred := new(scDeferredUpdates)\n\t\tm, n, up, err := h.updateDocument(connCtx, params, deferred)\n\t\tif ferr := deferred.flush(connCtx); ferr != nil && err == nil {\n\t\t\terr = ferr\n\t\t}\n\t\treturn m, n, up, err\n',
    to: '\t\tctx, release := scWithMaxTime(connCtx, params.MaxTimeMS)\n\t\tdefer release()\n\t\tunlock, err := scLockCollectionCtx(ctx, params.DB, params.Collection)\n\t\tif err != nil {\n\t\t\treturn 0, 0, nil, handleMaxTimeMSError(err, params.MaxTimeMS, "update")\n\t\t}\n\t\tdefer unlock()\n\t\tdeferred := new(scDeferredUpdates)\n\t\tm, n, up, err := h.updateDocument(ctx, params, deferred)\n\t\tif ferr := deferred.flush(ctx); ferr != nil && err == nil {\n\t\t\terr = ferr\n\t\t}\n\t\tif err != nil && ctx.Err() != nil && params.MaxTimeMS != 0 {\n\t\t\terr = handleMaxTimeMSError(ctx.Err(), params.MaxTimeMS, "update")\n\t\t}\n\t\treturn m, n, up, err\n',
    count: 1,
  },
];

/** A module FerretDB builds with, patched in a copy that FerretDB's go.mod then points at. */
export interface DependencyPatch {
  /** The module path, as in FerretDB's go.mod (which fixes its version). */
  module: string;
  /** The folder of Go files added to the copy ({@link goOverlayDir}). */
  overlay: 'libc-go' | 'sqlite-go';
  patches: SourcePatch[];
}

/**
 * Patches 14 and 15, in the modules FerretDB v1.24.2 runs SQLite on (SQLite is C translated
 * to Go): while the commits benchmark ran, copying and comparing inserted documents took a
 * third of FerretDB's CPU.
 *
 * 14. `modernc.org/libc` v1.55.3: memcpy, memmove, memset, memcmp and strlen on linux/amd64
 *     were musl's C translated to Go, stepping four or eight bytes at a time (memcmp one).
 *     The musl versions are renamed, and `libc-go/sc_mem.go` gives the names to the Go
 *     runtime's vectorised copy, compare and byte search, as libc.go already does for
 *     memcpy, memmove and memcmp where no musl translation exists. Other platforms build
 *     the module as it is.
 * 15. `modernc.org/sqlite` v1.32.0 binds a Go string as text of its length: its C copy ends
 *     with a NUL, but SQLite is not told, so every SQL function reading the value copies it
 *     whole to add one. A stored document is such a value, and every index of its collection
 *     reads it through a JSON function (`_ferretdb_sjson->"field"`): an inserted partition
 *     was copied once per index. A string without a NUL byte is now bound as NUL-terminated
 *     (length -1; SQLite finds the length with strlen), so SQLite reads it in place; a string
 *     with a NUL is bound as before (`sqlite-go/sc_bind.go`).
 */
export const DEPENDENCY_PATCHES: DependencyPatch[] = [
  {
    module: 'modernc.org/libc',
    overlay: 'libc-go',
    patches: ['memcmp', 'memcpy', 'memmove', 'memset', 'strlen'].map((name) => ({
      file: 'ccgo_linux_amd64.go',
      from: `\nfunc X${name}(tls *TLS, `,
      to: `\nfunc scMusl${name[0].toUpperCase()}${name.slice(1)}(tls *TLS, `,
      count: 1,
    })),
  },
  {
    module: 'modernc.org/sqlite',
    overlay: 'sqlite-go',
    patches: [
      {
        file: 'sqlite.go',
        from: 'sqlite3.Xsqlite3_bind_text(c.tls, pstmt, int32(idx1), p, int32(len(value)), 0)',
        to: 'sqlite3.Xsqlite3_bind_text(c.tls, pstmt, int32(idx1), p, scTextLen(value), 0)',
        count: 1,
      },
    ],
  },
];

/**
 * A folder of Go files that patches call, kept as real Go under `src/provision/` at the
 * paths they take in the patched module's tree, and copied in before building:
 * `ferretdb-go` (patches 3–12: scNarrow, scExactWhere, scLockCollection, the pushdown
 * helpers, the sjson splitters, the projection's field list), `libc-go` (patch 14) and
 * `sqlite-go` (patch 15).
 * From the compiled `dist/` the folder is found in the package's `src/`.
 */
export function goOverlayDir(name: 'ferretdb-go' | DependencyPatch['overlay']): string {
  const beside = path.join(__dirname, name);
  return fs.existsSync(beside) ? beside : path.resolve(__dirname, '..', '..', '..', 'src', 'provision', name);
}

/** The files under `dir`, as paths relative to it. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(dir, rel)));
    else out.push(rel);
  }
  return out;
}

/** Adds the files of an overlay folder to a writable module tree and applies `patches`; throws when a patch no longer fits. */
async function patchTree(src: string, overlay: string, patches: SourcePatch[]): Promise<void> {
  for (const file of await filesUnder(overlay)) await fsp.copyFile(path.join(overlay, file), path.join(src, file));
  for (const p of patches) {
    const file = path.join(src, p.file);
    const text = await fsp.readFile(file, 'utf8');
    const found = text.split(p.from).length - 1;
    if (found !== p.count) throw new Error(`Source patch does not fit ${p.file}: expected ${p.count} × ${JSON.stringify(p.from)}, found ${found}`);
    await fsp.writeFile(file, text.split(p.from).join(p.to));
  }
}

/** Applies {@link FERRETDB_PATCHES} and the `ferretdb-go` overlay to a writable copy of FerretDB's module. */
export async function patchSource(src: string): Promise<void> {
  await patchTree(src, goOverlayDir('ferretdb-go'), FERRETDB_PATCHES);
}

/** Applies one of {@link DEPENDENCY_PATCHES} to a writable copy of its module. */
export async function patchDependency(src: string, dep: DependencyPatch): Promise<void> {
  await patchTree(src, goOverlayDir(dep.overlay), dep.patches);
}
