package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSoakShort runs the soak for a few seconds: it samples, reports a
// trend per metric, and the app keeps up with its input.
func TestSoakShort(t *testing.T) {
	var out strings.Builder
	profiles := t.TempDir()
	cfg := config{duration: 4 * time.Second, sample: 500 * time.Millisecond, rate: 1000, keys: 100, dir: t.TempDir(), heapProfiles: profiles}
	require.NoError(t, run(t.Context(), cfg, &out))
	var samples, trends int
	var last map[string]float64
	for line := range strings.Lines(out.String()) {
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "sample "):
			samples++
			last = map[string]float64{}
			for _, f := range fields[1:] {
				name, v, ok := strings.Cut(f, "=")
				require.True(t, ok, line)
				x, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err, line)
				last[name] = x
			}
		case strings.HasPrefix(line, "trend "):
			trends++
			require.Contains(t, line, "slope_per_hour=")
		}
	}
	require.GreaterOrEqual(t, samples, 4, out.String())
	require.Equal(t, len(last)-1, trends, "a trend per series (t_s is none):\n%s", out.String())
	require.Less(t, last["lag"], float64(cfg.rate), "the app falls behind its input:\n%s", out.String())
	// What the samples say of the process's memory is consistent.
	require.Positive(t, last["rss_mb"])
	require.Positive(t, last["go_mapped_mb"])
	require.Less(t, last["go_heap_objects_mb"], last["go_mapped_mb"])
	require.Positive(t, last["threads"])
	for _, db := range []string{"log_", "state_"} {
		require.GreaterOrEqual(t, last[db+"memtables"], 1.0, "%s: the mutable memtable", db)
		require.Positive(t, last[db+"memtable_mb"], db)
		require.GreaterOrEqual(t, last[db+"wal_files"], 1.0, db)
	}
	require.GreaterOrEqual(t, last["pebble_alloc_mb"]+0.2, last["log_memtable_mb"]+last["state_memtable_mb"], "values are rounded to 0.1")
	heaps, err := filepath.Glob(filepath.Join(profiles, "heap-*.pprof"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(heaps), 4, "a heap profile per tenth of the run")
	for _, h := range heaps {
		b, err := os.ReadFile(h)
		require.NoError(t, err)
		require.True(t, len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b, "%s is not a gzipped pprof profile", h)
	}
}
