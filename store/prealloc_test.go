package store_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/internal/smallfs"
	"github.com/duality-streams/duality/store"
)

// TestWALPreallocation: Pebble preallocates each write-ahead log file 110%
// of the memtable size (35 MiB for the default 32 MiB) whatever the file
// system's size. On an 80 MiB tmpfs, two such logs would leave 9 MiB, and
// a third would fill the file system before its fallocate failed, so that
// for a while nothing was free. The DB lets only a preallocation that
// takes at most half of the margin above its reserve through: after
// several log rotations the logs hold at most one preallocation (the
// first, made as the DB opened), and the free space, sampled all along,
// never drops below half of what was free once it was open (less the
// data written).
func TestWALPreallocation(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "fs")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	fs, reason := smallfs.NewMount(mnt, 80<<20)
	if fs == nil {
		t.Skip(reason) // a quota vfs does not preallocate
	}
	t.Cleanup(func() { require.NoError(t, fs.Close()) })
	dir := filepath.Join(mnt, "db")
	db, err := store.OpenPebble(dir, store.WithSync(true)) // one log write per Apply
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	free0, _, err := fs.Usage()
	require.NoError(t, err)

	// Sample the free space until the writes are done: a fallocate that
	// does not fit shows as a dip to nearly nothing.
	var minFree atomic.Int64
	minFree.Store(free0)
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(200 * time.Microsecond) // a sampling rate, not a wait
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if free, _, err := fs.Usage(); err == nil && free < minFree.Load() {
				minFree.Store(free)
			}
		}
	}()
	var b store.Batch
	const rounds, perRound = 5, 4
	for i := range int64(rounds * perRound) {
		storeFullBatch(&b, i) // 16 KiB
		require.NoError(t, s.Apply(&b))
		if i%perRound == perRound-1 {
			require.NoError(t, db.Flush()) // the next Apply writes a new log
		}
	}
	close(stop)
	<-sampled

	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	var logs int64
	for _, e := range names {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		fi, err := e.Info()
		require.NoError(t, err)
		logs += fi.Sys().(*syscall.Stat_t).Blocks * 512
	}
	const prealloc = 32 << 20 * 11 / 10
	t.Logf("free at the start %d, at least %d after; the logs take %d bytes", free0, minFree.Load(), logs)
	require.LessOrEqual(t, logs, int64(prealloc)+1<<20, "at most one log preallocated")
	require.GreaterOrEqual(t, minFree.Load(), free0/2-rounds*perRound*(16<<10)*2,
		"the free space never dropped below half of what was free")
}
