package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

func openMem(t *testing.T, fs vfs.FS, opts ...store.Option) *store.PebbleDB {
	t.Helper()
	db, err := store.OpenPebble("db", append([]store.Option{store.WithFS(fs)}, opts...)...)
	require.NoError(t, err)
	return db
}

func TestInvalidConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []store.Option
		want []string
	}{
		{"negative cache", []store.Option{store.WithBlockCacheSize(-1)}, []string{"block cache size -1"}},
		{"small memtable", []store.Option{store.WithMemTableSize(1)}, []string{"memtable size 1"}},
		{"huge memtable", []store.Option{store.WithMemTableSize(4 << 30)}, []string{"memtable size"}},
		{"bloom", []store.Option{store.WithBloomFilterBitsPerKey(-1)}, []string{"bits per key -1"}},
		{"nil fs and logger", []store.Option{store.WithFS(nil), store.WithLogger(nil)}, []string{"file system is nil", "logger is nil"}},
		{"nil pebble func", []store.Option{store.WithPebbleOptions(nil)}, []string{"pebble options function is nil"}},
		{"all at once", []store.Option{store.WithBlockCacheSize(-1), store.WithMemTableSize(0), store.WithBloomFilterBitsPerKey(99)},
			[]string{"block cache", "memtable", "bits per key 99"}},
		{"pebble panics on an option", []store.Option{store.WithPebbleOptions(func(o *pebble.Options) { o.Levels[0].BlockSize = 1 << 31 })},
			[]string{"pebble"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.OpenPebble("db", append([]store.Option{store.WithFS(vfs.NewMem())}, tc.opts...)...)
			require.ErrorIs(t, err, store.ErrInvalidConfig)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestPebbleOptionsApplied(t *testing.T) {
	var seen *pebble.Options
	db := openMem(t, vfs.NewMem(),
		store.WithMemTableSize(1<<20),
		store.WithBloomFilterBitsPerKey(0),
		store.WithPebbleOptions(func(o *pebble.Options) { seen = o }),
		store.WithPebbleOptions(func(o *pebble.Options) { o.L0StopWritesThreshold = 33 }))
	defer db.Close()
	require.NotNil(t, seen)
	require.Equal(t, uint64(1<<20), seen.MemTableSize)
	require.Equal(t, 33, seen.L0StopWritesThreshold, "user functions apply in order, after the tuned values")
	require.Equal(t, pebble.NoFilterPolicy, seen.Levels[0].FilterPolicy)

	seen = nil
	db2 := openMem(t, vfs.NewMem(), store.WithPebbleOptions(func(o *pebble.Options) { seen = o }))
	defer db2.Close()
	require.Equal(t, int64(store.DefaultBlockCacheSize+2*store.DefaultMemTableSize), seen.CacheSize,
		"Pebble charges two memtables to its cache; the block cache gets the rest")
	require.Equal(t, uint64(store.DefaultMemTableSize), seen.MemTableSize)
	for i := range seen.Levels {
		require.Equal(t, "rocksdb.BuiltinBloomFilter", seen.Levels[i].FilterPolicy.Name(), "level %d", i)
	}
}

// quietLogger discards Pebble's log lines in tests that open Pebble
// directly.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)              {}
func (quietLogger) Errorf(string, ...any)             {}
func (quietLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// rawSet writes keys straight into the Pebble database of a closed DB.
func rawSet(t *testing.T, fs vfs.FS, kvs ...[]byte) {
	t.Helper()
	pdb, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietLogger{}})
	require.NoError(t, err)
	for i := 0; i < len(kvs); i += 2 {
		require.NoError(t, pdb.Set(kvs[i], kvs[i+1], pebble.Sync))
	}
	require.NoError(t, pdb.Close())
}

func TestCorrupt(t *testing.T) {
	t.Run("not a store", func(t *testing.T) {
		fs := vfs.NewMem()
		rawSet(t, fs, []byte("some"), []byte("thing"))
		_, err := store.OpenPebble("db", store.WithFS(fs))
		require.ErrorIs(t, err, store.ErrCorrupt)
	})
	t.Run("format marker", func(t *testing.T) {
		fs := vfs.NewMem()
		rawSet(t, fs, []byte{0}, []byte("duality-store-v9"))
		_, err := store.OpenPebble("db", store.WithFS(fs))
		require.ErrorIs(t, err, store.ErrCorrupt)
	})
	t.Run("catalog", func(t *testing.T) {
		for _, kv := range [][2][]byte{
			{{0, 5, 'a'}, {1}},                // name shorter than its length
			{{0, 1, 'a', 0, 0, 0, 0}, {}},     // no id
			{{0, 1, 'a', 0, 0, 0, 0}, {0}},    // id 0
			{{0, 1, 'a', 0x80, 0, 0, 0}, {1}}, // negative partition
			{{0, 1, 'a', 0, 0, 0, 0}, {1, 1}}, // trailing bytes
		} {
			fs := vfs.NewMem()
			db := openMem(t, fs)
			require.NoError(t, db.Close())
			rawSet(t, fs, kv[0], kv[1])
			_, err := store.OpenPebble("db", store.WithFS(fs))
			require.ErrorIs(t, err, store.ErrCorrupt, "%x=%x", kv[0], kv[1])
		}
	})
	t.Run("offset", func(t *testing.T) {
		fs := vfs.NewMem()
		db := openMem(t, fs)
		s, err := db.Store("s", 0)
		require.NoError(t, err)
		var b store.Batch
		b.SetOffset(5)
		require.NoError(t, s.Apply(&b))
		require.NoError(t, db.Close())
		// The first store gets id 1: its offset key is 0x02 0x01.
		rawSet(t, fs, []byte{2, 1}, []byte{1, 2, 3})
		db = openMem(t, fs)
		defer db.Close()
		s, err = db.Store("s", 0)
		require.NoError(t, err)
		_, _, err = s.Offset()
		require.ErrorIs(t, err, store.ErrCorrupt)
		require.Contains(t, err.Error(), "store s/0: offset")
	})
}

// TestKeyLayout pins the on-disk layout: a catalog entry per store, data
// under 0x01 uvarint(id) (values tagged 0x00 inline, 0x01 chunked),
// offset under 0x02 uvarint(id), chunks under 0x03 uvarint(id)
// escaped(key) be32(i), the index of chunked values under 0x04
// uvarint(id) key.
func TestKeyLayout(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	for i := range 130 { // ids past one uvarint byte
		s, err := db.Store(fmt.Sprint("s", i), int32(i))
		require.NoError(t, err)
		var b store.Batch
		b.Put([]byte("k"), []byte("v"))
		b.SetOffset(int64(i))
		require.NoError(t, s.Apply(&b))
	}
	big := make([]byte, 1<<20+5)
	big[1<<20] = 7
	s, err := db.Store("s129", 129)
	require.NoError(t, err)
	var b store.Batch
	b.Put([]byte("a\x00b"), big)
	require.NoError(t, s.Apply(&b))
	require.NoError(t, db.Close())

	pdb, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietLogger{}})
	require.NoError(t, err)
	defer pdb.Close()
	get := func(k []byte) []byte {
		v, c, err := pdb.Get(k)
		require.NoError(t, err, "%x", k)
		defer c.Close()
		return append([]byte(nil), v...)
	}
	require.Equal(t, []byte("duality-store-v2"), get([]byte{0}))
	name := "s129"
	ck := append([]byte{0, byte(len(name))}, name...)
	ck = binary.BigEndian.AppendUint32(ck, 129)
	require.Equal(t, binary.AppendUvarint(nil, 130), get(ck))
	require.Equal(t, []byte{0, 'v'}, get(append(binary.AppendUvarint([]byte{1}, 130), 'k')))
	require.Equal(t, binary.BigEndian.AppendUint64(nil, 129), get(binary.AppendUvarint([]byte{2}, 130)))
	// The chunked value: a stub (tag, 2 chunks, length), its chunks under
	// the escaped key (0x00 as 0x00 0xff, then 0x00 0x01), an index entry.
	stub := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32([]byte{1}, 2), 1<<20+5)
	require.Equal(t, stub, get(append(binary.AppendUvarint([]byte{1}, 130), "a\x00b"...)))
	chunk := append(binary.AppendUvarint([]byte{3}, 130), 'a', 0, 0xff, 'b', 0, 1)
	require.Equal(t, big[:1<<20], get(binary.BigEndian.AppendUint32(bytes.Clone(chunk), 0)))
	require.Equal(t, big[1<<20:], get(binary.BigEndian.AppendUint32(bytes.Clone(chunk), 1)))
	require.Empty(t, get(append(binary.AppendUvarint([]byte{4}, 130), "a\x00b"...)))
}

