package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
		To("out", str, rc)
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
		To("out", str, rc)
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
