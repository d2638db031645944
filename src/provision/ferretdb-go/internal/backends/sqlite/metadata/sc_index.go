// stream-coordinator patch 6 (see src/provision/ferretdb-patches.ts): integer fields are
// indexed as SQL values, so a sum over an index can be read from the index alone.

package metadata

import (
	"fmt"
	"strings"
)

// SCIntFields are, per collection, the fields stream-coordinator always stores there as an
// integer, which patch 6 may sum in SQL and patch 11 sort by in SQL. Per collection because a name can mean different
// things: a stream's frames is a count, a partition's is its list of frame files.
var SCIntFields = map[string]map[string]bool{"streams": {"frames": true, "errorCount": true}}

// SCIntColumn is the SQL expression of an integer field: its value as an SQL integer. An
// index column in this form can stand in for the expression wherever a query names it
// (SQLite does not substitute an index's `->` columns, whose results carry the JSON subtype,
// since 3.45), so `sum(SCIntColumn)` over an index on the filter's field and this one never
// reads a document.
func SCIntColumn(field string) string {
	return fmt.Sprintf(`%s->>'$.%s'`, DefaultColumn, field)
}

// scIndexColumn is the column of an index key: SCIntColumn for a field of SCIntFields, else
// FerretDB's own `->"field"` form (which the coordinator's equality filters match, patch 4).
func scIndexColumn(collection, field string) string {
	if SCIntFields[collection][field] {
		return SCIntColumn(field)
	}
	parts := strings.Split(field, ".")
	for j, f := range parts {
		parts[j] = fmt.Sprintf("%q", f)
	}
	return fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(parts, "->"))
}
