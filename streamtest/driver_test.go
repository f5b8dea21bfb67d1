package streamtest_test

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

var str = codec.String()

func build(t *testing.T, f func(b *stream.Builder)) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	f(b)
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}

func passThrough(b *stream.Builder) {
	stream.From(b, "in", str, str).To("out")
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		topo  func(b *stream.Builder)
		opts  []streamtest.Option
		is    []error
		text  string
		nilTp bool
	}{
		{
			name: "invalid options reported together",
			topo: passThrough,
			opts: []streamtest.Option{streamtest.Partitions("in", 0), streamtest.Partitions("a b", 1), streamtest.DefaultPartitions(-1), streamtest.AppID(""), streamtest.MaxRecordsPerPipe(0)},
			is:   []error{broker.ErrInvalidPartitions, broker.ErrInvalidTopicName},
			text: "streamtest: AppID: empty id",
		},
		{
			name: "sources of a stateful step not co-partitioned",
			topo: func(b *stream.Builder) {
				stream.Process(stream.FromTopics(b, []string{"a", "b"}, str, str),
					func() stream.Processor[string, string, string, int64] { return &counter{} }, stream.WithStores(stream.BytesStoreSpec("counts")))
			},
			opts: []streamtest.Option{streamtest.Partitions("a", 2)},
			is:   []error{streamtest.ErrCoPartition, stream.ErrNotCoPartitioned},
			text: "sub-topology 0 keeps state and reads topics with different partition counts (a: 2, b: 1)",
		},
		{
			name: "merged sources of a stateful step not co-partitioned",
			topo: func(b *stream.Builder) {
				s := stream.From(b, "a", str, str).Merge(stream.From(b, "b", str, str))
				stream.Process(s, func() stream.Processor[string, string, string, int64] { return &counter{} }, stream.WithStores(stream.BytesStoreSpec("counts")))
			},
			opts: []streamtest.Option{streamtest.Partitions("b", 3)},
			is:   []error{streamtest.ErrCoPartition},
		},
		{name: "nil topology", nilTp: true, text: "streamtest: nil topology"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var topo *stream.Topology
			if !tt.nilTp {
				topo = build(t, tt.topo)
			}
			d, err := streamtest.New(topo, tt.opts...)
			require.Nil(t, d)
			require.Error(t, err)
			for _, target := range tt.is {
				require.ErrorIs(t, err, target)
			}
			require.ErrorContains(t, err, tt.text)
		})
	}
}

// TestStatelessSourcesNotCoPartitioned: a stateless sub-topology may read
// topics with different partition counts, as in the runtime: the task of
// partition p reads partition p of the topics that have it.
func TestStatelessSourcesNotCoPartitioned(t *testing.T) {
	d, err := streamtest.New(build(t, func(b *stream.Builder) {
		stream.FromTopics(b, []string{"a", "b"}, str, str).To("out")
	}), streamtest.Partitions("a", 2))
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.PipeRaw(t.Context(), broker.Record{Topic: "a", Partition: 1, Value: []byte("a1")}))
	require.NoError(t, d.PipeRaw(t.Context(), broker.Record{Topic: "b", Partition: 0, Value: []byte("b0")}))
	vs, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"a1", "b0"}, vs)
	_, ok := d.StreamTime(0, 1)
	require.True(t, ok, "task 0_1 reads partition 1 of a")
}

func TestPipeErrors(t *testing.T) {
	d, err := streamtest.New(build(t, passThrough), streamtest.Partitions("in", 2))
	require.NoError(t, err)
	ctx := t.Context()

	err = streamtest.Input(d, "nobody-reads-this", str, str).Pipe(ctx, "k", "v")
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	err = streamtest.Input(d, "out", str, str).Pipe(ctx, "k", "v")
	require.ErrorIs(t, err, broker.ErrUnknownTopic, "outputs are not inputs")
	err = d.PipeRaw(ctx, broker.Record{Topic: "in", Partition: 2, Value: []byte("v")})
	require.ErrorIs(t, err, broker.ErrUnknownPartition)
	err = streamtest.Input[string, string](d, "in", nil, str).Pipe(ctx, "k", "v")
	require.ErrorIs(t, err, stream.ErrNilCodec)
	_, err = streamtest.Output[string, string](d, "out", str, nil).ReadAll()
	require.ErrorIs(t, err, stream.ErrNilCodec)
	var enc *codec.EncodeError
	err = streamtest.Input(d, "in", codec.JSON[func()](), str).Pipe(ctx, func() {}, "v")
	require.ErrorAs(t, err, &enc)
	require.Equal(t, "key", enc.Part)

	require.NoError(t, d.Close())
	require.ErrorIs(t, streamtest.Input(d, "in", str, str).Pipe(ctx, "k", "v"), streamtest.ErrClosed)
}

