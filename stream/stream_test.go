package stream_test

import (
	"context"
	"errors"
	"iter"
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

type kv = streamtest.KeyValue[string, string]

var str = codec.String()

// newDriver builds the topology and returns a driver closed at cleanup.
func newDriver(t *testing.T, b *stream.Builder, opts ...streamtest.Option) *streamtest.Driver {
	t.Helper()
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	return d
}

func pipeAll(t *testing.T, in *streamtest.InputTopic[string, string], kvs []kv) {
	t.Helper()
	for _, r := range kvs {
		require.NoError(t, in.Pipe(t.Context(), r.Key, r.Value))
	}
}

func readKVs(t *testing.T, d *streamtest.Driver, topic string) []kv {
	t.Helper()
	got, err := streamtest.Output(d, topic, str, str).ReadKeyValues()
	require.NoError(t, err)
	return got
}

func TestStatelessSteps(t *testing.T) {
	input := []kv{{Key: "a", Value: "one two"}, {Key: "b", Value: ""}, {Key: "c", Value: "three"}}
	tests := []struct {
		name  string
		build func(s stream.Stream[string, string]) stream.Stream[string, string]
		want  []kv
	}{
		{
			name: "filter",
			build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
				return s.Filter(func(_, v string) bool { return v != "" })
			},
			want: []kv{{Key: "a", Value: "one two"}, {Key: "c", Value: "three"}},
		},
		{
			name: "filter-not",
			build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
				return s.FilterNot(func(k, _ string) bool { return k == "a" })
			},
			want: []kv{{Key: "b", Value: ""}, {Key: "c", Value: "three"}},
		},
		{
			name: "map",
			build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
				return stream.Map(s, func(k, v string) (string, string) { return v, k })
			},
			want: []kv{{Key: "one two", Value: "a"}, {Key: "", Value: "b"}, {Key: "three", Value: "c"}},
		},
		{
			name: "map-values",
			build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
				return stream.MapValues(s, strings.ToUpper)
			},
			want: []kv{{Key: "a", Value: "ONE TWO"}, {Key: "b", Value: ""}, {Key: "c", Value: "THREE"}},
		},
		{
			name: "select-key",
			build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
				return stream.SelectKey(s, func(k, v string) string { return k + "/" + v })
			},
			want: []kv{{Key: "a/one two", Value: "one two"}, {Key: "b/", Value: ""}, {Key: "c/three", Value: "three"}},
		},
		{
			name: "flat-map",
			build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
				return stream.FlatMap(s, func(k, v string) iter.Seq2[string, string] {
					if v == "" {
						return nil // a nil sequence yields nothing
					}
					return func(yield func(string, string) bool) {
						for w := range strings.FieldsSeq(v) {
							if !yield(w, k) {
								return
							}
						}
					}
				})
			},
			want: []kv{{Key: "one", Value: "a"}, {Key: "two", Value: "a"}, {Key: "three", Value: "c"}},
		},
		{
			name: "flat-map-values",
			build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
				return stream.FlatMapValues(s, func(v string) iter.Seq[string] { return strings.FieldsSeq(v) })
			},
			want: []kv{{Key: "a", Value: "one"}, {Key: "a", Value: "two"}, {Key: "c", Value: "three"}},
		},
		{
			name: "type-changing chain",
			build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
				n := stream.MapValues(s, func(v string) int64 { return int64(len(v)) })
				big := n.Filter(func(_ string, n int64) bool { return n > 3 })
				return stream.MapValues(big, func(n int64) string { return strings.Repeat("x", int(n)) })
			},
			want: []kv{{Key: "a", Value: "xxxxxxx"}, {Key: "c", Value: "xxxxx"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tt.build(stream.From(b, "in", str, str)).To("out")
			d := newDriver(t, b)
			pipeAll(t, streamtest.Input(d, "in", str, str), input)
			require.Equal(t, tt.want, readKVs(t, d, "out"))
		})
	}
}

