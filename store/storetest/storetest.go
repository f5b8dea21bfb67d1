package storetest

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

// Config describes the implementation under test.
type Config struct {
	// Open returns a new, empty DB. Run closes it at the end of each
	// test (closing twice must return nil).
	Open func(t *testing.T) store.DB
	// Reopen, if set, closes db and opens the same storage again. Run
	// then checks that data, offsets and stores survive.
	Reopen func(t *testing.T, db store.DB) store.DB
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, cfg Config) {
	tests := []struct {
		name string
		fn   func(t *testing.T, cfg Config)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"BatchSemantics", testBatchSemantics},
		{"DeleteRange", testDeleteRange},
		{"Order", testOrder},
		{"RangeBounds", testRangeBounds},
		{"Prefix", testPrefix},
		{"Cursor", testCursor},
		{"Snapshot", testSnapshot},
		{"Reseek", testReseek},
		{"Atomicity", testAtomicity},
		{"Offset", testOffset},
		{"DropAndIsolation", testDropAndIsolation},
		{"Count", testCount},
		{"Closed", testClosed},
		{"InvalidArguments", testInvalidArguments},
		{"ConcurrentStores", testConcurrentStores},
		{"Model", testModel},
		{"Reopen", testReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, cfg) })
	}
}

func open(t *testing.T, cfg Config) store.DB {
	t.Helper()
	db := cfg.Open(t)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func openStore(t *testing.T, db store.DB, name string, p int32) store.Store {
	t.Helper()
	s, err := db.Store(name, p)
	require.NoError(t, err)
	require.Equal(t, name, s.Name())
	require.Equal(t, p, s.Partition())
	return s
}

type kv struct{ k, v string }

// scan reads c to the end and closes it.
func scan(t *testing.T, c store.Cursor) []kv {
	t.Helper()
	var out []kv
	for k, v := range c.All() {
		out = append(out, kv{string(k), string(v)})
	}
	require.NoError(t, c.Err())
	require.NoError(t, c.Close())
	return out
}

func put(t *testing.T, s store.Store, pairs ...string) {
	t.Helper()
	var b store.Batch
	for i := 0; i+1 < len(pairs); i += 2 {
		b.Put([]byte(pairs[i]), []byte(pairs[i+1]))
	}
	require.NoError(t, s.Apply(&b))
}

func get(t *testing.T, s store.Store, key string) (string, bool) {
	t.Helper()
	v, ok, err := s.Get([]byte(key))
	require.NoError(t, err)
	return string(v), ok
}

func testGetPutDelete(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)

	_, ok := get(t, s, "k")
	require.False(t, ok, "absent key")

	put(t, s, "k", "v1")
	v, ok := get(t, s, "k")
	require.True(t, ok)
	require.Equal(t, "v1", v)

	put(t, s, "k", "v2")
	v, _ = get(t, s, "k")
	require.Equal(t, "v2", v, "overwrite")

	// Get returns a copy the caller owns.
	got, _, err := s.Get([]byte("k"))
	require.NoError(t, err)
	got[0] = 'X'
	v, _ = get(t, s, "k")
	require.Equal(t, "v2", v)

	// Empty key (nil and empty are the same key) and empty value.
	var b store.Batch
	b.Put(nil, []byte("empty-key"))
	b.Put([]byte("ev"), nil)
	require.NoError(t, s.Apply(&b))
	v, ok = get(t, s, "")
	require.True(t, ok)
	require.Equal(t, "empty-key", v)
	val, ok, err := s.Get(nil)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "empty-key", string(val))
	val, ok, err = s.Get([]byte("ev"))
	require.NoError(t, err)
	require.True(t, ok, "a key with an empty value is present")
	require.NotNil(t, val, "a present empty value is non-nil")
	require.Empty(t, val)

	b.Reset()
	b.Delete([]byte("k"))
	b.Delete([]byte("never-there"))
	b.Delete([]byte{})
	require.NoError(t, s.Apply(&b))
	_, ok = get(t, s, "k")
	require.False(t, ok, "deleted")
	_, ok = get(t, s, "")
	require.False(t, ok, "empty key deleted")
	require.Equal(t, []kv{{"ev", ""}}, scan(t, s.Range(nil, nil)))

	// Large keys and values.
	big := bytes.Repeat([]byte{0xab}, 100<<10)
	b.Reset()
	b.Put(big[:10<<10], big)
	require.NoError(t, s.Apply(&b))
	val, ok, err = s.Get(big[:10<<10])
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, big, val)

	// Applying nil or an empty batch writes nothing.
	require.NoError(t, s.Apply(nil))
	require.NoError(t, s.Apply(&store.Batch{}))
}