func TestOutputConsumes(t *testing.T) {
	d, err := streamtest.New(build(t, passThrough), streamtest.DefaultPartitions(3))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "in", str, str)
	out := streamtest.Output(d, "out", str, str)
	for _, k := range []string{"a", "b", "c", "d"} {
		require.NoError(t, in.Pipe(t.Context(), k, "v"+k))
	}
	got, err := out.ReadAll()
	require.NoError(t, err)
	keys := make([]string, len(got))
	for i, r := range got {
		keys[i] = r.Key
		require.Equal(t, "out", r.Topic)
		require.Equal(t, broker.KeyPartition([]byte(r.Key), 3), r.Partition)
	}
	require.Equal(t, []string{"a", "b", "c", "d"}, keys, "arrival order across partitions")

	vs, err := out.ReadValues()
	require.NoError(t, err)
	require.Empty(t, vs, "records are read once")
	require.Len(t, d.Records("out"), 4, "Records does not consume")
	require.Nil(t, d.Records("unknown"))

	// A decode failure consumes nothing.
	require.NoError(t, in.Pipe(t.Context(), "e", "ve"))
	_, err = streamtest.Output(d, "out", str, codec.Int64()).ReadAll()
	var de *codec.DecodeError
	require.ErrorAs(t, err, &de)
	require.Equal(t, "value", de.Part)
	kvs, err := out.ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []streamtest.KeyValue[string, string]{streamtest.KV("e", "ve")}, kvs)
}

// TestBreadthFirst checks that records written to topics the topology
// reads are processed after the record that wrote them, in write order.
func TestBreadthFirst(t *testing.T) {
	var log []string
	topo := build(t, func(b *stream.Builder) {
		words := stream.FlatMapValues(stream.From(b, "in", str, str), func(v string) iter.Seq[string] {
			return strings.FieldsSeq(v)
		}).Peek(func(_, w string) { log = append(log, "split:"+w) })
		words.To("words")
		stream.From(b, "words", str, str).
			Peek(func(_, w string) { log = append(log, "count:"+w) }).
			To("out")
	})
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "a b"))
	require.Equal(t, []string{"split:a", "split:b", "count:a", "count:b"}, log)
	vs, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, vs)
}

func TestLoopDetected(t *testing.T) {
	topo := build(t, func(b *stream.Builder) {
		stream.From(b, "ping", str, str).To("pong")
		stream.From(b, "pong", str, str).To("ping")
	})
	d, err := streamtest.New(topo, streamtest.MaxRecordsPerPipe(1000))
	require.NoError(t, err)
	defer d.Close()
	require.ErrorIs(t, streamtest.Input(d, "ping", str, str).Pipe(t.Context(), "k", "v"), streamtest.ErrLoop)
	require.Len(t, d.Records("pong"), 500)
}

func TestInternalTopicPartitions(t *testing.T) {
	// Two repartitions in a row: the second, without a count, takes the
	// first's; the first takes its sources' (3).
	var tasks []stream.TaskID
	topo := build(t, func(b *stream.Builder) {
		s := stream.From(b, "in", str, str).Repartition(stream.Named("first"))
		s = stream.SelectKey(s, func(_, v string) string { return v }).Repartition(stream.Named("second"))
		stream.Process(s, func() stream.Processor[string, string, string, string] { return &recordTask{tasks: &tasks} }).
			To("out")
	})
	d, err := streamtest.New(topo, streamtest.Partitions("in", 3), streamtest.AppID("my-app"))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "in", str, str)
	values := []string{"v0", "v1", "v2", "v3", "v4", "v5"}
	for _, v := range values {
		require.NoError(t, in.Pipe(t.Context(), "k", v))
	}
	require.Len(t, d.Records("my-app-first-repartition"), 6)
	second := d.Records("my-app-second-repartition")
	require.Len(t, second, 6)
	parts := make(map[int32]bool)
	for _, r := range second {
		require.Equal(t, broker.KeyPartition(r.Key, 3), r.Partition)
		parts[r.Partition] = true
	}
	require.Greater(t, len(parts), 1, "the second repartition spreads keys over 3 partitions")
	require.Len(t, tasks, 6)
	for _, id := range tasks {
		require.Equal(t, 2, id.SubTopology)
		require.Less(t, id.Partition, int32(3))
	}
}

type recordTask struct {
	pc    stream.ProcessorContext[string, string]
	tasks *[]stream.TaskID
}