// TestCrashConsistency applies batches (each one sets keys and the offset)
// without syncing, takes crash clones of the file system with a random
// part of the unsynced data, and reopens each clone: the store must hold
// exactly the state after the batch its offset names (or be empty without
// an offset), never part of a batch. With WithSync, every applied batch
// must survive.
func TestCrashConsistency(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			db := openMem(t, fs, store.WithSync(sync), store.WithMemTableSize(256<<10))
			defer db.Close()
			s, err := db.Store("s", 0)
			require.NoError(t, err)
			other, err := db.Store("other", 0)
			require.NoError(t, err)

			rng := rand.New(rand.NewPCG(3, 4))
			model := map[string]string{}
			states := []map[string]string{} // states[i]: after batch i
			var b store.Batch
			for i := range 400 {
				b.Reset()
				for range 1 + rng.IntN(20) {
					k := fmt.Sprintf("k%03d", rng.IntN(200))
					if rng.IntN(4) == 0 {
						b.Delete([]byte(k))
						delete(model, k)
					} else {
						v := fmt.Sprintf("v%d-%s", i, strings.Repeat("x", rng.IntN(200)))
						b.Put([]byte(k), []byte(v))
						model[k] = v
					}
				}
				b.SetOffset(int64(i))
				require.NoError(t, s.Apply(&b))
				states = append(states, maps.Clone(model))
				if i%7 == 0 {
					b.Reset()
					b.Put([]byte("noise"), []byte(strings.Repeat("n", 1000)))
					require.NoError(t, other.Apply(&b))
				}
				if i%50 != 49 {
					continue
				}
				for _, pct := range []int{0, 50, 100} {
					clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng})
					cdb := openMem(t, clone)
					cs, err := cdb.Store("s", 0)
					require.NoError(t, err)
					off, ok, err := cs.Offset()
					require.NoError(t, err)
					got := map[string]string{}
					c := cs.Range(nil, nil)
					for k, v := range c.All() {
						got[string(k)] = string(v)
					}
					require.NoError(t, c.Close())
					if !ok {
						require.Empty(t, got, "no offset but data")
						require.False(t, sync, "sync mode lost every batch")
					} else {
						require.LessOrEqual(t, off, int64(i))
						require.Equal(t, states[off], got, "state after crash is not the state at its offset %d", off)
						if sync {
							require.Equal(t, int64(i), off, "sync mode lost an applied batch")
						}
					}
					require.NoError(t, cdb.Close())
				}
			}
		})
	}
}

