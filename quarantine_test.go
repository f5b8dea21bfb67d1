package duality_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/store"
)

// Sizes of the damage matrix: enough distinct keys that the state's
// sstable has many data blocks, so that damage in its middle is met by a
// read of one key while the app runs rather than when it opens the state.
const (
	damageKeys  = 3000
	damagePhase = 3000 // input records per run
)

// damage is a way to damage a state directory.
type damage struct {
	name string
	do   func(t *testing.T, dir string)
	// quarantined: the damage is detected and the state moved aside;
	// otherwise it is harmless and must not be (no false alarm).
	quarantined bool
	// midRun: detected by a read of a task's store while the app runs
	// (the log line names the task and store), not when the state opens.
	midRun bool
}

// stateFiles returns the paths of the files of dir whose names match
// pattern (filepath.Match), failing the test if there are none.
func stateFiles(t *testing.T, dir, pattern string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, pattern))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no %s in %s", pattern, dir)
	return paths
}

// flipAt inverts 64 bytes of the file at path from the fraction at of its
// size on.
func flipAt(t *testing.T, path string, at float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	i := int(float64(len(b)) * at)
	for j := i; j < i+64 && j < len(b); j++ {
		b[j] ^= 0xff
	}
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// truncateTo truncates the file at path to the fraction at of its size.
func truncateTo(t *testing.T, path string, at float64) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, int64(float64(fi.Size())*at)))
}

func damages() []damage {
	each := func(pattern string, f func(t *testing.T, path string)) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			for _, p := range stateFiles(t, dir, pattern) {
				f(t, p)
			}
		}
	}
	flip := func(at float64) func(*testing.T, string) { return func(t *testing.T, p string) { flipAt(t, p, at) } }
	trunc := func(at float64) func(*testing.T, string) {
		return func(t *testing.T, p string) { truncateTo(t, p, at) }
	}
	remove := func(t *testing.T, p string) { require.NoError(t, os.Remove(p)) }
	garbage := func(t *testing.T, p string) {
		require.NoError(t, os.WriteFile(p, []byte("garbage\x00\xff\x01"), 0o644))
	}
	return []damage{
		{name: "sstable-flip-start", do: each("*.sst", flip(0.01)), quarantined: true},
		{name: "sstable-flip-middle", do: each("*.sst", flip(0.5)), quarantined: true, midRun: true},
		{name: "sstable-flip-end", do: each("*.sst", flip(0.98)), quarantined: true},
		{name: "sstable-truncate-half", do: each("*.sst", trunc(0.5)), quarantined: true},
		{name: "sstable-truncate-zero", do: each("*.sst", trunc(0)), quarantined: true},
		{name: "sstable-delete", do: each("*.sst", remove), quarantined: true},
		{name: "manifest-delete", do: each("MANIFEST-*", remove), quarantined: true},
		{name: "manifest-truncate-zero", do: each("MANIFEST-*", trunc(0)), quarantined: true},
		{name: "manifest-garbage", do: each("MANIFEST-*", garbage), quarantined: true},
		// Pebble's CURRENT is the marker file naming the manifest.
		{name: "manifest-marker-delete", do: each("marker.manifest.*", remove), quarantined: true},
		{name: "format-marker-delete", do: each("marker.format-version.*", remove), quarantined: true},
		{name: "options-garbage", do: each("OPTIONS-*", garbage), quarantined: true},
		{name: "options-delete", do: each("OPTIONS-*", remove)},
		{name: "wal-truncate-zero", do: each("*.log", trunc(0))},
		// Files Pebble does not read (not listed in the manifest, or
		// of no type of its own) are harmless; a newer OPTIONS file is
		// read.
		{name: "garbage-files-added", do: func(t *testing.T, dir string) {
			for _, name := range []string{"garbage.bin", "999990.sst", "MANIFEST-999991", "999993.log"} {
				garbage(t, filepath.Join(dir, name))
			}
		}},
		{name: "garbage-options-added", do: func(t *testing.T, dir string) {
			garbage(t, filepath.Join(dir, "OPTIONS-999992"))
		}, quarantined: true},
	}
}

