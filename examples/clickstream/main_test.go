package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/examples/internal/exampletest"
)

func TestMain(m *testing.M) { exampletest.Main(m, main) }

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

	require.Contains(t, text, "every routed topic matches the page views routed without the framework")

	// A second run on the same directory resumes: the input grows by 1000
	// records and only those are processed, each exactly once.
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-events", "1000", "-partitions", "2", "-dir", dir}, &out))
	require.Contains(t, out.String(), "processed 1000 records")
	require.Contains(t, out.String(), "(3000 before this one)")
	require.Contains(t, out.String(), "every routed topic matches the page views routed without the framework")

	// The second run appended later page views, not the first run's again.
	b, err := embedded.Open(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	seen := map[time.Time]bool{}
	require.NoError(t, forEach(t.Context(), b, "page-views", func(r broker.Record) error {
		require.False(t, seen[r.Timestamp], "two page views at %v", r.Timestamp)
		seen[r.Timestamp] = true
		return nil
	}))
	require.Len(t, seen, 4000)
}

// TestKeptDirPartitions: the topics of a kept data directory keep their
// partition count. A second run given another -partitions exits 1 and
// says so, instead of ignoring the flag; without -partitions it uses the
// topics' count.
func TestKeptDirPartitions(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), []string{"-events", "300", "-partitions", "3", "-dir", dir}, io.Discard))

	res := exampletest.Run(t, time.Minute, "-events", "100", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, `clickstream: topic "page-views" of the data directory has 3 partitions, not 2 (-partitions)`)
	require.Empty(t, res.Stdout)

	res = exampletest.Run(t, time.Minute, "-events", "100", "-dir", dir)
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stdout, "processed 100 records")
}

// TestRoutedMismatchExits: a routed topic that holds more records than
// the page views give it (here a click written twice) is an error, not a
// summary that counts the extra record.
func TestRoutedMismatchExits(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-events", "500", "-partitions", "2", "-dir", dir}, &out))
	clicks, err := strconv.Atoi(regexp.MustCompile(`(?m)^clicks\s+(\d+) records`).FindStringSubmatch(out.String())[1])
	require.NoError(t, err)
	b, err := embedded.Open(dir)
	require.NoError(t, err)
	var dup broker.Record
	require.NoError(t, forEach(t.Context(), b, "clicks", func(r broker.Record) error { dup = r; return nil }))
	dup.Offset, dup.Partition = 0, broker.PartitionByKey
	require.NoError(t, b.Produce(t.Context(), []broker.Record{dup}))
	require.NoError(t, b.Close())

	res := exampletest.Run(t, time.Minute, "-events", "0", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, fmt.Sprintf(`clickstream: the routed topics differ from the page views of "page-views" routed without the framework: "clicks": %d records, want %d`, clicks+1, clicks))
}

// TestAppFailureExits: when the app fails, the command prints the error
// and exits 1.
// The app fails on a page view with a pre-1970 timestamp, which the
// default error policy does not skip.
func TestAppFailureExits(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), []string{"-events", "100", "-partitions", "2", "-dir", dir}, io.Discard))
	b, err := embedded.Open(dir)
	require.NoError(t, err)
	v, err := codec.Msgpack[PageView]().Append(nil, PageView{UserID: "user-old", Type: "view", Path: "/", UserAgent: uas[0]})
	require.NoError(t, err)
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: "page-views", Partition: broker.PartitionByKey,
		Key: []byte("user-old"), Value: v, Timestamp: time.UnixMilli(-5)}}))
	require.NoError(t, b.Close())

	res := exampletest.Run(t, time.Minute, "-events", "0", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, "clickstream: ")
	require.Contains(t, res.Stderr, "invalid record timestamp")
}

// TestKfake runs the example on an in-process kfake cluster (-kfake): the
// command checks every routed topic against the page views routed
// without the framework and exits 0 only if they match.
func TestKfake(t *testing.T) {
	res := exampletest.Run(t, 2*time.Minute, "-events", "3000", "-partitions", "2", "-kfake")
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stdout, "topics on the in-process kfake cluster at 127.0.0.1:")
	require.Contains(t, res.Stdout, "every routed topic matches the page views routed without the framework")
}
