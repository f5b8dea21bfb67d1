package store_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

// chunk is the size of the chunks of large values (store's chunkSize).
const chunk = 1 << 20

// bigValue returns a value of n bytes that differs from the values of
// other seeds in every chunk.
func bigValue(seed, n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(seed*31 + i/997)
	}
	return v
}

// rawCount returns the number of keys of the closed database in fs whose
// first byte is tag.
func rawCount(t *testing.T, fs vfs.FS, tag byte) int {
	t.Helper()
	return rawCountAt(t, fs, "db", tag)
}

// rawCountAt is rawCount for the database in dir.
func rawCountAt(t *testing.T, fs vfs.FS, dir string, tag byte) int {
	t.Helper()
	pdb, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: quietLogger{}})
	require.NoError(t, err)
	defer pdb.Close()
	it, err := pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
	require.NoError(t, err)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	return n
}

// storedChunks returns the chunks that the stubs of the closed database in
// dir name (the sum of their counts) and the number of stubs.
func storedChunks(t *testing.T, fs vfs.FS, dir string) (chunks, stubs int) {
	t.Helper()
	pdb, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: quietLogger{}})
	require.NoError(t, err)
	defer pdb.Close()
	it, err := pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{0x01}, UpperBound: []byte{0x02}})
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		require.NoError(t, err)
		if len(v) >= 5 && (v[0] == 1 || v[0] == 2) {
			chunks += int(binary.BigEndian.Uint32(v[1:]))
			stubs++
		}
	}
	require.NoError(t, it.Close())
	return chunks, stubs
}

// requireNoOrphans checks that the closed database in dir holds exactly
// the chunks and index entries of its chunked values, and no intent of an
// ingestion.
func requireNoOrphans(t *testing.T, fs vfs.FS, dir string) (stubs int) {
	t.Helper()
	chunks, stubs := storedChunks(t, fs, dir)
	require.Equal(t, chunks, rawCountAt(t, fs, dir, 0x03), "chunk keys")
	require.Equal(t, stubs, rawCountAt(t, fs, dir, 0x04), "index entries")
	require.Zero(t, rawCountAt(t, fs, dir, 0x05), "intents")
	return stubs
}

// TestChunkedValues applies random batches of small and large values
// (empty, a few bytes, exactly one chunk, one byte more, several chunks),
// deletions, range deletions and drops, on keys that contain 0x00 and
// 0xff bytes, to a Pebble store and to the memory store: after every
// batch Get, Range, RangeReverse and Prefix agree, also after a reopen;
// and in the end the database holds exactly the chunks and index entries
// of the values left, none of those overwritten or deleted. It runs with
// values written in the batch, and with those of 2 chunks or more
// ingested (the others in the batch, so that both kinds replace each
// other).
func TestChunkedValues(t *testing.T) {
	eachWay(t, testChunkedValues)
}

// eachWay runs test with the large values of batches written in the
// batch, and with those of 2 chunks or more ingested (see ingest.go).
func eachWay(t *testing.T, test func(t *testing.T)) {
	t.Run("batch", test)
	t.Run("ingested", func(t *testing.T) {
		defer store.SetIngestMin(2 * chunk)()
		test(t)
	})
}

func testChunkedValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	fs := vfs.NewMem()
	pdb := openMem(t, fs, store.WithMemTableSize(4<<20))
	mdb := store.NewMemoryDB()
	defer mdb.Close()
	ps, err := pdb.Store("s", 0)
	require.NoError(t, err)
	other, err := pdb.Store("other", 0)
	require.NoError(t, err)
	ms, err := mdb.Store("s", 0)
	require.NoError(t, err)
	keys := [][]byte{{}, {0}, {0, 0}, {0, 1}, {1}, []byte("a"), []byte("a\x00"), []byte("a\x00b"), []byte("a\xff"), []byte("b"), {0xff}, {0xff, 0}}
	sizes := []int{0, 7, chunk, chunk + 1, 2*chunk + 3, 3 * chunk}
	// A large value in another store, which no write of s may touch.
	var b store.Batch
	b.Put([]byte("a"), bigValue(99, 2*chunk+1))
	require.NoError(t, other.Apply(&b))

	check := func(s store.Store) {
		t.Helper()
		require.Equal(t, scan(t, ms.Range(nil, nil)), scan(t, s.Range(nil, nil)))
		require.Equal(t, scan(t, ms.RangeReverse(nil, nil)), scan(t, s.RangeReverse(nil, nil)))
		require.Equal(t, scan(t, ms.Range([]byte("a"), []byte("b"))), scan(t, s.Range([]byte("a"), []byte("b"))))
		require.Equal(t, scan(t, ms.Prefix([]byte{0})), scan(t, s.Prefix([]byte{0})))
		for _, k := range keys {
			mv, mok, err := ms.Get(k)
			require.NoError(t, err)
			pv, pok, err := s.Get(k)
			require.NoError(t, err)
			require.Equal(t, mok, pok, "%q", k)
			require.True(t, bytes.Equal(mv, pv), "%q: %d bytes, want %d", k, len(pv), len(mv))
		}
	}
	seed := 0
	for round := range 24 {
		b.Reset()
		for range 1 + rng.IntN(5) {
			k := keys[rng.IntN(len(keys))]
			switch r := rng.IntN(10); {
			case r == 0:
				b.Delete(k)
			case r == 1:
				e := keys[rng.IntN(len(keys))]
				if rng.IntN(4) == 0 {
					e = nil
				}
				b.DeleteRange(k, e)
			default:
				seed++
				b.Put(k, bigValue(seed, sizes[rng.IntN(len(sizes))]))
			}
		}
		if round == 17 {
			require.NoError(t, ps.Drop())
			require.NoError(t, ms.Drop())
		}
		require.NoError(t, ps.Apply(&b))
		require.NoError(t, ms.Apply(&b))
		check(ps)
	}
	require.NoError(t, pdb.Close())

	// Every chunk and index entry left belongs to a value of the model
	// (or to the other store's).
	index := 1
	for _, p := range scan(t, ms.Range(nil, nil)) {
		if len(p.v) > chunk {
			index++
		}
	}
	require.Equal(t, index, requireNoOrphans(t, fs, "db"), "chunked values")

	pdb = openMem(t, fs)
	defer pdb.Close()
	ps, err = pdb.Store("s", 0)
	require.NoError(t, err)
	check(ps)
	other, err = pdb.Store("other", 0)
	require.NoError(t, err)
	v, ok, err := other.Get([]byte("a"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, bigValue(99, 2*chunk+1), v)
}

// TestChunkedOneBatch writes the same key several times in one batch,
// large and small, and range deletes large values written earlier in the
// batch: the batch's last write wins and no chunk is left behind. It
// runs with the values of 2 chunks or more ingested too (eachWay): j and
// l, the only writes of their keys (n's is left to the batch, as its key
// has two; j's chunks go with the range deletion after it).
func TestChunkedOneBatch(t *testing.T) { eachWay(t, testChunkedOneBatch) }

func testChunkedOneBatch(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	b.Put([]byte("k"), bigValue(1, 3*chunk))
	b.Put([]byte("k"), bigValue(2, chunk+1)) // fewer chunks: the third goes
	b.Put([]byte("j"), bigValue(3, 2*chunk))
	b.Put([]byte("l"), bigValue(4, 2*chunk))
	b.DeleteRange([]byte("j"), []byte("k"))  // j
	b.Put([]byte("m"), bigValue(5, 2*chunk)) // becomes small below
	b.Put([]byte("m"), []byte("small"))      //
	b.Put([]byte("n"), []byte("small"))      // becomes large below
	b.Put([]byte("n"), bigValue(6, 2*chunk)) //
	b.Put([]byte("o"), bigValue(7, 2*chunk)) // deleted below
	b.Delete([]byte("o"))                    //
	require.NoError(t, s.Apply(&b))
	want := []pair{
		{"k", string(bigValue(2, chunk+1))},
		{"l", string(bigValue(4, 2*chunk))},
		{"m", "small"},
		{"n", string(bigValue(6, 2*chunk))},
	}
	require.Equal(t, want, scan(t, s.Range(nil, nil)))
	require.NoError(t, db.Close())
	require.Equal(t, 3, requireNoOrphans(t, fs, "db"))
}