func TestPeekAndForeach(t *testing.T) {
	b := stream.NewBuilder()
	var peeked, each []string
	s := stream.From(b, "in", str, str).Peek(func(k, _ string) { peeked = append(peeked, k) })
	s.Filter(func(_, v string) bool { return v == "x" }).Foreach(func(k, v string) { each = append(each, k+"="+v) })
	s.To("out")
	d := newDriver(t, b)
	pipeAll(t, streamtest.Input(d, "in", str, str), []kv{{Key: "a", Value: "x"}, {Key: "b", Value: "y"}})
	require.Equal(t, []string{"a", "b"}, peeked)
	require.Equal(t, []string{"a=x"}, each)
	require.Equal(t, []kv{{Key: "a", Value: "x"}, {Key: "b", Value: "y"}}, readKVs(t, d, "out"))
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name        string
		withDefault bool
		want        map[string][]kv
	}{
		{
			name:        "with default",
			withDefault: true,
			want: map[string][]kv{
				"small": {{Key: "a", Value: "1"}, {Key: "b", Value: "5"}},
				"odd":   {{Key: "d", Value: "7"}},
				"other": {{Key: "c", Value: "8"}},
			},
		},
		{
			name: "without default",
			want: map[string][]kv{
				"small": {{Key: "a", Value: "1"}, {Key: "b", Value: "5"}},
				"odd":   {{Key: "d", Value: "7"}},
				"other": nil,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			br := stream.From(b, "in", str, str).Split(stream.Named("route"))
			// "5" matches both predicates: the first branch added wins.
			br.Branch("small", func(_, v string) bool { return v <= "5" }).To("small")
			br.Branch("odd", func(_, v string) bool { return strings.ContainsAny(v, "13579") }).To("odd")
			if tt.withDefault {
				br.Default().To("other")
				require.Equal(t, br.Default(), br.Default())
			}
			d := newDriver(t, b)
			pipeAll(t, streamtest.Input(d, "in", str, str), []kv{{Key: "a", Value: "1"}, {Key: "b", Value: "5"}, {Key: "c", Value: "8"}, {Key: "d", Value: "7"}})
			for topic, want := range tt.want {
				got := readKVs(t, d, topic)
				if want == nil {
					require.Empty(t, got, topic)
					continue
				}
				require.Equal(t, want, got, topic)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	b := stream.NewBuilder()
	a := stream.From(b, "a", str, str)
	c := stream.FromTopics(b, []string{"c1", "c2"}, str, str)
	tagged := stream.MapValues(a, func(v string) string { return "a:" + v })
	tagged.Merge(c, tagged).To("out") // merging a stream with itself duplicates it
	topo, err := b.Build()
	require.NoError(t, err)
	require.Contains(t, topo.Describe(), "Source: source-1 (topics: [c1, c2])")
	require.NotContains(t, topo.Describe(), "Sub-topology 1")
	d := newDriver(t, b)
	require.NoError(t, streamtest.Input(d, "a", str, str).Pipe(t.Context(), "k", "1"))
	require.NoError(t, streamtest.Input(d, "c2", str, str).Pipe(t.Context(), "k", "2"))
	require.NoError(t, streamtest.Input(d, "c1", str, str).Pipe(t.Context(), "k", "3"))
	require.Equal(t, []kv{{Key: "k", Value: "a:1"}, {Key: "k", Value: "a:1"}, {Key: "k", Value: "2"}, {Key: "k", Value: "3"}}, readKVs(t, d, "out"))
}

func TestToFunc(t *testing.T) {
	b := stream.NewBuilder()
	stream.From(b, "in", str, str).ToFunc(func(k, v string, rc stream.RecordContext) string {
		return rc.Topic + "-" + v
	})
	topo, err := b.Build()
	require.NoError(t, err)
	require.Empty(t, sinks(topo), "per-record topics are not listed as sinks")
	require.Contains(t, topo.Describe(), "Sink: sink-1 (topic chosen per record)")

	// Topics chosen per record must exist, as for the runtime.
	d := newDriver(t, b, streamtest.Partitions("in-x", 1), streamtest.Partitions("in-y", 1))
	in := streamtest.Input(d, "in", str, str)
	pipeAll(t, in, []kv{{Key: "a", Value: "x"}, {Key: "b", Value: "y"}, {Key: "c", Value: "x"}})
	require.Equal(t, []kv{{Key: "a", Value: "x"}, {Key: "c", Value: "x"}}, readKVs(t, d, "in-x"))
	require.Equal(t, []kv{{Key: "b", Value: "y"}}, readKVs(t, d, "in-y"))

	err = in.Pipe(t.Context(), "d", "not/valid")
	require.ErrorIs(t, err, broker.ErrInvalidTopicName)
	ne, ok := errors.AsType[*stream.NodeError](err)
	require.True(t, ok)
	require.Equal(t, "sink-1", ne.Node)
	require.Equal(t, int64(3), ne.Offset)
}

func TestTimestampsAndHeaders(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", str, str)
	s = stream.Map(s, func(k, v string) (string, string) { return v, k })
	s = stream.SelectKey(s, func(k, _ string) string { return "k" + k })
	s = stream.FlatMapValues(s, func(v string) iter.Seq[string] { return slices.Values([]string{v, v + "!"}) })
	s = s.Repartition(stream.Named("rekey"))
	s.To("out")
	d := newDriver(t, b)

	ts := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
	hdrs := []broker.Header{{Key: "trace", Value: []byte("t-1")}, {Key: "empty"}}
	require.NoError(t, streamtest.Input(d, "in", str, str).PipeRecord(t.Context(),
		streamtest.Record[string, string]{Key: "a", Value: "1", Timestamp: ts, Headers: hdrs}))
	recs, err := streamtest.Output(d, "out", str, str).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	for i, want := range []string{"a", "a!"} {
		require.Equal(t, "k1", recs[i].Key)
		require.Equal(t, want, recs[i].Value)
		require.Equal(t, ts.Truncate(time.Millisecond), recs[i].Timestamp)
		require.Equal(t, hdrs, recs[i].Headers)
	}

	// Without a timestamp, records get the driver's clock.
	d.Advance(time.Hour)
	require.NoError(t, streamtest.Input(d, "in", str, str).Pipe(t.Context(), "b", "2"))
	recs, err = streamtest.Output(d, "out", str, str).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, time.Unix(3600, 0).UTC(), recs[0].Timestamp)
	require.Nil(t, recs[0].Headers)
}

// countingCodec counts Decode calls.
type countingCodec struct {
	codec.Codec[string]
	decodes *int
}

func (c countingCodec) Decode(b []byte) (string, error) {
	*c.decodes++
	return c.Codec.Decode(b)
}

func TestNilKeysAndValues(t *testing.T) {
	var decodes int
	cc := countingCodec{Codec: str, decodes: &decodes}
	b := stream.NewBuilder()
	var seen []kv
	s := stream.From(b, "in", cc, cc).Peek(func(k, v string) { seen = append(seen, kv{Key: k, Value: v}) })
	s.To("out", stream.WithKeyCodec(str), stream.WithValueCodec(str))
	d := newDriver(t, b, streamtest.DefaultPartitions(3))

	require.NoError(t, streamtest.Input(d, "in", str, str).PipeTombstone(t.Context(), "gone"))
	require.Equal(t, 1, decodes, "the codec is not called for a nil value")
	require.NoError(t, d.PipeRaw(t.Context(), broker.Record{Topic: "in", Partition: 2, Key: nil, Value: []byte("v")}))
	require.Equal(t, 2, decodes, "the codec is not called for a nil key")
	require.NoError(t, streamtest.Input(d, "in", str, str).Pipe(t.Context(), "empty", ""))
	require.Equal(t, []kv{{Key: "gone", Value: ""}, {Key: "", Value: "v"}, {Key: "empty", Value: ""}}, seen)

	out := d.Records("out")
	require.Len(t, out, 3)
	byKey := make(map[string]broker.Record)
	for _, r := range out {
		byKey[string(r.Key)] = r
	}
	// The tombstone stays one.
	require.Equal(t, broker.KeyPartition([]byte("gone"), 3), byKey["gone"].Partition)
	require.Nil(t, byKey["gone"].Value)
	// A key absent at the source stays absent: written as no key, which
	// the driver puts on partition 0.
	require.Nil(t, byKey[""].Key)
	require.Equal(t, int32(0), byKey[""].Partition)
	require.Equal(t, []byte("v"), byKey[""].Value)
	// An empty value is not a tombstone.
	require.NotNil(t, byKey["empty"].Value)
	require.Empty(t, byKey["empty"].Value)
}

// TestComputedEmptyKeys checks that a key a step computes is written as
// encoded even when empty (Kafka Streams writes "" as an empty key, hashed
// like any other), while a key absent at the source stays absent only
// through steps that keep the key.
func TestComputedEmptyKeys(t *testing.T) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", str, str)
	in.Filter(func(string, string) bool { return true }).To("kept")
	stream.SelectKey(in, func(string, string) string { return "" }).To("selected")
	stream.Map(in, func(_, v string) (string, string) { return "", v }).To("mapped")
	stream.FlatMap(in, func(_, v string) iter.Seq2[string, string] {
		return func(yield func(string, string) bool) { yield("", v) }
	}).To("flat")
	d := newDriver(t, b, streamtest.DefaultPartitions(3))

	// One record with no key and one with an empty key.
	require.NoError(t, d.PipeRaw(t.Context(), broker.Record{Topic: "in", Partition: 1, Key: nil, Value: []byte("absent")}))
	require.NoError(t, d.PipeRaw(t.Context(), broker.Record{Topic: "in", Partition: 1, Key: []byte{}, Value: []byte("empty")}))

	kept := d.Records("kept")
	require.Len(t, kept, 2)
	for _, r := range kept {
		if string(r.Value) == "absent" {
			require.Nil(t, r.Key, "an absent key passes through a key-keeping step")
		} else {
			require.NotNil(t, r.Key, "an empty key read from the log stays a key")
			require.Empty(t, r.Key)
			require.Equal(t, broker.KeyPartition([]byte{}, 3), r.Partition)
		}
	}
	for _, topic := range []string{"selected", "mapped", "flat"} {
		recs := d.Records(topic)
		require.Len(t, recs, 2, topic)
		for _, r := range recs {
			require.NotNil(t, r.Key, "%s: a computed key is a key, even empty (%s)", topic, r.Value)
			require.Empty(t, r.Key)
			require.Equal(t, broker.KeyPartition([]byte{}, 3), r.Partition, topic)
		}
	}
}

func TestTombstones(t *testing.T) {
	tests := []struct {
		name      string
		build     func(s stream.Stream[string, string]) stream.Stream[string, string]
		tombstone bool // the output is a tombstone (nil value)
	}{
		{name: "to", build: func(s stream.Stream[string, string]) stream.Stream[string, string] { return s }, tombstone: true},
		{name: "filter", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			return s.Filter(func(string, string) bool { return true }).FilterNot(func(string, string) bool { return false })
		}, tombstone: true},
		{name: "select-key", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			return stream.SelectKey(s, func(k, _ string) string { return k + "2" })
		}, tombstone: true},
		{name: "split and merge", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			br := s.Split()
			return br.Branch("a", func(string, string) bool { return false }).Merge(br.Default())
		}, tombstone: true},
		{name: "repartition", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			return s.Repartition()
		}, tombstone: true},
		{name: "map-values", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			return stream.MapValues(s, func(v string) string { return "was:" + v })
		}},
		{name: "map", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			return stream.Map(s, func(k, v string) (string, string) { return k, "was:" + v })
		}},
		{name: "flat-map-values", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			return stream.FlatMapValues(s, func(v string) iter.Seq[string] { return slices.Values([]string{"was:" + v}) })
		}},
		{name: "process forwarding the input", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			return stream.Process(s, func() stream.Processor[string, string, string, string] {
				return &funcProcessor[string, string, string, string]{process: func(ctx context.Context, pc stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
					if !r.Tombstone {
						return errors.New("want a tombstone")
					}
					return pc.Forward(ctx, r)
				}}
			})
		}, tombstone: true},
		{name: "process forwarding a value", build: func(s stream.Stream[string, string]) stream.Stream[string, string] {
			return stream.Process(s, func() stream.Processor[string, string, string, string] {
				return &funcProcessor[string, string, string, string]{process: func(ctx context.Context, pc stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
					return pc.Forward(ctx, stream.Record[string, string]{Key: r.Key, Value: "was:"})
				}}
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			in := stream.From(b, "in", str, str)
			tt.build(in).To("out")
			in.To("copy") // a sibling added after: still sees the tombstone
			d := newDriver(t, b)
			require.NoError(t, streamtest.Input(d, "in", str, str).PipeTombstone(t.Context(), "k"))
			out := d.Records("out")
			require.Len(t, out, 1)
			if tt.tombstone {
				require.Nil(t, out[0].Value)
			} else {
				require.Equal(t, []byte("was:"), out[0].Value)
			}
			recs, err := streamtest.Output(d, "out", str, str).ReadAll()
			require.NoError(t, err)
			require.Equal(t, tt.tombstone, recs[0].Tombstone)
			cp := d.Records("copy")
			require.Len(t, cp, 1)
			require.Nil(t, cp[0].Value)
		})
	}
}

