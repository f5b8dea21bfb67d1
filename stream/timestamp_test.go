package stream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

type reading struct {
	Car string    `json:"car"`
	At  time.Time `json:"at"`
}

func TestWithTimestamp(t *testing.T) {
	b := stream.NewBuilder()
	rc := codec.JSON[reading]()
	in := stream.From(b, "readings", str, rc, stream.WithTimestamp(func(_ string, r reading, recordTime time.Time) time.Time {
		if r.Car == "keep" {
			return recordTime
		}
		return r.At
	}))
	var seen []time.Time
	in.Peek(func(string, reading) {}).
		To("out")
	stream.Process(in, func() stream.Processor[string, reading, string, reading] {
		return &tsRecorder{seen: &seen}
	})
	d := newDriver(t, b)
	pipe := streamtest.Input(d, "readings", str, rc)
	out := streamtest.Output(d, "out", str, rc)
	ctx := t.Context()
	at := time.UnixMilli(1_000_000).UTC()
	recordTime := time.UnixMilli(5_000_000)
	require.NoError(t, pipe.PipeAt(ctx, "c1", reading{Car: "c1", At: at}, recordTime))
	require.NoError(t, pipe.PipeAt(ctx, "c2", reading{Car: "keep", At: at}, recordTime))
	require.NoError(t, pipe.PipeRecord(ctx, streamtest.Record[string, reading]{Key: "c3", Tombstone: true, Timestamp: recordTime}))
	recs, err := out.ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, at.UnixMilli(), recs[0].Timestamp.UnixMilli(), "sinks write the extracted timestamp")
	require.Equal(t, recordTime.UnixMilli(), recs[1].Timestamp.UnixMilli())
	require.Equal(t, recordTime.UnixMilli(), recs[2].Timestamp.UnixMilli(), "a tombstone keeps the record's timestamp")
	require.Len(t, seen, 3)
	require.Equal(t, at.UnixMilli(), seen[0].UnixMilli(), "steps see the extracted timestamp")

	// A panic in the extractor fails the record, naming the source.
	b = stream.NewBuilder()
	stream.From(b, "readings", str, rc, stream.Named("src"), stream.WithTimestamp(func(string, reading, time.Time) time.Time { panic("bad") })).
		To("out")
	d = newDriver(t, b)
	err = streamtest.Input(d, "readings", str, rc).Pipe(ctx, "k", reading{})
	var ne *stream.NodeError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, "src", ne.Node)
	var pe *stream.PanicError
	require.ErrorAs(t, err, &pe)
}

type tsRecorder struct{ seen *[]time.Time }

func (p *tsRecorder) Init(stream.ProcessorContext[string, reading]) error { return nil }
func (p *tsRecorder) Close() error                                        { return nil }
func (p *tsRecorder) Process(_ context.Context, r stream.Record[string, reading]) error {
	*p.seen = append(*p.seen, r.Timestamp)
	return nil
}

func TestWithTimestampBuildErrors(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "a", str, str, stream.WithTimestamp(func(string, int64, time.Time) time.Time { return time.Time{} }))
	stream.From(b, "b", str, str, stream.WithTimestamp[string, string](nil))
	s.Filter(func(string, string) bool { return true }, stream.WithTimestamp(func(string, string, time.Time) time.Time { return time.Time{} }))
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	require.ErrorIs(t, err, stream.ErrNilFunc)
	require.ErrorContains(t, err, "source of [a]: WithTimestamp takes a func(string, int64, time.Time) time.Time, the source needs a func(string, string, time.Time) time.Time")
	require.ErrorContains(t, err, "WithTimestamp with a nil function")
	require.ErrorContains(t, err, "WithTimestamp applies to From and FromTopics only")
}

// decodeCounter counts its Decode calls.
type decodeCounter[T any] struct {
	codec.Codec[T]
	decodes *int
}