func testBatchSemantics(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)

	// The batch copies its input.
	var b store.Batch
	k, v := []byte("key"), []byte("val")
	b.Put(k, v)
	k[0], v[0] = 'X', 'X'
	require.Equal(t, 1, b.Len())
	require.Equal(t, 6, b.Size())
	require.NoError(t, s.Apply(&b))
	got, ok := get(t, s, "key")
	require.True(t, ok)
	require.Equal(t, "val", got)
	_, ok = get(t, s, "Xey")
	require.False(t, ok)

	// Operations apply in order.
	for _, tc := range []struct {
		name string
		ops  func(b *store.Batch)
		want []kv
	}{
		{"put-delete", func(b *store.Batch) { b.Put([]byte("a"), []byte("1")); b.Delete([]byte("a")) }, nil},
		{"delete-put", func(b *store.Batch) { b.Delete([]byte("a")); b.Put([]byte("a"), []byte("1")) }, []kv{{"a", "1"}}},
		{"put-put", func(b *store.Batch) { b.Put([]byte("a"), []byte("1")); b.Put([]byte("a"), []byte("2")) }, []kv{{"a", "2"}}},
		{"shared", func(b *store.Batch) {
			b.PutShared([]byte("a"), []byte("shared"))
			b.Put([]byte("b"), []byte("copied"))
			b.PutShared([]byte("c"), nil) // an empty value, not a deletion
		}, []kv{{"a", "shared"}, {"b", "copied"}, {"c", ""}}},
		{"put-deleterange-put", func(b *store.Batch) {
			b.Put([]byte("a"), []byte("1"))
			b.Put([]byte("b"), []byte("1"))
			b.DeleteRange(nil, nil)
			b.Put([]byte("b"), []byte("2"))
		}, []kv{{"b", "2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var clear store.Batch
			clear.DeleteRange(nil, nil)
			require.NoError(t, s.Apply(&clear))
			var b store.Batch
			tc.ops(&b)
			require.NoError(t, s.Apply(&b))
			require.Equal(t, tc.want, scan(t, s.Range(nil, nil)))
		})
	}

	// Reset keeps nothing, and a reused batch applies only its new content.
	b.Reset()
	require.Equal(t, 0, b.Len())
	require.Equal(t, 0, b.Size())
	_, has := b.Offset()
	require.False(t, has)
	b.Put([]byte("z"), []byte("26"))
	require.NoError(t, s.Apply(&b))
	require.NoError(t, s.Apply(&b), "applying the same batch twice is idempotent for puts")
	require.Equal(t, []kv{{"b", "2"}, {"z", "26"}}, scan(t, s.Range(nil, nil)))
}

func testDeleteRange(t *testing.T, cfg Config) {
	db := open(t, cfg)
	s := openStore(t, db, "s", 0)
	// Neighbours whose keys sort right before and after s's.
	before := openStore(t, db, "r", 0)
	after := openStore(t, db, "s", 1)
	keys := []string{"", "a", "a\x00", "b", "b\xff", "c", "\xff", "\xff\xff"}
	for _, tc := range []struct {
		name       string
		start, end []byte
		want       []string
	}{
		{"all", nil, nil, nil},
		{"from-b", []byte("b"), nil, []string{"", "a", "a\x00"}},
		{"to-b", nil, []byte("b"), []string{"b", "b\xff", "c", "\xff", "\xff\xff"}},
		{"a-c", []byte("a"), []byte("c"), []string{"", "c", "\xff", "\xff\xff"}},
		{"empty-start-equals-nil", []byte{}, []byte("a\x00"), []string{"a\x00", "b", "b\xff", "c", "\xff", "\xff\xff"}},
		{"start-equals-end", []byte("b"), []byte("b"), keys},
		{"start-after-end", []byte("c"), []byte("a"), keys},
		{"empty-end", nil, []byte{}, keys},
		{"empty-start-empty-end", []byte{}, []byte{}, keys},
		{"ff", []byte("\xff"), nil, []string{"", "a", "a\x00", "b", "b\xff", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b store.Batch
			for _, st := range []store.Store{before, s, after} {
				b.Reset()
				b.DeleteRange(nil, nil)
				for _, k := range keys {
					b.Put([]byte(k), []byte("v"))
				}
				require.NoError(t, st.Apply(&b))
			}
			// A fresh batch: its buffer holds only the bounds.
			var del store.Batch
			del.DeleteRange(tc.start, tc.end)
			require.NoError(t, s.Apply(&del))
			var got []string
			for _, p := range scan(t, s.Range(nil, nil)) {
				got = append(got, p.k)
			}
			require.Equal(t, tc.want, got)
			for _, st := range []store.Store{before, after} {
				require.Len(t, scan(t, st.Range(nil, nil)), len(keys), "a neighbour store lost keys")
			}
		})
	}
}