// TestChunkedDamage damages the chunks and stub of a stored large value
// in every way a reader can notice: each read of it (Get, Range) fails
// with an error matching ErrCorrupt that names the store, and the other
// values still read. It runs with the value written in the batch and
// ingested, whose chunk keys and stub have a version (the first of the
// database: epoch 0, ingestion 1).
func TestChunkedDamage(t *testing.T) {
	t.Run("batch", func(t *testing.T) { testChunkedDamage(t, false) })
	t.Run("ingested", func(t *testing.T) {
		defer store.SetIngestMin(2 * chunk)()
		defer store.SetIngestChunk(chunk)() // the same chunks as in the batch
		testChunkedDamage(t, true)
	})
}

func testChunkedDamage(t *testing.T, ingested bool) {
	const size = 2*chunk + 10 // 3 chunks
	lastByteError := "has 10 bytes, want 11"
	if ingested {
		lastByteError = "has 0 of its 3 chunks"
	}
	var (
		dataKey  = []byte{1, 1, 'b', 'i', 'g'}
		chunkKey = func(i uint32, extra ...byte) []byte {
			k := []byte{3, 1, 'b', 'i', 'g', 0, 1}
			if ingested {
				k[len(k)-1] = 2
				k = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(k, 0), 1)
			}
			return append(binary.BigEndian.AppendUint32(k, i), extra...)
		}
		stubOf = func(n uint32, size uint64, chunkLen uint32) []byte {
			tag := byte(1)
			if ingested {
				tag = 2
			}
			v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32([]byte{tag}, n), size)
			if ingested {
				v = binary.BigEndian.AppendUint32(v, chunkLen)
				v = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(v, 0), 1)
			}
			return v
		}
		stub = func(n uint32, size uint64) []byte { return stubOf(n, size, chunk) }
	)
	cases := []damageCase{
		{"missing chunk", func(b *pebble.Batch) { _ = b.Delete(chunkKey(1), nil) }, "chunk 1 of a value of 3 chunks"},
		{"missing last chunk", func(b *pebble.Batch) { _ = b.Delete(chunkKey(2), nil) }, "2 of its 3 chunks"},
		{"extra chunk", func(b *pebble.Batch) { _ = b.Set(chunkKey(3), []byte("x"), nil) }, "chunk 3 of a value of 3 chunks"},
		{"short chunk", func(b *pebble.Batch) { _ = b.Set(chunkKey(0), make([]byte, chunk-1), nil) }, "has 1048575 bytes"},
		{"long last chunk", func(b *pebble.Batch) { _ = b.Set(chunkKey(2), make([]byte, 11), nil) }, "has 11 bytes, want 10"},
		{"bad chunk key", func(b *pebble.Batch) { _ = b.Set(chunkKey(1, 9), []byte("x"), nil) }, "found key"},
		{"stub count", func(b *pebble.Batch) { _ = b.Set(dataKey, stub(2, size), nil) }, "stub says"},
		{"stub length", func(b *pebble.Batch) { _ = b.Set(dataKey, stub(3, 3*chunk+1), nil) }, "stub says"},
		{"stub too short", func(b *pebble.Batch) { _ = b.Set(dataKey, []byte{1, 0, 0}, nil) }, "stub of 3 bytes"},
		{"versioned stub too short", func(b *pebble.Batch) { _ = b.Set(dataKey, stub(3, size)[:stubLen(ingested)-1], nil) }, "stub of"},
		{"last byte of the stub", func(b *pebble.Batch) {
			v := stub(3, size)
			v[len(v)-1]++ // batch: one byte longer; ingested: another version, without chunks
			_ = b.Set(dataKey, v, nil)
		}, lastByteError},
		{"small stub", func(b *pebble.Batch) { _ = b.Set(dataKey, stub(1, 10), nil) }, "stub says"},
		{"unknown tag", func(b *pebble.Batch) { _ = b.Set(dataKey, []byte{7, 'x'}, nil) }, "unknown tag 0x7"},
		{"no tag", func(b *pebble.Batch) { _ = b.Set(dataKey, nil, nil) }, "without tag"},
	}
	if ingested {
		// The length of the chunks, which a versioned stub says.
		cases = append(cases,
			damageCase{"stub chunk length zero", func(b *pebble.Batch) { _ = b.Set(dataKey, stubOf(3, size, 0), nil) }, "chunks of 0 bytes"},
			damageCase{"stub chunk length too long", func(b *pebble.Batch) { _ = b.Set(dataKey, stubOf(1, size, 4*chunk), nil) }, "chunks of 4194304 bytes"},
			damageCase{"stub chunk length", func(b *pebble.Batch) { _ = b.Set(dataKey, stubOf(3, size, chunk/2), nil) }, "stub says"},
			damageCase{"stub chunk length and count", func(b *pebble.Batch) { _ = b.Set(dataKey, stubOf(5, size, chunk/2), nil) }, "has 1048576 bytes, want 524288"},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db := openMem(t, fs)
			s, err := db.Store("s", 0)
			require.NoError(t, err)
			var b store.Batch
			b.Put([]byte("a"), []byte("before"))
			b.Put([]byte("big"), bigValue(1, size))
			b.Put([]byte("z"), []byte("after"))
			require.NoError(t, s.Apply(&b))
			require.NoError(t, db.Close())
			// The value is stored as the test expects.
			require.Equal(t, 3, rawCount(t, fs, 0x03))
			require.Equal(t, stub(3, size), rawGet(t, fs, dataKey))
			rawGet(t, fs, chunkKey(2))

			pdb, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietLogger{}})
			require.NoError(t, err)
			pb := pdb.NewBatch()
			tc.damage(pb)
			require.NoError(t, pb.Commit(pebble.Sync))
			require.NoError(t, pdb.Close())

			db = openMem(t, fs)
			defer db.Close()
			s, err = db.Store("s", 0)
			require.NoError(t, err)
			_, _, err = s.Get([]byte("big"))
			require.ErrorIs(t, err, store.ErrCorrupt)
			require.ErrorContains(t, err, "store s/0: get")
			require.ErrorContains(t, err, tc.want)
			for _, c := range []store.Cursor{s.Range(nil, nil), s.RangeReverse(nil, nil), s.Prefix([]byte("b"))} {
				for range c.All() {
				}
				require.ErrorIs(t, c.Err(), store.ErrCorrupt)
				require.ErrorContains(t, c.Err(), "store s/0: range")
				require.ErrorIs(t, c.Close(), store.ErrCorrupt)
			}
			for k, want := range map[string]string{"a": "before", "z": "after"} {
				v, ok, err := s.Get([]byte(k))
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, want, string(v))
			}
			// Writing the key again replaces the damaged value.
			b.Reset()
			b.Put([]byte("big"), []byte("new"))
			require.NoError(t, s.Apply(&b))
			v, ok, err := s.Get([]byte("big"))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "new", string(v))
		})
	}
}

