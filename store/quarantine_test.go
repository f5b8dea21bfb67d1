package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

// fillPebble writes n keys with offsets into store "s"/0 of a new DB in
// dir and closes it, its data flushed to an sstable.
func fillPebble(t *testing.T, dir string, n int) {
	t.Helper()
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	st, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	for i := range n {
		b.Reset()
		b.Put(fmt.Appendf(nil, "key%05d", i), []byte(strings.Repeat("v", 100)))
		b.SetOffset(int64(i))
		require.NoError(t, st.Apply(&b))
	}
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())
}

// requireStore checks that store "s"/0 of the DB in dir holds the n keys
// fillPebble wrote, or nothing when n is 0.
func requireStore(t *testing.T, dir string, n int) {
	t.Helper()
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	st, err := db.Store("s", 0)
	require.NoError(t, err)
	off, ok, err := st.Offset()
	require.NoError(t, err)
	require.Equal(t, n > 0, ok)
	if n > 0 {
		require.Equal(t, int64(n-1), off)
	}
	c := st.Range(nil, nil)
	got := 0
	for range c.All() {
		got++
	}
	require.NoError(t, c.Close())
	require.Equal(t, n, got)
}

func TestQuarantinePebble(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	fillPebble(t, dir, 500)

	// Not while the database is open: nothing moves.
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	_, err = store.QuarantinePebble(dir)
	require.Error(t, err)
	require.NoError(t, db.Close())
	requireStore(t, dir, 500)

	path, err := store.QuarantinePebble(dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, store.QuarantineDir), filepath.Dir(path))
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range left {
		// The disk reserve's ballast stays: it is the directory's, not
		// the database's.
		require.Contains(t, []string{store.QuarantineDir, "LOCK", "EMERGENCY-BALLAST"}, e.Name())
	}
	_, err = os.Stat(filepath.Join(path, "EMERGENCY-BALLAST"))
	require.ErrorIs(t, err, os.ErrNotExist, "the quarantined copy holds no ballast")
	// dir opens empty, the copy opens with the data, and a second
	// quarantine gets a directory of its own.
	requireStore(t, dir, 0)
	requireStore(t, path, 500)
	path2, err := store.QuarantinePebble(dir)
	require.NoError(t, err)
	require.NotEqual(t, path, path2)
	requireStore(t, path, 500)
}

// TestQuarantineInterrupted checks that OpenPebble finishes a quarantine
// that a crash interrupted after it moved some of the files, instead of
// opening what is left of the database.
func TestQuarantineInterrupted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	fillPebble(t, dir, 500)
	partial := filepath.Join(dir, store.QuarantineDir, "20260101T000000.000000000Z.partial")
	require.NoError(t, os.MkdirAll(partial, 0o755))
	ssts, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	require.NoError(t, err)
	require.NotEmpty(t, ssts)
	for _, p := range ssts {
		require.NoError(t, os.Rename(p, filepath.Join(partial, filepath.Base(p))))
	}

	requireStore(t, dir, 0)
	final := strings.TrimSuffix(partial, ".partial")
	_, err = os.Stat(partial)
	require.ErrorIs(t, err, os.ErrNotExist)
	requireStore(t, final, 500)
}

// TestOpenPebbleDamaged checks that damage to a database's files gives
// errors matching ErrCorrupt, at open or on the read that meets it.
func TestOpenPebbleDamaged(t *testing.T) {
	flip := func(t *testing.T, p string, at float64) {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		for i := int(float64(len(b)) * at); i < len(b) && i < int(float64(len(b))*at)+64; i++ {
			b[i] ^= 0xff
		}
		require.NoError(t, os.WriteFile(p, b, 0o644))
	}
	tests := []struct {
		name    string
		pattern string
		do      func(t *testing.T, path string)
		atRead  bool // detected by a read, not at open
	}{
		{"sstable-flip-start", "*.sst", func(t *testing.T, p string) { flip(t, p, 0.01) }, false},
		{"sstable-flip-middle", "*.sst", func(t *testing.T, p string) { flip(t, p, 0.5) }, true},
		{"sstable-truncate", "*.sst", func(t *testing.T, p string) { require.NoError(t, os.Truncate(p, 100)) }, false},
		{"sstable-delete", "*.sst", func(t *testing.T, p string) { require.NoError(t, os.Remove(p)) }, false},
		{"manifest-delete", "MANIFEST-*", func(t *testing.T, p string) { require.NoError(t, os.Remove(p)) }, false},
		{"manifest-truncate", "MANIFEST-*", func(t *testing.T, p string) { require.NoError(t, os.Truncate(p, 0)) }, false},
		{"manifest-marker-delete", "marker.manifest.*", func(t *testing.T, p string) { require.NoError(t, os.Remove(p)) }, false},
		{"format-marker-delete", "marker.format-version.*", func(t *testing.T, p string) { require.NoError(t, os.Remove(p)) }, false},
		{"options-garbage", "OPTIONS-*", func(t *testing.T, p string) { require.NoError(t, os.WriteFile(p, []byte("x\x00"), 0o644)) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			fillPebble(t, dir, 2000)
			paths, err := filepath.Glob(filepath.Join(dir, tt.pattern))
			require.NoError(t, err)
			require.NotEmpty(t, paths)
			for _, p := range paths {
				tt.do(t, p)
			}
			db, err := store.OpenPebble(dir)
			if !tt.atRead {
				require.ErrorIs(t, err, store.ErrCorrupt)
				return
			}
			require.NoError(t, err)
			defer func() { require.NoError(t, db.Close()) }()
			st, err := db.Store("s", 0)
			require.NoError(t, err)
			c := st.Range(nil, nil)
			for range c.All() {
			}
			require.ErrorIs(t, c.Close(), store.ErrCorrupt)
		})
	}
}

// TestOpenPebbleForeignFiles checks that files which are not Pebble's
// (a user's log, say) in a directory without a database do not make it
// look like a database that lost its manifest marker.
func TestOpenPebbleForeignFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"app.log", "notes.sst", "MANIFEST-x", "1.txt"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644))
	}
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	require.NoError(t, db.Close())
}