// orderKeys are keys whose order by bytes.Compare differs from naive
// expectations: 0x00 and 0xff bytes, prefixes, the empty key.
var orderKeys = []string{
	"", "\x00", "\x00\x00", "\x00\xff", "\x01", "a", "a\x00", "a\x00\x00", "a\x01", "aa", "ab",
	"a\xff", "a\xff\xff", "b", "\x7f", "\x80", "\xfe\xff", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff",
}

func sortedOrderKeys() []string {
	keys := slices.Clone(orderKeys)
	slices.SortFunc(keys, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
	return keys
}

func fillOrderKeys(t *testing.T, s store.Store) {
	t.Helper()
	// Insert in a shuffled order.
	keys := slices.Clone(orderKeys)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	var b store.Batch
	for _, k := range keys {
		b.Put([]byte(k), []byte("v"+k))
	}
	require.NoError(t, s.Apply(&b))
}

func keysOf(pairs []kv) []string {
	var out []string
	for _, p := range pairs {
		out = append(out, p.k)
	}
	return out
}

func testOrder(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)
	fillOrderKeys(t, s)
	want := sortedOrderKeys()
	got := scan(t, s.Range(nil, nil))
	require.Equal(t, want, keysOf(got))
	for _, p := range got {
		require.Equal(t, "v"+p.k, p.v)
	}
	rev := slices.Clone(want)
	slices.Reverse(rev)
	require.Equal(t, rev, keysOf(scan(t, s.RangeReverse(nil, nil))))
}

func testRangeBounds(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)
	fillOrderKeys(t, s)
	all := sortedOrderKeys()
	between := func(start, end []byte) []string {
		var out []string
		for _, k := range all {
			if bytes.Compare([]byte(k), start) >= 0 && (end == nil || bytes.Compare([]byte(k), end) < 0) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		start, end []byte
		want       []string // nil: computed by between
		empty      bool
	}{
		{name: "unbounded"},
		{name: "start-present", start: []byte("a")},
		{name: "start-absent", start: []byte("a\x00\x01")},
		{name: "end-present", end: []byte("b")},
		{name: "end-absent", end: []byte("a\x02")},
		{name: "both", start: []byte("\x00"), end: []byte("a\xff")},
		{name: "single", start: []byte("aa"), end: []byte("aa\x00"), want: []string{"aa"}},
		{name: "start-ff", start: []byte("\xff")},
		{name: "start-beyond-all", start: []byte("\xff\xff\xff\xff"), empty: true},
		{name: "empty-start", start: []byte{}, end: []byte("\x00\x00")},
		{name: "empty-end-is-empty-key", end: []byte{}, empty: true},
		{name: "start-equals-end", start: []byte("a"), end: []byte("a"), empty: true},
		{name: "start-after-end", start: []byte("b"), end: []byte("a"), empty: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil && !tc.empty {
				want = between(tc.start, tc.end)
			}
			got := keysOf(scan(t, s.Range(tc.start, tc.end)))
			if tc.empty {
				require.Empty(t, got)
			} else {
				require.Equal(t, want, got)
			}
			rev := slices.Clone(want)
			slices.Reverse(rev)
			gotRev := keysOf(scan(t, s.RangeReverse(tc.start, tc.end)))
			if tc.empty {
				require.Empty(t, gotRev)
			} else {
				require.Equal(t, rev, gotRev)
			}
		})
	}
}

