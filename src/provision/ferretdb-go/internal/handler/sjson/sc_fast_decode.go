package sjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"
)

// Stream-coordinator patch 9 (see src/provision/ferretdb-patches.ts).
//
// FerretDB decodes a stored document level by level, each level handing its raw values to
// the next through encoding/json's Decoder. A value nested n levels deep is therefore run
// through encoding/json's byte-at-a-time scanner about 2n times before its own decoder
// reads it; a partition's frame file (1 MiB of base64, three levels down) cost about 60 ms
// of CPU to read. The functions below split an object or an array into its raw values
// with one pass that skips strings with bytes.IndexByte, and decode a binary's base64
// directly. They accept only input they can split exactly (what json.Marshal writes, with
// or without whitespace inside); on anything else they return false and the caller uses
// encoding/json, as before, with its errors.

// scSpace reports whether c is JSON whitespace.
func scSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// scSkipSpace returns the index of the first non-whitespace byte at or after i.
func scSkipSpace(data []byte, i int) int {
	for i < len(data) && scSpace(data[i]) {
		i++
	}

	return i
}

// scStringEnd returns the index just past the string whose opening quote is at data[i],
// and whether the string holds a backslash escape; -1 when it is not closed. It does not
// look for control characters: keys are checked by scKey, and a value's own decoder
// checks it (encoding/json for a string, base64 for a binary).
func scStringEnd(data []byte, i int) (int, bool) {
	escaped := false
	i++

	for {
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			return -1, false
		}

		b := bytes.IndexByte(data[i:i+q], '\\')
		if b < 0 {
			return i + q + 1, escaped
		}

		// Step over the escape (its second byte may itself be a quote) and look again.
		escaped = true
		i += b + 2

		if i > len(data) {
			return -1, false
		}
	}
}

// scKey reports whether an unescaped key is as encoding/json would read it: valid UTF-8
// without control characters.
func scKey(k []byte) bool {
	for _, c := range k {
		if c < 0x20 {
			return false
		}
	}

	return utf8.Valid(k)
}

// scLiteral reports whether b is true, false, null or a JSON number.
func scLiteral(b []byte) bool {
	switch string(b) {
	case "true", "false", "null":
		return true
	}

	i := 0
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}

		return i > start
	}

	if i < len(b) && b[i] == '-' {
		i++
	}

	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return false
	}

	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}

	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}

		if !digits() {
			return false
		}
	}

	return i == len(b)
}

// scValueEnd returns the index just past the JSON value starting at data[i], or -1.
// Nested objects and arrays are matched bracket by bracket; their contents are checked
// when their own level is decoded.
func scValueEnd(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}

	switch data[i] {
	case '"':
		end, _ := scStringEnd(data, i)
		return end
	case '{', '[':
		var stack []byte

		for i < len(data) {
			switch c := data[i]; c {
			case '"':
				end, _ := scStringEnd(data, i)
				if end < 0 {
					return -1
				}

				i = end

				continue
			case '{':
				stack = append(stack, '}')
			case '[':
				stack = append(stack, ']')
			case '}', ']':
				if len(stack) == 0 || stack[len(stack)-1] != c {
					return -1
				}

				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return i + 1
				}
			}

			i++
		}

		return -1
	default:
		// A number, true, false or null: up to the next delimiter.
		j := i
		for j < len(data) && !scSpace(data[j]) && data[j] != ',' && data[j] != '}' && data[j] != ']' {
			j++
		}

		if !scLiteral(data[i:j]) {
			return -1
		}

		return j
	}
}