// TestReadErrors injects read errors into sstable reads: Get and cursors
// report them (wrapped with the store and operation), nothing panics, and
// the store works again once the errors stop.
func TestReadErrors(t *testing.T) {
	var failing atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && (op.Kind == errorfs.OpFileRead || op.Kind == errorfs.OpFileReadAt) && strings.HasSuffix(op.Path, ".sst") {
			return errorfs.ErrInjected
		}
		return nil
	})
	mem := vfs.NewMem()
	fs := errorfs.Wrap(mem, inj)
	db := openMem(t, fs)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	for i := range 1000 {
		b.Put(fmt.Appendf(nil, "k%04d", i), []byte("value"))
	}
	require.NoError(t, s.Apply(&b))
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())

	// Each check reopens the DB, so its block cache is cold, then fails
	// reads.
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, s store.Store)
	}{
		{"get", func(t *testing.T, s store.Store) {
			_, _, err := s.Get([]byte("k0500"))
			require.True(t, errors.Is(err, errorfs.ErrInjected), "%v", err)
			require.Contains(t, err.Error(), "store s/0: get")
		}},
		{"range", func(t *testing.T, s store.Store) {
			// Not from the first key: opening the DB reads the catalog,
			// which caches the first data block.
			c := s.Range([]byte("k0500"), nil)
			require.False(t, c.Next())
			require.ErrorIs(t, c.Err(), errorfs.ErrInjected)
			require.Contains(t, c.Err().Error(), "store s/0: range")
			require.ErrorIs(t, c.Close(), errorfs.ErrInjected)
		}},
		{"reverse", func(t *testing.T, s store.Store) {
			c := s.RangeReverse(nil, nil)
			require.False(t, c.Next())
			require.ErrorIs(t, c.Err(), errorfs.ErrInjected)
			require.ErrorIs(t, c.Close(), errorfs.ErrInjected)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openMem(t, fs)
			defer db.Close()
			s, err := db.Store("s", 0)
			require.NoError(t, err)
			failing.Store(true)
			func() {
				defer failing.Store(false)
				tc.check(t, s)
			}()
			v, ok, err := s.Get([]byte("k0500"))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "value", string(v))
			require.Len(t, scanAll(t, s), 1000)
		})
	}
}

