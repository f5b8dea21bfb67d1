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
	var lastLag int64
	for line := range strings.Lines(out.String()) {
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "sample "):
			samples++
			lag, ok := strings.CutPrefix(fields[len(fields)-1], "lag=")
			require.True(t, ok, line)
			var err error
			lastLag, err = strconv.ParseInt(lag, 10, 64)
			require.NoError(t, err, line)
		case strings.HasPrefix(line, "trend "):
			trends++
			require.Contains(t, line, "slope_per_hour=")
		}
	}
	require.GreaterOrEqual(t, samples, 4, out.String())
	require.Equal(t, 5, trends, out.String())
	require.Less(t, lastLag, int64(cfg.rate), "the app falls behind its input:\n%s", out.String())
	heaps, err := filepath.Glob(filepath.Join(profiles, "heap-*.pprof"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(heaps), 4, "a heap profile per tenth of the run")
	for _, h := range heaps {
		b, err := os.ReadFile(h)
		require.NoError(t, err)
		require.True(t, len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b, "%s is not a gzipped pprof profile", h)
	}
}
