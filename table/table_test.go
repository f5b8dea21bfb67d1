package table_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

var (
	str = codec.String()
	i64 = codec.Int64()
)

type kv[V any] = streamtest.KeyValue[string, V]

// in is one input record of a script: Tombstone pipes a nil value,
// NoKey a nil key.
type in[V any] struct {
	Key       string
	Value     V
	Tombstone bool
	NoKey     bool
}

func pipe[V any](t *testing.T, d *streamtest.Driver, topic string, vc codec.Codec[V], recs []in[V]) {
	t.Helper()
	ctx := t.Context()
	input := streamtest.Input(d, topic, str, vc)
	for _, r := range recs {
		switch {
		case r.NoKey:
			val, err := vc.Append(nil, r.Value)
			require.NoError(t, err)
			require.NoError(t, d.PipeRaw(ctx, broker.Record{Topic: topic, Value: val}))
		case r.Tombstone:
			require.NoError(t, input.PipeTombstone(ctx, r.Key))
		case r.Key == "":
			// Input.Pipe sends an empty encoded key as an absent one.
			val, err := vc.Append(nil, r.Value)
			require.NoError(t, err)
			require.NoError(t, d.PipeRaw(ctx, broker.Record{Topic: topic, Key: []byte{}, Value: val}))
		default:
			require.NoError(t, input.Pipe(ctx, r.Key, r.Value))
		}
	}
}

func newDriver(t *testing.T, build func(b *stream.Builder), opts ...streamtest.Option) *streamtest.Driver {
	t.Helper()
	b := stream.NewBuilder()
	build(b)
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, append([]streamtest.Option{streamtest.AppID("app")}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	return d
}

func TestCount(t *testing.T) {
	tests := []struct {
		name    string
		input   []in[string]
		state   []kv[int64] // by partition, then key
		updates []kv[int64] // ToStream, in order
	}{
		{
			name:    "counts per key",
			input:   []in[string]{{Key: "a"}, {Key: "b"}, {Key: "a"}, {Key: "a"}},
			state:   []kv[int64]{{Key: "a", Value: 3}, {Key: "b", Value: 1}},
			updates: []kv[int64]{{Key: "a", Value: 1}, {Key: "b", Value: 1}, {Key: "a", Value: 2}, {Key: "a", Value: 3}},
		},
		{
			name:    "tombstones and absent keys are dropped",
			input:   []in[string]{{Key: "a"}, {Key: "a", Tombstone: true}, {NoKey: true, Value: "x"}, {Key: "a"}},
			state:   []kv[int64]{{Key: "a", Value: 2}},
			updates: []kv[int64]{{Key: "a", Value: 1}, {Key: "a", Value: 2}},
		},
		{
			name:    "an empty key is a key",
			input:   []in[string]{{Key: ""}, {Key: ""}},
			state:   []kv[int64]{{Key: "", Value: 2}},
			updates: []kv[int64]{{Key: "", Value: 1}, {Key: "", Value: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, func(b *stream.Builder) {
				counts := table.Count(stream.GroupByKey(stream.From(b, "in", str, str)), "counts")
				counts.ToStream().To("out")
			})
			pipe(t, d, "in", str, tt.input)
			state, err := streamtest.Store(d, "counts", str, i64).All()
			require.NoError(t, err)
			require.Equal(t, tt.state, state)
			out, err := streamtest.Output(d, "out", str, i64).ReadKeyValues()
			require.NoError(t, err)
			require.Equal(t, tt.updates, out)
			// Every update is logged to the changelog.
			changelog, err := streamtest.Output(d, "app-counts-changelog", str, i64).ReadKeyValues()
			require.NoError(t, err)
			require.Equal(t, tt.updates, changelog)
		})
	}
}

func TestReduce(t *testing.T) {
	tests := []struct {
		name    string
		input   []in[int64]
		state   []kv[int64]
		updates []kv[int64]
	}{
		{
			name:    "first value is stored as is, later ones are summed",
			input:   []in[int64]{{Key: "a", Value: 5}, {Key: "b", Value: 1}, {Key: "a", Value: -2}},
			state:   []kv[int64]{{Key: "a", Value: 3}, {Key: "b", Value: 1}},
			updates: []kv[int64]{{Key: "a", Value: 5}, {Key: "b", Value: 1}, {Key: "a", Value: 3}},
		},
		{
			name:    "tombstones and absent keys are dropped",
			input:   []in[int64]{{Key: "a", Tombstone: true}, {NoKey: true, Value: 7}, {Key: "a", Value: 4}},
			state:   []kv[int64]{{Key: "a", Value: 4}},
			updates: []kv[int64]{{Key: "a", Value: 4}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, func(b *stream.Builder) {
				sums := table.Reduce(stream.GroupByKey(stream.From(b, "in", str, i64)),
					func(agg, v int64) int64 { return agg + v }, "sums")
				sums.ToStream().To("out")
			})
			pipe(t, d, "in", i64, tt.input)
			state, err := streamtest.Store(d, "sums", str, i64).All()
			require.NoError(t, err)
			require.Equal(t, tt.state, state)
			out, err := streamtest.Output(d, "out", str, i64).ReadKeyValues()
			require.NoError(t, err)
			require.Equal(t, tt.updates, out)
		})
	}
}