// TestStateDamaged damages the state directory of the counter app (over
// real Pebble, its state flushed to an sstable) between two runs, each
// counting damageKeys keys, and checks that the second run finishes with
// exact counts: damage that Pebble or the store detects, at open or on a
// read in the middle of processing, quarantines the state (kept under
// dir/quarantine, logged at Error, counted) and the stores restore from
// their changelogs; harmless damage changes nothing.
func TestStateDamaged(t *testing.T) {
	for _, d := range damages() {
		t.Run(d.name, func(t *testing.T) { testStateDamaged(t, d, duality.FailOnError()) })
	}
	// A processor error from corrupt state ends the record whatever the
	// policy: SkipOnError must not skip it, which would lose a count.
	d := damages()[1]
	require.True(t, d.midRun)
	t.Run(d.name+"-skip-on-error", func(t *testing.T) {
		testStateDamaged(t, d, duality.SkipOnError(func(pe *duality.ProcessingError) {
			t.Errorf("skipped a record: %v", pe)
		}))
	})
}

func testStateDamaged(t *testing.T, d damage, policy duality.ErrorPolicy) {
	b := openBroker(t)
	createTopic(t, b, "in", 3)
	createTopic(t, b, "out", 3)
	dir := filepath.Join(t.TempDir(), "state")

	produceKeyed(t, b, 0, damagePhase, damageKeys)
	require.NoError(t, newCounter(t, b, duality.StateDir(dir)).RunToEnd(t.Context()))
	// Put the state in an sstable, as a longer run would have.
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())

	d.do(t, dir)

	produceKeyed(t, b, damagePhase, 2*damagePhase, damageKeys)
	logs := newLogRecorder()
	app := newCounter(t, b, duality.StateDir(dir), duality.Logger(slog.New(logs)), duality.OnProcessingError(policy))
	require.NoError(t, app.RunToEnd(t.Context()))
	requireCounts(t, b, 2*damagePhase, damageKeys)

	var quarantined []string
	if entries, err := os.ReadDir(filepath.Join(dir, store.QuarantineDir)); err == nil {
		for _, e := range entries {
			quarantined = append(quarantined, filepath.Join(dir, store.QuarantineDir, e.Name()))
		}
	}
	var lines []loggedRecord
	for _, r := range logs.at(slog.LevelError) {
		if strings.Contains(r.Message, "local state is corrupt") {
			lines = append(lines, r)
		}
	}
	if !d.quarantined {
		require.Empty(t, quarantined, "harmless damage quarantined the state")
		require.Empty(t, lines)
		require.Zero(t, app.Metrics().StateQuarantines)
		return
	}
	require.Len(t, quarantined, 1, "one quarantined copy")
	require.Equal(t, uint64(1), app.Metrics().StateQuarantines)
	require.Len(t, lines, 1, "one Error line")
	line := lines[0]
	t.Logf("quarantined (task %q, store %q): %v", line.Attrs["task"], line.Attrs["store"], line.Attrs["error"])
	require.Equal(t, quarantined[0], line.Attrs["quarantine"])
	require.ErrorIs(t, line.Attrs["error"].(error), store.ErrCorrupt)
	if d.midRun {
		require.Equal(t, countStore, line.Attrs["store"])
		require.NotEmpty(t, line.Attrs["task"])
	}
	// The copy holds the damaged database as it was: the files of a
	// Pebble database, none left behind but what the new one wrote.
	copied, err := os.ReadDir(quarantined[0])
	require.NoError(t, err)
	require.NotEmpty(t, copied)
	names := map[string]bool{}
	for _, e := range copied {
		names[e.Name()] = true
	}
	require.False(t, names[store.QuarantineDir])
	require.False(t, names["LOCK"], "the lock stays in place")
}