func testPrefix(t *testing.T, cfg Config) {
	db := open(t, cfg)
	s := openStore(t, db, "s", 0)
	// A neighbour with keys of its own, so a prefix scan that ran past
	// s's range would show them.
	put(t, openStore(t, db, "s", 1), "\xff\xff\xff\xff", "other", "a", "other")
	fillOrderKeys(t, s)
	all := sortedOrderKeys()
	for _, prefix := range []string{"", "\x00", "a", "a\x00", "a\xff", "aa", "b", "c", "\xff", "\xff\xff", "\xff\xff\xff", "\xff\xff\xff\xff"} {
		t.Run(fmt.Sprintf("%x", prefix), func(t *testing.T) {
			var want []string
			for _, k := range all {
				if bytes.HasPrefix([]byte(k), []byte(prefix)) {
					want = append(want, k)
				}
			}
			got := keysOf(scan(t, s.Prefix([]byte(prefix))))
			require.Equal(t, want, got)
			// Prefix is Range with PrefixEnd.
			require.Equal(t, want, keysOf(scan(t, s.Range([]byte(prefix), store.PrefixEnd([]byte(prefix))))))
		})
	}
	require.Nil(t, store.PrefixEnd(nil))
	require.Nil(t, store.PrefixEnd([]byte{0xff, 0xff}))
	require.Equal(t, []byte("a\x01"), store.PrefixEnd([]byte("a\x00\xff")))
}

func testCursor(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)
	put(t, s, "a", "1", "b", "2", "c", "3")

	// Next/Key/Value by hand.
	c := s.Range(nil, nil)
	var got []kv
	for c.Next() {
		got = append(got, kv{string(c.Key()), string(c.Value())})
	}
	require.NoError(t, c.Err())
	require.False(t, c.Next(), "Next after the end")
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close twice")
	require.False(t, c.Next(), "Next after Close")
	require.Equal(t, []kv{{"a", "1"}, {"b", "2"}, {"c", "3"}}, got)

	// Breaking out of All leaves the cursor usable.
	c = s.Range(nil, nil)
	for k := range c.All() {
		require.Equal(t, "a", string(k))
		break
	}
	require.True(t, c.Next())
	require.Equal(t, "b", string(c.Key()))
	require.NoError(t, c.Close())

	// Closing before the end, and without calling Next.
	require.NoError(t, s.Range(nil, nil).Close())
	require.NoError(t, s.RangeReverse([]byte("a"), []byte("c")).Close())
	require.NoError(t, s.Prefix([]byte("b")).Close())

	// An empty range.
	c = s.Range([]byte("x"), nil)
	require.False(t, c.Next())
	require.NoError(t, c.Err())
	require.NoError(t, c.Close())

	// Many open cursors at once, over many chunks of keys.
	var b store.Batch
	for i := range 1000 {
		b.Put(fmt.Appendf(nil, "n%04d", i), fmt.Appendf(nil, "%d", i))
	}
	require.NoError(t, s.Apply(&b))
	var cs []store.Cursor
	for range 10 {
		cs = append(cs, s.Prefix([]byte("n")), s.RangeReverse([]byte("n"), []byte("o")))
	}
	for i, c := range cs {
		n := 0
		for c.Next() {
			j := n
			if i%2 == 1 {
				j = 999 - n
			}
			require.Equal(t, fmt.Sprintf("n%04d", j), string(c.Key()))
			require.Equal(t, fmt.Sprint(j), string(c.Value()))
			n++
		}
		require.Equal(t, 1000, n)
		require.NoError(t, c.Close())
	}
}

