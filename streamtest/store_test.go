package streamtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

var (
	i64     = codec.Int64()
	errBoom = errors.New("boom")
)

// counter counts records per key in the store "counts" and forwards the
// key's new count. Values steer it: "xN" increments N times within the
// record (N writes of the key), "del" deletes the key (forwarding 0),
// "boom" increments and then fails the record.
type counter struct {
	pc stream.ProcessorContext[string, int64]
	kv stream.BytesStore
}

func (c *counter) Init(pc stream.ProcessorContext[string, int64]) error {
	c.pc = pc
	kv, err := pc.Store("counts")
	c.kv = kv
	return err
}

func (c *counter) Process(ctx context.Context, r stream.Record[string, string]) error {
	key := []byte(r.Key)
	if r.Value == "del" {
		if err := c.kv.Delete(key); err != nil {
			return err
		}
		return c.pc.Forward(ctx, stream.Record[string, int64]{Key: r.Key})
	}
	times := 1
	if n, ok := strings.CutPrefix(r.Value, "x"); ok {
		if _, err := fmt.Sscan(n, &times); err != nil {
			return err
		}
	}
	var n int64
	for range times {
		raw, ok, err := c.kv.Get(key)
		if err != nil {
			return err
		}
		n = 0
		if ok {
			if n, err = i64.Decode(raw); err != nil {
				return err
			}
		}
		n++
		v, err := i64.Append(nil, n)
		if err != nil {
			return err
		}
		if err := c.kv.Put(key, v); err != nil {
			return err
		}
	}
	if r.Value == "boom" {
		return errBoom
	}
	return c.pc.Forward(ctx, stream.Record[string, int64]{Key: r.Key, Value: n})
}

func (c *counter) Close() error { return nil }

// countTopology counts the records of "in" per key into "counts", after a
// repartition when repartition is set.
func countTopology(repartition bool) func(b *stream.Builder) {
	return func(b *stream.Builder) {
		s := stream.From(b, "in", str, str)
		if repartition {
			s = s.Repartition(stream.Named("rekeyed"))
		}
		stream.Process(s, func() stream.Processor[string, string, string, int64] { return &counter{} },
			stream.WithStores(stream.BytesStoreSpec("counts"))).To("counts")
	}
}

func TestStoreCounter(t *testing.T) {
	tests := []struct {
		name        string
		repartition bool
		opts        []streamtest.Option
		partitions  int32
	}{
		{name: "one partition", partitions: 1},
		{name: "four partitions", opts: []streamtest.Option{streamtest.DefaultPartitions(4)}, partitions: 4},
		{name: "after a repartition", repartition: true, opts: []streamtest.Option{streamtest.Partitions("in", 3)}, partitions: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := streamtest.New(build(t, countTopology(tt.repartition)), tt.opts...)
			require.NoError(t, err)
			defer d.Close()
			n, err := d.StorePartitions("counts")
			require.NoError(t, err)
			require.Equal(t, tt.partitions, n)

			in := streamtest.Input(d, "in", str, str)
			want := map[string]int64{}
			for i := range 200 {
				k := fmt.Sprintf("key-%d", i%13)
				require.NoError(t, in.Pipe(t.Context(), k, "v"))
				want[k]++
			}
			view := streamtest.Store(d, "counts", str, i64)
			for k, c := range want {
				got, ok, err := view.Get(k)
				require.NoError(t, err)
				require.True(t, ok, k)
				require.Equal(t, c, got, k)
			}
			all, err := view.All()
			require.NoError(t, err)
			require.Len(t, all, len(want))
			seen := map[int32]bool{}
			for _, kv := range all {
				require.Equal(t, want[kv.Key], kv.Value, kv.Key)
			}

			// One changelog record per processed record, on the partition
			// of its task, with the newest count.
			changelog := d.Records("test-counts-changelog")
			require.Len(t, changelog, 200)
			last := map[string]int64{}
			for _, r := range changelog {
				require.Equal(t, broker.KeyPartition(r.Key, n), r.Partition, string(r.Key))
				seen[r.Partition] = true
				v, err := i64.Decode(r.Value)
				require.NoError(t, err)
				require.Greater(t, v, last[string(r.Key)], "counts grow in offset order")
				last[string(r.Key)] = v
			}
			require.Equal(t, want, last)
			require.Len(t, seen, int(n), "keys spread over every partition")

			// The output agrees with the state.
			out, err := streamtest.Output(d, "counts", str, i64).ReadKeyValues()
			require.NoError(t, err)
			require.Len(t, out, 200)
		})
	}
}