// damageCase is a case of TestChunkedDamage.
type damageCase struct {
	name   string
	damage func(b *pebble.Batch)
	want   string
}

// stubLen is the length of a stub: 13 bytes, 33 when versioned.
func stubLen(versioned bool) int {
	if versioned {
		return 33
	}
	return 13
}

// rawGet returns the value of key in the closed database in fs, which
// must hold it.
func rawGet(t *testing.T, fs vfs.FS, key []byte) []byte {
	t.Helper()
	pdb, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietLogger{}})
	require.NoError(t, err)
	defer pdb.Close()
	v, closer, err := pdb.Get(key)
	require.NoError(t, err, "key %x", key)
	defer closer.Close()
	return bytes.Clone(v)
}

// TestFormatV1 opens a database written before values were tagged (format
// marker duality-store-v1, values stored as they are): it reads as before,
// and keeps its format, large values included (stored whole).
func TestFormatV1(t *testing.T) {
	fs := vfs.NewMem()
	catalog := binary.BigEndian.AppendUint32([]byte{0, 1, 's'}, 0)
	rawSet(t, fs,
		[]byte{0}, []byte("duality-store-v1"),
		catalog, []byte{1},
		[]byte{1, 1, 'k'}, []byte("v"),
		[]byte{1, 1, 'e'}, []byte{},
		[]byte{2, 1}, binary.BigEndian.AppendUint64(nil, 41))
	db := openMem(t, fs)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	off, ok, err := s.Offset()
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 41, off)
	require.Equal(t, []pair{{"e", ""}, {"k", "v"}}, scan(t, s.Range(nil, nil)))
	var b store.Batch
	b.Put([]byte("big"), bigValue(1, 2*chunk+1))
	b.Put([]byte("x"), []byte{0}) // a value starting with a byte like a tag
	b.Delete([]byte("e"))
	require.NoError(t, s.Apply(&b))
	check := func(s store.Store) {
		v, ok, err := s.Get([]byte("big"))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, bigValue(1, 2*chunk+1), v)
		require.Equal(t, []pair{{"big", string(bigValue(1, 2*chunk+1))}, {"k", "v"}, {"x", "\x00"}}, scan(t, s.Range(nil, nil)))
	}
	check(s)
	require.NoError(t, db.Close())
	require.Zero(t, rawCount(t, fs, 0x03), "no chunks in a formatV1 database")
	db = openMem(t, fs)
	defer db.Close()
	s, err = db.Store("s", 0)
	require.NoError(t, err)
	check(s)
	require.NoError(t, s.Drop())
	require.Empty(t, scan(t, s.Range(nil, nil)))
}