func scanAll(t *testing.T, s store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	c := s.Range(nil, nil)
	for k, v := range c.All() {
		out[string(k)] = string(v)
	}
	require.NoError(t, c.Close())
	return out
}

// TestApproximateCountLarge checks the estimate of a store too large to
// count key by key, next to another large store.
func TestApproximateCountLarge(t *testing.T) {
	db := openMem(t, vfs.NewMem(), store.WithMemTableSize(1<<20))
	defer db.Close()
	a, err := db.Store("a", 0)
	require.NoError(t, err)
	z, err := db.Store("z", 0)
	require.NoError(t, err)
	val := []byte(strings.Repeat("v", 100))
	const n = 60000
	var b store.Batch
	for i := range n {
		b.Put(fmt.Appendf(nil, "key-%08d", i), val)
		if b.Len() == 1000 {
			require.NoError(t, a.Apply(&b))
			require.NoError(t, z.Apply(&b))
			b.Reset()
		}
	}
	require.NoError(t, db.Flush())
	for _, s := range []store.Store{a, z} {
		got, err := s.ApproximateCount()
		require.NoError(t, err)
		require.InDelta(t, n, got, n*0.1, "store %s", s.Name())
	}
	// Dropping one leaves the other's estimate, and the dropped one counts
	// 0 while its sstables still hold the dropped keys.
	require.NoError(t, a.Drop())
	got, err := z.ApproximateCount()
	require.NoError(t, err)
	require.InDelta(t, n, got, n*0.1)
	got, err = a.ApproximateCount()
	require.NoError(t, err)
	require.Zero(t, got)
}

