package main

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRun runs the example end to end on the embedded broker: run checks
// every output against the model and fails on a mismatch, so a nil error
// means every enriched order carries its customer's row as of the order
// and every country's count is right after moves and deletes.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"-customers", "300", "-rounds", "3", "-orders", "600", "-partitions", "3", "-dir", t.TempDir()}, &out)
	require.NoError(t, err, out.String())
	text := out.String()
	require.Contains(t, text, "every output matches the model")
	m := regexp.MustCompile(`(\d+) moves, \d+ renames, (\d+) deletes`).FindStringSubmatch(text)
	require.NotNil(t, m, text)
	moves, _ := strconv.Atoi(m[1])
	deletes, _ := strconv.Atoi(m[2])
	require.Positive(t, moves, "the run must exercise retraction by moves")
	require.Positive(t, deletes, "the run must exercise retraction by deletes")
	require.Regexp(t, `1800 orders, \d+ with their customer, [1-9]\d* of unknown or deleted customers`, text)
}

// TestRunRejectsBadFlags checks flag validation.
func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-customers", "0"}, {"-rounds", "0"}, {"-orders", "-1"}, {"-partitions", "0"}} {
		require.Error(t, run(t.Context(), append(args, "-dir", t.TempDir()), &bytes.Buffer{}), args)
	}
}