// TestChunkedReadsDuringWrites reads a large value (Get and Range) while
// another goroutine replaces it by values of other lengths and contents
// and deletes it: each read sees one whole value or none, never chunks of
// another.
func TestChunkedReadsDuringWrites(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	const writes = 12
	values := make(map[string]bool, writes)
	vals := make([][]byte, writes)
	for i := range vals {
		vals[i] = bigValue(i, chunk+1+i*(chunk/3))
		values[string(vals[i])] = true
	}
	var b store.Batch
	b.Put([]byte("k"), vals[0])
	require.NoError(t, s.Apply(&b))

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		var b store.Batch
		for i := 1; i < writes; i++ {
			b.Reset()
			if i%4 == 0 {
				b.Delete([]byte("k"))
			} else {
				b.Put([]byte("k"), vals[i])
			}
			if err := s.Apply(&b); err != nil {
				t.Error(err)
				return
			}
		}
	})
	reads := 0
	for running := true; running || reads < 4; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		v, ok, err := s.Get([]byte("k"))
		require.NoError(t, err)
		require.True(t, !ok || values[string(v)], "Get: a value of %d bytes that was never written", len(v))
		c := s.Range(nil, nil)
		for _, v := range c.All() {
			require.True(t, values[string(v)], "Range: a value of %d bytes that was never written", len(v))
		}
		require.NoError(t, c.Close())
	}
	wg.Wait()
}

// TestChunkedOffsetAndDrop applies a large value with an offset, as the
// runtime's commits and restores do, reopens, and drops the store: the
// value and offset are there after the reopen, and Drop leaves no chunk.
func TestChunkedOffsetAndDrop(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	b.Put([]byte("k"), bigValue(1, 5*chunk/2))
	b.SetOffset(7)
	require.NoError(t, s.Apply(&b))
	require.NoError(t, db.Close())

	db = openMem(t, fs)
	s, err = db.Store("s", 0)
	require.NoError(t, err)
	off, ok, err := s.Offset()
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 7, off)
	v, ok, err := s.Get([]byte("k"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, bigValue(1, 5*chunk/2), v)
	require.NoError(t, s.Drop())
	_, ok, err = s.Get([]byte("k"))
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, db.Close())
	require.Zero(t, rawCount(t, fs, 0x03), "Drop deletes the chunks")
	require.Zero(t, rawCount(t, fs, 0x04), "and the index")
}

