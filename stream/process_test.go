package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

var errRejected = errors.New("rejected")

func TestProcess(t *testing.T) {
	b := stream.NewBuilder()
	type meta struct {
		rc   stream.RecordContext
		task stream.TaskID
		app  string
	}
	var (
		seen   []meta
		inits  int
		closes int
	)
	counts := stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, int64] {
		return &funcProcessor[string, string, string, int64]{
			init: func(pc stream.ProcessorContext[string, int64]) error {
				inits++
				require.Equal(t, stream.RecordContext{}, pc.RecordContext())
				pc.Logger().Info("init") // discarded by default
				return nil
			},
			process: func(ctx context.Context, pc stream.ProcessorContext[string, int64], r stream.Record[string, string]) error {
				seen = append(seen, meta{rc: pc.RecordContext(), task: pc.TaskID(), app: pc.AppID()})
				if r.Value == "bad" {
					return fmt.Errorf("value %q: %w", r.Value, errRejected)
				}
				// Forward one record per byte; the second one with its own
				// timestamp and headers.
				for i := range len(r.Value) {
					out := stream.Record[string, int64]{Key: r.Key, Value: int64(i)}
					if i == 1 {
						out.Timestamp = time.Unix(100, 0).UTC()
						out.Headers = []broker.Header{{Key: "i", Value: []byte("1")}}
					}
					if err := pc.Forward(ctx, out); err != nil {
						return err
					}
				}
				return nil
			},
			close: func() error { closes++; return nil },
		}
	}, stream.Named("explode"))
	counts.To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, streamtest.DefaultPartitions(2), streamtest.AppID("proc"))
	require.NoError(t, err)
	require.Equal(t, 2, inits, "one processor per task")

	in := streamtest.Input(d, "in", str, str)
	ts := time.Unix(50, 0).UTC()
	hdrs := []broker.Header{{Key: "h", Value: []byte("v")}}
	require.NoError(t, in.PipeRecord(t.Context(), streamtest.Record[string, string]{Key: "k", Value: "ab", Timestamp: ts, Headers: hdrs}))
	p := broker.KeyPartition([]byte("k"), 2)
	require.Equal(t, []meta{{
		rc:   stream.RecordContext{Topic: "in", Partition: p, Offset: 0, Timestamp: ts, Headers: hdrs},
		task: stream.TaskID{SubTopology: 0, Partition: p},
		app:  "proc",
	}}, seen)
	out, err := streamtest.Output(d, "out", str, codec.Int64()).ReadAll()
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.Equal(t, int64(0), out[0].Value)
	require.Equal(t, ts, out[0].Timestamp, "a zero timestamp means the input's")
	require.Nil(t, out[0].Headers, "forwarded headers are the record's")
	require.Equal(t, int64(1), out[1].Value)
	require.Equal(t, time.Unix(100, 0).UTC(), out[1].Timestamp)
	require.Equal(t, []broker.Header{{Key: "i", Value: []byte("1")}}, out[1].Headers)

	err = in.Pipe(t.Context(), "k", "bad")
	require.ErrorIs(t, err, errRejected)
	ne, ok := errors.AsType[*stream.NodeError](err)
	require.True(t, ok)
	require.Equal(t, &stream.NodeError{Node: "explode", Topic: "in", Partition: p, Offset: 1, Err: ne.Err}, ne)
	require.Contains(t, err.Error(), `processing record in/`)
	require.Contains(t, err.Error(), `step "explode": `)

	require.NoError(t, d.Close())
	require.Equal(t, 2, closes)
	require.NoError(t, d.Close(), "Close is idempotent")
	require.Equal(t, 2, closes)
	require.ErrorIs(t, in.Pipe(t.Context(), "k", "x"), streamtest.ErrClosed)
}

func TestProcessDownstreamErrorKeepsItsNode(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
		return &funcProcessor[string, string, string, string]{process: func(ctx context.Context, pc stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
			return pc.Forward(ctx, r)
		}}
	})
	s.To("out", stream.WithValueCodec(failingCodec{}))
	d := newDriver(t, b)
	err := streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "v")
	ne, ok := errors.AsType[*stream.NodeError](err)
	require.True(t, ok)
	require.Equal(t, "sink-2", ne.Node)
	ee, ok := errors.AsType[*codec.EncodeError](err)
	require.True(t, ok)
	require.Equal(t, &codec.EncodeError{Topic: "out", Part: "value", Err: errEncode}, ee)
}

func TestProcessLifecycleErrors(t *testing.T) {
	tests := []struct {
		name     string
		supplier func() stream.Processor[string, string, string, string]
		want     string
	}{
		{
			name:     "nil processor",
			supplier: func() stream.Processor[string, string, string, string] { return nil },
			want:     `process "process-1": the supplier returned a nil Processor`,
		},
		{
			name: "init error",
			supplier: func() stream.Processor[string, string, string, string] {
				return &funcProcessor[string, string, string, string]{init: func(stream.ProcessorContext[string, string]) error { return errRejected }}
			},
			want: `process "process-1": init: rejected`,
		},
		{
			name: "init panic",
			supplier: func() stream.Processor[string, string, string, string] {
				return &funcProcessor[string, string, string, string]{init: func(stream.ProcessorContext[string, string]) error { panic("boom") }}
			},
			want: `panic: boom`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			stream.Process(stream.From(b, "in", str, str), tt.supplier).To("out")
			topo, err := b.Build()
			require.NoError(t, err)
			_, err = streamtest.New(topo)
			require.ErrorContains(t, err, tt.want)
		})
	}

	t.Run("close error", func(t *testing.T) {
		b := stream.NewBuilder()
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
			return &funcProcessor[string, string, string, string]{close: func() error { return errRejected }}
		})
		topo, err := b.Build()
		require.NoError(t, err)
		d, err := streamtest.New(topo)
		require.NoError(t, err)
		require.ErrorIs(t, d.Close(), errRejected)
	})
}

var errEncode = errors.New("cannot encode")

// failingCodec fails every Append and Decode.
type failingCodec struct{}

func (failingCodec) Append([]byte, string) ([]byte, error) { return nil, errEncode }
func (failingCodec) Decode([]byte) (string, error)         { return "", codec.ErrInvalid }
func (failingCodec) OrderPreserving() bool                 { return false }
