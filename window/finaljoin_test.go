package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// TestJoinFinalResults joins the tables of two aggregations with
// EmitOnWindowClose (Kafka Streams: two suppressed windowed KTables
// joined): the result has a row per window that both sides hold, from
// both sides' final results. The side whose final result comes out first
// finds the other side's window waiting, so the row comes with the other
// side's final result, which must still find the first side's window
// when the same advance of stream time (the end of a bounded run, or one
// record far ahead) closed and expired it.
func TestJoinFinalResults(t *testing.T) {
	both := []string{"a@[0,10)=2/3", "a@[10,20)=1/12"}
	for _, tc := range []struct {
		name  string
		task  bool // WithTaskStreamTime on both sides
		two   bool // the sides read topics "in" and "in2" (else one grouping of "in")
		then  []int64
		toEnd bool
		want  []string
	}{
		{name: "end", toEnd: true, want: both},
		{name: "end/task", task: true, toEnd: true, want: both},
		{name: "end/two", two: true, toEnd: true, want: both},
		{name: "end/two/task", two: true, task: true, toEnd: true, want: both},
		// One record moves stream time past the close and the expiry of
		// [10,20) at once (the retention is the window size).
		{name: "jump", then: []int64{1000}, want: both},
		{name: "jump/task", task: true, then: []int64{1000}, want: both},
		{name: "jump/two", two: true, then: []int64{1000}, want: both},
		{name: "jump/two/task", two: true, task: true, then: []int64{1000}, want: both},
		// "in" advances twice past the expiry of [10,20) before "in2"
		// closes it: the counts dropped it, unless the task's stream time
		// closed it for both sides at the first advance.
		{name: "skew/two", two: true, then: []int64{1000, 1001}, want: both[:1]},
		{name: "skew/two/task", two: true, task: true, then: []int64{1000, 1001}, want: both},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			opts := []stream.Option{window.EmitOnWindowClose()}
			if tc.task {
				opts = append(opts, window.WithTaskStreamTime())
			}
			w := window.Tumbling(10*time.Millisecond, window.NoGrace)
			left := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.Int64()))
			right := left
			if tc.two {
				right = stream.GroupByKey(stream.From(b, "in2", codec.String(), codec.Int64()))
			}
			counts := window.Count(left, w, "counts", opts...)
			sums := window.Reduce(right, w, func(a, v int64) int64 { return a + v }, "sums", opts...)
			table.JoinTables(counts, sums, func(_ window.Windowed[string], n, sum int64) string {
				return fmt.Sprintf("%d/%d", n, sum)
			}).ToStream().To("joined")
			topo, err := b.Build()
			require.NoError(t, err)
			d, err := streamtest.New(topo)
			require.NoError(t, err)
			defer func() { require.NoError(t, d.Close()) }()
			in := streamtest.Input(d, "in", codec.String(), codec.Int64())
			in2 := in
			if tc.two {
				in2 = streamtest.Input(d, "in2", codec.String(), codec.Int64())
			}
			pipe := func(in *streamtest.InputTopic[string, int64], k string, ts int64) {
				require.NoError(t, in.PipeAt(t.Context(), k, ts, time.UnixMilli(ts)))
			}
			// Both sides get a@1, a@2 and a@12; 12 closes [0,10).
			for _, ts := range []int64{1, 2, 12} {
				pipe(in, "a", ts)
				if tc.two {
					pipe(in2, "a", ts)
				}
			}
			// Then records of key b: all to "in", then the first to "in2".
			for _, ts := range tc.then {
				pipe(in, "b", ts)
			}
			if tc.two && len(tc.then) > 0 {
				pipe(in2, "b", tc.then[0])
			}
			if tc.toEnd {
				require.NoError(t, d.AdvanceToEnd(t.Context()))
			}
			require.Equal(t, tc.want, show(t, streamtest.Output(d, "joined", window.WindowedCodec(codec.String()), codec.String())))
		})
	}
}
