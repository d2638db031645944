package sqlite

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// scScalarFields are the fields stream-coordinator always stores as a string or ObjectId,
// never as an array (on an array, MongoDB's equality also matches an element).
var scScalarFields = map[string]bool{
	"streamId": true, "targetId": true, "owner": true, "status": true, "role": true, "name": true,
	"donor": true, "kind": true, "tokenHash": true, "keyHash": true, "files_id": true,
}

// scNarrow returns a WHERE clause narrowing a query by its _id $in list (patch 8), else by
// the filter's first field of scScalarFields compared for equality with a string or
// ObjectId, else by its createdAt
// range, written like the indexes FerretDB creates so SQLite can use one
// (stream-coordinator patch 4, see src/provision/ferretdb-patches.ts). The caller still applies
// the whole filter to the rows returned, so the clause may select more, never less.
func scNarrow(filter *types.Document) (string, []any) {
	if filter == nil {
		return "", nil
	}
	if id, _ := filter.Get("_id"); id != nil {
		if ops, ok := id.(*types.Document); ok {
			if list, _ := ops.Get("$in"); list != nil {
				if in, args, ok := scInList(metadata.IDColumn, list); ok {
					return " WHERE " + in, args
				}
			}
		}
	}
	for _, k := range filter.Keys() {
		if !scScalarFields[k] {
			continue
		}
		v := must.NotFail(filter.Get(k))
		switch v.(type) {
		case string, types.ObjectID:
			return fmt.Sprintf(` WHERE %s->"%s" = ?`, metadata.DefaultColumn, k), []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
		}
	}
	if r, _ := filter.Get("createdAt"); r != nil {
		if ops, ok := r.(*types.Document); ok {
			return scDateRange(ops)
		}
	}
	return "", nil
}

// scDateRange turns $gt/$gte/$lt/$lte bounds that are dates of 13-digit milliseconds into
// text comparisons on the createdAt index expression; other bounds are left out.
func scDateRange(ops *types.Document) (string, []any) {
	terms, args, _ := scDateTerms(ops)
	if len(terms) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(terms, " AND "), args
}

// scDateTerms returns the SQL comparisons of scDateRange, and all = true when every
// operator was one of those (then they select exactly what the operators match, because
// the coordinator always stores createdAt as a date, and 13-digit milliseconds sort as text
// as they do as numbers).
func scDateTerms(ops *types.Document) (terms []string, args []any, all bool) {
	all = true
	for _, op := range ops.Keys() {
		sqlOp, known := scRangeOps[op]
		t, isDate := must.NotFail(ops.Get(op)).(time.Time)
		if !known || !isDate || t.UnixMilli() < 1_000_000_000_000 || t.UnixMilli() >= 10_000_000_000_000 {
			all = false
			continue
		}
		terms = append(terms, fmt.Sprintf(`%s->"createdAt" %s ?`, metadata.DefaultColumn, sqlOp))
		args = append(args, strconv.FormatInt(t.UnixMilli(), 10))
	}
	return terms, args, all
}

