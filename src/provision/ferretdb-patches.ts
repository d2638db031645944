/**
 * The source patches of our FerretDB build (ferretdb.ts builds it): what v1.24.2 gets wrong
 * for the coordinator, and the edits, applied to a writable copy of its module before
 * `go build`. Changing anything here means bumping `FERRETDB_BUILD` in ferretdb.ts, which
 * keys the binary's cache.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';

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
 *    ({@link FERRETDB_FILES}), so they apply one after another as on MongoDB. Inserts and
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
 *    always stores as an integer (`frames`), is now one SQL `sum()`; the result document is
 *    the one `$group` gives (none when nothing matches).
 * 7. With such a filter and sort, a find's skip is SQLite's OFFSET too, so a deep page of a
 *    target's streams by offset (the dashboard's pages) steps over index entries instead of
 *    decoding every stream before it (42.7 s for offset 50,000 of 100,000 with patch 5 alone).
 */
export const FERRETDB_PATCHES: Array<{ file: string; from: string; to: string; count: number }> = [
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
    to: '\t\tsortValue, _ := params.Sort.Map()["$natural"].(int64)\n\t\tfor _, k := range []string{"_id", "createdAt"} {\n\t\t\tif v, ok := params.Sort.Map()[k].(int64); ok {\n\t\t\t\tsortValue = v\n\t\t\t}\n\t\t}\n',
    count: 2,
  },
  {
    file: 'internal/backends/sqlite/query.go',
    from: '\tv := must.NotFail(sort.Get("$natural"))\n',
    to: '\tif o := scOrderBy(sort); o != "" {\n\t\treturn o\n\t}\n\n\tv := must.NotFail(sort.Get("$natural"))\n',
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
    to: '\t\tqp.Limit = params.Limit\n\t}\n\n\tif !h.DisablePushdown && !cInfo.Capped() {\n\t\tif sort, ok := scSortPushdown(params.Filter, params.Sort); ok {\n\t\t\tqp.Sort, qp.Limit, qp.SCOffset = sort, params.Limit, params.Skip\n\t\t\tparams.Skip = 0\n\t\t}\n\t}\n',
    count: 1,
  },
  {
    file: 'internal/handler/msg_explain.go',
    from: '\t\tqp.Limit = params.Limit\n\t}\n',
    to: '\t\tqp.Limit = params.Limit\n\t}\n\n\tif !h.DisablePushdown && !cInfo.Capped() {\n\t\tif sort, ok := scSortPushdown(params.Filter, params.Sort); ok && (params.Limit > 0 || params.Skip == 0) {\n\t\t\tqp.Sort, qp.Limit = sort, params.Limit+params.Skip\n\t\t}\n\t}\n',
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
    to: '\tOnlyRecordIDs bool\n\tComment       string\n\n\t// SCSumField, when set, makes Query return one row whose record ID is the sum of this\n\t// integer field over the filter\'s rows, or no row when none match (patch 6).\n\tSCSumField string\n\n\t// SCOffset rows are skipped by SQLite (patch 7: only with an exact filter).\n\tSCOffset int64\n}\n',
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
    to: '\t\tif sum, ok := scSumPipeline(aggregationStages); ok && !h.DisablePushdown && !cInfo.Capped() {\n\t\t\titer, err = scSumQuery(ctx, c, sum)\n\t\t} else {\n\t\t\titer, err = processStagesDocuments(ctx, closer, &stagesDocumentsParams{c, qp, stagesDocuments})\n\t\t}\n',
    count: 1,
  },
  {
    file: 'internal/handler/registry/sqlite.go',
    from: '\t\th, err := handler.New(handlerOpts)\n',
    to: '\t\thandler.SCSQLite = true\n\t\th, err := handler.New(handlerOpts)\n',
    count: 1,
  },
];

