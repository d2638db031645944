package handler

import (
	"context"
	"errors"
	"strings"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/backends/sqlite"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/iterator"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// SCSQLite is set when the handler runs on the SQLite backend, the only one whose filter
// pushdown the stream-coordinator patches make exact (patch 5, see
// src/provision/ferretdb-patches.ts).
var SCSQLite bool

// scExactPushdown reports whether SQLite selects exactly the documents the filter matches,
// so that a sort by _id, a limit and a count can be left to it.
func scExactPushdown(filter *types.Document) bool {
	return SCSQLite && sqlite.SCExact(filter)
}

// scSum is a pipeline [{$match: filter}, {$group: {_id: null, out: {$sum: "$field"}}}].
type scSum struct {
	filter     *types.Document
	out, field string
}

// scSumPipeline recognises a pipeline on the collection that patch 6 answers with one SQL
// sum: an exact $match, then a $group of everything with one $sum of a field the collection
// always holds as an integer (a target's committed frames).
func scSumPipeline(collection string, stages []any) (scSum, bool) {
	if !SCSQLite || len(stages) != 2 {
		return scSum{}, false
	}
	match, _ := stages[0].(*types.Document)
	group, _ := stages[1].(*types.Document)
	if match.Len() != 1 || group.Len() != 1 {
		return scSum{}, false
	}
	m, _ := match.Get("$match")
	filter, _ := m.(*types.Document)
	g, _ := group.Get("$group")
	spec, _ := g.(*types.Document)
	if filter == nil || !sqlite.SCExact(filter) || spec.Len() != 2 || spec.Keys()[0] != "_id" {
		return scSum{}, false
	}
	if id, _ := spec.Get("_id"); id != types.Null {
		return scSum{}, false
	}
	out := spec.Keys()[1]
	a, _ := spec.Get(out)
	acc, _ := a.(*types.Document)
	if acc.Len() != 1 {
		return scSum{}, false
	}
	e, _ := acc.Get("$sum")
	expr, _ := e.(string)
	field := strings.TrimPrefix(expr, "$")
	if !strings.HasPrefix(expr, "$") || !sqlite.SCSummable(collection, field) {
		return scSum{}, false
	}
	return scSum{filter: filter, out: out, field: field}, true
}

// scSumQuery runs the sum in SQLite and returns the one document $group would (none when
// nothing matches, as MongoDB does).
func scSumQuery(ctx context.Context, c backends.Collection, s scSum) (iterator.Interface[struct{}, *types.Document], error) {
	res, err := c.Query(ctx, &backends.QueryParams{Filter: s.filter, OnlyRecordIDs: true, SCSumField: s.field})
	if err != nil {
		return nil, lazyerrors.Error(err)
	}
	defer res.Iter.Close()
	var docs []*types.Document
	_, row, err := res.Iter.Next()
	switch {
	case err == nil:
		docs = append(docs, must.NotFail(types.NewDocument("_id", types.Null, s.out, row.RecordID())))
	case !errors.Is(err, iterator.ErrIteratorDone):
		return nil, lazyerrors.Error(err)
	}
	return iterator.Values(iterator.ForSlice(docs)), nil
}

// scSortPushdown returns the sort (by _id, the janitor's createdAt, or an integer field of the
// collection then _id, or none) that a find, or its explain, hands to SQLite with its limit
// and skip; ok = false when the filter is not exact or the sort is another. FerretDB still
// filters and sorts what comes back, which then changes nothing (patches 5, 7 and 11).
func scSortPushdown(collection string, filter, sort *types.Document) (*types.Document, bool) {
	switch {
	case !scExactPushdown(filter):
		return nil, false
	case sort.Len() == 0:
		return nil, true
	case !sqlite.SCOrderable(collection, filter, sort):
		return nil, false
	}
	return sort, true
}