func testSnapshot(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)
	var b store.Batch
	for i := range 300 {
		b.Put(fmt.Appendf(nil, "k%03d", i), []byte("old"))
	}
	require.NoError(t, s.Apply(&b))

	c := s.Range(nil, nil)
	rc := s.RangeReverse(nil, nil)
	// Write while the cursors are open and half-way through: every key
	// changes, some are deleted, some are added, then the store is
	// dropped.
	require.True(t, c.Next())
	require.True(t, rc.Next())
	b.Reset()
	for i := range 300 {
		if i%3 == 0 {
			b.Delete(fmt.Appendf(nil, "k%03d", i))
		} else {
			b.Put(fmt.Appendf(nil, "k%03d", i), []byte("new"))
		}
		b.Put(fmt.Appendf(nil, "k%03d+", i), []byte("new"))
	}
	require.NoError(t, s.Apply(&b))
	require.NoError(t, s.Drop())

	for _, c := range []store.Cursor{c, rc} {
		n := 1
		require.Equal(t, "old", string(c.Value()))
		for c.Next() {
			require.Equal(t, "old", string(c.Value()), "key %q", c.Key())
			n++
		}
		require.NoError(t, c.Err())
		require.NoError(t, c.Close())
		require.Equal(t, 300, n, "the cursor sees the store as it was when it was created")
	}
	require.Empty(t, scan(t, s.Range(nil, nil)))
}

// testReseek checks store.Reseeker on the cursors of the store, when
// they implement it: a reseeked cursor reads the new range of the view it
// was created on, in its direction, as a new cursor on that view would.
func testReseek(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)
	put(t, s, "a", "1", "b", "2", "c", "3", "d", "4")
	reseek := func(c store.Cursor, start, end string, endNil bool) []kv {
		t.Helper()
		r, ok := c.(store.Reseeker)
		if !ok {
			t.Skip("the cursors do not implement store.Reseeker")
		}
		var e []byte
		if !endNil {
			e = []byte(end)
		}
		require.True(t, r.Reseek([]byte(start), e))
		var out []kv
		for c.Next() {
			out = append(out, kv{string(c.Key()), string(c.Value())})
		}
		require.NoError(t, c.Err())
		return out
	}
	c := s.Range(nil, nil)
	rc := s.RangeReverse(nil, nil)
	pc := s.Prefix([]byte("b"))
	// Half-way through, then the store changes: the cursors keep their
	// view.
	require.True(t, c.Next())
	require.True(t, rc.Next())
	var b store.Batch
	b.Delete([]byte("b"))
	b.Put([]byte("c"), []byte("new"))
	b.Put([]byte("bb"), []byte("new"))
	require.NoError(t, s.Apply(&b))

	require.Equal(t, []kv{{"b", "2"}, {"c", "3"}}, reseek(c, "b", "d", false))
	require.Equal(t, []kv{{"c", "3"}, {"b", "2"}}, reseek(rc, "b", "d", false))
	require.Equal(t, []kv{{"c", "3"}, {"d", "4"}}, reseek(pc, "c", "", true))
	require.Equal(t, []kv{{"a", "1"}}, reseek(c, "", "b", false))
	require.Empty(t, reseek(c, "c", "c", false), "an empty range")
	require.Empty(t, reseek(c, "d", "a", false), "start after end")
	require.Equal(t, []kv{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}}, reseek(c, "", "", true))
	// Stopped early, then reseeked.
	r := c.(store.Reseeker)
	require.True(t, r.Reseek([]byte("a"), nil))
	require.True(t, c.Next())
	require.Equal(t, "a", string(c.Key()))
	require.Equal(t, []kv{{"d", "4"}}, reseek(c, "d", "", true))
	for _, c := range []store.Cursor{c, rc, pc} {
		require.NoError(t, c.Close())
		require.False(t, c.(store.Reseeker).Reseek(nil, nil), "Reseek after Close")
		require.False(t, c.Next())
	}
	// A new cursor sees the store as it is.
	require.Equal(t, []kv{{"a", "1"}, {"bb", "new"}, {"c", "new"}, {"d", "4"}}, scan(t, s.Range(nil, nil)))
}

// testAtomicity checks that readers never see part of a batch: every batch
// sets all keys (and the offset) to the same number.
func testAtomicity(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)
	const keys, batches = 20, 200
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		var b store.Batch
		for i := range batches {
			b.Reset()
			for k := range keys {
				b.Put(fmt.Appendf(nil, "k%02d", k), fmt.Appendf(nil, "%06d", i))
			}
			b.SetOffset(int64(i))
			if err := s.Apply(&b); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for reader := range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				var c store.Cursor
				if reader == 0 {
					c = s.Range(nil, nil)
				} else {
					c = s.RangeReverse(nil, nil)
				}
				var first string
				n := 0
				for c.Next() {
					if n == 0 {
						first = string(c.Value())
					} else if string(c.Value()) != first {
						t.Errorf("cursor saw part of a batch: %q then %q", first, c.Value())
					}
					n++
				}
				if err := c.Close(); err != nil {
					t.Error(err)
					return
				}
				if n != 0 && n != keys {
					t.Errorf("cursor saw %d keys, want 0 or %d", n, keys)
				}
			}
		})
	}
	wg.Wait()
	off, ok, err := s.Offset()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(batches-1), off)
	v, _ := get(t, s, "k07")
	require.Equal(t, fmt.Sprintf("%06d", batches-1), v)
}

