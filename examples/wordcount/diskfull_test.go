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

// TestDiskFull runs the command on a 20 MiB tmpfs with more lines than
// the app's output fits in: the app stops with the disk-full error, and
// the command prints it and exits 1 (no crash, no hang). Once the file
// system is grown, a run that appends nothing resumes and counts every
// line appended before, exactly once. (The word counts' state is too
// small to fill a disk; TestDiskFullState in the root package fills one
// with state.)
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command in child processes; skipped under -short")
	}
	dir := filepath.Join(t.TempDir(), "wc")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	fs, reason := smallfs.NewMount(dir, 20<<20)
	if fs == nil {
		// The command writes through the operating system's file
		// system: a quota vfs cannot be injected. TestDiskFullState in
		// the root package runs an app on one.
		t.Skip(reason)
	}
	t.Cleanup(func() { require.NoError(t, fs.Close()) })

	const lines = 30000
	start := time.Now()
	res := exampletest.Run(t, 2*time.Minute, "-lines", "30000", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stdout, "appended 30000 lines", "the input fits; the app's output does not")
	require.Contains(t, res.Stderr, "commit: broker: disk full", "the command says why it stopped")
	require.True(t, strings.HasPrefix(res.Stderr, "wordcount: "), "one clear message, no crash:\n%s", res.Stderr)
	t.Logf("full after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(res.Stderr))

	require.NoError(t, fs.Resize(200<<20))
	res = exampletest.Run(t, 2*time.Minute, "-lines", "0", "-partitions", "2", "-top", "5", "-dir", dir)
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	requireTop(t, res.Stdout, lines, 5)
	require.Contains(t, res.Stdout, `every count matches the words of "text-lines" counted without the framework`)
}