func (p *recordTask) Init(pc stream.ProcessorContext[string, string]) error { p.pc = pc; return nil }
func (p *recordTask) Close() error                                          { return nil }
func (p *recordTask) Process(ctx context.Context, r stream.Record[string, string]) error {
	*p.tasks = append(*p.tasks, p.pc.TaskID())
	return p.pc.Forward(ctx, r)
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var nows []time.Time
	topo := build(t, func(b *stream.Builder) {
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
			return &clockProc{nows: &nows}
		}).To("out")
	})
	d, err := streamtest.New(topo, streamtest.StartTime(start))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "in", str, str)
	require.NoError(t, in.Pipe(t.Context(), "k", "a"))
	d.Advance(90 * time.Second)
	require.Equal(t, start.Add(90*time.Second), d.Now())
	require.NoError(t, in.Pipe(t.Context(), "k", "b"))
	require.NoError(t, in.PipeAt(t.Context(), "k", "c", start.Add(-time.Hour)))
	require.Equal(t, []time.Time{start, start.Add(90 * time.Second), start.Add(90 * time.Second)}, nows)
	recs, err := streamtest.Output(d, "out", str, str).ReadAll()
	require.NoError(t, err)
	ts := make([]time.Time, len(recs))
	for i, r := range recs {
		ts[i] = r.Timestamp
	}
	require.Equal(t, []time.Time{start, start.Add(90 * time.Second), start.Add(-time.Hour)}, ts)
}

type clockProc struct {
	pc   stream.ProcessorContext[string, string]
	nows *[]time.Time
}

func (p *clockProc) Init(pc stream.ProcessorContext[string, string]) error { p.pc = pc; return nil }
func (p *clockProc) Close() error                                          { return nil }
func (p *clockProc) Process(ctx context.Context, r stream.Record[string, string]) error {
	*p.nows = append(*p.nows, p.pc.Now())
	return p.pc.Forward(ctx, r)
}

// TestErrorKeepsEarlierOutputs: the records of a pipe are committed one
// by one, so the output of those processed before the failing one stays
// written; the failing record's own output is dropped with its state
// writes, as the runtime drops a record its error policy skips, and the
// records after it are processed.
func TestErrorKeepsEarlierOutputs(t *testing.T) {
	errStop := errors.New("stop")
	topo := build(t, func(b *stream.Builder) {
		stream.FlatMapValues(stream.From(b, "in", str, str), func(v string) iter.Seq[string] {
			return slices.Values(strings.Split(v, ","))
		}).To("words")
		s := stream.From(b, "words", str, str)
		s.To("out")
		stream.Process(s, func() stream.Processor[string, string, string, string] { return &failOn{value: "x", err: errStop} })
	})
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer d.Close()
	require.ErrorIs(t, streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "a,x,b"), errStop)
	vs, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, vs, "a was committed before x failed; x's output is dropped; b comes after it")
	require.Len(t, d.Records("words"), 3, "the first record's output was committed whole")
}

// TestErrorDropsRecordOutput: a record that fails leaves no output, also
// the output its steps wrote before the failing one.
func TestErrorDropsRecordOutput(t *testing.T) {
	errStop := errors.New("stop")
	topo := build(t, func(b *stream.Builder) {
		s := stream.FlatMapValues(stream.From(b, "in", str, str), func(v string) iter.Seq[string] {
			return slices.Values(strings.Split(v, ","))
		})
		s.To("out")
		stream.Process(s, func() stream.Processor[string, string, string, string] { return &failOn{value: "x", err: errStop} })
	})
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "in", str, str)
	require.ErrorIs(t, in.Pipe(t.Context(), "k", "a,x,b"), errStop)
	require.Empty(t, d.Records("out"), "a was written before x failed, in the same record")
	require.NoError(t, in.Pipe(t.Context(), "k", "c"))
	vs, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, vs, "the driver goes on after the failed record")
}

type failOn struct {
	value string
	err   error
}

func (p *failOn) Init(stream.ProcessorContext[string, string]) error { return nil }
func (p *failOn) Close() error                                       { return nil }
func (p *failOn) Process(_ context.Context, r stream.Record[string, string]) error {
	if r.Value == p.value {
		return p.err
	}
	return nil
}

func TestLogger(t *testing.T) {
	var buf strings.Builder
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	topo := build(t, func(b *stream.Builder) {
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
			return &logProc{}
		}, stream.Named("logger")).To("out")
	})
	d, err := streamtest.New(topo, streamtest.Logger(logger), streamtest.Partitions("in", 2))
	require.NoError(t, err)
	defer d.Close()
	require.Equal(t, "level=INFO msg=init app=test task=0_0 node=logger\nlevel=INFO msg=init app=test task=0_1 node=logger\n", buf.String())
}

