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
    to: '\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n\t\tif whereClause == "" {\n\t\t\twhereClause, args = scNarrow(params.Filter)\n\t\t}\n',
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
\tsqlOps := map[string]string{"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
\tvar terms []string
\tvar args []any
\tfor _, op := range ops.Keys() {
\t\tsqlOp, known := sqlOps[op]
\t\tt, isDate := must.NotFail(ops.Get(op)).(time.Time)
\t\tif !known || !isDate {
\t\t\tcontinue
\t\t}
\t\tms := t.UnixMilli()
\t\tif ms < 1_000_000_000_000 || ms >= 10_000_000_000_000 {
\t\t\tcontinue
\t\t}
\t\tterms = append(terms, fmt.Sprintf(\`%s->"createdAt" %s ?\`, metadata.DefaultColumn, sqlOp))
\t\targs = append(args, strconv.FormatInt(ms, 10))
\t}
\tif len(terms) == 0 {
\t\treturn "", nil
\t}
\treturn " WHERE " + strings.Join(terms, " AND "), args
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