func TestNewMemory(t *testing.T) {
	s := store.NewMemory("m", 3)
	require.Equal(t, "m", s.Name())
	require.Equal(t, int32(3), s.Partition())
	var b store.Batch
	b.Put([]byte("k"), []byte("v"))
	require.NoError(t, s.Apply(&b))
	v, ok, err := s.Get([]byte("k"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "v", string(v))
	require.NoError(t, s.Close())
	_, _, err = s.Get([]byte("k"))
	require.ErrorIs(t, err, store.ErrClosed)
}

// TestOpenErrors fails the i-th file system operation of OpenPebble, for
// i = 0, 1, ... until an Open succeeds: every failed Open returns an error
// (none panics), and after each failure a clean Open of the same files
// works and finds the data written before.
func TestOpenErrors(t *testing.T) {
	mem := vfs.NewMem()
	db := openMem(t, mem)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	b.Put([]byte("k"), []byte("v"))
	b.SetOffset(9)
	require.NoError(t, s.Apply(&b))
	require.NoError(t, db.Close())

	for i := int32(0); ; i++ {
		inj := errorfs.OnIndex(i)
		db, err := store.OpenPebble("db", store.WithFS(errorfs.Wrap(mem, inj)))
		if err == nil {
			require.NoError(t, db.Close())
			t.Logf("Open makes %d file system operations; failing any one of them made it return an error", i)
			break
		}
		require.Error(t, err)
		require.NotErrorIs(t, err, store.ErrInvalidConfig, "%d: %v", i, err)
		require.Less(t, i, int32(1000))

		db = openMem(t, mem)
		s, err := db.Store("s", 0)
		require.NoError(t, err)
		v, ok, err := s.Get([]byte("k"))
		require.NoError(t, err)
		require.True(t, ok, "after failure %d", i)
		require.Equal(t, "v", string(v))
		off, ok, err := s.Offset()
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(9), off)
		require.NoError(t, db.Close())
	}
}

// TestLocked: a second OpenPebble of a directory in use fails with an
// error, and works once the first DB is closed.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	_, err = store.OpenPebble(dir)
	require.Error(t, err)
	require.Contains(t, err.Error(), "store: open "+dir)
	require.NoError(t, db.Close())
	db, err = store.OpenPebble(dir)
	require.NoError(t, err)
	require.NoError(t, db.Close())
}

func TestMetrics(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	_, err = db.Store("s", 1)
	require.NoError(t, err)
	var b store.Batch
	for i := range 1000 {
		b.Put(fmt.Appendf(nil, "k%04d", i), []byte("value"))
	}
	require.NoError(t, s.Apply(&b))
	require.NoError(t, db.Flush())
	// Absent keys: the bloom filter answers most without reading a block.
	for i := range 1000 {
		_, ok, err := s.Get(fmt.Appendf(nil, "absent%04d", i))
		require.NoError(t, err)
		require.False(t, ok)
	}
	m, err := db.Metrics()
	require.NoError(t, err)
	require.Equal(t, 2, m.Stores)
	require.Positive(t, m.DiskBytes)
	require.Equal(t, int64(1), m.Flushes)
	require.Greater(t, m.BloomHits, int64(900), "%+v", m)
	require.Equal(t, int64(1), m.MemTables, "the mutable one")
	require.Positive(t, m.MemTableBytes)
	require.Positive(t, m.TableCacheTables, "the Gets opened the flushed table")
	require.Zero(t, m.TableIterators)
	require.Positive(t, m.WALFiles)

	// An open cursor pins the memtables it reads: flushed, they stay
	// zombies until it closes (besides the one Pebble keeps for reuse).
	c := s.Range(nil, nil)
	require.True(t, c.Next())
	for i := range 2 {
		b.Reset()
		b.Put(fmt.Appendf(nil, "new%d", i), []byte("value"))
		require.NoError(t, s.Apply(&b))
		require.NoError(t, db.Flush())
	}
	m, err = db.Metrics()
	require.NoError(t, err)
	require.Equal(t, int64(2), m.ZombieMemTables, "the pinned one and the one kept for reuse: %+v", m)
	require.Positive(t, m.ZombieMemTableBytes)
	require.Positive(t, m.TableIterators)
	require.NoError(t, c.Close())
	m, err = db.Metrics()
	require.NoError(t, err)
	require.LessOrEqual(t, m.ZombieMemTables, int64(1), "%+v", m)

	require.NoError(t, db.Close())
	_, err = db.Metrics()
	require.ErrorIs(t, err, store.ErrClosed)
}

