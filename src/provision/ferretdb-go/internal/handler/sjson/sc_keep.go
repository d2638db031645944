package sjson

import (
	"bytes"
	"encoding/json"
	"slices"
)

// Stream-coordinator patch 10 (see src/provision/ferretdb-patches.ts).
//
// A find with an inclusion projection still read each whole stored document, and decoding
// it is what costs: a stream's document grows by one entry per committed partition in
// three lists, so a page of 100 streams of 1,000 partitions each took about 1.7 s of
// FerretDB's CPU even when only their status and counts were asked for. SCKeep cuts a
// stored document down to the top-level fields the query needs (its filter, sort and
// projection, chosen by the handler) before it is decoded.

// SCKeep returns the stored document data with only the top-level fields named in keep
// (and _id), its schema cut to match, or data itself when keep is empty or data cannot be
// split exactly (Unmarshal then decodes it whole, with its usual errors).
func SCKeep(data []byte, keep []string) []byte {
	if len(keep) == 0 {
		return data
	}

	top, ok := scSplitObject(data)
	if !ok {
		return data
	}

	// The schema is split rather than decoded: it describes every element of every list.
	schema, ok := scSplitObject(top["$s"])
	if !ok || len(schema) != 2 {
		return data
	}

	var order []string
	if json.Unmarshal(schema["$k"], &order) != nil {
		return data
	}

	props, ok := scSplitObject(schema["p"])
	if !ok || len(props) != len(order) || len(top) != len(order)+1 {
		return data
	}

	kept := make([]string, 0, len(keep)+1)

	for _, k := range order {
		if k == "_id" || slices.Contains(keep, k) {
			kept = append(kept, k)
		}
	}

	keys, err := json.Marshal(kept)
	if err != nil {
		return data
	}

	var buf bytes.Buffer

	buf.WriteString(`{"$s":{"p":{`)

	for i, k := range kept {
		if i > 0 {
			buf.WriteByte(',')
		}

		scWriteMember(&buf, k, props[k])
	}

	buf.WriteString(`},"$k":`)
	buf.Write(keys)
	buf.WriteByte('}')

	for _, k := range kept {
		buf.WriteByte(',')
		scWriteMember(&buf, k, top[k])
	}

	buf.WriteByte('}')

	return buf.Bytes()
}

// scWriteMember writes "key":raw (keys reach here only when scSplit found no escape in them).
func scWriteMember(buf *bytes.Buffer, key string, raw json.RawMessage) {
	buf.WriteByte('"')
	buf.WriteString(key)
	buf.WriteString(`":`)
	buf.Write(raw)
}
