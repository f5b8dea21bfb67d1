package window_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/window"
)

// TestLateCallbackAndFailedRecord checks that OnLate gets late records
// with the stream time, and that a record that fails downstream leaves
// stream time where it was (the runtime undoes its store writes, so the
// in-memory stream time must follow).
func TestLateCallbackAndFailedRecord(t *testing.T) {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	var late []window.LateRecord[string, string]
	stats := new(window.Stats)
	counts := window.Count(g, window.Tumbling(10*time.Millisecond, window.NoGrace), "counts",
		window.WithStats(stats),
		window.OnLate(func(r window.LateRecord[string, string]) { late = append(late, r) }))
	counts.ToStream().
		Peek(func(k window.Windowed[string], _ int64) {
			if k.Key == "boom" {
				panic("boom")
			}
		}).
		To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.Input(d, "in", codec.String(), codec.String())
	out := streamtest.Output(d, "out", window.WindowedCodec(codec.String()), codec.Int64())
	ctx := t.Context()

	err = in.PipeAt(ctx, "boom", "x", time.UnixMilli(100))
	var pe *stream.PanicError
	require.ErrorAs(t, err, &pe)
	// Stream time is still unset: a record at 5 is on time.
	require.NoError(t, in.PipeAt(ctx, "a", "x", time.UnixMilli(5)))
	require.NoError(t, in.PipeAt(ctx, "a", "y", time.UnixMilli(20)))
	require.NoError(t, in.PipeAt(ctx, "a", "z", time.UnixMilli(9)))
	kvs, err := out.ReadKeyValues()
	require.NoError(t, err)
	require.Len(t, kvs, 2)
	require.Equal(t, int64(0), kvs[0].Key.Start.UnixMilli())
	require.Equal(t, int64(20), kvs[1].Key.Start.UnixMilli())
	require.Len(t, late, 1)
	require.Equal(t, "a", late[0].Key)
	require.Equal(t, "z", late[0].Value)
	require.Equal(t, int64(9), late[0].Timestamp.UnixMilli())
	require.Equal(t, int64(20), late[0].StreamTime.UnixMilli())
	require.Equal(t, "in", late[0].Topic)
	require.Equal(t, int64(3), late[0].Offset)
	require.Equal(t, int64(1), stats.LateRecords())

	// Records without a key or value are dropped, not late.
	require.NoError(t, in.PipeTombstone(ctx, "a"))
	require.Equal(t, int64(1), stats.LateRecords())
}

// TestCacheUpdatesRollback checks that the buffered updates of a record
// that fails are dropped with its store writes.
func TestCacheUpdatesRollback(t *testing.T) {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	agg := window.Aggregate(g, window.Hopping(10*time.Millisecond, 5*time.Millisecond, window.NoGrace),
		func() int64 { return 0 },
		func(_ string, v string, n int64) int64 {
			if v == "boom" && n == 0 {
				panic("boom in a new window")
			}
			return n + 1
		}, "agg", window.CacheUpdates())
	agg.ToStream().To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.Input(d, "in", codec.String(), codec.String())
	out := streamtest.Output(d, "out", window.WindowedCodec(codec.String()), codec.Int64())
	ctx := t.Context()
	require.NoError(t, in.PipeAt(ctx, "k", "x", time.UnixMilli(7)))
	// [5,15) is updated (and buffered), then [10,20) panics.
	require.Error(t, in.PipeAt(ctx, "k", "boom", time.UnixMilli(12)))
	require.NoError(t, in.PipeAt(ctx, "k", "y", time.UnixMilli(16)))
	recs, err := out.ReadAll()
	require.NoError(t, err)
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("[%d,%d)=%d", r.Key.Start.UnixMilli(), r.Key.End.UnixMilli(), r.Value))
	}
	require.Equal(t, []string{"[0,10)=1", "[5,15)=1", "[10,20)=1", "[15,25)=1"}, got, "nothing of the failed record")

	b = stream.NewBuilder()
	g = stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	window.Count(g, window.Tumbling(time.Second, 0), "c", window.CacheUpdates(), window.EmitOnWindowClose())
	_, err = b.Build()
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	require.ErrorContains(t, err, "CacheUpdates with EmitOnWindowClose")
}

// TestTimestampBounds: timestamps before the epoch or after MaxTimestamp
// fail the record with ErrInvalidTimestamp (stream's: sources reject them
// before the window steps, which check again) in every kind of window and
// in joins, quickly (a timestamp near math.MaxInt64 used to loop forever
// in hopping windows), and MaxTimestamp itself is accepted.
func TestTimestampBounds(t *testing.T) {
	require.True(t, window.ErrInvalidTimestamp == stream.ErrInvalidTimestamp, "one sentinel")
	require.Equal(t, stream.MaxTimestamp, window.MaxTimestamp)
	steps := map[string]func(g stream.Grouped[string, string], g2 stream.Grouped[string, string]){
		"tumbling": func(g, _ stream.Grouped[string, string]) {
			window.Count(g, window.Tumbling(time.Second, window.NoGrace), "s").ToStream().To("out")
		},
		"hopping": func(g, _ stream.Grouped[string, string]) {
			window.Count(g, window.Hopping(time.Second, 100*time.Millisecond, window.NoGrace), "s").ToStream().To("out")
		},
		"sliding": func(g, _ stream.Grouped[string, string]) {
			window.Count(g, window.Sliding(time.Second, window.NoGrace), "s").ToStream().To("out")
		},
		"session": func(g, _ stream.Grouped[string, string]) {
			window.Count(g, window.Session(time.Second, window.NoGrace), "s").ToStream().To("out")
		},
		"outer-join": func(g, g2 stream.Grouped[string, string]) {
			window.OuterJoin(g, g2, window.JoinTimeDifference(time.Hour, time.Hour), func(_ string, a string, _ bool, b string, _ bool) string { return a + b }, "s").
				To("out")
		},
	}
	for name, step := range steps {
		t.Run(name, func(t *testing.T) {
			b := stream.NewBuilder()
			g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
			g2 := stream.GroupByKey(stream.From(b, "in2", codec.String(), codec.String()))
			step(g, g2)
			topo, err := b.Build()
			require.NoError(t, err)
			d, err := streamtest.New(topo)
			require.NoError(t, err)
			defer func() { require.NoError(t, d.Close()) }()
			in := streamtest.Input(d, "in", codec.String(), codec.String())
			for _, ts := range []int64{math.MaxInt64, math.MaxInt64 - 1, window.MaxTimestamp + 1, -1} {
				require.ErrorIs(t, in.PipeAt(t.Context(), "a", "x", time.UnixMilli(ts)), window.ErrInvalidTimestamp, ts)
			}
			require.NoError(t, in.PipeAt(t.Context(), "a", "x", time.UnixMilli(window.MaxTimestamp)))
		})
	}
}
