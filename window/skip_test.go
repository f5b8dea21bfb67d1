package window_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/window"
)

// siblingCase is a windowed count next to a Peek that panics on "boom":
// a record that fails in the Peek (a sibling step under the same source)
// is undone in the store by the runtime (skip policy) or streamtest, and
// the aggregation's in-memory state (stream time, close-index progress,
// CacheUpdates buffer) must be undone with it (topology.Processor.Skip).
type siblingCase struct {
	name string
	opts []stream.Option
	in   []struct {
		k, v string
		ts   int64
	}
	want []string
}

var siblingCases = []siblingCase{
	{
		// The failed record at 25 must not move stream time: 12 is on
		// time, and 40 closes [0,10) and [10,20).
		name: "emit on close",
		opts: []stream.Option{window.EmitOnWindowClose()},
		in: []struct {
			k, v string
			ts   int64
		}{{"a", "x", 5}, {"b", "boom", 25}, {"a", "y", 12}, {"c", "z", 40}},
		want: []string{"a@[0,10)=1", "a@[10,20)=1"},
	},
	{
		// The failed record's buffered update must not be emitted.
		name: "cache updates",
		opts: []stream.Option{window.CacheUpdates()},
		in: []struct {
			k, v string
			ts   int64
		}{{"a", "boom", 5}, {"b", "x", 6}},
		want: []string{"b@[0,10)=1"},
	},
}

func siblingTopology(t *testing.T, opts []stream.Option) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	src := stream.From(b, "in", codec.String(), codec.String())
	g := stream.GroupByKey(src)
	window.Count(g, window.Tumbling(10*time.Millisecond, window.NoGrace), "counts", opts...).
		ToStream().To("out")
	src.Peek(func(_ string, v string) {
		if v == "boom" {
			panic("boom")
		}
	}).To("audit")
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}

func formatWindowed(w window.Windowed[string], n int64) string {
	return fmt.Sprintf("%s@[%d,%d)=%d", w.Key, w.Start.UnixMilli(), w.End.UnixMilli(), n)
}

// TestSiblingFailure runs siblingCases on streamtest.
func TestSiblingFailure(t *testing.T) {
	for _, tc := range siblingCases {
		t.Run(tc.name, func(t *testing.T) {
			stats := new(window.Stats)
			d, err := streamtest.New(siblingTopology(t, append(tc.opts, window.WithStats(stats))))
			require.NoError(t, err)
			defer func() { require.NoError(t, d.Close()) }()
			in := streamtest.Input(d, "in", codec.String(), codec.String())
			out := streamtest.Output(d, "out", window.WindowedCodec(codec.String()), codec.Int64())
			for _, r := range tc.in {
				err := in.PipeAt(t.Context(), r.k, r.v, time.UnixMilli(r.ts))
				if r.v == "boom" {
					require.Error(t, err)
				} else {
					require.NoError(t, err)
				}
			}
			recs, err := out.ReadAll()
			require.NoError(t, err)
			var got []string
			for _, r := range recs {
				got = append(got, formatWindowed(r.Key, r.Value))
			}
			require.Equal(t, tc.want, got)
			require.Zero(t, stats.LateRecords())
		})
	}
}

// TestSiblingFailureRuntime runs siblingCases on the runtime and the
// embedded broker with SkipOnError.
func TestSiblingFailureRuntime(t *testing.T) {
	for _, tc := range siblingCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			b, err := embedded.Open(t.TempDir())
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, b.Close()) })
			for _, topic := range []string{"in", "out", "audit"} {
				require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}))
			}
			stats := new(window.Stats)
			topo := siblingTopology(t, append(tc.opts, window.WithStats(stats)))
			var recs []broker.Record
			for _, r := range tc.in {
				recs = append(recs, broker.Record{Topic: "in", Partition: 0, Key: []byte(r.k), Value: []byte(r.v), Timestamp: time.UnixMilli(r.ts)})
			}
			require.NoError(t, b.Produce(ctx, recs))
			skipped := make(chan struct{}, len(recs))
			app, err := duality.New("skip", topo, b, duality.CommitInterval(5*time.Millisecond),
				duality.OnProcessingError(duality.SkipOnError(func(*duality.ProcessingError) { skipped <- struct{}{} })))
			require.NoError(t, err)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- app.Run(runCtx) }()
			// Every good record writes one audit record; the last one
			// is read after the app committed it.
			awaitRecords(t, b, "audit", len(recs)-1)
			awaitRecords(t, b, "out", len(tc.want))
			stop()
			require.NoError(t, <-done)
			require.Len(t, skipped, 1)
			var got []string
			for _, r := range readTopic(t, b, "out") {
				w, err := window.WindowedCodec(codec.String()).Decode(r.Key)
				require.NoError(t, err)
				n, err := codec.Int64().Decode(r.Value)
				require.NoError(t, err)
				got = append(got, formatWindowed(w, n))
			}
			require.Equal(t, tc.want, got)
			require.Zero(t, stats.LateRecords())
		})
	}
}

// TestSiblingFailureJoin: a record that fails in a sibling step of a join
// does not move the join's stream time: a later on-time record still
// joins.
func TestSiblingFailureJoin(t *testing.T) {
	b := stream.NewBuilder()
	left := stream.From(b, "left", codec.String(), codec.String())
	right := stream.From(b, "right", codec.String(), codec.String())
	stats := new(window.Stats)
	window.Join(stream.GroupByKey(left), stream.GroupByKey(right),
		window.JoinTimeDifference(10*time.Millisecond, window.NoGrace), func(_ string, a, b string) string { return a + b }, "joins", window.WithStats(stats)).
		To("out")
	left.Peek(func(_ string, v string) {
		if v == "boom" {
			panic("boom")
		}
	}).To("audit")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	l := streamtest.Input(d, "left", codec.String(), codec.String())
	r := streamtest.Input(d, "right", codec.String(), codec.String())
	out := streamtest.Output(d, "out", codec.String(), codec.String())
	ctx := t.Context()
	require.NoError(t, l.PipeAt(ctx, "a", "l1", time.UnixMilli(5)))
	require.Error(t, l.PipeAt(ctx, "b", "boom", time.UnixMilli(1000))) // undone
	require.NoError(t, r.PipeAt(ctx, "a", "r1", time.UnixMilli(8)))    // on time: joins l1
	recs, err := out.ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, "l1r1", recs[0].Value)
	require.Zero(t, stats.LateRecords())
}