func (c decodeCounter[T]) Decode(b []byte) (T, error) {
	*c.decodes++
	return c.Codec.Decode(b)
}

// The extracted timestamp is the task's event time: it moves stream time
// (so stream-time punctuations follow it), and the runtime's question
// for it before processing costs no second decode.
func TestWithTimestampMovesStreamTime(t *testing.T) {
	b := stream.NewBuilder()
	var decodes int
	rc := decodeCounter[reading]{Codec: codec.JSON[reading](), decodes: &decodes}
	var fired []int64
	stream.Process(stream.From(b, "readings", str, rc, stream.WithTimestamp(func(_ string, r reading, _ time.Time) time.Time { return r.At })),
		func() stream.Processor[string, reading, string, string] {
			return &funcProcessor[string, reading, string, string]{
				init: func(pc stream.ProcessorContext[string, string]) error {
					_, err := pc.Schedule(time.Second, stream.PunctuateStreamTime, func(_ context.Context, ts time.Time) error {
						fired = append(fired, ts.UnixMilli())
						return nil
					})
					return err
				},
				process: func(context.Context, stream.ProcessorContext[string, string], stream.Record[string, reading]) error {
					return nil
				},
			}
		})
	d := newDriver(t, b)
	pipe := streamtest.Input(d, "readings", str, rc)
	recordTime := time.UnixMilli(9_000_000)
	for _, ms := range []int64{1500, 2100, 1800, 3200} {
		require.NoError(t, pipe.PipeAt(t.Context(), "c", reading{Car: "c", At: time.UnixMilli(ms)}, recordTime))
	}
	st, ok := d.StreamTime(0, 0)
	require.True(t, ok)
	require.Equal(t, int64(3200), st.UnixMilli())
	require.Equal(t, []int64{1500, 2100, 3200}, fired)
	require.Equal(t, 4, decodes, "one decode per record")
}