type stats struct {
	Count int64    `json:"count"`
	Sum   int64    `json:"sum"`
	Seen  []string `json:"seen"`
}

func TestAggregate(t *testing.T) {
	d := newDriver(t, func(b *stream.Builder) {
		agg := table.Aggregate(stream.GroupByKey(stream.From(b, "in", str, i64)),
			func() stats { return stats{Seen: []string{}} },
			func(k string, v int64, a stats) stats {
				return stats{Count: a.Count + 1, Sum: a.Sum + v, Seen: append(a.Seen, k)}
			},
			"stats", stream.WithValueCodec(codec.JSON[stats]()))
		agg.ToStream().To("out")
	})
	pipe(t, d, "in", i64, []in[int64]{
		{Key: "a", Value: 10}, {Key: "b", Value: 1}, {Key: "a", Tombstone: true}, {NoKey: true, Value: 99}, {Key: "a", Value: 5},
	})
	state, err := streamtest.Store(d, "stats", str, codec.JSON[stats]()).All()
	require.NoError(t, err)
	require.Equal(t, []kv[stats]{
		{Key: "a", Value: stats{Count: 2, Sum: 15, Seen: []string{"a", "a"}}},
		{Key: "b", Value: stats{Count: 1, Sum: 1, Seen: []string{"b"}}},
	}, state)
	out, err := streamtest.Output(d, "out", str, codec.JSON[stats]()).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []kv[stats]{
		{Key: "a", Value: stats{Count: 1, Sum: 10, Seen: []string{"a"}}},
		{Key: "b", Value: stats{Count: 1, Sum: 1, Seen: []string{"b"}}},
		{Key: "a", Value: stats{Count: 2, Sum: 15, Seen: []string{"a", "a"}}},
	}, out)
}

// TestGroupByRepartitions re-keys page views (keyed by user) by page over
// four partitions: the views of one page, read from several input
// partitions, meet in the task of the page's partition.
func TestGroupByRepartitions(t *testing.T) {
	d := newDriver(t, func(b *stream.Builder) {
		views := stream.From(b, "views", str, str)
		byPage := stream.GroupBy(views, func(_, page string) string { return page }, stream.Named("by-page"))
		table.Count(byPage, "page-views").ToStream().To("out")
	}, streamtest.DefaultPartitions(4))
	views := []in[string]{
		{Key: "alice", Value: "/home"}, {Key: "bob", Value: "/home"}, {Key: "carol", Value: "/cart"},
		{Key: "dave", Value: "/home"}, {Key: "erin", Value: "/cart"}, {Key: "frank", Value: "/about"},
		{Key: "bob", Tombstone: true}, // re-keyed, then dropped by the count
	}
	pipe(t, d, "views", str, views)

	// Every view went through the repartition topic, keyed by page.
	rep := d.Records("app-by-page-repartition")
	require.Len(t, rep, len(views))
	inputParts := map[int32]bool{}
	for _, r := range d.Records("views") {
		inputParts[r.Partition] = true
	}
	require.Greater(t, len(inputParts), 1, "the input should span partitions for this test to mean something")

	counts := streamtest.Store(d, "page-views", str, i64)
	for page, want := range map[string]int64{"/home": 3, "/cart": 2, "/about": 1} {
		n, ok, err := counts.Get(page) // the page's partition holds its count
		require.NoError(t, err)
		require.True(t, ok, page)
		require.Equal(t, want, n, page)
	}
	parts, err := d.StorePartitions("page-views")
	require.NoError(t, err)
	require.Equal(t, int32(4), parts)
	all, err := counts.All()
	require.NoError(t, err)
	require.Len(t, all, 3, "each page is counted in exactly one partition")

	out, err := streamtest.Output(d, "out", str, i64).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []kv[int64]{
		{Key: "/home", Value: 1}, {Key: "/home", Value: 2}, {Key: "/cart", Value: 1},
		{Key: "/home", Value: 3}, {Key: "/cart", Value: 2}, {Key: "/about", Value: 1},
	}, out)
}

