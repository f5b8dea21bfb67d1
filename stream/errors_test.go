package stream_test

import (
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

func TestBuildReportsEveryError(t *testing.T) {
	b := stream.NewBuilder()
	other := stream.NewBuilder()
	foreign := stream.From(other, "elsewhere", str, str)

	s := stream.From[string, string](b, "in put", str, nil)                                       // invalid topic, nil value codec
	f := s.Filter(nil, stream.Named("dup"))                                                       // nil predicate
	m := stream.MapValues(f, strings.ToUpper, stream.Named("dup"))                                // duplicate name
	m.Merge(foreign, stream.Stream[string, string]{}).To("out", stream.WithKeyCodec[string](nil)) // foreign and zero streams, nil key codec
	m.Repartition(stream.WithKeyCodec[string](nil), stream.Partitions(0), stream.Named("")).To("x", stream.WithKeyCodec(str))
	br := m.Split()
	br.Branch("a", nil)
	br.Branch("a", func(string, string) bool { return true })
	stream.From(b, "loop", str, str).To("loop")            // reads what it writes
	stream.From(b, "loop", str, str).Foreach(nil)          // read twice
	stream.FromTopics(b, nil, str, str)                    // no topics
	stream.Process[string, string, string, string](m, nil) // nil supplier
	m.ToFunc(nil)

	topo, err := b.Build()
	require.Nil(t, topo)
	require.Error(t, err)
	for _, target := range []error{
		broker.ErrInvalidTopicName, stream.ErrNilCodec, stream.ErrNilFunc, stream.ErrDuplicateName,
		stream.ErrForeignStream, stream.ErrInvalidOption, stream.ErrTopicConflict,
	} {
		require.ErrorIs(t, err, target)
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`source "source-0": value codec: stream: nil codec`,
		`filter "dup": stream: nil function`,
		`merge "merge-3": stream: stream from another builder`,
		`merge "merge-3": stream: stream from another builder`,
		`sink "sink-4": key codec: stream: nil codec`,
		`stream: invalid option: Partitions(0); the count must be >= 1`,
		`stream: invalid option: Named with an empty name`,
		`sink "repartition-5-sink": key codec: stream: nil codec`,
		`source "repartition-5-source": key codec: stream: nil codec`,
		`split "split-8": branch "a": stream: nil function`,
		`split "split-8": stream: duplicate step name: branch "a" added twice`,
		`foreach "foreach-14": stream: nil function`,
		`source "source-15": stream: invalid option: no topics`,
		`process "process-16": supplier: stream: nil function`,
		`sink "sink-17": topic function: stream: nil function`,
		`stream: duplicate step name: "dup" names both a filter step and a map-values step`,
		`stream: duplicate step name: "split-8-a" names both a branch step and a branch step`,
		`source "source-0": broker: invalid topic name: "in put" has character ' ' at position 2; only [a-zA-Z0-9._-] are allowed`,
		`stream: topic conflict: topic "loop" is read by sources "source-11" and "source-13"; read it once and reuse the stream`,
		`stream: topic conflict: sub-topology 2 reads and writes topic "loop"; a sub-topology must not read its own output`,
	}
	require.Equal(t, want, lines)

	// The other builder is unaffected and builds.
	_, err = other.Build()
	require.NoError(t, err)
}

func TestBuildNoSources(t *testing.T) {
	_, err := stream.NewBuilder().Build()
	require.ErrorIs(t, err, stream.ErrNoSources)
	var nilBuilder *stream.Builder
	_, err = nilBuilder.Build()
	require.ErrorIs(t, err, stream.ErrNoSources)
	require.Equal(t, stream.Stream[string, string]{}, stream.From(nilBuilder, "x", str, str))
}

func TestZeroStreamIsInert(t *testing.T) {
	var s stream.Stream[string, string]
	require.Equal(t, s, s.Filter(func(string, string) bool { return true }))
	require.Equal(t, s, stream.MapValues(s, strings.ToUpper))
	require.Equal(t, s, s.Split().Branch("a", nil))
	require.Equal(t, s, s.Split().Default())
	require.Equal(t, s, s.Repartition())
	require.Equal(t, s, s.Merge(s))
	s.To("out")
	s.Foreach(nil)
	var nilTopo *stream.Topology
	require.Empty(t, nilTopo.Describe())
}

func TestDecodeError(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "nums", codec.Int64(), codec.Int64(), stream.Named("read-nums")).To("out")
	d := newDriver(t, b, streamtest.DefaultPartitions(2))
	ctx := t.Context()
	in := streamtest.Input(d, "nums", codec.Int64(), codec.Int64())
	require.NoError(t, in.Pipe(ctx, 1, 2))

	tests := []struct {
		name      string
		key, val  []byte
		part      string
		partition int32
	}{
		{name: "key", key: []byte{1, 2, 3}, val: make([]byte, 8), part: "key", partition: 1},
		{name: "value", key: make([]byte, 8), val: []byte{1}, part: "value", partition: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want int64 // the record's offset: records before it in its partition
			for _, r := range d.Records("nums") {
				if r.Partition == tt.partition {
					want++
				}
			}
			err := d.PipeRaw(ctx, broker.Record{Topic: "nums", Partition: tt.partition, Key: tt.key, Value: tt.val})
			require.ErrorIs(t, err, codec.ErrInvalid)
			// The step's error locates the record; the decode error only
			// adds the part, and the message names the record once.
			de, ok := errors.AsType[*codec.DecodeError](err)
			require.True(t, ok)
			require.Equal(t, codec.DecodeError{Part: tt.part, Err: de.Err}, *de)
			ne, ok := errors.AsType[*stream.NodeError](err)
			require.True(t, ok)
			require.Equal(t, stream.NodeError{Node: "read-nums", Topic: "nums", Partition: tt.partition, Offset: want, Err: ne.Err}, *ne)
			require.Equal(t, 1, strings.Count(err.Error(), "offset"), err.Error())
		})
	}
	// The driver keeps working after a failed record.
	require.NoError(t, in.Pipe(ctx, 3, 4))
	got, err := streamtest.Output(d, "out", codec.Int64(), codec.Int64()).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []streamtest.KeyValue[int64, int64]{{Key: 1, Value: 2}, {Key: 3, Value: 4}}, got)
}

