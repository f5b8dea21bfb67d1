package runtime

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// TestTaskStoreModel runs random writes, commit hand-offs, applied and
// dropped commits, skipped records and range scans (some writing while
// they iterate) against a task store
// on the memory store, with and without record cache, and compares every
// read with a model: a map of what the task has written so far (the
// overlay of its uncommitted writes over the committed state). The
// changelog records a hand-off would write, and the worker's counts of
// them and of cached bytes, are checked against the model too.
//
// With recycle, the overlays of the commits that succeed are reused (see
// taskStore.recycle), and the changelog records of a commit are checked
// again when it ends: the writes made while it was in flight, some into
// reused value buffers, must not have changed them.
func TestTaskStoreModel(t *testing.T) {
	for _, mode := range []struct{ noCache, recycle bool }{{false, false}, {true, false}, {false, true}} {
		for seed := range uint64(20) {
			taskStoreModel(t, seed, mode.noCache, mode.recycle)
		}
	}
}

func taskStoreModel(t *testing.T, seed uint64, noCache, recycle bool) {
	{
		rng := rand.New(rand.NewPCG(seed, 1))
		w := &worker{app: &App{}}
		tk := &task{id: topology.TaskID{Partition: 0}}
		st := store.NewMemory("s", 0)
		s := &taskStore{w: w, t: tk, name: "s", changelog: "app-s-changelog", st: st, noCache: noCache, recycle: recycle}
		tk.stores = []*taskStore{s}
		var writes []string              // uncommitted writes in order, "k=v" or "k" for a delete
		committed := map[string]string{} // the store's state
		var sentModel map[string]*string // writes in flight: nil value = delete
		cur := map[string]*string{}      // uncommitted writes
		key := func() string { return string(rune('a' + rng.IntN(12))) }
		var curR, sentR [][2]string // range deletions [start, end) before cur and sentModel
		inflight := false
		// The changelog records of the commit in flight, and what they
		// held at its hand-off.
		var sentRecs []broker.Record
		var sentWant []string
		changelog := func(recs []broker.Record) []string {
			var got []string
			for _, r := range recs {
				if r.Value == nil {
					got = append(got, string(r.Key))
				} else {
					got = append(got, string(r.Key)+"="+string(r.Value))
				}
			}
			return got
		}
		delRanges := func(m map[string]string, rs [][2]string) {
			for _, r := range rs {
				for k := range m {
					if k >= r[0] && k < r[1] {
						delete(m, k)
					}
				}
			}
		}
		// deleteRange is a DeleteRange by the task, in the model too.
		deleteRange := func() {
			a, b := key(), key()
			if a > b {
				a, b = b, a
			}
			require.NoError(t, s.DeleteRange([]byte(a), []byte(b)))
			if a == b {
				return
			}
			for k := range cur {
				if k >= a && k < b {
					delete(cur, k)
				}
			}
			curR = append(curR, [2]string{a, b})
		}
		model := func() map[string]string {
			m := maps.Clone(committed)
			for i, over := range []map[string]*string{sentModel, cur} {
				delRanges(m, [][][2]string{sentR, curR}[i])
				for k, v := range over {
					if v == nil {
						delete(m, k)
					} else {
						m[k] = *v
					}
				}
			}
			return m
		}
		// del deletes k, in the model too: without record cache every
		// write is recorded; with it, a key written since the hand-off
		// and absent under that write is forgotten (taskStore.Delete).
		del := func(k string) {
			require.NoError(t, s.Delete([]byte(k)))
			if v, ok := cur[k]; !noCache && ok && v != nil {
				m := maps.Clone(committed)
				delRanges(m, sentR)
				for k, v := range sentModel {
					if v == nil {
						delete(m, k)
					} else {
						m[k] = *v
					}
				}
				delRanges(m, curR)
				if _, below := m[k]; !below {
					delete(cur, k)
					return
				}
			}
			cur[k] = nil
			writes = append(writes, k)
		}
		offset := int64(0)
		for range 400 {
			switch op := rng.IntN(10); {
			case op < 4: // write
				k := key()
				if rng.IntN(2) == 0 {
					// An aggregation's read before its write: the write
					// takes the slot the read found (taskStore.hit).
					_, _, err := s.GetAppend(nil, []byte(k))
					require.NoError(t, err)
				}
				if rng.IntN(3) == 0 {
					del(k)
				} else {
					v := k + string(rune('0'+rng.IntN(10)))
					if rng.IntN(4) == 0 {
						// A buffer given up (a table source's large
						// encoding): the write keeps it.
						require.NoError(t, s.PutOwned([]byte(k), []byte(v)))
					} else {
						require.NoError(t, s.Put([]byte(k), []byte(v)))
					}
					cur[k] = &v
					writes = append(writes, k+"="+v)
				}
			case op == 8 && rng.IntN(2) == 0: // range deletion
				deleteRange()
			case op == 4 && !inflight: // hand off to a commit
				sentRecs = s.appendChangelog(nil)
				got := changelog(sentRecs)
				sentWant = slices.Clone(got)
				want := writes
				if !noCache {
					want = nil
					for k, v := range cur {
						if v == nil {
							want = append(want, k)
						} else {
							want = append(want, k+"="+*v)
						}
					}
					slices.Sort(got)
					slices.Sort(want)
				}
				require.Equal(t, want, got, "seed %d: changelog of a hand-off", seed)
				s.handOff()
				sentModel, cur, writes = cur, map[string]*string{}, nil
				sentR, curR, inflight = curR, nil, true
				require.Zero(t, w.pending)
				require.Zero(t, w.cacheBytes)
			case op == 5 && inflight: // the commit succeeded
				require.Equal(t, sentWant, changelog(sentRecs), "seed %d: changelog records of the commit in flight", seed)
				if len(sentModel) > 0 || len(sentR) > 0 {
					offset++
					s.sentOff = offset
				}
				if recycle {
					require.NoError(t, s.writeSent())
					s.retireSent()
				} else {
					require.NoError(t, s.applySent())
				}
				delRanges(committed, sentR)
				sentR, inflight = nil, false
				for k, v := range sentModel {
					if v == nil {
						delete(committed, k)
					} else {
						committed[k] = *v
					}
				}
				sentModel = nil
				if offset == 0 {
					break // nothing applied yet
				}
				off, ok, err := st.Offset()
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, offset, off)
			case op == 6 && inflight: // the commit was fenced
				require.Equal(t, sentWant, changelog(sentRecs), "seed %d: changelog records of the commit in flight", seed)
				s.dropSent()
				sentModel = nil
				s.discard()
				cur, writes = map[string]*string{}, nil
				sentR, curR, inflight = nil, nil, false
			case op == 7: // a record writes, then is skipped
				tk.beginRecord()
				before, beforeR := maps.Clone(cur), slices.Clone(curR)
				pending, cached := w.pending, w.cacheBytes
				for range rng.IntN(4) {
					if rng.IntN(3) == 0 {
						deleteRange()
						continue
					}
					k := key()
					require.NoError(t, s.Put([]byte(k), []byte("skipped")))
					if rng.IntN(3) == 0 {
						require.NoError(t, s.Delete([]byte(k))) // maybe forgotten: undone too
					}
				}
				tk.skipRecord()
				cur, curR = before, beforeR
				require.Equal(t, pending, w.pending)
				require.Equal(t, cached, w.cacheBytes)
			case op == 9 && rng.IntN(2) == 0: // a record writes, an item nested in it writes and is skipped alone
				tk.beginRecord()
				for range rng.IntN(3) {
					k := key()
					v := k + "r"
					require.NoError(t, s.Put([]byte(k), []byte(v)))
					cur[k] = &v
					writes = append(writes, k+"="+v)
				}
				before, beforeR, beforeW := maps.Clone(cur), slices.Clone(curR), slices.Clone(writes)
				pending, cached := w.pending, w.cacheBytes
				m := s.mark()
				for range rng.IntN(4) {
					if rng.IntN(3) == 0 {
						deleteRange()
						continue
					}
					k := key()
					require.NoError(t, s.Put([]byte(k), []byte("skipped")))
					if rng.IntN(3) == 0 {
						require.NoError(t, s.Delete([]byte(k))) // maybe forgotten: undone too
					}
				}
				s.undoTo(m)
				cur, curR, writes = before, beforeR, beforeW
				require.Equal(t, pending, w.pending)
				require.Equal(t, cached, w.cacheBytes)
			default: // range scan with random bounds
				var start, end []byte
				if rng.IntN(2) == 0 {
					start = []byte(key())
				}
				if rng.IntN(2) == 0 {
					end = []byte(key())
				}
				m := model()
				var want []string
				for _, k := range slices.Sorted(maps.Keys(m)) {
					if (start == nil || k >= string(start)) && (end == nil || k < string(end)) {
						want = append(want, k+"="+m[k])
					}
				}
				// Half of the scans write while they iterate: the scan
				// sees the store as of its first step only.
				writeDuring := rng.IntN(2) == 0
				seq, errf := s.Range(start, end)
				var got []string
				for k, v := range seq {
					got = append(got, string(k)+"="+string(v))
					if writeDuring {
						k := key()
						if rng.IntN(5) == 0 {
							deleteRange()
						} else if rng.IntN(3) == 0 {
							del(k)
						} else {
							v := k + string(rune('0'+rng.IntN(10)))
							require.NoError(t, s.Put([]byte(k), []byte(v)))
							cur[k] = &v
							writes = append(writes, k+"="+v)
						}
					}
				}
				require.NoError(t, errf())
				require.Equal(t, want, got, "seed %d range [%q, %q)", seed, start, end)
			}
			// The worker counts the changelog records and cached bytes of
			// the uncommitted writes.
			var size int64
			for k, v := range cur {
				p := pending{del: v == nil}
				if v != nil {
					p.value = []byte(*v)
				}
				size += cacheSize(k, p)
			}
			if noCache {
				require.Equal(t, len(writes)+len(curR), w.pending)
				require.Zero(t, w.cacheBytes)
			} else {
				require.Equal(t, len(cur)+len(curR), w.pending)
				require.Equal(t, size, w.cacheBytes)
			}
			// Every key reads as the model says.
			m := model()
			for c := 'a'; c < 'a'+12; c++ {
				v, ok, err := s.Get([]byte(string(c)))
				require.NoError(t, err)
				mv, mok := m[string(c)]
				require.Equal(t, mok, ok, "seed %d key %c", seed, c)
				require.True(t, bytes.Equal([]byte(mv), v) || (!ok && v == nil))
				buf, ok, err := s.GetAppend([]byte("dst:"), []byte(string(c)))
				require.NoError(t, err)
				require.Equal(t, mok, ok, "seed %d key %c", seed, c)
				require.Equal(t, "dst:"+mv, string(buf))
			}
		}
		require.NoError(t, s.close())
	}
}