/** Files added to the source tree before building (path → contents). */
export const FERRETDB_FILES: Record<string, string> = {
  'internal/backends/sqlite/sc_narrow.go': `package sqlite

import (
\t"fmt"
\t"strconv"
\t"strings"
\t"time"

\t"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
\t"github.com/FerretDB/FerretDB/internal/handler/sjson"
\t"github.com/FerretDB/FerretDB/internal/types"
\t"github.com/FerretDB/FerretDB/internal/util/must"
)

// scScalarFields are the fields stream-coordinator always stores as a string or ObjectId,
// never as an array (on an array, MongoDB's equality also matches an element).
var scScalarFields = map[string]bool{
\t"streamId": true, "targetId": true, "owner": true, "status": true, "role": true, "name": true,
\t"donor": true, "kind": true, "tokenHash": true, "keyHash": true, "files_id": true,
}

// scNarrow returns a WHERE clause narrowing a query by the filter's first field of
// scScalarFields compared for equality with a string or ObjectId, else by its createdAt
// range, written like the indexes FerretDB creates so SQLite can use one
// (stream-coordinator patch 4, see src/provision/ferretdb-patches.ts). The caller still applies
// the whole filter to the rows returned, so the clause may select more, never less.
func scNarrow(filter *types.Document) (string, []any) {
\tif filter == nil {
\t\treturn "", nil
\t}
\tfor _, k := range filter.Keys() {
\t\tif !scScalarFields[k] {
\t\t\tcontinue
\t\t}
\t\tv := must.NotFail(filter.Get(k))
\t\tswitch v.(type) {
\t\tcase string, types.ObjectID:
\t\t\treturn fmt.Sprintf(\` WHERE %s->"%s" = ?\`, metadata.DefaultColumn, k), []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
\t\t}
\t}
\tif r, _ := filter.Get("createdAt"); r != nil {
\t\tif ops, ok := r.(*types.Document); ok {
\t\t\treturn scDateRange(ops)
\t\t}
\t}
\treturn "", nil
}

// scDateRange turns $gt/$gte/$lt/$lte bounds that are dates of 13-digit milliseconds into
// text comparisons on the createdAt index expression; other bounds are left out.
func scDateRange(ops *types.Document) (string, []any) {
\tterms, args, _ := scDateTerms(ops)
\tif len(terms) == 0 {
\t\treturn "", nil
\t}
\treturn " WHERE " + strings.Join(terms, " AND "), args
}

// scDateTerms returns the SQL comparisons of scDateRange, and all = true when every
// operator was one of those (then they select exactly what the operators match, because
// the coordinator always stores createdAt as a date, and 13-digit milliseconds sort as text
// as they do as numbers).
func scDateTerms(ops *types.Document) (terms []string, args []any, all bool) {
\tall = true
\tfor _, op := range ops.Keys() {
\t\tsqlOp, known := scRangeOps[op]
\t\tt, isDate := must.NotFail(ops.Get(op)).(time.Time)
\t\tif !known || !isDate || t.UnixMilli() < 1_000_000_000_000 || t.UnixMilli() >= 10_000_000_000_000 {
\t\t\tall = false
\t\t\tcontinue
\t\t}
\t\tterms = append(terms, fmt.Sprintf(\`%s->"createdAt" %s ?\`, metadata.DefaultColumn, sqlOp))
\t\targs = append(args, strconv.FormatInt(t.UnixMilli(), 10))
\t}
\treturn terms, args, all
}

// scRangeOps are the comparison operators scExactWhere writes in SQL.
var scRangeOps = map[string]string{"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}

// scOrderedText reports whether a bound compares in SQL as MongoDB compares it: an ObjectId
// (hex of one length), or a non-empty string of [0-9A-Za-z_.:~-] (JSON writes those as
// themselves and all sort after the closing quote, so comparing the JSON texts orders like
// comparing the strings).
func scOrderedText(v any) bool {
\tswitch v := v.(type) {
\tcase types.ObjectID:
\t\treturn true
\tcase string:
\t\tif v == "" {
\t\t\treturn false
\t\t}
\t\tfor _, c := range []byte(v) {
\t\t\tok := c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '.' || c == ':' || c == '~' || c == '-'
\t\t\tif !ok {
\t\t\t\treturn false
\t\t\t}
\t\t}
\t\treturn true
\t}
\treturn false
}

// scExactWhere returns a WHERE clause that selects exactly the documents the filter matches
// (stream-coordinator patch 5), and ok = false when the filter has a condition SQL cannot
// express exactly. Exact conditions: equality with a string or ObjectId on _id or on a field
// of scScalarFields, and $gt/$gte/$lt/$lte bounds on _id (see scOrderedText), for
// collections whose _id values are all of one type, as the coordinator's are. Only an exact
// clause lets the handler push a sort by _id and a limit down to SQLite.
func scExactWhere(filter *types.Document) (string, []any, bool) {
\tif filter.Len() == 0 {
\t\treturn "", nil, false
\t}
\tvar terms []string
\tvar args []any
\tfor _, k := range filter.Keys() {
\t\tif k == "createdAt" {
\t\t\tops, isDoc := must.NotFail(filter.Get(k)).(*types.Document)
\t\t\tif !isDoc {
\t\t\t\treturn "", nil, false
\t\t\t}
\t\t\tdt, da, all := scDateTerms(ops)
\t\t\tif !all || len(dt) == 0 {
\t\t\t\treturn "", nil, false
\t\t\t}
\t\t\tterms = append(terms, dt...)
\t\t\targs = append(args, da...)
\t\t\tcontinue
\t\t}
\t\tcol := fmt.Sprintf(\`%s->"%s"\`, metadata.DefaultColumn, k)
\t\tif k == "_id" {
\t\t\tcol = metadata.IDColumn
\t\t} else if !scScalarFields[k] {
\t\t\treturn "", nil, false
\t\t}
\t\tswitch v := must.NotFail(filter.Get(k)).(type) {
\t\tcase string, types.ObjectID:
\t\t\tterms = append(terms, col+" = ?")
\t\t\targs = append(args, string(must.NotFail(sjson.MarshalSingleValue(v))))
\t\tcase *types.Document:
\t\t\tif k != "_id" || v.Len() == 0 {
\t\t\t\treturn "", nil, false
\t\t\t}
\t\t\tfor _, op := range v.Keys() {
\t\t\t\tsqlOp, known := scRangeOps[op]
\t\t\t\tb := must.NotFail(v.Get(op))
\t\t\t\tif !known || !scOrderedText(b) {
\t\t\t\t\treturn "", nil, false
\t\t\t\t}
\t\t\t\tterms = append(terms, col+" "+sqlOp+" ?")
\t\t\t\targs = append(args, string(must.NotFail(sjson.MarshalSingleValue(b))))
\t\t\t}
\t\tdefault:
\t\t\treturn "", nil, false
\t\t}
\t}
\treturn " WHERE " + strings.Join(terms, " AND "), args, true
}

// scIntFields are the fields stream-coordinator always stores as an integer, which patch 6
// may sum in SQL.
var scIntFields = map[string]bool{"frames": true}

// SCSummable reports whether scSumSelect may sum the field.
func SCSummable(field string) bool {
\treturn scIntFields[field]
}

// scSumSelect returns the SELECT of a sum of an integer field, in the record ID column.
func scSumSelect(table, field string) string {
\treturn fmt.Sprintf(\`SELECT sum(%s->>'$.%s') AS %s FROM %q\`, metadata.DefaultColumn, field, metadata.RecordIDColumn, table)
}

// SCExact reports whether scExactWhere expresses the filter exactly in SQL.
func SCExact(filter *types.Document) bool {
\t_, _, ok := scExactWhere(filter)
\treturn ok
}

// SCOrderable reports whether SQLite can apply a sort of one key for this exact filter: by
// _id always; by createdAt when the filter bounds it on both sides, so every row it selects
// holds 13-digit milliseconds, which sort as text as they do as numbers (the janitor's window).
func SCOrderable(filter, sort *types.Document) bool {
\tif sort.Len() != 1 {
\t\treturn false
\t}
\tswitch sort.Keys()[0] {
\tcase "_id":
\t\treturn true
\tcase "createdAt":
\t\tv, _ := filter.Get("createdAt")
\t\tops, _ := v.(*types.Document)
\t\treturn ops != nil && (ops.Has("$gt") || ops.Has("$gte")) && (ops.Has("$lt") || ops.Has("$lte"))
\t}
\treturn false
}

// scOrderBy returns the ORDER BY clause of a sort by _id or createdAt alone (the handler
// checked SCOrderable), in the form of their indexes so SQLite walks one; "" for any other.
func scOrderBy(sort *types.Document) string {
\tif sort.Len() != 1 {
\t\treturn ""
\t}
\tcol := map[string]string{"_id": metadata.IDColumn, "createdAt": metadata.DefaultColumn + \`->"createdAt"\`}[sort.Keys()[0]]
\tv, _ := must.NotFail(sort.Get(sort.Keys()[0])).(int64)
\tswitch {
\tcase col == "":
\t\treturn ""
\tcase v == 1:
\t\treturn " ORDER BY " + col
\tcase v == -1:
\t\treturn " ORDER BY " + col + " DESC"
\t}
\treturn ""
}
`,
  'internal/handler/sc_pushdown.go': `package handler

import (
\t"context"
\t"errors"
\t"strings"

\t"github.com/FerretDB/FerretDB/internal/backends"
\t"github.com/FerretDB/FerretDB/internal/backends/sqlite"
\t"github.com/FerretDB/FerretDB/internal/types"
\t"github.com/FerretDB/FerretDB/internal/util/iterator"
\t"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
\t"github.com/FerretDB/FerretDB/internal/util/must"
)

// SCSQLite is set when the handler runs on the SQLite backend, the only one whose filter
// pushdown the stream-coordinator patches make exact (patch 5, see
// src/provision/ferretdb-patches.ts).
var SCSQLite bool

// scExactPushdown reports whether SQLite selects exactly the documents the filter matches,
// so that a sort by _id, a limit and a count can be left to it.
func scExactPushdown(filter *types.Document) bool {
\treturn SCSQLite && sqlite.SCExact(filter)
}

// scSum is a pipeline [{$match: filter}, {$group: {_id: null, out: {$sum: "$field"}}}].
type scSum struct {
\tfilter     *types.Document
\tout, field string
}

// scSumPipeline recognises a pipeline that patch 6 answers with one SQL sum: an exact
// $match, then a $group of everything with one $sum of an integer field (a target's
// committed frames).
func scSumPipeline(stages []any) (scSum, bool) {
\tif !SCSQLite || len(stages) != 2 {
\t\treturn scSum{}, false
\t}
\tmatch, _ := stages[0].(*types.Document)
\tgroup, _ := stages[1].(*types.Document)
\tif match.Len() != 1 || group.Len() != 1 {
\t\treturn scSum{}, false
\t}
\tm, _ := match.Get("$match")
\tfilter, _ := m.(*types.Document)
\tg, _ := group.Get("$group")
\tspec, _ := g.(*types.Document)
\tif filter == nil || !sqlite.SCExact(filter) || spec.Len() != 2 || spec.Keys()[0] != "_id" {
\t\treturn scSum{}, false
\t}
\tif id, _ := spec.Get("_id"); id != types.Null {
\t\treturn scSum{}, false
\t}
\tout := spec.Keys()[1]
\ta, _ := spec.Get(out)
\tacc, _ := a.(*types.Document)
\tif acc.Len() != 1 {
\t\treturn scSum{}, false
\t}
\te, _ := acc.Get("$sum")
\texpr, _ := e.(string)
\tfield := strings.TrimPrefix(expr, "$")
\tif !strings.HasPrefix(expr, "$") || !sqlite.SCSummable(field) {
\t\treturn scSum{}, false
\t}
\treturn scSum{filter: filter, out: out, field: field}, true
}

// scSumQuery runs the sum in SQLite and returns the one document $group would (none when
// nothing matches, as MongoDB does).
func scSumQuery(ctx context.Context, c backends.Collection, s scSum) (iterator.Interface[struct{}, *types.Document], error) {
\tres, err := c.Query(ctx, &backends.QueryParams{Filter: s.filter, OnlyRecordIDs: true, SCSumField: s.field})
\tif err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}
\tdefer res.Iter.Close()
\tvar docs []*types.Document
\t_, row, err := res.Iter.Next()
\tswitch {
\tcase err == nil:
\t\tdocs = append(docs, must.NotFail(types.NewDocument("_id", types.Null, s.out, row.RecordID())))
\tcase !errors.Is(err, iterator.ErrIteratorDone):
\t\treturn nil, lazyerrors.Error(err)
\t}
\treturn iterator.Values(iterator.ForSlice(docs)), nil
}

// scSortPushdown returns the sort (by _id or the janitor's createdAt, or none) that a find,
// or its explain, hands to SQLite with its limit and skip; ok = false when the filter is not
// exact or the sort is another. FerretDB still filters and sorts what comes back, which then
// changes nothing (patches 5 and 7).
func scSortPushdown(filter, sort *types.Document) (*types.Document, bool) {
\tswitch {
\tcase !scExactPushdown(filter):
\t\treturn nil, false
\tcase sort.Len() == 0:
\t\treturn nil, true
\tcase !sqlite.SCOrderable(filter, sort):
\t\treturn nil, false
\t}
\treturn sort, true
}
`,
  'internal/handler/sc_collection_lock.go': `package handler

import "sync"

// scLocks holds one mutex per "db.collection": update, findAndModify and delete read the
// matching documents and then write them by _id, so without a lock held from the read to
// the write two conditional updates of one document could both match (stream-coordinator
// patch 3, see src/provision/ferretdb-patches.ts).
var scLocks sync.Map

// scLockCollection locks the collection's mutex and returns the function that unlocks it.
func scLockCollection(db, collection string) func() {
\tv, _ := scLocks.LoadOrStore(db+"."+collection, new(sync.Mutex))
\tm := v.(*sync.Mutex)
\tm.Lock()
\treturn m.Unlock
}
`,
};

/** Applies {@link FERRETDB_PATCHES} and adds {@link FERRETDB_FILES} to a writable source tree; throws when a patch no longer fits. */
export async function patchSource(src: string): Promise<void> {
  for (const [file, text] of Object.entries(FERRETDB_FILES)) await fsp.writeFile(path.join(src, file), text);
  for (const p of FERRETDB_PATCHES) {
    const file = path.join(src, p.file);
    const text = await fsp.readFile(file, 'utf8');
    const found = text.split(p.from).length - 1;
    if (found !== p.count) throw new Error(`FerretDB patch does not fit ${p.file}: expected ${p.count} × ${JSON.stringify(p.from)}, found ${found}`);
    await fsp.writeFile(file, text.split(p.from).join(p.to));
  }
}
