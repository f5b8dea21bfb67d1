package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPebbleCorrupted checks that PebbleDB.Corrupted signals the
// corruption Pebble reports, once a read meets it.
func TestPebbleCorrupted(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenPebble(dir)
	require.NoError(t, err)
	st, err := db.Store("s", 0)
	require.NoError(t, err)
	var b Batch
	put := func(st Store) {
		for i := range 2000 {
			b.Reset()
			b.Put(fmt.Appendf(nil, "key%05d", i), make([]byte, 100))
			require.NoError(t, st.Apply(&b))
		}
	}
	put(st)
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())
	ssts, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	require.NoError(t, err)
	require.NotEmpty(t, ssts)
	for _, p := range ssts {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		for i := len(data) / 2; i < len(data)/2+64; i++ {
			data[i] ^= 0xff
		}
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}

	db, err = OpenPebble(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	require.NoError(t, db.CorruptionError())
	select {
	case <-db.Corrupted():
		t.Fatal("corruption signalled before any read")
	default:
	}
	// A read meets the damage: it fails, and the corruption is
	// signalled, as a background compaction's would be (Pebble reports
	// both through the same event).
	st, err = db.Store("s", 0)
	require.NoError(t, err)
	c := st.Range(nil, nil)
	for range c.All() {
	}
	require.ErrorIs(t, c.Close(), ErrCorrupt)
	<-db.Corrupted()
	require.ErrorIs(t, db.CorruptionError(), ErrCorrupt)
	require.ErrorContains(t, db.CorruptionError(), ".sst")
}