// TestStateDamagedGlobal damages, between two runs, the middle of the
// sstable holding a global store, so that a task's lookup in it meets the
// damage while the app runs: the state is quarantined, the global store
// bootstrapped again from its topic, and every order joins its customer.
func TestStateDamagedGlobal(t *testing.T) {
	const customers = 3000
	b := globalSetup(t, customers)
	dir := filepath.Join(t.TempDir(), "state")
	orders := func(from, to int) {
		var kvs []string
		for i := from; i < to; i++ {
			kvs = append(kvs, fmt.Sprintf("o%d", i), fmt.Sprintf("c%d", i%customers))
		}
		produceKV(t, b, "orders", kvs...)
	}
	orders(0, 10)
	require.NoError(t, newGlobalApp(t, b, duality.StateDir(dir)).RunToEnd(t.Context()))
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())
	for _, p := range stateFiles(t, dir, "*.sst") {
		flipAt(t, p, 0.5)
	}

	orders(10, 10+customers)
	logs := newLogRecorder()
	app := newGlobalApp(t, b, duality.StateDir(dir), duality.Logger(slog.New(logs)))
	require.NoError(t, app.RunToEnd(t.Context()))
	got := joined(t, b)
	require.Len(t, got, 10+customers)
	for i := range 10 + customers {
		require.Equal(t, fmt.Sprintf("n%d", i%customers), got[fmt.Sprintf("o%d", i)], "order o%d", i)
	}
	require.Equal(t, uint64(1), app.Metrics().StateQuarantines)
	var lines []loggedRecord
	for _, r := range logs.at(slog.LevelError) {
		if strings.Contains(r.Message, "local state is corrupt") {
			lines = append(lines, r)
		}
	}
	require.Len(t, lines, 1)
	require.Equal(t, globalStore, lines[0].Attrs["store"])
	require.DirExists(t, lines[0].Attrs["quarantine"].(string))
}

// corruptReads is a file system whose sstables read back corrupt, every
// byte inverted, as from a disk that damages what it stores.
type corruptReads struct{ vfs.FS }

func (fs corruptReads) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	if err != nil || !strings.HasSuffix(name, ".sst") {
		return f, err
	}
	return corruptFile{f}, nil
}

type corruptFile struct{ vfs.File }

func (f corruptFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	for i := range p[:n] {
		p[i] ^= 0xff
	}
	return n, err
}

// TestStateCorruptAgain checks that state found corrupt again, before any
// commit since it was rebuilt, fails the run instead of quarantining it
// again and again: on a disk whose sstables all read back corrupt, the
// state fails to open, is quarantined and rebuilt (flushed to sstables by
// small memtables), and the first lookup in the rebuilt state fails
// before the run commits (commits only at the end).
func TestStateCorruptAgain(t *testing.T) {
	const keys = 10000
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	dir := filepath.Join(t.TempDir(), "state")
	produceKeyed(t, b, 0, keys, keys)
	require.NoError(t, newCounter(t, b, duality.StateDir(dir)).RunToEnd(t.Context()))
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())

	produceKeyed(t, b, keys, 2*keys, keys)
	app := newCounter(t, b, duality.CommitInterval(time.Hour),
		duality.StateDir(dir, store.WithFS(corruptReads{vfs.Default}), store.WithMemTableSize(64<<10)))
	err = app.RunToEnd(t.Context())
	require.ErrorIs(t, err, store.ErrCorrupt)
	require.ErrorContains(t, err, "corrupt again before any commit")
	require.Equal(t, uint64(1), app.Metrics().StateQuarantines)
	entries, err := os.ReadDir(filepath.Join(dir, store.QuarantineDir))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	requireCounts(t, b, keys, keys) // the second run committed nothing
}