// TestFormatV2 opens a database written before huge values were ingested
// (format marker duality-store-v2, chunked values with unversioned chunk
// keys): it reads as before and keeps its format through ordinary writes;
// the first ingested value upgrades it to duality-store-v3, and its batch
// deletes the key's older chunks.
func TestFormatV2(t *testing.T) {
	defer store.SetIngestMin(2 * chunk)()
	fs := vfs.NewMem()
	old := bigValue(1, chunk+5)
	catalog := binary.BigEndian.AppendUint32([]byte{0, 1, 's'}, 0)
	chunkKey := func(i uint32) []byte { return binary.BigEndian.AppendUint32([]byte{3, 1, 'k', 0, 1}, i) }
	rawSet(t, fs,
		[]byte{0}, []byte("duality-store-v2"),
		binary.BigEndian.AppendUint64([]byte{0, 0}, 5), nil, // the write chain's anchor
		catalog, []byte{1},
		[]byte{1, 1, 'k'}, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32([]byte{1}, 2), uint64(len(old))),
		chunkKey(0), old[:chunk],
		chunkKey(1), old[chunk:],
		[]byte{4, 1, 'k'}, nil,
		[]byte{1, 1, 's'}, []byte{0, 's'},
	)
	get := func(s store.Store, k string) []byte {
		t.Helper()
		v, ok, err := s.Get([]byte(k))
		require.NoError(t, err)
		require.True(t, ok, k)
		return v
	}
	db := openMem(t, fs)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	require.Equal(t, old, get(s, "k"))
	require.Equal(t, []pair{{"k", string(old)}, {"s", "s"}}, scan(t, s.Range(nil, nil)))
	var b store.Batch
	b.Put([]byte("m"), bigValue(2, chunk+1)) // chunked in the batch
	b.Put([]byte("s"), []byte("small"))
	require.NoError(t, s.Apply(&b))
	require.NoError(t, db.Close())
	require.Equal(t, "duality-store-v2", string(rawGet(t, fs, []byte{0})))
	require.Equal(t, 2, requireNoOrphans(t, fs, "db"))
	require.Equal(t, 2+2, rawCount(t, fs, 0x03))

	db = openMem(t, fs)
	s, err = db.Store("s", 0)
	require.NoError(t, err)
	require.Equal(t, old, get(s, "k"))
	b.Reset()
	b.Put([]byte("k"), bigValue(3, 2*chunk+1)) // ingested
	require.NoError(t, s.Apply(&b))
	require.Equal(t, bigValue(3, 2*chunk+1), get(s, "k"))
	require.Equal(t, bigValue(2, chunk+1), get(s, "m"))
	require.NoError(t, db.Close())
	require.Equal(t, "duality-store-v3", string(rawGet(t, fs, []byte{0})))
	require.Equal(t, 2, requireNoOrphans(t, fs, "db"), "k's old chunks are deleted")

	db = openMem(t, fs)
	defer db.Close()
	s, err = db.Store("s", 0)
	require.NoError(t, err)
	require.Equal(t, []pair{{"k", string(bigValue(3, 2*chunk+1))}, {"m", string(bigValue(2, chunk+1))}, {"s", "small"}}, scan(t, s.Range(nil, nil)))
	// Back to a value written in the batch: the versioned chunks go.
	b.Reset()
	b.Put([]byte("k"), bigValue(4, chunk+1))
	require.NoError(t, s.Apply(&b))
	require.Equal(t, bigValue(4, chunk+1), get(s, "k"))
	require.NoError(t, s.Drop())
	require.Empty(t, scan(t, s.Range(nil, nil)))
}