// TestTaskStoreRangeSnapshot checks that a range scan yields the task
// store as of its first step: writes made during the iteration, by its
// loop body or by another scan, are not seen by it, and are seen by the
// scans that start after them.
func TestTaskStoreRangeSnapshot(t *testing.T) {
	for _, noCache := range []bool{false, true} {
		t.Run(map[bool]string{false: "cache", true: "no-cache"}[noCache], func(t *testing.T) {
			w := &worker{app: &App{}}
			tk := &task{id: topology.TaskID{Partition: 0}}
			s := &taskStore{w: w, t: tk, name: "s", changelog: "app-s-changelog", st: store.NewMemory("s", 0), noCache: noCache}
			tk.stores = []*taskStore{s}
			defer func() { require.NoError(t, s.close()) }()
			bound := func(b string) []byte {
				if b == "" {
					return nil
				}
				return []byte(b)
			}
			scan := func(start, end string) []string {
				seq, errf := s.Range(bound(start), bound(end))
				var got []string
				for k, v := range seq {
					got = append(got, string(k)+"="+string(v))
				}
				require.NoError(t, errf())
				return got
			}
			put := func(k, v string) { require.NoError(t, s.Put([]byte(k), []byte(v))) }
			// a and c committed, b in the commit in flight, d and e current.
			put("a", "1")
			put("c", "3")
			s.handOff()
			s.sentOff = 1
			require.NoError(t, s.applySent())
			put("b", "2")
			s.handOff()
			put("d", "4")
			put("e", "5")
			before := []string{"a=1", "b=2", "c=3", "d=4", "e=5"}

			// The loop body writes ahead of the scan, behind it and at its
			// position; a nested scan started during the outer one sees
			// the writes made before it, and writes of its own.
			seq, errf := s.Range(nil, nil)
			var got, nested []string
			for k, v := range seq {
				got = append(got, string(k)+"="+string(v))
				switch string(k) {
				case "a":
					put("c", "33")                            // ahead, over the store
					require.NoError(t, s.Delete([]byte("d"))) // ahead, over cur
					put("bb", "new")                          // ahead, new key
					put("a", "11")                            // at the scan's position
				case "b":
					nested = scan("a", "f")
					put("e", "55") // ahead, during the nested scan's lifetime
				}
			}
			require.NoError(t, errf())
			require.Equal(t, before, got, "a scan sees no write made during it")
			require.Equal(t, []string{"a=11", "b=2", "bb=new", "c=33", "e=5"}, nested)
			require.Equal(t, []string{"a=11", "b=2", "bb=new", "c=33", "e=55"}, scan("", ""))

			// A scan stopped early leaves later writes to cur, and writes
			// after it are not cloned for it.
			seq, _ = s.Range([]byte("a"), nil)
			for range seq {
				break
			}
			put("f", "6")
			require.Zero(t, s.live)
			require.Equal(t, []string{"e=55", "f=6"}, scan("e", ""))

			// A skipped record's writes made during a scan are undone for
			// later reads and never seen by the scan.
			seq, errf = s.Range(nil, []byte("c"))
			got = got[:0]
			for k, v := range seq {
				got = append(got, string(k)+"="+string(v))
				tk.beginRecord()
				put("b", "skipped")
				put("a0", "skipped")
				tk.skipRecord()
			}
			require.NoError(t, errf())
			require.Equal(t, []string{"a=11", "b=2", "bb=new"}, got)
			require.Equal(t, []string{"a=11", "b=2", "bb=new"}, scan("", "c"))

			// Once no scan holds cur's index, writes change it in place
			// (no copy-on-write); a scan that outlives a nested one
			// still holds it: keys inserted after the nested scan ended,
			// beyond the outer scan's first batch of the index, are not
			// seen by it.
			require.False(t, s.idxShared, "no scan holds the index")
			for i := range 3 * cursorBatchMin {
				put(fmt.Sprintf("m%02d", i), "m")
			}
			seq, errf = s.Range([]byte("m"), []byte("n"))
			n := 0
			for k := range seq {
				if n == 0 {
					require.Len(t, scan("m", "n"), 3*cursorBatchMin)
					put("m20x", "inserted") // ahead, after the nested scan ended
				}
				require.NotEqual(t, "m20x", string(k), "a write made during the scan")
				n++
			}
			require.NoError(t, errf())
			require.Equal(t, 3*cursorBatchMin, n)
			require.Len(t, scan("m", "n"), 3*cursorBatchMin+1)
			require.False(t, s.idxShared, "no scan holds the index")
		})
	}
}

