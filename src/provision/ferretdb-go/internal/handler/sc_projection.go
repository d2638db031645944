package handler

import (
	"slices"
	"strings"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// scKeepKeys returns the top-level fields a find needs of each stored document when its
// projection includes only some fields (patch 10, see src/provision/ferretdb-patches.ts):
// those the projection includes and those its filter and sort read, since FerretDB filters
// and sorts the documents after the backend returns them (sjson.SCKeep adds _id). Nil (read
// whole documents) when the projection includes no field (none, or only `_id: 0`), excludes
// another field or uses an operator, or when the filter or sort has one at the top level.
func scKeepKeys(filter, sort, projection *types.Document) []string {
	if !SCSQLite {
		return nil
	}

	var keep []string

	add := func(path string) bool {
		if path == "" || strings.HasPrefix(path, "$") {
			return false
		}

		if top, _, _ := strings.Cut(path, "."); !slices.Contains(keep, top) {
			keep = append(keep, top)
		}

		return true
	}

	for _, k := range projection.Keys() {
		include, ok := scProjectionValue(must.NotFail(projection.Get(k)))
		switch {
		case !ok, !include && k != "_id":
			return nil
		case include && !add(k):
			return nil
		}
	}

	if len(keep) == 0 {
		return nil
	}

	for _, d := range []*types.Document{filter, sort} {
		for _, k := range d.Keys() {
			if !add(k) {
				return nil
			}
		}
	}

	return keep
}

// scProjectionValue reports whether a projection value includes its field (true, or a
// non-zero number) or excludes it (false, or zero); ok is false for anything else (an
// operator or an expression).
func scProjectionValue(v any) (include, ok bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case int32:
		return v != 0, true
	case int64:
		return v != 0, true
	case float64:
		return v != 0, true
	}

	return false, false
}
