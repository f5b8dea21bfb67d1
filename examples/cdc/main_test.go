package main

import (
	"bytes"
	"path/filepath"
	"regexp"
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

// TestAppFailureExits: when the app fails, the command prints the error
// and exits 1; it used to hang.
// cdc needs a fresh data directory, so no input record can be planted
// before it runs; the app fails instead as it starts, on a repartition
// topic left with another partition count.
func TestAppFailureExits(t *testing.T) {
	dir := t.TempDir()
	b, err := embedded.Open(filepath.Join(dir, "log"))
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(t.Context(), appID+"-by-country-repartition", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.Close())

	res := exampletest.Run(t, time.Minute, "-customers", "50", "-rounds", "2", "-orders", "50", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, "cdc: ")
	require.Contains(t, res.Stderr, `topic "cdc-by-country-repartition" has 1 partitions, the topology needs 2`)
}

// TestRerunSameDirFails runs the command twice with the same kept data
// directory: the second run refuses it and exits 1, saying why, rather
// than checking its outputs against a model of its own changes only.
func TestRerunSameDirFails(t *testing.T) {
	args := []string{"-customers", "50", "-rounds", "2", "-orders", "50", "-partitions", "2", "-dir", t.TempDir()}
	first := exampletest.Run(t, time.Minute, args...)
	require.Equal(t, 0, first.ExitCode, "stdout:\n%s\nstderr:\n%s", first.Stdout, first.Stderr)
	require.Contains(t, first.Stdout, "every output matches the model")

	second := exampletest.Run(t, time.Minute, args...)
	require.Equal(t, 1, second.ExitCode, "stdout:\n%s\nstderr:\n%s", second.Stdout, second.Stderr)
	require.Contains(t, second.Stderr, `cdc: topic "customers" exists`)
	require.Contains(t, second.Stderr, "cdc needs a fresh data directory")
	require.Empty(t, second.Stdout)
}

// TestRunRejectsBadFlags checks flag validation.
func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-customers", "0"}, {"-rounds", "0"}, {"-orders", "-1"}, {"-partitions", "0"}} {
		require.Error(t, run(t.Context(), append(args, "-dir", t.TempDir()), &bytes.Buffer{}), args)
	}
}

// results returns what the command's output says of the outputs that
// does not depend on commit timing: the enriched orders line and the
// customers per country (not the number of count updates, which the
// record cache coalesces between commits).
func results(t *testing.T, text string) string {
	t.Helper()
	orders := regexp.MustCompile(`(?m)^"orders-enriched": .*$`).FindString(text)
	_, countries, ok := strings.Cut(text, " updates; ")
	require.True(t, ok && orders != "", text)
	return orders + "\n" + countries
}

// TestKfake runs the example on an in-process kfake cluster (-kfake):
// every output matches the model, and the results are those of the run
// on the embedded broker.
func TestKfake(t *testing.T) {
	args := []string{"-customers", "300", "-rounds", "3", "-orders", "600", "-partitions", "3"}
	var embeddedOut bytes.Buffer
	require.NoError(t, run(t.Context(), append(args, "-dir", t.TempDir()), &embeddedOut))

	res := exampletest.Run(t, 2*time.Minute, append(args, "-kfake")...)
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stdout, "topics on the in-process kfake cluster at 127.0.0.1:")
	require.Contains(t, res.Stdout, "every output matches the model")
	require.Equal(t, results(t, embeddedOut.String()), results(t, res.Stdout))
}

// TestBrokersRerunFails runs the example on a Kafka cluster served by
// another process (-brokers), twice: the second run finds the topics of
// the first on the cluster and refuses them, exiting 1.
func TestBrokersRerunFails(t *testing.T) {
	addrs := exampletest.KafkaCluster(t)
	args := []string{"-customers", "50", "-rounds", "2", "-orders", "50", "-partitions", "2", "-brokers", addrs}
	first := exampletest.Run(t, 2*time.Minute, args...)
	require.Equal(t, 0, first.ExitCode, "stdout:\n%s\nstderr:\n%s", first.Stdout, first.Stderr)
	require.Contains(t, first.Stdout, "every output matches the model")

	second := exampletest.Run(t, time.Minute, args...)
	require.Equal(t, 1, second.ExitCode, "stdout:\n%s\nstderr:\n%s", second.Stdout, second.Stderr)
	require.Contains(t, second.Stderr, `cdc: topic "customers" exists on the Kafka cluster at `+addrs+": cdc needs a fresh data directory, or on Kafka a cluster without its topics")
}