func TestStoreChangelogPerRecord(t *testing.T) {
	tests := []struct {
		name  string
		pipe  []streamtest.KeyValue[string, string]
		want  []streamtest.KeyValue[string, int64] // changelog, 0 = tombstone
		state map[string]int64
	}{
		{
			name:  "repeated writes of a key log its newest value once",
			pipe:  []streamtest.KeyValue[string, string]{streamtest.KV("a", "x3"), streamtest.KV("a", "x2")},
			want:  []streamtest.KeyValue[string, int64]{streamtest.KV("a", int64(3)), streamtest.KV("a", int64(5))},
			state: map[string]int64{"a": 5},
		},
		{
			name:  "a deletion logs a tombstone",
			pipe:  []streamtest.KeyValue[string, string]{streamtest.KV("a", "v"), streamtest.KV("b", "v"), streamtest.KV("a", "del")},
			want:  []streamtest.KeyValue[string, int64]{streamtest.KV("a", int64(1)), streamtest.KV("b", int64(1)), streamtest.KV("a", int64(0))},
			state: map[string]int64{"b": 1},
		},
		{
			name:  "a count restarts after a deletion",
			pipe:  []streamtest.KeyValue[string, string]{streamtest.KV("a", "x4"), streamtest.KV("a", "del"), streamtest.KV("a", "v")},
			want:  []streamtest.KeyValue[string, int64]{streamtest.KV("a", int64(4)), streamtest.KV("a", int64(0)), streamtest.KV("a", int64(1))},
			state: map[string]int64{"a": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := streamtest.New(build(t, countTopology(false)), streamtest.AppID("app"))
			require.NoError(t, err)
			defer d.Close()
			in := streamtest.Input(d, "in", str, str)
			for _, kv := range tt.pipe {
				require.NoError(t, in.Pipe(t.Context(), kv.Key, kv.Value))
			}
			recs := d.Records("app-counts-changelog")
			require.Len(t, recs, len(tt.want))
			for i, r := range recs {
				require.Equal(t, tt.want[i].Key, string(r.Key))
				require.Equal(t, int64(i), r.Offset)
				if tt.want[i].Value == 0 {
					require.Nil(t, r.Value, "tombstone")
					continue
				}
				v, err := i64.Decode(r.Value)
				require.NoError(t, err)
				require.Equal(t, tt.want[i].Value, v)
			}
			all, err := streamtest.Store(d, "counts", str, i64).All()
			require.NoError(t, err)
			got := map[string]int64{}
			for _, kv := range all {
				got[kv.Key] = kv.Value
			}
			require.Equal(t, tt.state, got)
		})
	}
}

func TestStoreErrorUndoesRecordWrites(t *testing.T) {
	d, err := streamtest.New(build(t, countTopology(false)), streamtest.DefaultPartitions(2))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "in", str, str)
	view := streamtest.Store(d, "counts", str, i64)
	for range 2 {
		require.NoError(t, in.Pipe(t.Context(), "a", "v"))
	}

	err = in.Pipe(t.Context(), "a", "boom") // increments, then fails
	require.ErrorIs(t, err, errBoom)
	got, ok, err := view.Get("a")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(2), got, "the failed record's write is undone")
	require.Len(t, d.Records("test-counts-changelog"), 2, "and not logged")

	err = in.Pipe(t.Context(), "new", "boom")
	require.ErrorIs(t, err, errBoom)
	_, ok, err = view.Get("new")
	require.NoError(t, err)
	require.False(t, ok, "a key first written by a failed record stays absent")

	// The next record sees the state before the failed one.
	require.NoError(t, in.Pipe(t.Context(), "a", "v"))
	got, _, err = view.Get("a")
	require.NoError(t, err)
	require.Equal(t, int64(3), got)
	recs := d.Records("test-counts-changelog")
	require.Len(t, recs, 3)
	v, err := i64.Decode(recs[2].Value)
	require.NoError(t, err)
	require.Equal(t, int64(3), v)
}

