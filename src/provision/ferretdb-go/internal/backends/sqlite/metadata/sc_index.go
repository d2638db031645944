// stream-coordinator patches 6, 11 and 12 (see src/provision/ferretdb-patches.ts): integer
// and date fields are indexed as SQL values, so a sum over an index can be read from the
// index alone, and the fields whose SQL order is MongoDB's are listed for sorts.

package metadata

import (
	"fmt"
	"strings"
)

// SCIntFields are, per collection, the fields stream-coordinator always stores there as an
// integer, which patch 6 may sum in SQL and patch 11 sort by in SQL. Per collection because a name can mean different
// things: a stream's frames is a count, a partition's is its list of frame files.
var SCIntFields = map[string]map[string]bool{"streams": {"frames": true, "errorCount": true}, "donors": {"frames": true}}

// SCDateFields are, per collection, the fields stream-coordinator always stores there as a
// date, which FerretDB keeps as its milliseconds (a JSON number): indexed and sorted in SQL as
// that integer, like SCIntFields, so they order as times whatever their number of digits
// (patch 12: a target's streams by creation time).
var SCDateFields = map[string]map[string]bool{"streams": {"createdAt": true}}

// SCWordFields are, per collection, the fields stream-coordinator always stores there as a
// non-empty string of [0-9A-Za-z_.:~-] (a stream's status, a donor's name): JSON writes such a string as
// itself in quotes, so FerretDB's own index column (its JSON text) sorts as the strings do
// (patch 12).
var SCWordFields = map[string]map[string]bool{"streams": {"status": true}, "donors": {"name": true}}

// SCSortColumn returns the SQL expression a sort by the collection's field orders by, the
// same as the field's index column so SQLite walks the index, or "" when the field is none of
// SCIntFields, SCDateFields and SCWordFields (SQL would not order it as MongoDB does).
func SCSortColumn(collection, field string) string {
	switch {
	case SCIntFields[collection][field], SCDateFields[collection][field]:
		return SCIntColumn(field)
	case SCWordFields[collection][field]:
		return scIndexColumn(collection, field)
	}
	return ""
}

// SCIntColumn is the SQL expression of an integer or date field: its value (a date's
// milliseconds) as an SQL integer. An
// index column in this form can stand in for the expression wherever a query names it
// (SQLite does not substitute an index's `->` columns, whose results carry the JSON subtype,
// since 3.45), so `sum(SCIntColumn)` over an index on the filter's field and this one never
// reads a document.
func SCIntColumn(field string) string {
	return fmt.Sprintf(`%s->>'$.%s'`, DefaultColumn, field)
}

// scIndexColumn is the column of an index key: SCIntColumn for a field of SCIntFields or
// SCDateFields, else FerretDB's own `->"field"` form (which the coordinator's equality
// filters match, patch 4).
func scIndexColumn(collection, field string) string {
	if SCIntFields[collection][field] || SCDateFields[collection][field] {
		return SCIntColumn(field)
	}
	parts := strings.Split(field, ".")
	for j, f := range parts {
		parts[j] = fmt.Sprintf("%q", f)
	}
	return fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(parts, "->"))
}
