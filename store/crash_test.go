package store_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

// crashBatch fills b with batch i of the crash test's sequence: a function
// of i alone, so the parent can replay what the child applied. With large,
// one batch in 8 also puts a large value, of 1 chunk and a byte (chunked
// in the batch) or of 2 chunks and more (ingested: see killChild), to one
// of 3 keys.
func crashBatch(b *store.Batch, i int64, large bool) {
	b.Reset()
	rng := rand.New(rand.NewPCG(uint64(i), 99))
	if large && rng.IntN(8) == 0 {
		size := chunk + 1
		if rng.IntN(2) == 0 {
			size = 2*chunk + rng.IntN(chunk)
		}
		b.Put(fmt.Appendf(nil, "big%d", rng.IntN(3)), bigValue(int(i), size))
	}
	for range 1 + rng.IntN(30) {
		k := fmt.Appendf(nil, "k%03d", rng.IntN(300))
		switch r := rng.IntN(20); {
		case r == 0:
			b.DeleteRange(k, fmt.Appendf(nil, "k%03d", rng.IntN(300)))
		case r < 5:
			b.Delete(k)
		default:
			b.Put(k, fmt.Appendf(nil, "v%d-%0*d", i, rng.IntN(300), 0))
		}
	}
	b.SetOffset(i)
}

// TestKillNine runs a child process that applies batches to a Pebble store
// on disk and prints each applied batch number, kills it with SIGKILL at a
// random point, and checks the store after reopening: its data is exactly
// the state after the batch its offset names (replayed into a memory
// store), and with WithSync no printed batch is lost. Each round restarts
// the child on the same directory, continuing after the recovered offset.
// The large variant adds large values, some ingested: each is whole, the
// one the offset's batch left, and in the end the database holds no chunk
// but those of its values (a kill between an ingestion and its batch
// leaves chunks that the next open deletes).
func TestKillNine(t *testing.T) {
	if dir := os.Getenv("STORE_KILL_CHILD"); dir != "" {
		killChild(dir, os.Getenv("STORE_KILL_SYNC") == "1", os.Getenv("STORE_KILL_LARGE") == "1")
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, v := range []struct{ sync, large bool }{{false, false}, {true, false}, {false, true}} {
		sync, large := v.sync, v.large
		t.Run(fmt.Sprintf("sync=%v/large=%v", sync, large), func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(5, 6))
			for round := range 3 {
				cmd := exec.Command(os.Args[0], "-test.run=^TestKillNine$")
				cmd.Env = append(os.Environ(), "STORE_KILL_CHILD="+dir, "STORE_KILL_SYNC="+map[bool]string{true: "1"}[sync],
					"STORE_KILL_LARGE="+map[bool]string{true: "1"}[large])
				out, err := cmd.StdoutPipe()
				require.NoError(t, err)
				require.NoError(t, cmd.Start())
				sc := bufio.NewScanner(out)
				var last int64 = -1
				for n, target := 0, 50+rng.IntN(300); n < target && sc.Scan(); n++ {
					last, err = strconv.ParseInt(sc.Text(), 10, 64)
					require.NoError(t, err, "child printed %q", sc.Text())
				}
				require.NoError(t, cmd.Process.Kill())
				_ = cmd.Wait()
				require.GreaterOrEqual(t, last, int64(0), "the child applied nothing")

				db, err := store.OpenPebble(dir)
				require.NoError(t, err)
				s, err := db.Store("s", 0)
				require.NoError(t, err)
				off, ok, err := s.Offset()
				require.NoError(t, err)
				want := store.NewMemory("want", 0)
				if ok {
					var b store.Batch
					for i := int64(0); i <= off; i++ {
						crashBatch(&b, i, large)
						require.NoError(t, want.Apply(&b))
					}
				}
				require.Equal(t, scanAll(t, want), scanAll(t, s), "round %d: state is not the state at offset %d", round, off)
				if sync {
					require.True(t, ok)
					require.GreaterOrEqual(t, off, last, "round %d: an acknowledged synced batch was lost", round)
				}
				t.Logf("round %d: child acknowledged batch %d, store recovered at offset %d (%v)", round, last, off, ok)
				require.NoError(t, want.Close())
				require.NoError(t, db.Close())
			}
			if large {
				// The open after the last kill deleted the chunks of any
				// ingestion that it cut before its batch.
				requireNoOrphans(t, vfs.Default, dir)
			}
		})
	}
}

// killChild applies batches until it is killed, starting after the
// store's offset, and prints each batch number once Apply has returned.
// With large, the values of 2 chunks or more are ingested.
func killChild(dir string, sync, large bool) {
	if large {
		store.SetIngestMin(2 * chunk)
	}
	db, err := store.OpenPebble(dir, store.WithSync(sync))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := db.Store("s", 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	off, ok, err := s.Offset()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	next := int64(0)
	if ok {
		next = off + 1
	}
	w := bufio.NewWriter(os.Stdout)
	var b store.Batch
	for i := next; ; i++ {
		crashBatch(&b, i, large)
		if err := s.Apply(&b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(w, i)
		w.Flush()
	}
}

// TestFatalWriteExits runs a child process whose write-ahead log writes
// start failing: the next Apply must end the process with status 70 and a
// message on stderr (Pebble's commit pipeline is broken; returning or
// panicking into a caller that recovers would leave it running), and the
// batches applied before are there on reopen.
func TestFatalWriteExits(t *testing.T) {
	if dir := os.Getenv("STORE_FATAL_CHILD"); dir != "" {
		fatalChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFatalWriteExits$")
	cmd.Env = append(os.Environ(), "STORE_FATAL_CHILD="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "child: %v\n%s", err, stderr.String())
	require.Equal(t, 70, exit.ExitCode(), stderr.String())
	require.Contains(t, stderr.String(), "store: fatal storage error")

	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	defer db.Close()
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	off, ok, err := s.Offset()
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(1), off)
	require.Len(t, scanAll(t, s), 2)
}

func fatalChild(dir string) {
	var failing atomic.Bool
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite && strings.HasSuffix(op.Path, ".log") {
			return errorfs.ErrInjected
		}
		return nil
	}))
	db, err := store.OpenPebble(dir, store.WithFS(fs), store.WithSync(true))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := db.Store("s", 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var b store.Batch
	for i := range 2 {
		b.Reset()
		b.Put(fmt.Appendf(nil, "k%d", i), []byte("v"))
		b.SetOffset(int64(i))
		if err := s.Apply(&b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	failing.Store(true)
	b.Reset()
	b.Put([]byte("k2"), []byte("v"))
	b.SetOffset(2)
	err = s.Apply(&b)
	fmt.Fprintln(os.Stderr, "Apply returned after a failed WAL write:", err)
	os.Exit(3)
}