// scanner puts the record's key, deletes the key named by a "del:"
// value, and forwards the pairs a full Range and a Range over [b, d) then
// see: "full|bounded". Visiting "a" in the full Range, it puts "a0" (which
// that Range does not see).
type scanner struct {
	pc stream.ProcessorContext[string, string]
	kv stream.BytesStore
}

func (s *scanner) Init(pc stream.ProcessorContext[string, string]) error {
	s.pc = pc
	var err error
	s.kv, err = pc.Store("kv")
	return err
}

func (s *scanner) scan(start, end []byte) (string, error) {
	pairs, errf := s.kv.Range(start, end)
	var kvs []string
	for k, v := range pairs {
		kvs = append(kvs, string(k)+"="+string(v))
		if string(k) == "a" {
			if err := s.kv.Put([]byte("a0"), []byte("x")); err != nil {
				return "", err
			}
		}
	}
	return strings.Join(kvs, ","), errf()
}

func (s *scanner) Process(ctx context.Context, r stream.Record[string, string]) error {
	if err := s.kv.Put([]byte(r.Key), []byte(r.Value)); err != nil {
		return err
	}
	if del, ok := strings.CutPrefix(r.Value, "del:"); ok {
		if err := s.kv.Delete([]byte(del)); err != nil {
			return err
		}
	}
	full, err := s.scan(nil, nil)
	if err != nil {
		return err
	}
	bounded, err := s.scan([]byte("b"), []byte("d"))
	if err != nil {
		return err
	}
	return s.pc.Forward(ctx, stream.Record[string, string]{Key: r.Key, Value: full + "|" + bounded})
}

func (s *scanner) Close() error { return nil }

func TestStoreRangeSeesOwnWrites(t *testing.T) {
	d, err := streamtest.New(build(t, func(b *stream.Builder) {
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] { return &scanner{} },
			stream.WithStores(stream.BytesStoreSpec("kv"))).To("out")
	}))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "in", str, str)
	out := streamtest.Output(d, "out", str, str)
	tests := []struct {
		key, value string
		want       string
	}{
		{"b", "1", "b=1|b=1"},
		{"a", "1", "a=1,b=1|b=1"},
		{"d", "1", "a=1,a0=x,b=1,d=1|b=1"},
		{"c", "del:b", "a=1,a0=x,c=del:b,d=1|c=del:b"},
		{"b", "2", "a=1,a0=x,b=2,c=del:b,d=1|b=2,c=del:b"},
	}
	for _, tt := range tests {
		require.NoError(t, in.Pipe(t.Context(), tt.key, tt.value))
		got, err := out.ReadValues()
		require.NoError(t, err)
		require.Equal(t, []string{tt.want}, got, "%s=%s", tt.key, tt.value)
	}
	var keys []string
	pairs, errf := d.StoreAll("kv", 0)
	for k := range pairs {
		keys = append(keys, string(k))
	}
	require.NoError(t, errf())
	require.Equal(t, []string{"a", "a0", "b", "c", "d"}, keys)
}

// undeclared asks for a store it did not declare.
type undeclared struct{}

func (undeclared) Init(pc stream.ProcessorContext[string, string]) error {
	_, err := pc.Store("other")
	return err
}
func (undeclared) Process(context.Context, stream.Record[string, string]) error { return nil }
func (undeclared) Close() error                                                 { return nil }

