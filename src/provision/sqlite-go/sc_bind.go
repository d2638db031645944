// Stream-coordinator patch 15 (see src/provision/ferretdb-patches.ts).
package sqlite

import "strings"

// scTextLen is the length bindText gives SQLite for a string: -1 when the string holds no
// NUL byte, which tells SQLite that the text ends at the NUL libc.CString put after it.
// SQLite then reads the value in place; told only its length, every SQL function reading
// it (each index over FerretDB's document column) first copied it whole to add a NUL.
// A string with a NUL inside keeps its length, as before (FerretDB binds JSON text, in which
// a NUL is written \u0000, so its documents and filters never take that branch).
func scTextLen(s string) int32 {
	if strings.IndexByte(s, 0) < 0 {
		return -1
	}
	return int32(len(s))
}