// TestStateDamagedQueries runs the counter app over a state directory
// damaged in the middle of its sstable, with Run rather than RunToEnd,
// while a goroutine queries the store: the state is healed under the
// queries, which fail only as not ready (the state being rebuilt) or as
// corrupt (a query reading the damage before the heal), and the counts
// end exact.
func TestStateDamagedQueries(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 3)
	createTopic(t, b, "out", 3)
	dir := filepath.Join(t.TempDir(), "state")
	produceKeyed(t, b, 0, damagePhase, damageKeys)
	require.NoError(t, newCounter(t, b, duality.StateDir(dir)).RunToEnd(t.Context()))
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())
	for _, p := range stateFiles(t, dir, "*.sst") {
		flipAt(t, p, 0.5)
	}

	produceKeyed(t, b, damagePhase, 2*damagePhase, damageKeys)
	app := newCounter(t, b, duality.StateDir(dir))
	q, err := duality.Query(app, countStore, codec.String(), codec.String())
	require.NoError(t, err)
	stopQueries := make(chan struct{})
	queried := make(chan error, 1)
	go func() {
		var errs []error
		for i := 0; ; i++ {
			select {
			case <-stopQueries:
				queried <- errors.Join(errs...)
				return
			default:
			}
			v, ok, err := q.Get(t.Context(), fmt.Sprintf("k%d", i%damageKeys))
			switch {
			case errors.Is(err, duality.ErrStoreNotReady), errors.Is(err, store.ErrCorrupt):
			case err != nil:
				errs = append(errs, err)
			case ok && v != "1" && v != "2":
				errs = append(errs, fmt.Errorf("k%d counted %s", i%damageKeys, v))
			}
		}
	}()
	stop, _ := runApp(t, app)
	awaitRecords(t, b, "out", 2*damagePhase)
	require.NoError(t, stop())
	close(stopQueries)
	require.NoError(t, <-queried)
	requireCounts(t, b, 2*damagePhase, damageKeys)
	require.Equal(t, uint64(1), app.Metrics().StateQuarantines)
}

// TestStateCorruptionFoundByQuery checks that corruption no task meets,
// here found by a query (a background compaction is reported the same
// way), heals the state too: the query fails as corrupt, the app
// quarantines and rebuilds the state, the key reads right again, and
// processing goes on exactly once.
func TestStateCorruptionFoundByQuery(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 3)
	createTopic(t, b, "out", 3)
	dir := filepath.Join(t.TempDir(), "state")
	produceKeyed(t, b, 0, damagePhase, damageKeys)
	require.NoError(t, newCounter(t, b, duality.StateDir(dir)).RunToEnd(t.Context()))
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())
	for _, p := range stateFiles(t, dir, "*.sst") {
		flipAt(t, p, 0.5)
	}

	logs := newLogRecorder()
	app := newCounter(t, b, duality.StateDir(dir), duality.Logger(slog.New(logs)))
	q, err := duality.Query(app, countStore, codec.String(), codec.String())
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	bad := ""
	eventually(t, "a query meets the damage", func() bool {
		for i := range damageKeys {
			k := fmt.Sprintf("k%d", i)
			if _, _, err := q.Get(t.Context(), k); errors.Is(err, store.ErrCorrupt) {
				bad = k
				return true
			}
		}
		return false
	})
	eventually(t, "the state is quarantined", func() bool { return app.Metrics().StateQuarantines == 1 })
	eventually(t, "the key reads right again", func() bool {
		v, ok, err := q.Get(t.Context(), bad)
		return err == nil && ok && v == "1"
	})
	produceKeyed(t, b, damagePhase, 2*damagePhase, damageKeys)
	awaitRecords(t, b, "out", 2*damagePhase)
	require.NoError(t, stop())
	requireCounts(t, b, 2*damagePhase, damageKeys)
	require.Equal(t, uint64(1), app.Metrics().StateQuarantines)
	var lines []loggedRecord
	for _, r := range logs.at(slog.LevelError) {
		if strings.Contains(r.Message, "local state is corrupt") {
			lines = append(lines, r)
		}
	}
	require.Len(t, lines, 1)
	require.DirExists(t, lines[0].Attrs["quarantine"].(string))
	require.ErrorIs(t, lines[0].Attrs["error"].(error), store.ErrCorrupt)
	require.Nil(t, lines[0].Attrs["task"], "no task met it")
}