func TestGroupByKeyRepartitionsOnlyAfterKeyChange(t *testing.T) {
	tests := []struct {
		name        string
		build       func(s stream.Stream[string, string]) stream.Grouped[string, string]
		repartition bool // GroupByKey adds a repartition topic
		rekeyed     bool // the records are keyed by their value
	}{
		{"source", func(s stream.Stream[string, string]) stream.Grouped[string, string] {
			return stream.GroupByKey(s)
		}, false, false},
		{"filter and map-values keep keys", func(s stream.Stream[string, string]) stream.Grouped[string, string] {
			s = stream.MapValues(s.Filter(func(string, string) bool { return true }), strings.ToUpper)
			return stream.GroupByKey(s)
		}, false, false},
		{"select-key", func(s stream.Stream[string, string]) stream.Grouped[string, string] {
			return stream.GroupByKey(stream.SelectKey(s, func(_, v string) string { return v }))
		}, true, true},
		{"map then filter", func(s stream.Stream[string, string]) stream.Grouped[string, string] {
			m := stream.Map(s, func(k, v string) (string, string) { return v, k })
			return stream.GroupByKey(m.Filter(func(string, string) bool { return true }))
		}, true, true},
		{"after an explicit repartition", func(s stream.Stream[string, string]) stream.Grouped[string, string] {
			m := stream.SelectKey(s, func(_, v string) string { return v }).Repartition()
			return stream.GroupByKey(m)
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			table.Count(tt.build(stream.From(b, "in", str, str)), "counts").ToStream().To("out")
			topo, err := b.Build()
			require.NoError(t, err)
			require.Equal(t, tt.repartition, strings.Contains(topo.Describe(), "group-by-key-"), topo.Describe())
			d, err := streamtest.New(topo, streamtest.AppID("app"), streamtest.DefaultPartitions(3))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, d.Close()) })
			pipe(t, d, "in", str, []in[string]{{Key: "k1", Value: "x"}, {Key: "k2", Value: "x"}, {Key: "k3", Value: "y"}})
			out, err := streamtest.Output(d, "out", str, i64).ReadKeyValues()
			require.NoError(t, err)
			require.Len(t, out, 3)
			counts := streamtest.Store(d, "counts", str, i64)
			if tt.rekeyed {
				// Keyed by value: x counted twice in x's partition.
				n, ok, err := counts.Get("x")
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, int64(2), n)
			} else {
				for _, k := range []string{"k1", "k2", "k3"} {
					n, ok, err := counts.Get(k)
					require.NoError(t, err)
					require.True(t, ok, k)
					require.Equal(t, int64(1), n)
				}
			}
		})
	}
}

func TestDroppedRecordsLogged(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := newDriver(t, func(b *stream.Builder) {
		table.Count(stream.GroupByKey(stream.From(b, "in", str, str)), "counts")
	}, streamtest.Logger(logger))
	pipe(t, d, "in", str, []in[string]{{Key: "a", Tombstone: true}, {NoKey: true, Value: "x"}})
	var drops []string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "dropped a record") {
			drops = append(drops, l)
		}
	}
	require.Len(t, drops, 2, logs.String())
	require.Contains(t, drops[0], "store=counts")
	require.Contains(t, drops[0], "tombstone=true")
	require.Contains(t, drops[1], "no_key=true")
	all, err := streamtest.Store(d, "counts", str, i64).All()
	require.NoError(t, err)
	require.Empty(t, all)
}

func TestAggregatorPanic(t *testing.T) {
	d := newDriver(t, func(b *stream.Builder) {
		table.Reduce(stream.GroupByKey(stream.From(b, "in", str, i64)),
			func(agg, v int64) int64 { return agg / v }, "r")
	})
	ctx := t.Context()
	input := streamtest.Input(d, "in", str, i64)
	require.NoError(t, input.Pipe(ctx, "a", 6))
	err := input.Pipe(ctx, "a", 0) // integer division by zero
	var nerr *stream.NodeError
	require.ErrorAs(t, err, &nerr)
	require.Equal(t, "reduce-1", nerr.Node)
	var perr *stream.PanicError
	require.ErrorAs(t, err, &perr)
	// The failed record left no write behind.
	n, ok, err := streamtest.Store(d, "r", str, i64).Get("a")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(6), n)
}

// badCodec encodes int64s but cannot decode them.
type badCodec struct{ codec.Codec[int64] }

func (badCodec) Decode([]byte) (int64, error) { return 0, errors.New("cannot decode") }

func TestStoredAggregateDecodeError(t *testing.T) {
	d := newDriver(t, func(b *stream.Builder) {
		table.Aggregate(stream.GroupByKey(stream.From(b, "in", str, i64)),
			func() int64 { return 0 }, func(_ string, v, a int64) int64 { return a + v },
			"agg", stream.WithValueCodec(badCodec{codec.Int64()}))
	})
	ctx := t.Context()
	input := streamtest.Input(d, "in", str, i64)
	require.NoError(t, input.Pipe(ctx, "a", 1)) // nothing stored yet: no decode
	err := input.Pipe(ctx, "a", 1)
	var nerr *stream.NodeError
	require.ErrorAs(t, err, &nerr)
	require.Contains(t, err.Error(), `store "agg": decode the stored aggregate: cannot decode`)
}