func testOffset(t *testing.T, cfg Config) {
	db := open(t, cfg)
	s := openStore(t, db, "s", 0)
	other := openStore(t, db, "s", 1)
	offset := func() (int64, bool) {
		t.Helper()
		off, ok, err := s.Offset()
		require.NoError(t, err)
		return off, ok
	}
	_, ok := offset()
	require.False(t, ok, "a new store has no offset")

	var b store.Batch
	b.Put([]byte("a"), []byte("1"))
	b.SetOffset(41)
	b.SetOffset(42) // the last call wins
	off, has := b.Offset()
	require.True(t, has)
	require.Equal(t, int64(42), off)
	require.NoError(t, s.Apply(&b))
	off, ok = offset()
	require.True(t, ok)
	require.Equal(t, int64(42), off)

	// A batch without offset keeps the recorded one.
	put(t, s, "b", "2")
	off, _ = offset()
	require.Equal(t, int64(42), off)

	// An offset alone is a write.
	b.Reset()
	b.SetOffset(0)
	require.NoError(t, s.Apply(&b))
	off, ok = offset()
	require.True(t, ok)
	require.Equal(t, int64(0), off)

	// Any int64 round-trips.
	for _, want := range []int64{-1, 1 << 40, -1 << 63, 1<<63 - 1} {
		b.Reset()
		b.SetOffset(want)
		require.NoError(t, s.Apply(&b))
		off, _ = offset()
		require.Equal(t, want, off)
	}

	// Offsets are per store.
	_, ok, err := other.Offset()
	require.NoError(t, err)
	require.False(t, ok, "another store of the DB has no offset")
}

func testDropAndIsolation(t *testing.T, cfg Config) {
	db := open(t, cfg)
	// Names that share prefixes, and partitions of one name.
	names := []struct {
		name string
		p    int32
	}{{"s", 0}, {"s", 1}, {"s", 2}, {"st", 0}, {"s\x00", 0}, {"a-much-longer-store-name-" + string(bytes.Repeat([]byte("x"), 300)), 7}}
	stores := make([]store.Store, len(names))
	for i, n := range names {
		stores[i] = openStore(t, db, n.name, n.p)
		var b store.Batch
		b.Put([]byte("shared-key"), fmt.Appendf(nil, "%d", i))
		b.Put(fmt.Appendf(nil, "own-%d", i), []byte("x"))
		b.SetOffset(int64(100 + i))
		require.NoError(t, stores[i].Apply(&b))
	}
	check := func(dropped map[int]bool) {
		t.Helper()
		for i, s := range stores {
			got := scan(t, s.Range(nil, nil))
			off, ok, err := s.Offset()
			require.NoError(t, err)
			n, err := s.ApproximateCount()
			require.NoError(t, err)
			if dropped[i] {
				require.Empty(t, got, "store %d", i)
				require.False(t, ok, "store %d", i)
				require.Zero(t, n)
				continue
			}
			require.Equal(t, []kv{{fmt.Sprintf("own-%d", i), "x"}, {"shared-key", fmt.Sprint(i)}}, got, "store %d", i)
			require.True(t, ok)
			require.Equal(t, int64(100+i), off)
			require.Equal(t, int64(2), n)
		}
	}
	check(nil)

	// A second handle on the same store shares its state.
	again := openStore(t, db, "s", 1)
	v, ok := get(t, again, "shared-key")
	require.True(t, ok)
	require.Equal(t, "1", v)

	require.NoError(t, stores[1].Drop())
	check(map[int]bool{1: true})
	require.NoError(t, stores[0].Drop())
	check(map[int]bool{0: true, 1: true})
	require.NoError(t, stores[0].Drop(), "dropping an empty store")

	// A dropped store is usable.
	put(t, stores[1], "after", "drop")
	require.Equal(t, []kv{{"after", "drop"}}, scan(t, again.Range(nil, nil)))
	_, ok, err := again.Offset()
	require.NoError(t, err)
	require.False(t, ok)
}

