package streamtest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/window"
)

// TestAdvanceToEndInTopologicalOrder: the final results an upstream
// window emits at the end go through a repartition topic into a
// downstream window, which is advanced only after it processed them, so
// they are not late there.
func TestAdvanceToEndInTopologicalOrder(t *testing.T) {
	topo := build(t, func(b *stream.Builder) {
		perMinute := window.Count(stream.GroupByKey(stream.From(b, "in", str, str)),
			window.Tumbling(time.Minute, 0), "per-minute", window.EmitOnWindowClose()).ToStream()
		// Count the minutes with clicks per user and hour.
		byUser := stream.GroupBy(perMinute, func(w window.Windowed[string], _ int64) string { return w.Key })
		window.Count(byUser, window.Tumbling(time.Hour, 0), "per-hour", window.EmitOnWindowClose()).
			ToStream().To("out")
	})
	d, err := streamtest.New(topo, streamtest.DefaultPartitions(2))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "in", str, str)
	for _, r := range []struct {
		user string
		at   time.Duration
	}{{"alice", time.Second}, {"alice", 2 * time.Second}, {"bob", 3 * time.Second}, {"alice", 2 * time.Minute}} {
		require.NoError(t, in.PipeAt(t.Context(), r.user, "click", time.UnixMilli(0).Add(r.at)))
	}
	out := streamtest.Output(d, "out", window.WindowedCodec(str), codec.Int64())
	recs, err := out.ReadAll()
	require.NoError(t, err)
	require.Empty(t, recs)

	require.NoError(t, d.AdvanceToEnd(t.Context()))
	recs, err = out.ReadAll()
	require.NoError(t, err)
	got := map[string]int64{}
	for _, r := range recs {
		require.Zero(t, r.Key.Start.UnixMilli())
		got[r.Key.Key] = r.Value
	}
	require.Equal(t, map[string]int64{"alice": 2, "bob": 1}, got)
	for sub := range 2 {
		for p := range int32(2) {
			st, ok := d.StreamTime(sub, p)
			require.True(t, ok)
			require.Equal(t, int64(stream.MaxTimestamp), st.UnixMilli(), "task %d_%d", sub, p)
		}
	}
}

// TestAdvanceToEndErrors: a final result that fails downstream does not
// stop the others; AdvanceToEnd returns its error.
func TestAdvanceToEndErrors(t *testing.T) {
	topo := build(t, func(b *stream.Builder) {
		window.Count(stream.GroupByKey(stream.From(b, "in", str, str)),
			window.Tumbling(time.Minute, 0), "per-minute", window.EmitOnWindowClose()).
			ToStream().
			Peek(func(w window.Windowed[string], _ int64) {
				if strings.HasPrefix(w.Key, "bad") {
					panic("bad key")
				}
			}).
			To("out")
	})
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	in := streamtest.Input(d, "in", str, str)
	for _, k := range []string{"a", "bad", "b"} {
		require.NoError(t, in.PipeAt(t.Context(), k, "v", time.UnixMilli(1000)))
	}
	err = d.AdvanceToEnd(t.Context())
	var pe *stream.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "bad key", pe.Value)
	recs, err := streamtest.Output(d, "out", window.WindowedCodec(str), codec.Int64()).ReadKeyValues()
	require.NoError(t, err)
	var keys []string
	for _, kv := range recs {
		keys = append(keys, kv.Key.Key)
	}
	require.Equal(t, []string{"a", "b"}, keys)
	require.NoError(t, d.Close())
	require.ErrorIs(t, d.AdvanceToEnd(t.Context()), streamtest.ErrClosed)
}
