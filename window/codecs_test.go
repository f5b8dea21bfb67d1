package window_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/window"
)

type span struct {
	First, Last string
}

// Windowed tables and joins carry their codecs: windowed keys encoded with
// WindowedCodec of the grouping's key codec, aggregates with codec.For of
// their type (or WithValueCodec), join results by type (or
// WithValueCodec).
func TestWindowedCodecs(t *testing.T) {
	str := codec.String()
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", str, str))
	w := window.Tumbling(10*time.Millisecond, window.NoGrace)
	window.Aggregate(g, w, func() span { return span{} }, func(_, v string, a span) span {
		if a.First == "" {
			a.First = v
		}
		a.Last = v
		return a
	}, "spans").ToStream().To("spans")
	window.Count(g, w, "counts", stream.WithValueCodec(codec.Msgpack[int64]())).ToStream().To("counts")
	other := stream.GroupByKey(stream.From(b, "other", str, str))
	window.Join(g, other, window.JoinTimeDifference(time.Second, 0), func(_, a, b string) int64 { return int64(len(a + b)) }, "j").
		To("lengths")
	window.Join(g, other, window.JoinTimeDifference(time.Second, 0), func(_, a, b string) int64 { return int64(len(a + b)) }, "j2",
		stream.WithValueCodec(codec.JSON[int64]())).To("json-lengths")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	ctx := t.Context()
	at := time.UnixMilli(1000)
	require.NoError(t, streamtest.Input(d, "in", str, str).PipeAt(ctx, "k", "a", at))
	require.NoError(t, streamtest.Input(d, "other", str, str).PipeAt(ctx, "k", "bc", at))

	wk := window.Windowed[string]{Key: "k", Start: time.UnixMilli(1000), End: time.UnixMilli(1010)}
	spans, err := streamtest.Output(d, "spans", window.WindowedCodec(str), codec.Msgpack[span]()).ReadKeyValues()
	require.NoError(t, err)
	require.Len(t, spans, 1)
	require.True(t, spans[0].Key.Start.Equal(wk.Start) && spans[0].Key.Key == "k")
	require.Equal(t, span{First: "a", Last: "a"}, spans[0].Value)
	counts, err := streamtest.Output(d, "counts", window.WindowedCodec(str), codec.Msgpack[int64]()).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []int64{1}, counts)
	lengths, err := streamtest.Output(d, "lengths", str, codec.Int64()).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []streamtest.KeyValue[string, int64]{{Key: "k", Value: 3}}, lengths)
	raw := d.Records("json-lengths")
	require.Len(t, raw, 1)
	require.Equal(t, "3", string(raw[0].Value))
}

// A codec option of the wrong type is a Build error, never a panic.
func TestWindowCodecOptionOfWrongType(t *testing.T) {
	str := codec.String()
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", str, str))
	window.Reduce(g, window.Tumbling(time.Second, 0), func(a, v string) string { return a + v }, "r", stream.WithValueCodec(codec.Int64()))
	window.Join(g, g, window.JoinTimeDifference(time.Second, 0), func(_, a, b string) string { return a + b }, "j",
		stream.WithValueCodec(codec.Bool()))
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	require.ErrorContains(t, err, `windowed-reduce "windowed-reduce-1": stream: invalid option: WithValueCodec gives a codec of int64, the step's values are string`)
	require.ErrorContains(t, err, `join "join-4": stream: invalid option: WithValueCodec gives a codec of bool, the step's values are string`)
}