func testCount(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)
	count := func() int64 {
		t.Helper()
		n, err := s.ApproximateCount()
		require.NoError(t, err)
		return n
	}
	require.Zero(t, count())
	var b store.Batch
	for i := range 500 {
		b.Put(fmt.Appendf(nil, "k%d", i), []byte("v"))
	}
	require.NoError(t, s.Apply(&b))
	require.Equal(t, int64(500), count())
	require.NoError(t, s.Apply(&b), "overwrites do not count")
	require.Equal(t, int64(500), count())
	b.Reset()
	for i := range 100 {
		b.Delete(fmt.Appendf(nil, "k%d", i))
	}
	require.NoError(t, s.Apply(&b))
	require.Equal(t, int64(400), count())
}

func testClosed(t *testing.T, cfg Config) {
	requireClosed := func(t *testing.T, s store.Store) {
		t.Helper()
		_, _, err := s.Get([]byte("a"))
		require.ErrorIs(t, err, store.ErrClosed)
		var b store.Batch
		b.Put([]byte("a"), []byte("1"))
		require.ErrorIs(t, s.Apply(&b), store.ErrClosed)
		_, _, err = s.Offset()
		require.ErrorIs(t, err, store.ErrClosed)
		_, err = s.ApproximateCount()
		require.ErrorIs(t, err, store.ErrClosed)
		require.ErrorIs(t, s.Drop(), store.ErrClosed)
		for _, c := range []store.Cursor{s.Range(nil, nil), s.RangeReverse(nil, nil), s.Prefix([]byte("a"))} {
			require.False(t, c.Next())
			require.ErrorIs(t, c.Err(), store.ErrClosed)
			require.ErrorIs(t, c.Close(), store.ErrClosed)
		}
	}

	t.Run("handle", func(t *testing.T) {
		db := open(t, cfg)
		s := openStore(t, db, "s", 0)
		put(t, s, "a", "1", "b", "2")
		c := s.Range(nil, nil)
		require.NoError(t, s.Close())
		require.NoError(t, s.Close(), "Close twice")
		requireClosed(t, s)
		// The data stays, and the cursor opened before Close still works.
		require.Equal(t, []kv{{"a", "1"}, {"b", "2"}}, scan(t, c))
		s2 := openStore(t, db, "s", 0)
		v, ok := get(t, s2, "a")
		require.True(t, ok)
		require.Equal(t, "1", v)
	})
	t.Run("db", func(t *testing.T) {
		db := cfg.Open(t)
		s := openStore(t, db, "s", 0)
		put(t, s, "a", "1", "b", "2")
		c := s.Range(nil, nil)
		require.True(t, c.Next())
		require.NoError(t, db.Close())
		require.NoError(t, db.Close(), "Close twice")
		requireClosed(t, s)
		require.False(t, c.Next(), "a cursor open at Close")
		require.ErrorIs(t, c.Err(), store.ErrClosed)
		require.ErrorIs(t, c.Close(), store.ErrClosed)
		_, err := db.Store("s", 0)
		require.ErrorIs(t, err, store.ErrClosed)
	})
}

func testInvalidArguments(t *testing.T, cfg Config) {
	db := open(t, cfg)
	for _, tc := range []struct {
		name string
		p    int32
	}{{"", 0}, {"s", -1}, {"", -5}} {
		_, err := db.Store(tc.name, tc.p)
		require.ErrorIs(t, err, store.ErrInvalid, "%q/%d", tc.name, tc.p)
	}
}