func TestRepartition(t *testing.T) {
	tests := []struct {
		name       string
		opts       []stream.Option
		topic      string
		partitions int32
	}{
		{name: "named with partitions", opts: []stream.Option{stream.Named("by-word"), stream.Partitions(4)}, topic: "app-by-word-repartition", partitions: 4},
		{name: "defaults", topic: "app-repartition-2-repartition", partitions: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			words := stream.FlatMap(stream.From(b, "in", str, str), func(_, v string) iter.Seq2[string, string] {
				return func(yield func(string, string) bool) {
					for w := range strings.FieldsSeq(v) {
						if !yield(w, w) {
							return
						}
					}
				}
			})
			type where struct {
				word string
				task stream.TaskID
				rc   stream.RecordContext
			}
			var seen []where
			re := words.Repartition(tt.opts...)
			stream.Process(re, func() stream.Processor[string, string, string, string] {
				return &funcProcessor[string, string, string, string]{process: func(ctx context.Context, pc stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
					seen = append(seen, where{word: r.Key, task: pc.TaskID(), rc: pc.RecordContext()})
					return pc.Forward(ctx, r)
				}}
			}).To("out")
			topo, err := b.Build()
			require.NoError(t, err)
			require.Contains(t, topo.Describe(), "Sub-topology 1")

			d := newDriver(t, b, streamtest.AppID("app"), streamtest.DefaultPartitions(2), streamtest.Partitions("out", tt.partitions))
			require.NoError(t, streamtest.Input(d, "in", str, str).Pipe(t.Context(), "line", "alpha beta gamma delta epsilon"))
			require.Len(t, seen, 5)
			for _, w := range seen {
				p := broker.KeyPartition([]byte(w.word), tt.partitions)
				require.Equal(t, stream.TaskID{SubTopology: 1, Partition: p}, w.task, w.word)
				require.Equal(t, tt.topic, w.rc.Topic)
				require.Equal(t, p, w.rc.Partition)
			}
			internal := d.Records(tt.topic)
			require.Len(t, internal, 5)
			out, err := streamtest.Output(d, "out", str, str).ReadAll()
			require.NoError(t, err)
			require.Len(t, out, 5)
			for _, r := range out {
				require.Equal(t, broker.KeyPartition([]byte(r.Key), tt.partitions), r.Partition)
			}
		})
	}
}

// funcProcessor is a Processor made of functions.
type funcProcessor[K, V, K2, V2 any] struct {
	pc      stream.ProcessorContext[K2, V2]
	init    func(stream.ProcessorContext[K2, V2]) error
	process func(context.Context, stream.ProcessorContext[K2, V2], stream.Record[K, V]) error
	close   func() error
}

func (p *funcProcessor[K, V, K2, V2]) Init(pc stream.ProcessorContext[K2, V2]) error {
	p.pc = pc
	if p.init != nil {
		return p.init(pc)
	}
	return nil
}

func (p *funcProcessor[K, V, K2, V2]) Process(ctx context.Context, r stream.Record[K, V]) error {
	return p.process(ctx, p.pc, r)
}

func (p *funcProcessor[K, V, K2, V2]) Close() error {
	if p.close != nil {
		return p.close()
	}
	return nil
}
