package stream_test

import (
	"context"
	"iter"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

type order struct {
	ID    string `json:"id"`
	Total int64  `json:"total"`
}

type summary struct {
	Orders int64 `json:"orders"`
}

// rawValues returns the values written to topic, as bytes.
func rawValues(d *streamtest.Driver, topic string) (out []string) {
	for _, r := range d.Records(topic) {
		out = append(out, string(r.Value))
	}
	return out
}

func rawKeys(d *streamtest.Driver, topic string) (out []string) {
	for _, r := range d.Records(topic) {
		out = append(out, string(r.Key))
	}
	return out
}

func encode[T any](t *testing.T, c codec.Codec[T], v T) string {
	t.Helper()
	b, err := c.Append(nil, v)
	require.NoError(t, err)
	return string(b)
}

// Handles carry their codecs: the source's, kept by the steps that keep a
// type (also a step whose new type is the old one, or the type of the
// input's other part), codec.For for a new type, and the options' where
// given.
func TestHandlesCarryCodecs(t *testing.T) {
	jo := codec.JSON[order]()
	b := stream.NewBuilder()
	orders := stream.From(b, "orders", str, jo)
	kept := orders.Filter(func(string, order) bool { return true })
	kept.To("kept")
	stream.MapValues(kept, func(o order) order { o.Total *= 2; return o }).To("doubled")
	totals := stream.MapValues(kept, func(o order) int64 { return o.Total })
	totals.To("totals")
	stream.MapValues(kept, func(o order) summary { return summary{Orders: 1} }).To("summaries")
	stream.MapValues(kept, func(o order) summary { return summary{Orders: 1} }, stream.WithValueCodec(codec.JSON[summary]())).To("json-summaries")
	byTotal := stream.SelectKey(kept, func(_ string, o order) int64 { return o.Total })
	byTotal.To("by-total")
	byTotal.To("by-total-text", stream.WithKeyCodec(codec.Msgpack[int64]()), stream.WithValueCodec(codec.Msgpack[order]()))
	stream.Map(kept, func(k string, o order) (string, string) { return o.ID, k }, stream.WithKeyCodec(codec.JSON[string]())).To("map")
	stream.Map(kept, func(k string, o order) (order, string) { return o, k }).To("swapped")
	stream.FlatMapValues(kept, func(o order) iter.Seq[float64] {
		return func(yield func(float64) bool) { yield(float64(o.Total) / 2) }
	}).To("halves")
	stream.Process(kept, func() stream.Processor[string, order, string, bool] {
		return &funcProcessor[string, order, string, bool]{process: func(ctx context.Context, pc stream.ProcessorContext[string, bool], r stream.Record[string, order]) error {
			return pc.Forward(ctx, stream.Record[string, bool]{Key: r.Key, Value: r.Value.Total > 10})
		}}
	}).To("big")
	kept.Repartition(stream.Named("by-id"), stream.WithValueCodec(codec.Msgpack[order]())).To("repartitioned")
	byID := stream.GroupBy(kept, func(_ string, o order) []byte { return []byte(o.ID) }, stream.Named("group"))
	stream.Process(byID.Stream(), func() stream.Processor[[]byte, order, []byte, order] {
		return &funcProcessor[[]byte, order, []byte, order]{process: func(ctx context.Context, pc stream.ProcessorContext[[]byte, order], r stream.Record[[]byte, order]) error {
			return pc.Forward(ctx, stream.Record[[]byte, order]{Key: r.Key, Value: r.Value})
		}}
	}).To("grouped")
	require.Equal(t, codec.Bytes(), byID.KeyCodec())
	require.Equal(t, jo, byID.ValueCodec())

	d := newDriver(t, b, streamtest.AppID("app"))
	o := order{ID: "o-1", Total: 21}
	require.NoError(t, streamtest.Input(d, "orders", str, jo).Pipe(t.Context(), "c-1", o))
	for _, tc := range []struct {
		topic      string
		key, value string
	}{
		{"kept", "c-1", encode(t, jo, o)},
		{"doubled", "c-1", encode(t, jo, order{ID: "o-1", Total: 42})},
		{"totals", "c-1", encode(t, codec.Int64(), 21)},
		{"summaries", "c-1", encode(t, codec.Msgpack[summary](), summary{Orders: 1})},
		{"json-summaries", "c-1", `{"orders":1}`},
		{"by-total", encode(t, codec.Int64(), 21), encode(t, jo, o)},
		{"by-total-text", encode(t, codec.Msgpack[int64](), 21), encode(t, codec.Msgpack[order](), o)},
		{"map", `"o-1"`, "c-1"},
		{"swapped", encode(t, jo, o), "c-1"},
		{"halves", "c-1", encode(t, codec.Float64(), 10.5)},
		{"big", "c-1", encode(t, codec.Bool(), true)},
		{"by-id-repartition", "c-1", encode(t, codec.Msgpack[order](), o)},
		{"repartitioned", "c-1", encode(t, codec.Msgpack[order](), o)},
		{"group-repartition", "o-1", encode(t, jo, o)},
		{"grouped", "o-1", encode(t, jo, o)},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			topic := tc.topic
			if topic == "by-id-repartition" || topic == "group-repartition" {
				topic = "app-" + topic
			}
			require.Equal(t, []string{tc.key}, rawKeys(d, topic))
			require.Equal(t, []string{tc.value}, rawValues(d, topic))
		})
	}
}

// A codec option of the wrong type is a Build error, never a panic.
func TestCodecOptionOfWrongType(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", str, str)
	s.To("out", stream.WithKeyCodec(codec.Int64()))
	s.Repartition(stream.WithValueCodec(codec.Bool()))
	stream.GroupByKey(s, stream.WithKeyCodec(codec.Bytes()))
	stream.MapValues(s, func(v string) int { n, _ := strconv.Atoi(v); return n }, stream.WithValueCodec(codec.String()))
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	for _, msg := range []string{
		`sink "sink-1": stream: invalid option: WithKeyCodec gives a codec of int64, the step's keys are string`,
		`repartition "repartition-2": stream: invalid option: WithValueCodec gives a codec of bool, the step's values are string`,
		`group-by-key "after source-0": stream: invalid option: WithKeyCodec gives a codec of []uint8, the step's keys are string`,
		`map-values "map-values-4": stream: invalid option: WithValueCodec gives a codec of string, the step's values are int`,
	} {
		require.ErrorContains(t, err, msg)
	}
}
