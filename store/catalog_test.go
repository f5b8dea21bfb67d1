package store

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCatalogKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    int32
	}{{"a", 0}, {"word-counts", 7}, {"with\x00zero", 1<<31 - 1}, {string(bytes.Repeat([]byte("n"), 300)), 12}} {
		name, p, err := parseCatalogKey(catalogKey(tc.name, tc.p))
		require.NoError(t, err)
		require.Equal(t, tc.name, name)
		require.Equal(t, tc.p, p)
	}
}

// FuzzCatalogKey: parseCatalogKey never panics, and what it accepts is
// exactly what catalogKey writes.
func FuzzCatalogKey(f *testing.F) {
	f.Add(catalogKey("s", 0))
	f.Add(catalogKey("word-counts", 42))
	f.Add([]byte{0, 5, 'a'})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, k []byte) {
		if len(k) < 2 || k[0] != tagMeta || k[1] == 0 {
			return // outside the catalog's key range
		}
		name, p, err := parseCatalogKey(k)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		require.Equal(t, k, catalogKey(name, p))
	})
}

// TestHas: Has knows the stores Store opened, in this process and after a
// reopen, writes nothing, and is false after Close.
func TestHas(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenPebble(dir)
	require.NoError(t, err)
	require.False(t, db.Has("counts", 3))
	st, err := db.Store("counts", 3)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.True(t, db.Has("counts", 3))
	require.False(t, db.Has("counts", 2), "another partition")
	require.False(t, db.Has("other", 3), "another store")
	require.NoError(t, db.Close())
	require.False(t, db.Has("counts", 3), "closed")

	db, err = OpenPebble(dir)
	require.NoError(t, err)
	defer db.Close()
	require.True(t, db.Has("counts", 3), "the catalog outlives the process")
	require.False(t, db.Has("counts", 2), "Has, asked for it before, wrote no catalog entry")
}
