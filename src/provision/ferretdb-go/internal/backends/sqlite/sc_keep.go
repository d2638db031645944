package sqlite

import "github.com/FerretDB/FerretDB/internal/types"

// scWithKeep makes a query iterator decode only the top-level fields in keep of each
// document (patch 10, see src/provision/ferretdb-patches.ts); all of them when keep is empty.
func scWithKeep(iter types.DocumentsIterator, keep []string) types.DocumentsIterator {
	if q, ok := iter.(*queryIterator); ok {
		q.scKeep = keep
	}

	return iter
}