// TestTaskStoreRangeWide checks range scans that cross many of the
// overlay cursors' batches: 2000 keys, stored, in a commit in flight and
// uncommitted (some deleted), scanned over random bounds, with writes
// during half of the scans, against a model of the store as of each
// scan's start.
func TestTaskStoreRangeWide(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	w := &worker{app: &App{}}
	tk := &task{id: topology.TaskID{Partition: 0}}
	s := &taskStore{w: w, t: tk, name: "s", changelog: "app-s-changelog", st: store.NewMemory("s", 0), recycle: true}
	tk.stores = []*taskStore{s}
	const n = 2000
	key := func(i int) []byte { return fmt.Appendf(nil, "k%05d", i) }
	model := map[string]string{}
	put := func(i int, v string) {
		require.NoError(t, s.Put(key(i), []byte(v)))
		model[string(key(i))] = v
	}
	for i := range n {
		if i%3 == 0 {
			put(i, "stored")
		}
	}
	s.handOff()
	require.NoError(t, s.writeSent())
	s.retireSent()
	for i := range n {
		if i%3 == 1 {
			put(i, "sent")
		}
	}
	s.handOff()
	for i := range n {
		switch i % 5 {
		case 0:
			put(i, "cur")
		case 1:
			require.NoError(t, s.Delete(key(i)))
			delete(model, string(key(i)))
		}
	}
	for scan := range 40 {
		a, b := rng.IntN(n+1), rng.IntN(n+1)
		if a > b {
			a, b = b, a
		}
		var want []string
		for _, k := range slices.Sorted(maps.Keys(model)) {
			if k >= string(key(a)) && k < string(key(b)) {
				want = append(want, k+"="+model[k])
			}
		}
		seq, errf := s.Range(key(a), key(b))
		var got []string
		for k, v := range seq {
			got = append(got, string(k)+"="+string(v))
			if scan%2 == 0 {
				put(rng.IntN(n), fmt.Sprintf("during-%d", scan))
			}
		}
		require.NoError(t, errf())
		require.Equal(t, want, got, "scan %d [%d, %d)", scan, a, b)
	}
	require.NoError(t, s.close())
}

