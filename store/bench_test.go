package store_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

type benchImpl struct {
	name string
	open func(b *testing.B) store.Store
	// flush, if set, moves the data from memtables to sstables.
	flush func(b *testing.B, s store.Store)
}

// benchStores returns the implementations to benchmark: Pebble on disk
// (in a temp dir, without sync) with the data in memtables, the same with
// the data flushed to sstables (where Gets of absent keys use the bloom
// filters), and memory.
func benchStores(b *testing.B) []benchImpl {
	openPebble := func(b *testing.B) store.Store {
		db, err := store.OpenPebble(b.TempDir())
		require.NoError(b, err)
		b.Cleanup(func() { db.Close() })
		s, err := db.Store("bench", 0)
		require.NoError(b, err)
		pebbles[s] = db
		return s
	}
	return []benchImpl{
		{name: "pebble", open: openPebble},
		{name: "pebble-flushed", open: openPebble, flush: func(b *testing.B, s store.Store) {
			require.NoError(b, pebbles[s].Flush())
		}},
		{name: "memory", open: func(b *testing.B) store.Store { return store.NewMemory("bench", 0) }},
	}
}

// pebbles maps benchmark stores to their DB, for Flush.
var pebbles = map[store.Store]*store.PebbleDB{}

const benchKeys = 100_000

func benchKey(i int) []byte { return fmt.Appendf(nil, "key-%08d", i) }

// fill writes benchKeys keys with 100-byte values.
func fill(b *testing.B, s store.Store) {
	val := make([]byte, 100)
	var batch store.Batch
	for i := range benchKeys {
		batch.Put(benchKey(i), val)
		if batch.Len() == 1000 {
			require.NoError(b, s.Apply(&batch))
			batch.Reset()
		}
	}
	require.NoError(b, s.Apply(&batch))
}

// BenchmarkApply writes batches of 1000 puts of 100-byte values and an
// offset, over a key space of benchKeys keys: spread over the key space
// (random-like, as aggregations update), or in key order (as a restore of
// a compacted changelog partition written in key order would).
func BenchmarkApply(b *testing.B) {
	for _, impl := range benchStores(b) {
		if impl.flush != nil {
			continue
		}
		for _, order := range []struct {
			name string
			step int
		}{{"spread", 7919}, {"sequential", 1}} {
			b.Run(impl.name+"/"+order.name, func(b *testing.B) {
				s := impl.open(b)
				val := make([]byte, 100)
				keys := make([][]byte, benchKeys)
				for i := range keys {
					keys[i] = benchKey(i)
				}
				var batch store.Batch
				n := 0
				b.ReportAllocs()
				b.SetBytes(1000 * (100 + 12))
				for b.Loop() {
					batch.Reset()
					for range 1000 {
						batch.Put(keys[n%benchKeys], val)
						n += order.step
					}
					batch.SetOffset(int64(n))
					if err := s.Apply(&batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "puts/s")
			})
		}
	}
}

func BenchmarkGet(b *testing.B) {
	for _, impl := range benchStores(b) {
		b.Run(impl.name, func(b *testing.B) {
			s := impl.open(b)
			fill(b, s)
			if impl.flush != nil {
				impl.flush(b, s)
			}
			keys := make([][]byte, benchKeys)
			misses := make([][]byte, benchKeys)
			for i := range keys {
				keys[i] = benchKey(i)
				misses[i] = fmt.Appendf(nil, "miss-%08d", i)
			}
			for _, tc := range []struct {
				name string
				keys [][]byte
				want bool
			}{{"hit", keys, true}, {"miss", misses, false}} {
				b.Run(tc.name, func(b *testing.B) {
					i := 0
					b.ReportAllocs()
					for b.Loop() {
						_, ok, err := s.Get(tc.keys[i%benchKeys])
						if err != nil || ok != tc.want {
							b.Fatal(ok, err)
						}
						i += 7919
					}
				})
			}
		})
	}
}

// BenchmarkRange scans 100 consecutive keys from a random start.
func BenchmarkRange(b *testing.B) {
	for _, impl := range benchStores(b) {
		b.Run(impl.name, func(b *testing.B) {
			s := impl.open(b)
			fill(b, s)
			if impl.flush != nil {
				impl.flush(b, s)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				start := i % (benchKeys - 100)
				c := s.Range(benchKey(start), benchKey(start+100))
				n := 0
				for c.Next() {
					n++
				}
				if err := c.Close(); err != nil || n != 100 {
					b.Fatal(n, err)
				}
				i += 7919
			}
			b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

// BenchmarkApplyHuge applies one value of 32 MiB, which the store ingests
// as an sstable (see ingest.go), with chunks of 192 KiB (the default) and
// of 1 MiB: B/op shows the block buffers Pebble's sstable writer drops
// for chunks over 256 KiB.
func BenchmarkApplyHuge(b *testing.B) {
	val := make([]byte, 32<<20)
	for i := range val {
		val[i] = byte(i / 997)
	}
	for _, chunk := range []int{store.IngestChunk(), 1 << 20} {
		b.Run(fmt.Sprintf("chunk=%dKiB", chunk>>10), func(b *testing.B) {
			defer store.SetIngestChunk(chunk)()
			db, err := store.OpenPebble(b.TempDir(), store.WithDiskReserve(-1))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			s, err := db.Store("s", 0)
			if err != nil {
				b.Fatal(err)
			}
			var batch store.Batch
			n := 0
			b.ReportAllocs()
			b.SetBytes(int64(len(val)))
			for b.Loop() {
				batch.Reset()
				batch.PutShared([]byte("k"), val)
				n++
				batch.SetOffset(int64(n))
				if err := s.Apply(&batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
