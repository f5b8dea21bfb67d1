package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/examples/internal/exampletest"
	"github.com/duality-streams/duality/internal/smallfs"
)

// TestDiskFull runs the command with more lines than fit in a small
// tmpfs: once with the whole data directory on 20 MiB (the log's writes
// fill it), once with the state directory alone on 2 MiB (the state
// store's). The app stops with the disk-full error, and the command prints
// it and exits 1: no crash, no hang. Once the file system is grown, a run
// that appends nothing resumes and counts every line appended before,
// exactly once.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command in child processes; skipped under -short")
	}
	mount := func(t *testing.T, dir string, size int64) *smallfs.FS {
		t.Helper()
		require.NoError(t, os.MkdirAll(dir, 0o755))
		fs, reason := smallfs.New(dir, size)
		if fs == nil {
			t.Skip(reason)
		}
		t.Cleanup(func() { require.NoError(t, fs.Close()) })
		return fs
	}
	for _, tc := range []struct {
		name   string
		mount  func(t *testing.T, dir string) *smallfs.FS // the small one
		stderr string
	}{
		{"log", func(t *testing.T, dir string) *smallfs.FS { return mount(t, dir, 20<<20) }, "commit: broker: disk full"},
		{"state", func(t *testing.T, dir string) *smallfs.FS {
			mount(t, dir, 200<<20)
			return mount(t, filepath.Join(dir, "state"), 2<<20)
		}, "store: disk full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wc")
			small := tc.mount(t, dir)
			const lines = 30000
			start := time.Now()
			res := exampletest.Run(t, 2*time.Minute, "-lines", "30000", "-partitions", "2", "-dir", dir)
			require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
			require.Contains(t, res.Stdout, "appended 30000 lines", "the input fits; the app's writes do not")
			require.Contains(t, res.Stderr, tc.stderr, "the command says why it stopped")
			require.True(t, strings.HasPrefix(res.Stderr, "wordcount: "), "one clear message, no crash:\n%s", res.Stderr)
			t.Logf("full after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(res.Stderr))

			require.NoError(t, small.Resize(200<<20))
			res = exampletest.Run(t, 2*time.Minute, "-lines", "0", "-partitions", "2", "-top", "5", "-dir", dir)
			require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
			requireTop(t, res.Stdout, lines, 5)
			require.Contains(t, res.Stdout, `every count matches the words of "text-lines" counted without the framework`)
		})
	}
}
