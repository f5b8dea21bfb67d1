package stream_test

import (
	"context"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/stream"
)

func TestDescribe(t *testing.T) {
	b := stream.NewBuilder()
	views := stream.FromTopics(b, []string{"views-eu", "views-us"}, str, str, stream.Named("views"))
	clicks := stream.From(b, "clicks", str, str)
	all := views.Merge(clicks).Filter(func(_, v string) bool { return v != "" }, stream.Named("non-empty"))
	byType := all.Split(stream.Named("by-type"))
	byType.Branch("buy", func(_, v string) bool { return strings.HasPrefix(v, "buy") }).To("buys")
	byType.Default().Foreach(func(string, string) {})
	words := stream.FlatMapValues(all, func(v string) iter.Seq[string] { return strings.FieldsSeq(v) })
	byWord := stream.SelectKey(words, func(_, w string) string { return w }).
		Repartition(stream.Named("by-word"), stream.Partitions(8))
	lens := stream.MapValues(byWord, func(w string) int64 { return int64(len(w)) })
	lens.To("word-lengths", stream.Named("write-lengths"))
	stream.Process(lens, func() stream.Processor[string, int64, string, int64] {
		return &funcProcessor[string, int64, string, int64]{process: func(context.Context, stream.ProcessorContext[string, int64], stream.Record[string, int64]) error {
			return nil
		}}
	}).ToFunc(func(string, int64, stream.RecordContext) string { return "x" })

	topo, err := b.Build()
	require.NoError(t, err)
	const want = `Topology
  Sub-topology 0
    Source: views (topics: [views-eu, views-us])
      --> merge-2
    Source: source-1 (topics: [clicks])
      --> merge-2
    Processor: merge-2
      --> non-empty
      <-- views, source-1
    Processor: non-empty (filter)
      --> by-type, flat-map-values-9
      <-- merge-2
    Processor: by-type (split)
      --> by-type-buy, by-type-default
      <-- non-empty
    Processor: by-type-buy (branch)
      --> sink-6
      <-- by-type
    Sink: sink-6 (topic: buys)
      <-- by-type-buy
    Processor: by-type-default (branch)
      --> foreach-8
      <-- by-type
    Processor: foreach-8
      <-- by-type-default
    Processor: flat-map-values-9
      --> select-key-10
      <-- non-empty
    Processor: select-key-10
      --> by-word-sink
      <-- flat-map-values-9
    Sink: by-word-sink (topic: <app-id>-by-word-repartition)
      <-- select-key-10
  Sub-topology 1
    Source: by-word-source (topics: [<app-id>-by-word-repartition])
      --> map-values-13
    Processor: map-values-13
      --> write-lengths, process-15
      <-- by-word-source
    Sink: write-lengths (topic: word-lengths)
      <-- map-values-13
    Processor: process-15
      --> sink-16
      <-- map-values-13
    Sink: sink-16 (topic chosen per record)
      <-- process-15
  Internal topics
    <app-id>-by-word-repartition (partitions: 8, cleanup: delete, written by sub-topology 0)
`
	require.Equal(t, want, topo.Describe())
}

// TestDescribeTimestampExtractor: a source with a timestamp extractor
// says so below its line, as its records' event time is not their broker
// timestamp.
func TestDescribeTimestampExtractor(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "orders", str, str, stream.Named("orders"),
		stream.WithTimestamp(func(_, _ string, ts time.Time) time.Time { return ts.Add(-time.Second) })).To("out")
	stream.From(b, "clicks", str, str).To("clicks-out")
	topo, err := b.Build()
	require.NoError(t, err)
	desc := topo.Describe()
	require.Contains(t, desc, "    Source: orders (topics: [orders])\n      event time: WithTimestamp\n      --> sink-1\n")
	require.Contains(t, desc, "    Source: source-2 (topics: [clicks])\n      --> sink-3\n")
}