// testConcurrentStores opens stores from several goroutines at once, some
// of them the same store: each (name, partition) is one store, and the
// stores stay isolated.
func testConcurrentStores(t *testing.T, cfg Config) {
	db := open(t, cfg)
	const goroutines, partitions = 4, 30
	handles := make([][]store.Store, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for p := range int32(partitions) {
				s, err := db.Store("c", p)
				if err != nil {
					t.Error(err)
					return
				}
				var b store.Batch
				b.Put(fmt.Appendf(nil, "g%d", g), fmt.Appendf(nil, "p%d", p))
				if err := s.Apply(&b); err != nil {
					t.Error(err)
					return
				}
				handles[g] = append(handles[g], s)
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	for g := range goroutines {
		require.Len(t, handles[g], partitions)
		for p, s := range handles[g] {
			got := scan(t, s.Range(nil, nil))
			require.Len(t, got, goroutines, "partition %d sees the writes of every goroutine, and nothing else", p)
			for _, kv := range got {
				require.Equal(t, fmt.Sprintf("p%d", p), kv.v)
			}
		}
	}
}

// testModel applies a random sequence of operations to the store and to a
// map, and compares them after each batch.
func testModel(t *testing.T, cfg Config) {
	s := openStore(t, open(t, cfg), "s", 0)
	rng := rand.New(rand.NewPCG(7, 11))
	model := map[string]string{}
	key := func() []byte {
		// Small alphabet with 0x00 and 0xff, so keys collide and share
		// prefixes.
		k := make([]byte, rng.IntN(4))
		for i := range k {
			k[i] = []byte{0x00, 'a', 'b', 0xff}[rng.IntN(4)]
		}
		return k
	}
	var b store.Batch
	for round := range 150 {
		b.Reset()
		for range 1 + rng.IntN(10) {
			switch r := rng.IntN(10); {
			case r < 6:
				k, v := key(), fmt.Appendf(nil, "%d", rng.IntN(1000))
				b.Put(k, v)
				model[string(k)] = string(v)
			case r < 9:
				k := key()
				b.Delete(k)
				delete(model, string(k))
			default:
				start, end := key(), key()
				if rng.IntN(3) == 0 {
					end = nil
				}
				b.DeleteRange(start, end)
				for k := range model {
					if k >= string(start) && (end == nil || k < string(end)) {
						delete(model, k)
					}
				}
			}
		}
		require.NoError(t, s.Apply(&b))

		keys := slices.Sorted(maps.Keys(model))
		var want []kv
		for _, k := range keys {
			want = append(want, kv{k, model[k]})
		}
		require.Equal(t, want, scan(t, s.Range(nil, nil)), "round %d", round)
		n, err := s.ApproximateCount()
		require.NoError(t, err)
		require.Equal(t, int64(len(model)), n)
		k := key()
		v, ok := get(t, s, string(k))
		mv, mok := model[string(k)]
		require.Equal(t, mok, ok)
		require.Equal(t, mv, v)
		p := key()
		var wantP []string
		for _, k := range keys {
			if bytes.HasPrefix([]byte(k), p) {
				wantP = append(wantP, k)
			}
		}
		require.Equal(t, wantP, keysOf(scan(t, s.Prefix(p))))
	}
}

func testReopen(t *testing.T, cfg Config) {
	if cfg.Reopen == nil {
		t.Skip("the implementation does not persist")
	}
	db := cfg.Open(t)
	a := openStore(t, db, "a", 0)
	b0 := openStore(t, db, "b", 3)
	put(t, a, "k1", "v1", "k2", "v2")
	var b store.Batch
	b.Put([]byte("k"), []byte("b"))
	b.SetOffset(77)
	require.NoError(t, b0.Apply(&b))
	cDropped := openStore(t, db, "c", 0)
	put(t, cDropped, "gone", "x")
	require.NoError(t, cDropped.Drop())

	db = cfg.Reopen(t, db)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	// A store created after the reopen must not see anyone's keys.
	fresh := openStore(t, db, "d", 0)
	require.Empty(t, scan(t, fresh.Range(nil, nil)))
	put(t, fresh, "k1", "fresh")

	a = openStore(t, db, "a", 0)
	require.Equal(t, []kv{{"k1", "v1"}, {"k2", "v2"}}, scan(t, a.Range(nil, nil)))
	_, ok, err := a.Offset()
	require.NoError(t, err)
	require.False(t, ok)
	b0 = openStore(t, db, "b", 3)
	require.Equal(t, []kv{{"k", "b"}}, scan(t, b0.Range(nil, nil)))
	off, ok, err := b0.Offset()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(77), off)
	require.Empty(t, scan(t, openStore(t, db, "c", 0).Range(nil, nil)))
	require.Empty(t, scan(t, openStore(t, db, "b", 0).Range(nil, nil)))
}
