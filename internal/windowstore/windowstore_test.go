package windowstore_test

import (
	"bytes"
	"fmt"
	"iter"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/internal/windowstore"
)

// sorted is a store's bytes, sorted by key: its scan is a ScanFunc.
type sorted [][2][]byte

func (s sorted) scan(start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
	return func(yield func([]byte, []byte) bool) {
		for _, kv := range s {
			if bytes.Compare(kv[0], start) >= 0 && (end == nil || bytes.Compare(kv[0], end) < 0) && !yield(kv[0], kv[1]) {
				return
			}
		}
	}, func() error { return nil }
}

type win struct {
	key        string
	start, end int64
}

// store writes wins in l's layout, each with value "key@start", with a
// close index entry and the meta key around them, as window writes them.
func store(l windowstore.Layout, wins []win) sorted {
	var s sorted
	s = append(s, [2][]byte{windowstore.MetaKey, windowstore.AppendTime(nil, 1000)})
	for _, w := range wins {
		ekey := windowstore.AppendEscaped(nil, []byte(w.key))
		seg := windowstore.FloorDiv(windowstore.SegmentTime(l.Session, w.start, w.end), l.Segment)
		val := append(windowstore.AppendTime(nil, w.end-1), fmt.Sprintf("%s@%d", w.key, w.start)...)
		s = append(s, [2][]byte{windowstore.AppendWindowKey(nil, seg, ekey, w.start, w.end), val})
		s = append(s, [2][]byte{windowstore.AppendCloseKey(nil, w.end, ekey, w.start, w.end), nil})
	}
	slices.SortFunc(s, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	return s
}

func TestFetch(t *testing.T) {
	tumbling := windowstore.Layout{Segment: 20}
	session := windowstore.Layout{Session: true, Segment: 20}
	wins := []win{
		{"a", -10, 0}, {"a", 0, 10}, {"a", 10, 20}, {"a", 30, 40}, {"a", 90, 100},
		{"a\x00b", 10, 20}, {"b", 10, 20}, {"b", 50, 60}, {"", 0, 10},
	}
	sessions := []win{{"a", 0, 15}, {"a", 30, 31}, {"a", 45, 90}, {"b", 5, 70}}
	tests := []struct {
		name   string
		l      windowstore.Layout
		wins   []win
		key    *string // nil: FetchAll
		lo, hi int64
		want   []string
	}{
		{"key", tumbling, wins, ptr("a"), 0, 40, []string{"a@0", "a@10", "a@30"}},
		{"key before the epoch", tumbling, wins, ptr("a"), -100, 5, []string{"a@-10", "a@0"}},
		{"key with a zero byte", tumbling, wins, ptr("a\x00b"), 0, 100, []string{"a\x00b@10"}},
		{"empty key", tumbling, wins, ptr(""), 0, 100, []string{"@0"}},
		{"no window", tumbling, wins, ptr("c"), 0, 100, nil},
		{"empty range", tumbling, wins, ptr("a"), 40, 40, nil},
		{"all", tumbling, wins, nil, 10, 60, []string{"a@10", "a\x00b@10", "b@10", "a@30", "b@50"}},
		{"all, every segment", tumbling, wins, nil, -1 << 62, 1 << 62, []string{
			"a@-10", "@0", "a@0", "a@10", "a\x00b@10", "b@10", "a@30", "b@50", "a@90"}},
		// A session is segmented by its last record time: one that
		// starts in range is found whatever its end.
		{"session key", session, sessions, ptr("a"), 0, 46, []string{"a@0", "a@30", "a@45"}},
		{"session all", session, sessions, nil, 5, 31, []string{"a@30", "b@5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store(tt.l, tt.wins)
			var got []string
			yield := func(wkey, value []byte) bool {
				key, rest, err := windowstore.Unescape(wkey)
				require.NoError(t, err)
				require.Len(t, rest, 16)
				require.Equal(t, fmt.Sprintf("%s@%d", key, windowstore.ReadTime(rest)), string(value))
				got = append(got, string(value))
				return true
			}
			var err error
			if tt.key != nil {
				err = tt.l.Fetch(s.scan, windowstore.AppendEscaped(nil, []byte(*tt.key)), tt.lo, tt.hi, yield)
			} else {
				err = tt.l.FetchAll(s.scan, tt.lo, tt.hi, yield)
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestFetchStops: a fetch ends when yield returns false.
func TestFetchStops(t *testing.T) {
	l := windowstore.Layout{Segment: 20}
	s := store(l, []win{{"a", 0, 10}, {"a", 10, 20}, {"a", 30, 40}})
	n := 0
	require.NoError(t, l.Fetch(s.scan, windowstore.AppendEscaped(nil, []byte("a")), 0, 100, func(_, _ []byte) bool {
		n++
		return false
	}))
	require.Equal(t, 1, n)
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "a", "\x00", "a\x00\x00b", "\x00\x01", "\xff\x00"} {
		f.Add([]byte(s), []byte("pre"))
	}
	f.Fuzz(func(t *testing.T, key, prefix []byte) {
		esc := windowstore.AppendEscaped(slices.Clone(prefix), key)
		inPlace := windowstore.EscapeFrom(append(slices.Clone(prefix), key...), len(prefix))
		require.Equal(t, esc, inPlace)
		got, rest, err := windowstore.Unescape(append(esc[len(prefix):len(esc):len(esc)], "tail"...))
		require.NoError(t, err)
		require.Equal(t, string(key), string(got))
		require.Equal(t, "tail", string(rest))
		// Escaping keeps the order of keys.
		other := append(slices.Clone(key), 0)
		require.Negative(t, bytes.Compare(windowstore.AppendEscaped(nil, key), windowstore.AppendEscaped(nil, other)))
	})
}

func ptr(s string) *string { return &s }
