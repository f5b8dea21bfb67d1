package stream_test

import (
	"context"
	"errors"
	"iter"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// FuzzBuilder drives the DSL with arbitrary sequences of steps, including
// nil functions and codecs, invalid and duplicate names, foreign and zero
// streams. The DSL must never panic: Build either fails with wiring
// errors that match the package's sentinels, or returns a topology that
// the test driver instantiates and runs.
func FuzzBuilder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 6})
	f.Add([]byte{0, 4, 5, 6, 3, 6})
	f.Add([]byte{0, 0x10, 1, 0x21, 7, 5, 9, 8, 6})
	f.Add([]byte{0x30, 3, 0x40, 3, 0x50, 6, 1, 1, 1})
	f.Add([]byte{0, 5, 5, 0x12, 4, 4, 4, 6, 0x16, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		topics := []string{"a", "b", "c", "", "bad topic", "out"}
		b := stream.NewBuilder()
		other := stream.NewBuilder()
		handles := []stream.Stream[string, string]{{}, stream.From(other, "x", str, str)}
		pick := func(arg byte) stream.Stream[string, string] { return handles[int(arg)%len(handles)] }
		name := func(arg byte) []stream.Option {
			if arg&1 == 0 {
				return nil
			}
			return []stream.Option{stream.Named([]string{"n", "m", ""}[int(arg>>1)%3])}
		}
		keep := func(_, v string) bool { return len(v)%2 == 0 }
		for i, op := range ops {
			arg := byte(i)
			if i+1 < len(ops) {
				arg = ops[i+1]
			}
			s := pick(arg)
			var next stream.Stream[string, string]
			switch op % 10 {
			case 0:
				next = stream.From(b, topics[int(op>>4)%len(topics)], str, str, name(op>>4)...)
			case 1:
				if op&0x10 != 0 {
					next = s.Filter(nil)
				} else {
					next = s.Filter(keep, name(arg)...)
				}
			case 2:
				next = stream.MapValues(s, strings.ToUpper, name(arg)...)
			case 3:
				next = s.Merge(pick(arg+1), pick(arg+2))
			case 4:
				br := s.Split(name(arg)...)
				next = br.Branch([]string{"x", "y", ""}[int(op>>4)%3], keep)
				handles = append(handles, br.Branch("x", nil), br.Default())
			case 5:
				var kc codec.Codec[string] = str
				if op&0x10 != 0 {
					kc = nil
				}
				opts := []stream.Option{stream.WithKeyCodec(kc), stream.WithValueCodec(str), stream.Partitions(int32(op>>5) - 1)}
				if op&0x40 != 0 {
					opts = append(opts, stream.Named("r"))
				}
				next = s.Repartition(opts...)
			case 6:
				s.To(topics[int(op>>4)%len(topics)], name(arg)...)
			case 7:
				next = stream.FlatMapValues(s, func(v string) iter.Seq[string] { return strings.FieldsSeq(v) })
			case 8:
				s.ToFunc(func(k, _ string, _ stream.RecordContext) string { return "dyn-" + k })
			case 9:
				next = stream.Process(s, func() stream.Processor[string, string, string, string] {
					return &funcProcessor[string, string, string, string]{process: func(ctx context.Context, pc stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
						return pc.Forward(ctx, r)
					}}
				})
			}
			if next != (stream.Stream[string, string]{}) {
				handles = append(handles, next)
			}
		}
		topo, err := b.Build()
		if err != nil {
			require.Nil(t, topo)
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				matched := false
				for _, target := range []error{stream.ErrNoSources, stream.ErrDuplicateName, stream.ErrNilFunc, stream.ErrNilCodec,
					stream.ErrForeignStream, stream.ErrInvalidOption, stream.ErrTopicConflict, broker.ErrInvalidTopicName} {
					matched = matched || errors.Is(e, target)
				}
				require.True(t, matched, "unclassified wiring error: %v", e)
			}
			return
		}
		require.NotEmpty(t, topo.Describe())
		d, err := streamtest.New(topo, streamtest.MaxRecordsPerPipe(1000))
		if err != nil {
			require.ErrorIs(t, err, streamtest.ErrCoPartition)
			return
		}
		defer func() { require.NoError(t, d.Close()) }()
		for _, topic := range []string{"a", "b", "c"} {
			err := streamtest.Input(d, topic, str, str).Pipe(t.Context(), "key", "some words")
			if err != nil && !errors.Is(err, broker.ErrUnknownTopic) && !errors.Is(err, streamtest.ErrLoop) {
				t.Fatalf("pipe %s: %v", topic, err)
			}
		}
	})
}
