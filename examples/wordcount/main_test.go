package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// expected counts the words of lines [0, n) directly.
func expected(n int) (map[string]int64, int64) {
	counts := map[string]int64{}
	var total int64
	for i := range n {
		for w := range tokens(line(i)) {
			counts[w]++
			total++
		}
	}
	return counts, total
}

var topLine = regexp.MustCompile(`(?m)^  (\S+)\s+(\d+)$`)

// requireTop checks the printed summary against counts computed without
// the framework.
func requireTop(t *testing.T, text string, lines, top int) {
	t.Helper()
	counts, total := expected(lines)
	require.Contains(t, text, fmt.Sprintf("%d distinct words, %d words counted", len(counts), total), text)
	var got []wordCount
	for _, m := range topLine.FindAllStringSubmatch(text, -1) {
		n, err := strconv.ParseInt(m[2], 10, 64)
		require.NoError(t, err)
		got = append(got, wordCount{m[1], n})
	}
	require.Equal(t, topWords(counts, top), got, text)
}

// TestRun counts words end to end on the embedded broker, then runs again
// on the same directory with more lines: the counts continue from the
// stored state, each line counted exactly once.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-lines", "2000", "-partitions", "3", "-top", "5", "-dir", dir}, &out))
	require.Contains(t, out.String(), `appended 2000 lines`)
	requireTop(t, out.String(), 2000, 5)

	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-lines", "500", "-partitions", "3", "-top", "8", "-dir", dir}, &out))
	requireTop(t, out.String(), 2500, 8)
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-lines", "-1"}, {"-partitions", "0"}, {"-top", "-2"}, {"-nope"}} {
		var out bytes.Buffer
		require.Error(t, run(t.Context(), args, &out), "%v", args)
	}
}
