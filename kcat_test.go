package duality_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// The test of this file checks interoperability with a client that is
// not franz-go: kcat (librdkafka) writes the input of a Duality app on
// the Kafka backend and reads its output, against a kfake cluster on
// 127.0.0.1.

// requireKcat returns the path of kcat. Without it the test is skipped,
// unless CI (CI set to 1 or true) or DUALITY_REQUIRE_KCAT=1 asks for it:
// then it fails, so that a CI machine missing it does not pass silently.
func requireKcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err == nil {
		return path
	}
	ci := os.Getenv("CI")
	if ci == "1" || strings.EqualFold(ci, "true") || os.Getenv("DUALITY_REQUIRE_KCAT") == "1" {
		t.Fatalf("kcat is not on PATH (%v), and CI or DUALITY_REQUIRE_KCAT=1 requires it: install it (Debian: apt-get install kcat)", err)
	}
	t.Skipf("kcat is not on PATH (%v): install it (Debian: apt-get install kcat) to run this test", err)
	return ""
}

// runKcat runs kcat with args, stdin as its input, and returns its
// standard output; it fails the test when kcat fails or runs longer
// than 30 s.
func runKcat(t *testing.T, kcat, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "kcat %s: %s", strings.Join(args, " "), stderr.String())
	return stdout.String()
}

// kcatOrder is the value kcat writes: JSON, as a service would.
type kcatOrder struct {
	Item  string `json:"item"`
	Qty   int    `json:"qty"`
	Price int    `json:"price"`
}

// kcatLine is the value the app writes.
type kcatLine struct {
	Item  string `json:"item"`
	Total int    `json:"total"`
}

// TestKafkaKcatInterop: kcat produces keyed JSON records with headers,
// choosing partitions with murmur2 as Kafka's Java client does
// (partitioner=murmur2_random; librdkafka's default is CRC32); a
// Duality app maps their values, keeping keys and headers; kcat reads
// the output, read_committed. Every key is on the partition Kafka's
// default partitioner picks, in the input (kcat's choice, compared with
// broker.KeyPartition and franz-go's) and in the output (the app's),
// the values decode, and the headers pass through unchanged.
func TestKafkaKcatInterop(t *testing.T) {
	kcat := requireKcat(t)
	b, addrs := newKafkaCluster(t)
	const partitions = 4
	createTopic(t, b, "kcat-orders", partitions)
	createTopic(t, b, "kcat-lines", partitions)
	brokers := strings.Join(addrs, ",")

	// Two runs of kcat, with different headers (-H applies to every
	// record of a run).
	type input struct {
		order   kcatOrder
		headers []broker.Header
	}
	want := map[string]input{}
	batches := []struct {
		headers []broker.Header
		keys    []int
	}{
		{[]broker.Header{{Key: "source", Value: []byte("kcat")}, {Key: "batch", Value: []byte("a")}}, []int{0, 20}},
		{[]broker.Header{{Key: "source", Value: []byte("kcat")}, {Key: "batch", Value: []byte("b")}, {Key: "trace-id", Value: []byte("7f3a9c")}}, []int{20, 50}},
	}
	for _, batch := range batches {
		args := []string{"-P", "-b", brokers, "-t", "kcat-orders", "-K", "|",
			"-X", "partitioner=murmur2_random", "-X", "enable.idempotence=true"}
		var lines strings.Builder
		for _, h := range batch.headers {
			args = append(args, "-H", h.Key+"="+string(h.Value))
		}
		for i := batch.keys[0]; i < batch.keys[1]; i++ {
			key := fmt.Sprintf("order-%d", i)
			o := kcatOrder{Item: fmt.Sprintf("item-%d", i%7), Qty: i%5 + 1, Price: 100 + i}
			v, err := codec.JSON[kcatOrder]().Append(nil, o)
			require.NoError(t, err)
			fmt.Fprintf(&lines, "%s|%s\n", key, v)
			want[key] = input{order: o, headers: batch.headers}
		}
		runKcat(t, kcat, lines.String(), args...)
	}

	// kcat put each key where murmur2 puts it: broker.KeyPartition and
	// franz-go's key partitioner agree.
	kgoPart := kgo.StickyKeyPartitioner(nil).ForTopic("kcat-orders")
	in := readTopic(t, b, "kcat-orders")
	require.Len(t, in, len(want))
	for _, r := range in {
		require.Equal(t, broker.KeyPartition(r.Key, partitions), r.Partition, "kcat put key %q", r.Key)
		require.Equal(t, kgoPart.Partition(&kgo.Record{Key: r.Key}, partitions), int(r.Partition), "key %q", r.Key)
		require.Equal(t, want[string(r.Key)].headers, r.Headers, "key %q", r.Key)
	}

	sb := stream.NewBuilder()
	orders := stream.From(sb, "kcat-orders", codec.String(), codec.JSON[kcatOrder]())
	stream.MapValues(orders, func(o kcatOrder) kcatLine {
		return kcatLine{Item: o.Item, Total: o.Qty * o.Price}
	}).To("kcat-lines", stream.WithValueCodec(codec.JSON[kcatLine]()))
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("kcat-app", topo, b)
	require.NoError(t, err)
	runToEnd(t, app)

	// kcat reads the output to its end: partition, key, headers and
	// value of each record, tab-separated (none of them holds a tab).
	out := runKcat(t, kcat, "", "-C", "-b", brokers, "-t", "kcat-lines", "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=read_committed", "-f", `%p\t%k\t%h\t%s\n`)
	got := map[string]bool{}
	for line := range strings.Lines(out) {
		fields := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		require.Len(t, fields, 4, "kcat line %q", line)
		part, err := strconv.Atoi(fields[0])
		require.NoError(t, err, "kcat line %q", line)
		key := fields[1]
		in, ok := want[key]
		require.True(t, ok, "unexpected key %q", key)
		require.False(t, got[key], "key %q twice in the output", key)
		got[key] = true
		require.Equal(t, broker.KeyPartition([]byte(key), partitions), int32(part), "the app put key %q", key)
		var hs []string
		for _, h := range in.headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		require.Equal(t, strings.Join(hs, ","), fields[2], "headers of %q", key)
		line, err := codec.JSON[kcatLine]().Decode([]byte(fields[3]))
		require.NoError(t, err, "value of %q", key)
		require.Equal(t, kcatLine{Item: in.order.Item, Total: in.order.Qty * in.order.Price}, line, "value of %q", key)
	}
	require.Len(t, got, len(want), "every key in the output: %v", slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !got[k] && !yield(k) {
				return
			}
		}
	}))
}
