package main

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRun runs the example end to end on a small input and checks the
// routed outputs add up: every human page view lands in exactly one topic.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), []string{"-events", "3000", "-partitions", "2", "-dir", dir}, &out))
	text := out.String()
	require.Contains(t, text, "Sub-topology 0")
	require.Contains(t, text, "processed 3000 records")

	counts := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^(clicks|purchases|views)\s+(\d+) records`).FindAllStringSubmatch(text, -1) {
		n, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		counts[m[1]] = n
	}
	require.Len(t, counts, 3, text)
	total := counts["clicks"] + counts["purchases"] + counts["views"]
	require.Greater(t, counts["purchases"], 0)
	// One user agent in six is a bot; the split keeps the rest.
	require.Greater(t, total, 3000*3/4)
	require.Less(t, total, 3000)

	// A second run on the same directory resumes: the input grows by 1000
	// records and only those are processed, each exactly once.
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-events", "1000", "-partitions", "2", "-dir", dir}, &out))
	require.Contains(t, out.String(), "processed 1000 records")
}
