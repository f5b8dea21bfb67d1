package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

// TestIngestInterrupted interrupts an Apply whose huge value was ingested
// before its batch commits: by a crash (the file system as a crash would
// leave it, with only what was synced) and by a failure of the Apply.
// Either way the store holds the value and offset of the Apply before,
// and once the DB is open (after the crash) or closed (after the failure)
// no chunk of the interrupted value and no intent is left.
func TestIngestInterrupted(t *testing.T) {
	defer store.SetIngestMin(2 * chunk)()
	first, second := bigValue(1, 3*chunk), bigValue(2, 2*chunk+5)
	for _, crash := range []bool{true, false} {
		t.Run(map[bool]string{true: "crash", false: "failed"}[crash], func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			db := openMem(t, fs, store.WithSync(true))
			s, err := db.Store("s", 0)
			require.NoError(t, err)
			var b store.Batch
			b.Put([]byte("k"), first)
			b.Put([]byte("small"), []byte("x"))
			b.SetOffset(1)
			require.NoError(t, s.Apply(&b))

			var clone *vfs.MemFS
			injected := errors.New("injected")
			restore := store.SetAfterIngest(func() error {
				if crash {
					clone = fs.CrashClone(vfs.CrashCloneCfg{})
					return nil
				}
				return injected
			})
			b.Reset()
			b.Put([]byte("k"), second)
			b.SetOffset(2)
			err = s.Apply(&b)
			restore()
			if crash {
				require.NoError(t, err)
				require.NoError(t, db.Close())
				// The crash left the ingested chunks and their intent.
				chunks, _ := storedChunks(t, clone, "db")
				require.Greater(t, rawCountAt(t, clone, "db", 0x03), chunks, "chunks of the interrupted Apply")
				require.Equal(t, 1, rawCountAt(t, clone, "db", 0x05), "its intent")
				fs = clone
				db = openMem(t, fs)
				s, err = db.Store("s", 0)
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, injected)
				require.ErrorContains(t, err, "store s/0: apply")
			}
			v, ok, err := s.Get([]byte("k"))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, first, v)
			off, ok, err := s.Offset()
			require.NoError(t, err)
			require.True(t, ok)
			require.EqualValues(t, 1, off)
			require.NoError(t, db.Close())
			require.Equal(t, 1, requireNoOrphans(t, fs, "db"))

			// The key takes the value again, as a restore would write it.
			db = openMem(t, fs)
			defer db.Close()
			s, err = db.Store("s", 0)
			require.NoError(t, err)
			require.NoError(t, s.Apply(&b))
			v, ok, err = s.Get([]byte("k"))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, second, v)
		})
	}
}

// TestIngestedDamage damages the sstable that an ingested value's chunks
// were written to (flip 16 bytes at its start, middle and end, truncate
// to half and to zero, delete) in a cleanly closed directory: every case
// gives an error matching ErrCorrupt, from OpenPebble or from reading the
// value, or the value intact.
func TestIngestedDamage(t *testing.T) {
	defer store.SetIngestMin(2 * chunk)()
	// Small chunks: on a checksum mismatch Pebble looks for a one-bit
	// flip in the first 40 KiB of the block, computing the block's
	// checksum once per bit, which takes 5 s per damaged 192 KiB chunk
	// (minutes under -race).
	defer store.SetIngestChunk(16 << 10)()
	// Random bytes, so that the sstable is as large as the value.
	big := make([]byte, 3*chunk+7)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	base := filepath.Join(t.TempDir(), "base")
	// No emergency ballast: each case copies the directory.
	db, err := store.OpenPebble(base, store.WithDiskReserve(-1))
	require.NoError(t, err)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	b.Put([]byte("a"), []byte("small"))
	b.SetOffset(1)
	require.NoError(t, s.Apply(&b))
	b.Reset()
	b.Put([]byte("k"), big)
	b.SetOffset(2)
	require.NoError(t, s.Apply(&b))
	require.NoError(t, db.Close())
	// The ingested sstable is the one that holds the value's bytes.
	ssts, err := filepath.Glob(filepath.Join(base, "*.sst"))
	require.NoError(t, err)
	var ingested string
	for _, f := range ssts {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		if fi.Size() > int64(len(big))/2 {
			require.Empty(t, ingested, "two sstables hold the value: %s", listDir(t, base))
			ingested = f
		}
	}
	require.NotEmpty(t, ingested, "no sstable holds the value: %s", listDir(t, base))

	var table strings.Builder
	for _, tc := range []struct {
		name string
		fn   func(name string) (string, error)
	}{
		{"flip-start", flipBytes(0, 16)},
		{"flip-middle", flipBytes(0.5, 16)},
		{"flip-end", flipBytes(1, 16)},
		{"truncate-half", truncateFile(2)},
		{"truncate-zero", truncateFile(0)},
		{"delete", func(name string) (string, error) { return "deleted", os.Remove(name) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			copyTree(t, base, dir)
			what, err := tc.fn(filepath.Join(dir, filepath.Base(ingested)))
			require.NoError(t, err)
			outcome := ingestedOutcome(t, dir, big)
			t.Logf("%s: %s: %s", filepath.Base(ingested), what, outcome)
			fmt.Fprintf(&table, "| %s | %s |\n", tc.name, outcome)
		})
	}
	t.Logf("\n| damage | outcome |\n|---|---|\n%s", table.String())
}

// ingestedOutcome opens the damaged directory and reads it: it returns
// "ErrCorrupt (open)", "ErrCorrupt (read)" or "intact" (k holds want, a
// and the offset are there), and fails the test otherwise.
func ingestedOutcome(t *testing.T, dir string, want []byte) string {
	t.Helper()
	corrupt := func(stage string, err error) string {
		require.ErrorIs(t, err, store.ErrCorrupt, "the error on %s does not match store.ErrCorrupt", stage)
		t.Logf("error on %s: %v", stage, err)
		return "ErrCorrupt (" + stage + ")"
	}
	db, err := store.OpenPebble(dir, store.WithDiskReserve(-1))
	if err != nil {
		return corrupt("open", err)
	}
	defer func() { _ = db.Close() }()
	s, err := db.Store("s", 0)
	if err != nil {
		return corrupt("open", err)
	}
	v, ok, err := s.Get([]byte("k"))
	if err != nil {
		return corrupt("read", err)
	}
	require.True(t, ok, "k is gone without an error")
	require.True(t, slices.Equal(want, v), "k reads %d bytes, not its value, without an error", len(v))
	got := scanAll(t, s)
	require.Equal(t, map[string]string{"a": "small", "k": string(want)}, got)
	off, ok, err := s.Offset()
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 2, off)
	return "intact"
}