// scRangeOps are the comparison operators scExactWhere writes in SQL.
var scRangeOps = map[string]string{"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}

// scOrderedText reports whether a bound compares in SQL as MongoDB compares it: an ObjectId
// (hex of one length), or a non-empty string of [0-9A-Za-z_.:~-] (JSON writes those as
// themselves and all sort after the closing quote, so comparing the JSON texts orders like
// comparing the strings).
func scOrderedText(v any) bool {
	switch v := v.(type) {
	case types.ObjectID:
		return true
	case string:
		if v == "" {
			return false
		}
		for _, c := range []byte(v) {
			ok := c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '.' || c == ':' || c == '~' || c == '-'
			if !ok {
				return false
			}
		}
		return true
	}
	return false
}

// scExactWhere returns a WHERE clause that selects exactly the documents the filter matches
// (stream-coordinator patch 5), and ok = false when the filter has a condition SQL cannot
// express exactly. Exact conditions: equality with a string or ObjectId on _id or on a field
// of scScalarFields, $in of such values on either (patch 8), and $gt/$gte/$lt/$lte bounds
// on _id (see scOrderedText), for collections whose _id values are all of one type, as the
// coordinator's are. Only an exact clause lets the handler push a sort by _id and a limit down to SQLite.
func scExactWhere(filter *types.Document) (string, []any, bool) {
	if filter.Len() == 0 {
		// Every document: no WHERE clause is exact (patch 13, the leaderboard).
		return "", nil, true
	}
	var terms []string
	var args []any
	for _, k := range filter.Keys() {
		if k == "createdAt" {
			ops, isDoc := must.NotFail(filter.Get(k)).(*types.Document)
			if !isDoc {
				return "", nil, false
			}
			dt, da, all := scDateTerms(ops)
			if !all || len(dt) == 0 {
				return "", nil, false
			}
			terms = append(terms, dt...)
			args = append(args, da...)
			continue
		}
		col := fmt.Sprintf(`%s->"%s"`, metadata.DefaultColumn, k)
		if k == "_id" {
			col = metadata.IDColumn
		} else if !scScalarFields[k] {
			return "", nil, false
		}
		switch v := must.NotFail(filter.Get(k)).(type) {
		case string, types.ObjectID:
			terms = append(terms, col+" = ?")
			args = append(args, string(must.NotFail(sjson.MarshalSingleValue(v))))
		case *types.Document:
			if v.Len() == 0 {
				return "", nil, false
			}
			for _, op := range v.Keys() {
				b := must.NotFail(v.Get(op))
				if op == "$in" {
					in, inArgs, ok := scInList(col, b)
					if !ok {
						return "", nil, false
					}
					terms = append(terms, in)
					args = append(args, inArgs...)
					continue
				}
				sqlOp, known := scRangeOps[op]
				if k != "_id" || !known || !scOrderedText(b) {
					return "", nil, false
				}
				terms = append(terms, col+" "+sqlOp+" ?")
				args = append(args, string(must.NotFail(sjson.MarshalSingleValue(b))))
			}
		default:
			return "", nil, false
		}
	}
	return " WHERE " + strings.Join(terms, " AND "), args, true
}

// scMaxInList is the longest $in list written in SQL (one bound parameter per element;
// SQLite allows 32,766); a longer list is left to FerretDB's own filter.
const scMaxInList = 10_000

// scInList returns `col IN (?, ...)` for a $in list of strings and ObjectIds (patch 8), and
// ok = false for an over-long list or any other element type (a regular expression, a
// number, a document), whose matching SQL on the JSON text would not express. An empty list
// matches nothing, as on MongoDB: it is the constant false, which SQLite answers without
// reading a row (left to FerretDB's own filter, it read and decoded every document).
func scInList(col string, v any) (string, []any, bool) {
	list, isArray := v.(*types.Array)
	if !isArray || list.Len() > scMaxInList {
		return "", nil, false
	}
	if list.Len() == 0 {
		return "0", nil, true
	}
	args := make([]any, list.Len())
	for i := range args {
		switch e := must.NotFail(list.Get(i)).(type) {
		case string, types.ObjectID:
			args[i] = string(must.NotFail(sjson.MarshalSingleValue(e)))
		default:
			return "", nil, false
		}
	}
	return col + " IN (" + strings.Repeat("?, ", len(args)-1) + "?)", args, true
}

// SCSummable reports whether scSumSelect may sum the field of the collection
// (metadata.SCIntFields).
func SCSummable(collection, field string) bool {
	return metadata.SCIntFields[collection][field]
}

// scSumSelect returns the SELECT of a sum of an integer field, in the record ID column, in
// the form its index column has (metadata.SCIntColumn): with the streams' target_frames index
// SQLite sums the index alone.
func scSumSelect(table, field string) string {
	return fmt.Sprintf(`SELECT sum(%s) AS %s FROM %q`, metadata.SCIntColumn(field), metadata.RecordIDColumn, table)
}

// SCExact reports whether scExactWhere expresses the filter exactly in SQL.
func SCExact(filter *types.Document) bool {
	_, _, ok := scExactWhere(filter)
	return ok
}

// SCOrderable reports whether SQLite can apply this sort for this exact filter on the
// collection: by _id always; by createdAt when the filter bounds it on both sides, so every
// row it selects holds 13-digit milliseconds, which sort as text as they do as numbers (the
// janitor's window); by a field whose SQL order is MongoDB's (metadata.SCSortColumn: an
// integer, a date or a word of the collection) and then _id or another such field (patches
// 11–13: a target's streams by frames, errors, creation time or status, donors by frames and
// name), in the form of the fields' index, where a missing field (NULL) comes first, as in
// MongoDB.
func SCOrderable(collection string, filter, sort *types.Document) bool {
	keys := sort.Keys()
	switch {
	case len(keys) == 2:
		return metadata.SCSortColumn(collection, keys[0]) != "" && (keys[1] == "_id" || metadata.SCSortColumn(collection, keys[1]) != "")
	case len(keys) != 1:
		return false
	}
	switch keys[0] {
	case "_id":
		return true
	case "createdAt":
		v, _ := filter.Get("createdAt")
		ops, _ := v.(*types.Document)
		return ops != nil && (ops.Has("$gt") || ops.Has("$gte")) && (ops.Has("$lt") || ops.Has("$lte"))
	}
	return false
}

// scOrderBy returns the ORDER BY clause of a sort the handler found SCOrderable, in the form
// of the indexes so SQLite walks one; "" for any other.
func scOrderBy(sort *types.Document) string {
	keys := sort.Keys()
	if len(keys) == 0 || len(keys) > 2 {
		return ""
	}
	cols := make([]string, len(keys))
	for i, k := range keys {
		switch {
		case k == "_id":
			cols[i] = metadata.IDColumn
		case k == "createdAt" && len(keys) == 1:
			cols[i] = metadata.DefaultColumn + `->"createdAt"`
		case len(keys) == 2:
			if cols[i] = scSortColumn(k); cols[i] == "" {
				return ""
			}
		default:
			return ""
		}
		switch v, _ := must.NotFail(sort.Get(k)).(int64); v {
		case 1:
		case -1:
			cols[i] += " DESC"
		default:
			return ""
		}
	}
	return " ORDER BY " + strings.Join(cols, ", ")
}

// scSortColumn returns metadata.SCSortColumn of the field in whichever collection lists it
// (SCOrderable, which knows the collection, has already checked it is one of this query's;
// a name listed in several collections is listed as the same kind in each).
func scSortColumn(field string) string {
	for _, fields := range []map[string]map[string]bool{metadata.SCIntFields, metadata.SCDateFields, metadata.SCWordFields} {
		for collection, listed := range fields {
			if listed[field] {
				return metadata.SCSortColumn(collection, field)
			}
		}
	}
	return ""
}