func TestEncodeError(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", str, str).To("out", stream.WithKeyCodec(failingCodec{}))
	d := newDriver(t, b)
	err := streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "v")
	require.ErrorIs(t, err, errEncode)
	ee, ok := errors.AsType[*codec.EncodeError](err)
	require.True(t, ok)
	require.Equal(t, "key", ee.Part)
	require.Equal(t, "out", ee.Topic)
	require.Empty(t, d.Records("out"))
}

func TestPanicBecomesError(t *testing.T) {
	errValue := errors.New("panic value")
	tests := []struct {
		name  string
		value any
		node  string
		is    error
	}{
		{name: "string panic", value: "boom", node: "explode"},
		{name: "error panic", value: errValue, node: "explode", is: errValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			s := stream.From(b, "in", str, str)
			s = stream.MapValues(s, strings.ToUpper)
			s = s.Filter(func(_, v string) bool {
				if v == "BAD" {
					panic(tt.value)
				}
				return true
			}, stream.Named(tt.node))
			s.To("out")
			d := newDriver(t, b)
			in := streamtest.Input(d, "in", str, str)
			err := in.Pipe(t.Context(), "k", "bad")
			ne, ok := errors.AsType[*stream.NodeError](err)
			require.True(t, ok)
			require.Equal(t, tt.node, ne.Node)
			pe, ok := errors.AsType[*stream.PanicError](err)
			require.True(t, ok)
			require.Equal(t, tt.value, pe.Value)
			require.Contains(t, string(pe.Stack), "errors_test.go")
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
			// The next record is processed normally.
			require.NoError(t, in.Pipe(t.Context(), "k", "good"))
			require.Equal(t, []kv{{Key: "k", Value: "GOOD"}}, readKVs(t, d, "out"))
		})
	}
}

func TestPanicInFlatMapNamesTheRightStep(t *testing.T) {
	b := stream.NewBuilder()
	words := stream.FlatMapValues(stream.From(b, "in", str, str), func(v string) iter.Seq[string] {
		return func(yield func(string) bool) {
			if !yield(v) {
				return
			}
			panic("after the first word")
		}
	}, stream.Named("words"))
	words.To("out")
	d := newDriver(t, b)
	err := streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "v")
	ne, ok := errors.AsType[*stream.NodeError](err)
	require.True(t, ok)
	require.Equal(t, "words", ne.Node, "the panic is in the sequence, after the sink ran")
}

func TestInvalidRepartitionNameReportedOnce(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", str, str).Repartition(stream.Named("no spaces")).To("out")
	_, err := b.Build()
	require.ErrorIs(t, err, broker.ErrInvalidTopicName)
	require.Equal(t, `internal topic of "no spaces-sink": broker: invalid topic name: "no spaces-repartition" has character ' ' at position 2; only [a-zA-Z0-9._-] are allowed`, err.Error())
}

func TestMergeWithOwnRepartitionIsRejected(t *testing.T) {
	// The repartition's source would join the sub-topology that writes
	// the repartition topic; Build refuses a sub-topology reading its own
	// output instead of leaving it to the runtime.
	b := stream.NewBuilder()
	s := stream.From(b, "in", str, str)
	s.Merge(s.Repartition(stream.Named("again"))).To("out")
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrTopicConflict)
	require.EqualError(t, err, `stream: topic conflict: sub-topology 0 reads and writes internal topic "again-repartition"; a sub-topology must not read its own output`)
}