// TestTaskStoreHugeNotRecycled checks that a commit holding a value of
// more than hugeValue bytes is not recycled: its value is garbage once
// the commit is done, while the overlay of a commit of small values is
// kept for the next writes of its keys. A value given with PutOwned is
// kept as it is, not copied.
func TestTaskStoreHugeNotRecycled(t *testing.T) {
	w := &worker{app: &App{}}
	tk := &task{id: topology.TaskID{Partition: 0}}
	st := store.NewMemory("s", 0)
	s := &taskStore{w: w, t: tk, name: "s", changelog: "app-s-changelog", st: st, recycle: true}
	tk.stores = []*taskStore{s}
	commit := func(off int64) {
		t.Helper()
		s.handOff()
		s.sentOff = off
		require.NoError(t, s.writeSent())
		s.retireSent()
	}
	require.NoError(t, s.Put([]byte("small"), []byte("v")))
	commit(0)
	require.NotNil(t, s.done)
	small := s.done

	huge := make([]byte, hugeValue+1)
	require.NoError(t, s.PutOwned([]byte("huge"), huge))
	require.Same(t, &huge[0], &s.cur.m["huge"].p.value[0], "PutOwned keeps the buffer")
	commit(1)
	require.Same(t, small, s.done, "the huge commit's overlay is not recycled")
	v, ok, err := st.Get([]byte("huge"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, v, hugeValue+1)

	require.NoError(t, s.Put([]byte("huge"), []byte("small now")))
	commit(2)
	require.NotSame(t, small, s.done)
	require.Contains(t, s.done.m, "huge")
}
