package runtime

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// benchTaskStore returns a task store on the memory store holding n
// uncommitted writes of keys benchKey(0..n-1), with the record cache on
// or off. With sent, the writes are handed off to a commit in flight
// (s.sent) and half of the keys are written again (s.cur), as between
// the start and the end of a commit.
func benchTaskStore(b *testing.B, n int, noCache, sent bool) *taskStore {
	b.Helper()
	w := &worker{app: &App{}}
	tk := &task{id: topology.TaskID{Partition: 0}}
	s := &taskStore{w: w, t: tk, name: "s", changelog: "app-s-changelog", st: store.NewMemory("s", 0), noCache: noCache}
	tk.stores = []*taskStore{s}
	value := make([]byte, 20)
	for i := range n {
		require.NoError(b, s.Put(benchKey(i), value))
	}
	if sent {
		s.handOff()
		for i := 0; i < n; i += 2 {
			require.NoError(b, s.Put(benchKey(i), value))
		}
	}
	b.Cleanup(func() { require.NoError(b, s.close()) })
	return s
}

func benchKey(i int) []byte { return fmt.Appendf(nil, "key-%09d", i) }

// BenchmarkTaskStoreRange measures a narrow range scan (10 keys, as a
// window or session lookup makes per record) over a task store with 10k
// or 100k uncommitted writes, with the record cache on and off, and with
// the writes split between a commit in flight and the current ones.
func BenchmarkTaskStoreRange(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		for _, mode := range []string{"cache", "no-cache", "cache-sent"} {
			b.Run(fmt.Sprintf("%s/n=%d", mode, n), func(b *testing.B) {
				s := benchTaskStore(b, n, mode == "no-cache", mode == "cache-sent")
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					from := (i * 7919) % (n - 10)
					i++
					seq, errf := s.Range(benchKey(from), benchKey(from+10))
					got := 0
					for range seq {
						got++
					}
					if err := errf(); err != nil || got != 10 {
						b.Fatalf("range: %d keys, error %v", got, err)
					}
				}
			})
		}
	}
}

// BenchmarkTaskStoreRangeWrite measures the pattern of a session window
// store: a narrow range scan followed by a write in the scanned range,
// per record, over 100k uncommitted writes.
func BenchmarkTaskStoreRangeWrite(b *testing.B) {
	const n = 100_000
	s := benchTaskStore(b, n, false, false)
	value := make([]byte, 20)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		from := (i * 7919) % (n - 10)
		i++
		seq, errf := s.Range(benchKey(from), benchKey(from+10))
		for k := range seq {
			if err := s.Put(k, value); err != nil {
				b.Fatal(err)
			}
			break
		}
		if err := errf(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTaskStorePut measures overwriting one of 100k uncommitted keys
// (the record cache on).
func BenchmarkTaskStorePut(b *testing.B) {
	const n = 100_000
	s := benchTaskStore(b, n, false, false)
	value := make([]byte, 20)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = benchKey((i * 7919) % n)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Put(keys[i%len(keys)], value); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkTaskStoreInsert measures writing 10k new keys into an empty
// task store, then handing them off (a commit interval of new keys).
func BenchmarkTaskStoreInsert(b *testing.B) {
	const n = 10_000
	s := benchTaskStore(b, 0, false, false)
	value := make([]byte, 20)
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = benchKey((i * 7919) % n)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range keys {
			if err := s.Put(k, value); err != nil {
				b.Fatal(err)
			}
		}
		s.handOff()
		s.dropSent()
	}
}

// BenchmarkTaskStoreGet measures reading one of 100k uncommitted keys.
func BenchmarkTaskStoreGet(b *testing.B) {
	const n = 100_000
	s := benchTaskStore(b, n, false, false)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = benchKey((i * 7919) % n)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := s.Get(keys[i%len(keys)]); err != nil || !ok {
			b.Fatalf("get: %v %v", ok, err)
		}
		i++
	}
}

// BenchmarkTaskStoreInsertRanged is BenchmarkTaskStoreInsert on a store
// that has been range scanned, so that its writes are indexed in key
// order as they are made.
func BenchmarkTaskStoreInsertRanged(b *testing.B) {
	const n = 10_000
	s := benchTaskStore(b, 0, false, false)
	seq, errf := s.Range(nil, nil)
	for range seq {
	}
	require.NoError(b, errf())
	value := make([]byte, 20)
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = benchKey((i * 7919) % n)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range keys {
			if err := s.Put(k, value); err != nil {
				b.Fatal(err)
			}
		}
		s.handOff()
		s.dropSent()
	}
}