// TestInvalidTimestamp: every source fails a record whose timestamp is
// before the Unix epoch or after MaxTimestamp, be it the broker record's
// (tombstones included: the extractor is not called for them) or the one
// the WithTimestamp extractor returned, with a *NodeError naming the
// source and the record, and the records around it go through.
func TestInvalidTimestamp(t *testing.T) {
	b := stream.NewBuilder()
	var extracted []string
	stream.From(b, "in", str, str, stream.Named("src"), stream.WithTimestamp(func(_, v string, recordTime time.Time) time.Time {
		extracted = append(extracted, v)
		switch v {
		case "neg":
			return time.UnixMilli(-5)
		case "zero-time":
			return time.Time{} // a missing time field: year 1
		case "year-10000":
			return time.UnixMilli(stream.MaxTimestamp + 1)
		case "overflow":
			return time.Unix(1<<62, 0) // its Unix ms overflow an int64
		case "max":
			return time.UnixMilli(stream.MaxTimestamp)
		case "epoch":
			return time.UnixMilli(0)
		}
		return recordTime
	})).To("out")
	stream.From(b, "raw", str, str, stream.Named("raw-src")).To("raw-out")
	d := newDriver(t, b)
	ctx := t.Context()
	at := time.UnixMilli(1_000_000)
	for _, tc := range []struct {
		name, topic string
		rec         broker.Record
		node, msg   string // empty node: the record goes through
	}{
		{name: "broker negative", topic: "raw", rec: broker.Record{Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(-1)},
			node: "raw-src", msg: "-1 ms (1969-12-31T23:59:59.999Z) is before the Unix epoch"},
		{name: "broker after max", topic: "raw", rec: broker.Record{Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(stream.MaxTimestamp + 1)},
			node: "raw-src", msg: "253402300800000 ms (10000-01-01T00:00:00Z) is after MaxTimestamp (253402300799999 ms, year 9999)"},
		{name: "broker max", topic: "raw", rec: broker.Record{Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(stream.MaxTimestamp)}},
		{name: "broker epoch", topic: "raw", rec: broker.Record{Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(0)}},
		{name: "extracted negative", topic: "in", rec: broker.Record{Key: []byte("k"), Value: []byte("neg"), Timestamp: at},
			node: "src", msg: "-5 ms"},
		{name: "extracted zero time", topic: "in", rec: broker.Record{Key: []byte("k"), Value: []byte("zero-time"), Timestamp: at},
			node: "src", msg: "-62135596800000 ms (0001-01-01T00:00:00Z) is before the Unix epoch"},
		{name: "extracted after max", topic: "in", rec: broker.Record{Key: []byte("k"), Value: []byte("year-10000"), Timestamp: at},
			node: "src", msg: "is after MaxTimestamp"},
		{name: "extracted overflow", topic: "in", rec: broker.Record{Key: []byte("k"), Value: []byte("overflow"), Timestamp: at},
			node: "src", msg: "is after MaxTimestamp"},
		{name: "extracted max", topic: "in", rec: broker.Record{Key: []byte("k"), Value: []byte("max"), Timestamp: at}},
		{name: "extracted epoch", topic: "in", rec: broker.Record{Key: []byte("k"), Value: []byte("epoch"), Timestamp: at}},
		{name: "broker negative with extractor", topic: "in", rec: broker.Record{Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(-3)},
			node: "src", msg: "-3 ms"},
		{name: "tombstone negative", topic: "in", rec: broker.Record{Key: []byte("k"), Timestamp: time.UnixMilli(-2)},
			node: "src", msg: "-2 ms"},
		{name: "valid after failures", topic: "in", rec: broker.Record{Key: []byte("k"), Value: []byte("v"), Timestamp: at}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.rec
			rec.Topic, rec.Partition = tc.topic, 0
			off := int64(len(d.Records(tc.topic)))
			err := d.PipeRaw(ctx, rec)
			if tc.node == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, stream.ErrInvalidTimestamp)
			require.ErrorContains(t, err, tc.msg)
			var ne *stream.NodeError
			require.ErrorAs(t, err, &ne)
			require.Equal(t, stream.NodeError{Node: tc.node, Topic: tc.topic, Partition: 0, Offset: off, Err: ne.Err}, *ne)
		})
	}
	require.Equal(t, []string{"neg", "zero-time", "year-10000", "overflow", "max", "epoch", "v", "v"}, extracted,
		"the extractor is not called for tombstones")
	ts := func(topic string) (out []int64) {
		for _, r := range d.Records(topic) {
			out = append(out, r.Timestamp.UnixMilli())
		}
		return out
	}
	require.Equal(t, []int64{stream.MaxTimestamp, 0}, ts("raw-out"))
	require.Equal(t, []int64{stream.MaxTimestamp, 0, at.UnixMilli()}, ts("out"))
}

// TestInvalidTimestampRepartition: a timestamp a Process step forwards
// is checked again by the source that reads the repartition topic.
func TestInvalidTimestampRepartition(t *testing.T) {
	b := stream.NewBuilder()
	stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
		return &funcProcessor[string, string, string, string]{process: func(ctx context.Context, pc stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
			if r.Value == "bad" {
				r.Timestamp = time.UnixMilli(-7)
			}
			return pc.Forward(ctx, r)
		}}
	}).Repartition(stream.Named("rp")).To("out")
	d := newDriver(t, b)
	in := streamtest.Input(d, "in", str, str)
	require.NoError(t, in.Pipe(t.Context(), "k", "good"))
	err := in.Pipe(t.Context(), "k", "bad")
	require.ErrorIs(t, err, stream.ErrInvalidTimestamp)
	var ne *stream.NodeError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, "rp-source", ne.Node)
	require.Equal(t, int64(1), ne.Offset)
	require.Equal(t, 1, strings.Count(err.Error(), "stream:"), "the prefix is said once: %v", err)
	require.NoError(t, in.Pipe(t.Context(), "k", "good"))
	vals, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"good", "good"}, vals)
}
