//go:build linux && amd64

// Stream-coordinator patch 14 (see src/provision/ferretdb-patches.ts): memcpy, memmove,
// memset, memcmp and strlen for the SQLite that FerretDB runs. modernc.org/libc v1.55.3
// carries musl's C versions translated to Go for linux/amd64, which step four or eight bytes
// at a time (memcmp one); SQLite calls them for every large value it copies, compares or
// measures. These use the Go runtime's own vectorised copy, compare and byte search, as
// libc.go already does on the platforms without a translated musl. The musl versions stay
// in ccgo_linux_amd64.go under new names.
package libc

import (
	"bytes"
	"unsafe"
)

// scPage bounds each step of strlen's search, so it never reads past the page that holds
// the terminator (the next one may not be mapped).
const scPage = 4096

// scBytes is the n bytes of C memory at p.
func scBytes(p uintptr, n Tsize_t) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), n)
}

// Xmemcpy is memcpy(3). Go's copy also handles overlap, which memcpy need not.
func Xmemcpy(tls *TLS, dest uintptr, src uintptr, n Tsize_t) (r uintptr) {
	if n != 0 {
		copy(scBytes(dest, n), scBytes(src, n))
	}
	return dest
}

// Xmemmove is memmove(3).
func Xmemmove(tls *TLS, dest uintptr, src uintptr, n Tsize_t) (r uintptr) {
	if n != 0 && dest != src {
		copy(scBytes(dest, n), scBytes(src, n))
	}
	return dest
}

// Xmemset is memset(3): zero by the runtime's memclr, any other byte by doubling copies.
func Xmemset(tls *TLS, dest uintptr, c int32, n Tsize_t) (r uintptr) {
	if n == 0 {
		return dest
	}
	b := scBytes(dest, n)
	if c8 := byte(c); c8 == 0 {
		// The compiler turns this loop into the runtime's memclr (the module is go 1.20,
		// before clear).
		for i := range b {
			b[i] = 0
		}
	} else {
		// Doubling: log2(n) copies.
		b[0] = c8
		for i := 1; i < len(b); i *= 2 {
			copy(b[i:], b[:i])
		}
	}
	return dest
}

// Xmemcmp is memcmp(3). Like libc.go's version it returns -1, 0 or 1: C promises only the
// sign, and SQLite uses only the sign.
func Xmemcmp(tls *TLS, vl uintptr, vr uintptr, n Tsize_t) (r1 int32) {
	if n == 0 {
		return 0
	}
	return int32(bytes.Compare(scBytes(vl, n), scBytes(vr, n)))
}

// Xstrlen is strlen(3), searched a page at a time.
func Xstrlen(tls *TLS, s uintptr) (r Tsize_t) {
	for p := s; ; {
		chunk := scPage - p%scPage
		if i := bytes.IndexByte(scBytes(p, Tsize_t(chunk)), 0); i >= 0 {
			return Tsize_t(p - s + uintptr(i))
		}
		p += chunk
	}
}
