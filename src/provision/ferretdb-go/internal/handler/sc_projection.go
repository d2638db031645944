package handler

import (
	"strings"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// scKeepKeys returns the top-level fields a find needs of each stored document when its
// projection includes only some fields (patch 10, see src/provision/ferretdb-patches.ts):
// those the projection includes and those its filter and sort read, since FerretDB filters
// and sorts the documents after the backend returns them. Nil (read whole documents) for
// any other projection, or when the filter or sort has an operator at the top level.
func scKeepKeys(filter, sort, projection *types.Document) []string {
	if !SCSQLite || projection.Len() == 0 {
		return nil
	}

	keep := []string{"_id"}

	add := func(path string) bool {
		if path == "" || strings.HasPrefix(path, "$") {
			return false
		}

		top, _, _ := strings.Cut(path, ".")
		for _, k := range keep {
			if k == top {
				return true
			}
		}

		keep = append(keep, top)

		return true
	}

	for _, k := range projection.Keys() {
		v := must.NotFail(projection.Get(k))
		if !scIncluded(v) && !(k == "_id" && scExcluded(v)) {
			return nil
		}

		if !add(k) {
			return nil
		}
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

// scIncluded reports whether a projection value includes its field (true, or a non-zero number).
func scIncluded(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case int32:
		return v != 0
	case int64:
		return v != 0
	case float64:
		return v != 0
	}

	return false
}

// scExcluded reports whether a projection value excludes its field (false or zero).
func scExcluded(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case int32:
		return v == 0
	case int64:
		return v == 0
	case float64:
		return v == 0
	}

	return false
}
