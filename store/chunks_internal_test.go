package store

import (
	"bytes"
	"testing"
)

// FuzzEscaped checks that appendEscaped preserves the order of keys and
// is prefix-free, which chunk-space range deletions rely on: for keys a
// and b, escaped(a) and escaped(b) compare as a and b do, and neither is
// a prefix of the other unless a == b.
func FuzzEscaped(f *testing.F) {
	for _, kv := range [][2]string{{"", ""}, {"", "\x00"}, {"a", "a\x00"}, {"a\x00", "a\x01"}, {"a\x00\xff", "a\x00"}, {"\xff", "\xff\x00"}, {"a", "b"}} {
		f.Add([]byte(kv[0]), []byte(kv[1]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ea, eb := appendEscaped(nil, a), appendEscaped(nil, b)
		if got, want := bytes.Compare(ea, eb), bytes.Compare(a, b); got != want {
			t.Fatalf("escaped %x vs %x compare %d, keys %x vs %x compare %d", ea, eb, got, a, b, want)
		}
		if !bytes.Equal(a, b) && (bytes.HasPrefix(ea, eb) || bytes.HasPrefix(eb, ea)) {
			t.Fatalf("escaped %x and %x: one is a prefix of the other", ea, eb)
		}
	})
}