// TestCorruptBlock flips bytes in the middle of an sstable: the scan that
// reads the damaged block reports an error matching ErrCorrupt (Pebble's
// block checksums catch it), and the process carries on.
func TestCorruptBlock(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	for i := range 5000 {
		b.Put(fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "value-%d-%s", i, strings.Repeat("x", 50)))
	}
	require.NoError(t, s.Apply(&b))
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())

	names, err := fs.List("db")
	require.NoError(t, err)
	var sst string
	for _, n := range names {
		if strings.HasSuffix(n, ".sst") {
			sst = fs.PathJoin("db", n)
		}
	}
	require.NotEmpty(t, sst)
	f, err := fs.OpenReadWrite(sst, vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	st, err := f.Stat()
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("garbage!garbage!"), st.Size()/2)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	db, err = store.OpenPebble("db", store.WithFS(fs))
	require.NoError(t, err)
	defer db.Close()
	s, err = db.Store("s", 0)
	require.NoError(t, err)
	c := s.Range(nil, nil)
	n := 0
	for c.Next() {
		n++
	}
	require.ErrorIs(t, c.Err(), store.ErrCorrupt, "after %d keys", n)
	require.Less(t, n, 5000)
	require.ErrorIs(t, c.Close(), store.ErrCorrupt)
}

// TestBlockCacheNotEatenByMemTables reads a flushed store twice with a
// block cache as large as two memtables: Pebble reserves every memtable's
// size in its cache, so unless OpenPebble adds that to the cache, the
// cache keeps no blocks and the second read misses as much as the first.
func TestBlockCacheNotEatenByMemTables(t *testing.T) {
	const mem = 256 << 10
	db := openMem(t, vfs.NewMem(), store.WithMemTableSize(mem), store.WithBlockCacheSize(2*mem))
	defer db.Close()
	st, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	val := make([]byte, 100)
	for i := range 1500 {
		b.Put(fmt.Appendf(nil, "key-%06d", i), val)
	}
	require.NoError(t, st.Apply(&b))
	require.NoError(t, db.Flush())
	read := func() {
		for i := 0; i < 1500; i += 7 {
			_, ok, err := st.Get(fmt.Appendf(nil, "key-%06d", i))
			require.NoError(t, err)
			require.True(t, ok)
		}
	}
	read()
	m1, err := db.Metrics()
	require.NoError(t, err)
	read()
	m2, err := db.Metrics()
	require.NoError(t, err)
	require.Positive(t, m2.BlockCacheBytes, "the cache holds blocks")
	require.Zero(t, m2.BlockCacheMisses-m1.BlockCacheMisses, "the second read finds every block in the cache")
}

// TestPebbleApplyLargeBatch checks batches large enough for Apply to
// write them in key order (hundreds of puts and deletes of 40 keys, each
// key written several times, a few batches with a range deletion among
// them): the Pebble store ends in the state of the memory store, which
// applies the operations in the order they were added.
func TestPebbleApplyLargeBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pdb := openMem(t, vfs.NewMem())
	defer pdb.Close()
	mdb := store.NewMemoryDB()
	defer mdb.Close()
	ps, err := pdb.Store("s", 0)
	require.NoError(t, err)
	ms, err := mdb.Store("s", 0)
	require.NoError(t, err)
	for round := range 20 {
		var b store.Batch
		for i := range 300 + rng.IntN(300) {
			k := fmt.Appendf(nil, "k%02d", rng.IntN(40))
			switch {
			case round%5 == 4 && i == 150:
				b.DeleteRange([]byte("k10"), []byte("k20"))
			case rng.IntN(4) == 0:
				b.Delete(k)
			default:
				b.Put(k, fmt.Appendf(nil, "v%d-%d", round, i))
			}
		}
		b.SetOffset(int64(round))
		require.NoError(t, ps.Apply(&b))
		require.NoError(t, ms.Apply(&b))
		require.Equal(t, scan(t, ms.Range(nil, nil)), scan(t, ps.Range(nil, nil)), "round %d", round)
		off, ok, err := ps.Offset()
		require.NoError(t, err)
		require.True(t, ok)
		require.EqualValues(t, round, off)
	}
}