func TestStoreErrors(t *testing.T) {
	_, err := streamtest.New(build(t, func(b *stream.Builder) {
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] { return undeclared{} },
			stream.WithStores(stream.BytesStoreSpec("mine")))
	}))
	require.ErrorIs(t, err, stream.ErrUnknownStore, "a store the step did not declare")

	d, err := streamtest.New(build(t, countTopology(false)), streamtest.DefaultPartitions(2))
	require.NoError(t, err)
	tests := []struct {
		name      string
		store     string
		partition int32
		is        error
	}{
		{name: "unknown store", store: "nope", is: stream.ErrUnknownStore},
		{name: "negative partition", store: "counts", partition: -1, is: broker.ErrUnknownPartition},
		{name: "partition past the last", store: "counts", partition: 2, is: broker.ErrUnknownPartition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := d.StoreGet(tt.store, tt.partition, []byte("k"))
			require.ErrorIs(t, err, tt.is)
			pairs, errf := d.StoreAll(tt.store, tt.partition)
			for range pairs {
				t.Fatal("yielded a pair")
			}
			require.ErrorIs(t, errf(), tt.is)
			_, _, err = streamtest.Store(d, tt.store, str, i64).GetPartition(tt.partition, "k")
			require.ErrorIs(t, err, tt.is)
		})
	}
	_, err = streamtest.Store(d, "nope", str, i64).All()
	require.ErrorIs(t, err, stream.ErrUnknownStore)
	_, _, err = streamtest.Store[string, int64](d, "counts", nil, i64).Get("k")
	require.ErrorIs(t, err, stream.ErrNilCodec)

	// A value the view's codec cannot decode.
	require.NoError(t, streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "v"))
	_, _, err = streamtest.Store(d, "counts", str, codec.JSON[[]string]()).Get("k")
	var de *codec.DecodeError
	require.ErrorAs(t, err, &de)
	require.Equal(t, "test-counts-changelog", de.Topic)

	require.NoError(t, d.Close())
	_, _, err = d.StoreGet("counts", 0, []byte("k"))
	require.ErrorIs(t, err, streamtest.ErrClosed)
}

// lifecycle writes "init" in Init, fails every record after writing its
// key, and writes "close" in Close.
type lifecycle struct{ kv stream.BytesStore }

func (l *lifecycle) Init(pc stream.ProcessorContext[string, string]) error {
	var err error
	if l.kv, err = pc.Store("kv"); err != nil {
		return err
	}
	return l.kv.Put([]byte("init"), []byte("1"))
}

func (l *lifecycle) Process(_ context.Context, r stream.Record[string, string]) error {
	if err := l.kv.Put([]byte(r.Key), []byte(r.Value)); err != nil {
		return err
	}
	return errBoom
}

func (l *lifecycle) Close() error { return l.kv.Put([]byte("close"), []byte("1")) }

func TestStoreInitAndCloseWrites(t *testing.T) {
	d, err := streamtest.New(build(t, func(b *stream.Builder) {
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] { return &lifecycle{} },
			stream.WithStores(stream.BytesStoreSpec("kv")))
	}), streamtest.DefaultPartitions(2))
	require.NoError(t, err)
	for p := range int32(2) {
		v, ok, err := d.StoreGet("kv", p, []byte("init"))
		require.NoError(t, err)
		require.True(t, ok, "Init's write is committed with the task, partition %d", p)
		require.Equal(t, []byte("1"), v)
	}
	require.Len(t, d.Records("test-kv-changelog"), 2)

	require.ErrorIs(t, streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "v"), errBoom)
	p := broker.KeyPartition([]byte("k"), 2)
	_, ok, err := d.StoreGet("kv", p, []byte("k"))
	require.NoError(t, err)
	require.False(t, ok)
	_, ok, err = d.StoreGet("kv", p, []byte("init"))
	require.NoError(t, err)
	require.True(t, ok, "a failed record does not undo Init's writes")

	require.NoError(t, d.Close(), "writes from Close succeed")
	require.Len(t, d.Records("test-kv-changelog"), 2, "but are not written")
}
