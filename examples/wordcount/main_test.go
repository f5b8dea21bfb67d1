package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/examples/internal/exampletest"
)

func TestMain(m *testing.M) { exampletest.Main(m, main) }

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
	require.Contains(t, out.String(), `every count matches the words of "text-lines" counted without the framework`)
}

// TestKeptDirPartitions: the topics of a kept data directory keep their
// partition count. A second run given another -partitions exits 1 and
// says so, instead of ignoring the flag; without -partitions it uses the
// topics' count.
func TestKeptDirPartitions(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), []string{"-lines", "300", "-partitions", "3", "-dir", dir}, io.Discard))

	res := exampletest.Run(t, time.Minute, "-lines", "100", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, `wordcount: topic "text-lines" of the data directory has 3 partitions, not 2 (-partitions)`)
	require.Empty(t, res.Stdout)

	res = exampletest.Run(t, time.Minute, "-lines", "100", "-top", "4", "-dir", dir)
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	requireTop(t, res.Stdout, 400, 4)
}

// TestCheck: the command's check fails when the table's counts differ
// from the words of the lines topic, naming the words.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), []string{"-lines", "200", "-partitions", "2", "-dir", dir}, io.Discard))
	b, err := embedded.Open(filepath.Join(dir, "log"))
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	counts, err := readTable(t.Context(), b)
	require.NoError(t, err)
	require.NoError(t, check(t.Context(), b, counts))

	want := counts["the"]
	counts["the"]--
	counts["zebra"] = 1
	require.EqualError(t, check(t.Context(), b, counts), fmt.Sprintf(
		`table "word-counts": 2 words' counts differ from the words of "text-lines" counted without the framework: "the": %d, want %d, "zebra": 1, want 0`, want-1, want))
}

// TestAppFailureExits: when the app fails, the command prints the error
// and exits 1; it used to hang.
// The app fails on a line with a pre-1970 timestamp, which the default
// error policy does not skip.
func TestAppFailureExits(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), []string{"-lines", "100", "-partitions", "2", "-dir", dir}, io.Discard))
	b, err := embedded.Open(filepath.Join(dir, "log"))
	require.NoError(t, err)
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: linesTopic, Partition: 1,
		Key: []byte("line-old"), Value: []byte("a line from before 1970"), Timestamp: time.UnixMilli(-5)}}))
	require.NoError(t, b.Close())

	res := exampletest.Run(t, time.Minute, "-lines", "0", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, "wordcount: ")
	require.Contains(t, res.Stderr, "invalid record timestamp")
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-lines", "-1"}, {"-partitions", "0"}, {"-top", "-2"}, {"-nope"}} {
		var out bytes.Buffer
		require.Error(t, run(t.Context(), args, &out), "%v", args)
	}
}

// TestServe runs the example with -serve and queries a count over HTTP,
// then stops it by canceling ctx.
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-lines", "200", "-partitions", "2", "-dir", t.TempDir(), "-serve", "127.0.0.1:0"}, pw)
		pw.CloseWithError(err)
		errc <- err
	}()
	// Read the output up to the line with the served address.
	var url string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "serving queries at "); ok {
			url = strings.Replace(strings.Fields(rest)[0], "{word}", "the", 1)
			break
		}
	}
	require.NotEmpty(t, url, "no serving line")
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	// The store applies a commit's writes just after the commit that the
	// summary waited for, so poll (bounded) until the count is there.
	var got struct {
		Key   string
		Value int64
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.Unmarshal(body, &got))
			break
		}
		require.Contains(t, []int{http.StatusNotFound, http.StatusServiceUnavailable}, resp.StatusCode, "GET %s: %s", url, body)
		require.True(t, time.Now().Before(deadline), "GET %s: %s", url, body)
		runtime.Gosched()
	}
	require.Equal(t, "the", got.Key)
	require.Positive(t, got.Value)

	cancel()
	require.NoError(t, <-errc)
}

// summary returns the lines of the command's output that report the
// counts: the table line and the top words.
func summary(text string) string {
	_, after, ok := strings.Cut(text, "\ntable ")
	if !ok {
		return ""
	}
	return "table " + after
}

// TestKfake runs the command on an in-process kfake cluster (-kfake): it
// prints the same counts as the run on the embedded broker.
func TestKfake(t *testing.T) {
	var embeddedOut bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-lines", "2000", "-partitions", "3", "-top", "5", "-dir", t.TempDir()}, &embeddedOut))

	res := exampletest.Run(t, 2*time.Minute, "-kfake", "-lines", "2000", "-partitions", "3", "-top", "5")
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stdout, "topics on the in-process kfake cluster at 127.0.0.1:")
	requireTop(t, res.Stdout, 2000, 5)
	require.NotEmpty(t, summary(res.Stdout))
	require.Equal(t, summary(embeddedOut.String()), summary(res.Stdout))
}

// TestBrokers runs the command twice on a Kafka cluster served by another
// process (-brokers): the second run appends more lines and its counts
// continue from the first's, restored from the changelog into a fresh
// state directory.
func TestBrokers(t *testing.T) {
	addrs := exampletest.KafkaCluster(t)
	res := exampletest.Run(t, 2*time.Minute, "-brokers", addrs, "-lines", "1500", "-partitions", "3", "-top", "5")
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stdout, "topics on the Kafka cluster at "+addrs)
	requireTop(t, res.Stdout, 1500, 5)

	res = exampletest.Run(t, 2*time.Minute, "-brokers", addrs, "-lines", "500", "-top", "8")
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	requireTop(t, res.Stdout, 2000, 8)
	require.Contains(t, res.Stdout, `every count matches the words of "text-lines" counted without the framework`)

	res = exampletest.Run(t, time.Minute, "-brokers", addrs, "-lines", "10", "-partitions", "2")
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, `wordcount: topic "text-lines" on the Kafka cluster at `+addrs+` has 3 partitions, not 2 (-partitions)`)
}

// TestBadBrokerFlags: a broker choice that cannot work is an error the
// command prints before exiting 1, promptly.
func TestBadBrokerFlags(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String() // nothing listens there once closed
	require.NoError(t, ln.Close())
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"-brokers", "nonsense"}, `wordcount: -brokers: "nonsense" is not a host:port address`},
		{[]string{"-brokers", "127.0.0.1:9092,"}, `wordcount: -brokers: "" is not a host:port address`},
		{[]string{"-kfake", "-brokers", "127.0.0.1:9092"}, "wordcount: -brokers and -kfake exclude each other"},
		{[]string{"-brokers", closed}, "wordcount: -brokers: kafka: cluster at [" + closed + "] does not answer"},
	} {
		res := exampletest.Run(t, time.Minute, c.args...)
		require.Equal(t, 1, res.ExitCode, "%v\nstdout:\n%s\nstderr:\n%s", c.args, res.Stdout, res.Stderr)
		require.Contains(t, res.Stderr, c.err, "%v", c.args)
		require.Empty(t, res.Stdout, "%v", c.args)
	}
}