// scSplit walks the members of the object or array in data (open is '{' or '['), calling
// each with the member's key (objects only) and raw value, and stops when each returns
// false. It reports false then, and when data is
// not exactly one such value; like FerretDB's checkConsumed, it takes nothing after the
// closing bracket, not even whitespace.
func scSplit(data []byte, open byte, each func(key string, raw json.RawMessage) bool) bool {
	closing := byte('}')
	if open == '[' {
		closing = ']'
	}

	i := scSkipSpace(data, 0)
	if i >= len(data) || data[i] != open {
		return false
	}

	i = scSkipSpace(data, i+1)
	if i < len(data) && data[i] == closing {
		return i+1 == len(data)
	}

	for {
		var key string

		if open == '{' {
			if i >= len(data) || data[i] != '"' {
				return false
			}

			end, escaped := scStringEnd(data, i)
			if end < 0 || escaped || !scKey(data[i+1:end-1]) {
				return false
			}

			key = string(data[i+1 : end-1])

			i = scSkipSpace(data, end)
			if i >= len(data) || data[i] != ':' {
				return false
			}

			i = scSkipSpace(data, i+1)
		}

		end := scValueEnd(data, i)
		if end < 0 {
			return false
		}

		if !each(key, json.RawMessage(data[i:end])) {
			return false
		}

		i = scSkipSpace(data, end)
		if i >= len(data) {
			return false
		}

		switch data[i] {
		case ',':
			i = scSkipSpace(data, i+1)
		case closing:
			return i+1 == len(data)
		default:
			return false
		}
	}
}

// scSplitObject splits an object into its members; false when it cannot exactly (a key
// with an escape, malformed input, or a repeated key, which is left to encoding/json: its
// first value would never be checked).
func scSplitObject(data []byte) (map[string]json.RawMessage, bool) {
	res := map[string]json.RawMessage{}
	ok := scSplit(data, '{', func(key string, raw json.RawMessage) bool {
		if _, dup := res[key]; dup {
			return false
		}

		res[key] = raw

		return true
	})

	return res, ok
}

// scDecodeObject splits a JSON object into its members' raw values, as decoding it into a
// map[string]json.RawMessage does.
func scDecodeObject(data []byte) (map[string]json.RawMessage, error) {
	res, ok := scSplitObject(data)
	return scFastOrSlow(ok, res, data)
}

// scDecodeArray splits a JSON array into its elements' raw values.
func scDecodeArray(data []byte) ([]json.RawMessage, error) {
	res := []json.RawMessage{}
	ok := scSplit(data, '[', func(_ string, raw json.RawMessage) bool {
		res = append(res, raw)
		return true
	})

	return scFastOrSlow(ok, res, data)
}

// scFastOrSlow returns what the splitter made of data when it took it whole (ok), else what
// encoding/json makes of it.
func scFastOrSlow[T any](ok bool, fast T, data []byte) (T, error) {
	if ok {
		return fast, nil
	}

	var slow T
	if err := scDecodeSlow(data, &slow); err != nil {
		var zero T
		return zero, err
	}

	return slow, nil
}

// scDecodeBinary decodes a JSON string of standard base64, as decoding it into a []byte does.
func scDecodeBinary(data []byte) ([]byte, error) {
	if n := len(data); n >= 2 && data[0] == '"' && data[n-1] == '"' {
		s := data[1 : n-1]
		// base64 skips \r and \n, which JSON does not allow unescaped in a string.
		if bytes.IndexByte(s, '"') < 0 && bytes.IndexByte(s, '\\') < 0 && bytes.IndexByte(s, '\n') < 0 && bytes.IndexByte(s, '\r') < 0 {
			b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
			if k, err := base64.StdEncoding.Decode(b, s); err == nil {
				return b[:k], nil
			}
		}
	}

	var o []byte
	if err := scDecodeSlow(data, &o); err != nil {
		return nil, err
	}

	return o, nil
}

// scDecodeSlow decodes data into v as FerretDB did before patch 9: encoding/json's Decoder,
// and nothing may follow the value.
func scDecodeSlow(data []byte, v any) error {
	r := bytes.NewReader(data)
	dec := json.NewDecoder(r)

	if err := dec.Decode(v); err != nil {
		return err
	}

	return checkConsumed(dec, r)
}