type logProc struct{}

func (logProc) Init(pc stream.ProcessorContext[string, string]) error {
	pc.Logger().Info("init")
	return nil
}
func (logProc) Close() error                                                 { return nil }
func (logProc) Process(context.Context, stream.Record[string, string]) error { return nil }

func TestPipeStopsWhenContextEnds(t *testing.T) {
	topo := build(t, func(b *stream.Builder) {
		stream.From(b, "in", str, str).To("mid")
		stream.From(b, "mid", str, str).To("out")
	})
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer d.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, streamtest.Input(d, "in", str, str).Pipe(ctx, "k", "v"), context.Canceled)
	require.Empty(t, d.Records("mid"))
	require.NoError(t, streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "v"))
	require.Len(t, d.Records("out"), 1)
}

// TestErrorKeepsQueuedRecords: a record that fails does not stop the
// records queued behind it, in topics the topology reads: they are
// processed as the runtime processes them under SkipOnError, and a later
// pipe does not move their partitions' positions past them.
func TestErrorKeepsQueuedRecords(t *testing.T) {
	topo := build(t, func(b *stream.Builder) {
		words := stream.FlatMapValues(stream.From(b, "in", str, str), func(v string) iter.Seq[string] {
			return strings.FieldsSeq(v)
		})
		stream.SelectKey(words, func(_, w string) string { return w }).
			Repartition(stream.Named("words")).
			Filter(func(_, w string) bool {
				if w == "a" {
					panic("no a")
				}
				return true
			}).
			To("out")
	})
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "in", str, str)
	for range 2 {
		err := in.Pipe(t.Context(), "k", "a b")
		var pe *stream.PanicError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, "no a", pe.Value)
	}
	require.Len(t, d.Records("test-words-repartition"), 4)
	vs, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"b", "b"}, vs, "b comes after the failed a in the repartition topic")
}

// TestErrorsOfOnePipeJoined: each record of a pipe that fails is in the
// pipe's error.
func TestErrorsOfOnePipeJoined(t *testing.T) {
	errA, errB := errors.New("a failed"), errors.New("b failed")
	topo := build(t, func(b *stream.Builder) {
		stream.FlatMapValues(stream.From(b, "in", str, str), func(v string) iter.Seq[string] {
			return strings.FieldsSeq(v)
		}).To("words")
		s := stream.From(b, "words", str, str)
		stream.Process(s, func() stream.Processor[string, string, string, string] { return &failOn{value: "a", err: errA} })
		stream.Process(s, func() stream.Processor[string, string, string, string] { return &failOn{value: "b", err: errB} })
		s.To("out")
	})
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer d.Close()
	err = streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "a c b")
	require.ErrorIs(t, err, errA)
	require.ErrorIs(t, err, errB)
	vs, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, vs)
}

// TestFailedPunctuationKeepsOthers: a wall-clock punctuation that fails
// does not stop the others, nor the processing of what they wrote.
func TestFailedPunctuationKeepsOthers(t *testing.T) {
	errTick := errors.New("tick failed")
	topo := build(t, func(b *stream.Builder) {
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
			return &ticker{err: errTick}
		}).To("ticks")
		stream.From(b, "ticks", str, str).To("out")
	})
	d, err := streamtest.New(topo, streamtest.Partitions("in", 2))
	require.NoError(t, err)
	defer d.Close()
	err = d.AdvanceWallClock(t.Context(), time.Minute)
	require.ErrorIs(t, err, errTick)
	vs, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"tick 0_1"}, vs, "task 0_1's punctuation output reaches out through ticks")
}

// ticker forwards "tick <task>" every wall-clock minute; task 0_0's
// punctuation fails with err.
type ticker struct {
	pc  stream.ProcessorContext[string, string]
	err error
}

func (p *ticker) Init(pc stream.ProcessorContext[string, string]) error {
	p.pc = pc
	_, err := pc.Schedule(time.Minute, stream.PunctuateWallClock, func(ctx context.Context, _ time.Time) error {
		if pc.TaskID().Partition == 0 {
			return p.err
		}
		return pc.Forward(ctx, stream.Record[string, string]{Key: "k", Value: "tick " + pc.TaskID().String()})
	})
	return err
}
func (p *ticker) Close() error                                                 { return nil }
func (p *ticker) Process(context.Context, stream.Record[string, string]) error { return nil }
