package table_test

import (
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// wordLine is line i of the runtime test's input: two words.
func wordLine(i int) string { return fmt.Sprintf("w%d W%d", i%13, i%7) }

func wordCountTopology(t *testing.T) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	lines := stream.From(b, "lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] {
		return strings.FieldsSeq(strings.ToLower(line))
	})
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
	table.Count(byWord, "word-counts").ToStream().To("counts")
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}

// readAll returns every record of topic, partition by partition.
func readAll(t *testing.T, b broker.Broker, topic string) []broker.Record {
	t.Helper()
	recs, err := broker.ReadAll(t.Context(), b, topic)
	require.NoError(t, err)
	return recs
}

// consumeFrom returns a consumer of b assigned the partitions of reqs at
// their offsets, closed with the test.
func consumeFrom(tb testing.TB, b broker.Broker, reqs []broker.FetchRequest) broker.Consumer {
	tb.Helper()
	c, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = c.Close() })
	from := make(map[broker.TopicPartition]int64, len(reqs))
	for _, r := range reqs {
		from[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset
	}
	c.Assign(from)
	return c
}

// awaitCount long-polls topic until it holds n records (bounded by 20 s).
func awaitCount(t *testing.T, b broker.Broker, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	info, err := b.DescribeTopic(ctx, topic)
	require.NoError(t, err)
	reqs := make([]broker.FetchRequest, info.Config.Partitions)
	for p := range reqs {
		reqs[p] = broker.FetchRequest{Topic: topic, Partition: int32(p)}
	}
	c := consumeFrom(t, b, reqs)
	for seen := 0; seen < n; {
		polled, err := c.Poll(ctx, time.Second)
		recs := polled.Records
		require.NoError(t, err, "waiting for %d records in %q, have %d", n, topic, seen)
		for _, r := range recs {
			reqs[r.Partition].Offset = r.Offset + 1
		}
		seen += len(recs)
	}
}

// TestCountRestart counts words over three runs of the app on the
// embedded broker: the first with a state directory, the second after
// deleting it (state rebuilt from the changelog), the third with memory
// state (rebuilt again). Each word's updates on the output topic must be
// exactly 1, 2, ..., n: no count lost, repeated or restarted from zero.
func TestCountRestart(t *testing.T) {
	const step = 300 // lines per run
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.NoError(t, b.CreateTopic(ctx, "lines", broker.TopicConfig{Partitions: 3}))
	require.NoError(t, b.CreateTopic(ctx, "counts", broker.TopicConfig{Partitions: 3}))
	topo := wordCountTopology(t)
	dir := filepath.Join(t.TempDir(), "state")

	want := map[string]int64{}
	for run := range 3 {
		var recs []broker.Record
		for i := run * step; i < (run+1)*step; i++ {
			line := wordLine(i)
			recs = append(recs, broker.Record{Topic: "lines", Partition: broker.PartitionByKey,
				Key: fmt.Appendf(nil, "line-%d", i), Value: []byte(line)})
			for w := range strings.FieldsSeq(strings.ToLower(line)) {
				want[w]++
			}
		}
		require.NoError(t, b.Produce(ctx, recs))

		opts := []duality.Option{duality.CommitInterval(5 * time.Millisecond)}
		switch run {
		case 0:
			opts = append(opts, duality.StateDir(dir))
		case 1:
			require.NoError(t, os.RemoveAll(dir))
			opts = append(opts, duality.StateDir(dir))
		}
		app, err := duality.New("wc", topo, b, opts...)
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		awaitCount(t, b, "counts", 2*step*(run+1)) // two words per line
		stop()
		require.NoError(t, <-done)
	}

	got := map[string][]int64{}
	for _, r := range readAll(t, b, "counts") {
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		got[string(r.Key)] = append(got[string(r.Key)], n)
	}
	require.Len(t, got, len(want))
	for w, n := range want {
		seq := make([]int64, n)
		for i := range seq {
			seq[i] = int64(i + 1)
		}
		require.Equal(t, seq, got[w], "updates of %q", w)
	}
	// The changelog's newest value of each word is its count (the runtime
	// logs one record per written key and commit, so it holds fewer
	// records than the output).
	last := map[string]int64{}
	changelog := readAll(t, b, "wc-word-counts-changelog")
	for _, r := range changelog {
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		last[string(r.Key)] = n
	}
	require.Equal(t, want, last)
	require.LessOrEqual(t, len(changelog), 2*3*step)
}
