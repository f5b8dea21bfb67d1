package main

import (
	"bytes"
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

	// A second run on the same directory resumes: the input grows by 1000
	// records and only those are processed, each exactly once.
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-events", "1000", "-partitions", "2", "-dir", dir}, &out))
	require.Contains(t, out.String(), "processed 1000 records")
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
