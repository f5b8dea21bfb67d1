package table_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// change is a record of a table's change stream: Del is a tombstone.
type change[V any] struct {
	Key   string
	Value V
	Del   bool
}

func readChanges[V any](t *testing.T, out *streamtest.OutputTopic[string, V]) []change[V] {
	t.Helper()
	recs, err := out.ReadAll()
	require.NoError(t, err)
	got := make([]change[V], 0, len(recs))
	for _, r := range recs {
		got = append(got, change[V]{Key: r.Key, Value: r.Value, Del: r.Tombstone})
	}
	return got
}

func TestFromTopic(t *testing.T) {
	tests := []struct {
		name    string
		input   []in[int64]
		state   []kv[int64]
		changes []change[int64]
	}{
		{
			name:    "newest value per key wins",
			input:   []in[int64]{{Key: "a", Value: 1}, {Key: "b", Value: 2}, {Key: "a", Value: 3}},
			state:   []kv[int64]{{Key: "a", Value: 3}, {Key: "b", Value: 2}},
			changes: []change[int64]{{Key: "a", Value: 1}, {Key: "b", Value: 2}, {Key: "a", Value: 3}},
		},
		{
			name:    "a tombstone deletes the key and is emitted",
			input:   []in[int64]{{Key: "a", Value: 1}, {Key: "b", Value: 2}, {Key: "a", Tombstone: true}},
			state:   []kv[int64]{{Key: "b", Value: 2}},
			changes: []change[int64]{{Key: "a", Value: 1}, {Key: "b", Value: 2}, {Key: "a", Del: true}},
		},
		{
			name:    "a key comes back after its delete",
			input:   []in[int64]{{Key: "a", Value: 1}, {Key: "a", Tombstone: true}, {Key: "a", Value: 5}},
			state:   []kv[int64]{{Key: "a", Value: 5}},
			changes: []change[int64]{{Key: "a", Value: 1}, {Key: "a", Del: true}, {Key: "a", Value: 5}},
		},
		{
			name:    "absent keys are dropped",
			input:   []in[int64]{{NoKey: true, Value: 7}, {Key: "a", Value: 1}},
			state:   []kv[int64]{{Key: "a", Value: 1}},
			changes: []change[int64]{{Key: "a", Value: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, func(b *stream.Builder) {
				table.From(b, "users", str, i64, "users").ToStream().To("out")
			})
			pipe(t, d, "users", i64, tt.input)
			state, err := streamtest.Store(d, "users", str, i64).All()
			require.NoError(t, err)
			require.Equal(t, tt.state, state)
			require.Equal(t, tt.changes, readChanges(t, streamtest.Output(d, "out", str, i64)))
			// The changelog holds the same changes, deletes as tombstones.
			require.Equal(t, tt.changes, readChanges(t, streamtest.Output(d, "app-users-changelog", str, i64)))
		})
	}
}

func TestFilterAndMapValues(t *testing.T) {
	even := func(_ string, v int64) bool { return v%2 == 0 }
	input := []in[int64]{
		{Key: "a", Value: 2}, // enters
		{Key: "a", Value: 3}, // leaves: tombstone
		{Key: "b", Value: 5}, // never enters: tombstone too
		{Key: "a", Value: 4}, // enters again
		{Key: "a", Tombstone: true},
	}
	tests := []struct {
		name    string
		build   func(table.Table[string, int64]) table.Table[string, string]
		changes []change[string]
	}{
		{
			name: "filter",
			build: func(t table.Table[string, int64]) table.Table[string, string] {
				return table.MapValues(t.Filter(even), func(v int64) string { return fmt.Sprint("v", v) })
			},
			changes: []change[string]{{Key: "a", Value: "v2"}, {Key: "a", Del: true}, {Key: "b", Del: true}, {Key: "a", Value: "v4"}, {Key: "a", Del: true}},
		},
		{
			name: "filter not",
			build: func(t table.Table[string, int64]) table.Table[string, string] {
				return table.MapValues(t.FilterNot(even), func(v int64) string { return fmt.Sprint("v", v) })
			},
			changes: []change[string]{{Key: "a", Del: true}, {Key: "a", Value: "v3"}, {Key: "b", Value: "v5"}, {Key: "a", Del: true}, {Key: "a", Del: true}},
		},
		{
			name: "map values then filter on the mapped value",
			build: func(t table.Table[string, int64]) table.Table[string, string] {
				return table.MapValues(t, func(v int64) string { return strings.Repeat("x", int(v)) }).
					Filter(func(_ string, v string) bool { return len(v) > 3 })
			},
			changes: []change[string]{{Key: "a", Del: true}, {Key: "a", Del: true}, {Key: "b", Value: "xxxxx"}, {Key: "a", Value: "xxxx"}, {Key: "a", Del: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, func(b *stream.Builder) {
				tt.build(table.From(b, "in", str, i64, "in-store")).ToStream().To("out")
			})
			pipe(t, d, "in", i64, input)
			require.Equal(t, tt.changes, readChanges(t, streamtest.Output(d, "out", str, str)))
		})
	}
}

// step is one input of a join script: a table update (Table set) or a
// stream record.
type step struct {
	Table  bool
	Key    string
	Value  string
	Delete bool
}

func TestStreamTableJoin(t *testing.T) {
	script := []step{
		{Key: "o1", Value: "ann"},                  // no customer yet
		{Table: true, Key: "ann", Value: "Paris"},  // table updates emit nothing
		{Key: "ann", Value: "o2"},                  // joins Paris
		{Table: true, Key: "ann", Value: "Berlin"}, // update
		{Key: "ann", Value: "o3"},                  // joins Berlin
		{Table: true, Key: "ann", Delete: true},    // delete
		{Key: "ann", Value: "o4"},                  // no customer any more
		{Key: "bob", Delete: true},                 // stream tombstone: dropped
	}
	tests := []struct {
		name string
		join func(stream.Stream[string, string], table.Table[string, string]) stream.Stream[string, string]
		want []kv[string]
	}{
		{
			name: "inner",
			join: func(s stream.Stream[string, string], c table.Table[string, string]) stream.Stream[string, string] {
				return table.Join(s, c, func(k, order, city string) string { return order + "@" + city })
			},
			want: []kv[string]{{Key: "ann", Value: "o2@Paris"}, {Key: "ann", Value: "o3@Berlin"}},
		},
		{
			name: "left",
			join: func(s stream.Stream[string, string], c table.Table[string, string]) stream.Stream[string, string] {
				return table.LeftJoin(s, c, func(k, order, city string, found bool) string {
					if !found {
						return order + "@?"
					}
					return order + "@" + city
				})
			},
			want: []kv[string]{{Key: "o1", Value: "ann@?"}, {Key: "ann", Value: "o2@Paris"}, {Key: "ann", Value: "o3@Berlin"}, {Key: "ann", Value: "o4@?"}},
		},
		{
			name: "inner with a filtered and mapped table",
			join: func(s stream.Stream[string, string], c table.Table[string, string]) stream.Stream[string, string] {
				notParis := c.FilterNot(func(_, city string) bool { return city == "Paris" })
				upper := table.MapValues(notParis, strings.ToUpper)
				return table.Join(s, upper, func(k, order, city string) string { return order + "@" + city })
			},
			want: []kv[string]{{Key: "ann", Value: "o3@BERLIN"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, func(b *stream.Builder) {
				customers := table.From(b, "customers", str, str, "customers")
				orders := stream.From(b, "orders", str, str)
				tt.join(orders, customers).To("out")
			}, streamtest.DefaultPartitions(3))
			for _, s := range script {
				topic := "orders"
				if s.Table {
					topic = "customers"
				}
				pipe(t, d, topic, str, []in[string]{{Key: s.Key, Value: s.Value, Tombstone: s.Delete}})
			}
			out, err := streamtest.Output(d, "out", str, str).ReadKeyValues()
			require.NoError(t, err)
			require.Equal(t, tt.want, out)
		})
	}
}

func TestJoinWithAggregation(t *testing.T) {
	// Clicks are counted per user; every purchase is joined with the
	// user's click count so far. The count's sub-topology (after the
	// GroupBy repartition) also reads the purchases.
	d := newDriver(t, func(b *stream.Builder) {
		clicks := stream.From(b, "clicks", str, str)
		counts := table.Count(stream.GroupBy(clicks, func(_, user string) string { return user }), "clicks-per-user")
		purchases := stream.From(b, "purchases", str, str)
		table.LeftJoin(purchases, counts, func(user, item string, n int64, _ bool) string {
			return fmt.Sprintf("%s after %d clicks", item, n)
		}).To("out")
	}, streamtest.DefaultPartitions(2))
	pipe(t, d, "purchases", str, []in[string]{{Key: "ann", Value: "book"}})
	pipe(t, d, "clicks", str, []in[string]{{Key: "c1", Value: "ann"}, {Key: "c2", Value: "ann"}, {Key: "c3", Value: "bob"}})
	pipe(t, d, "purchases", str, []in[string]{{Key: "ann", Value: "pen"}, {Key: "bob", Value: "cup"}})
	out, err := streamtest.Output(d, "out", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"book after 0 clicks", "pen after 2 clicks", "cup after 1 clicks"}, out)
}

func TestJoinCoPartitioning(t *testing.T) {
	joiner := func(k, v, vt string) string { return v + vt }
	t.Run("build errors", func(t *testing.T) {
		tests := []struct {
			name  string
			build func(b *stream.Builder)
			want  error
			msg   string
		}{
			{
				name: "stream keys changed",
				build: func(b *stream.Builder) {
					c := table.From(b, "customers", str, str, "customers")
					s := stream.SelectKey(stream.From(b, "orders", str, str), func(_, v string) string { return v })
					table.Join(s, c, joiner).To("out")
				},
				want: stream.ErrNotCoPartitioned,
				msg:  "call Repartition on the stream before the join",
			},
			{
				name: "stream feeds the table's sub-topology",
				build: func(b *stream.Builder) {
					s := stream.From(b, "in", str, str)
					counts := table.Count(stream.GroupBy(s, func(_, v string) string { return v }, stream.Named("by-value")), "counts")
					table.Join(s, table.MapValues(counts, func(n int64) string { return fmt.Sprint(n) }), joiner).To("out")
				},
				want: stream.ErrNotCoPartitioned,
				msg:  `writes internal topic "by-value-repartition"`,
			},
			{
				name: "nil joiner",
				build: func(b *stream.Builder) {
					table.LeftJoin(stream.From(b, "orders", str, str), table.From(b, "customers", str, str, "customers"),
						(func(string, string, string, bool) string)(nil))
				},
				want: stream.ErrNilFunc,
			},
			{
				name: "nil table filter and map function",
				build: func(b *stream.Builder) {
					c := table.From(b, "customers", str, str, "customers")
					c.Filter(nil).ToStream().To("a")
					table.MapValues(c.FilterNot(nil), (func(string) string)(nil)).ToStream().To("b")
				},
				want: stream.ErrNilFunc,
				msg:  `table-map-values "table-map-values-`,
			},
			{
				name: "table store used twice",
				build: func(b *stream.Builder) {
					table.From(b, "customers", str, str, "s")
					table.Count(stream.GroupByKey(stream.From(b, "orders", str, str)), "s")
				},
				want: stream.ErrStoreConflict,
				msg:  `store "s" is already used by step "table-1"`,
			},
			{
				name: "two builders",
				build: func(b *stream.Builder) {
					other := table.From(stream.NewBuilder(), "customers", str, str, "customers")
					table.Join(stream.From(b, "orders", str, str), other, joiner)
				},
				want: stream.ErrForeignStream,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				b := stream.NewBuilder()
				tt.build(b)
				_, err := b.Build()
				require.ErrorIs(t, err, tt.want)
				require.ErrorContains(t, err, tt.msg)
			})
		}
	})
	t.Run("repartitioned stream joins", func(t *testing.T) {
		d := newDriver(t, func(b *stream.Builder) {
			c := table.From(b, "customers", str, str, "customers")
			s := stream.SelectKey(stream.From(b, "orders", str, str), func(_, v string) string { return v })
			table.Join(s.Repartition(), c, joiner).To("out")
		}, streamtest.DefaultPartitions(4))
		pipe(t, d, "customers", str, []in[string]{{Key: "ann", Value: "@Paris"}, {Key: "bob", Value: "@Oslo"}})
		pipe(t, d, "orders", str, []in[string]{{Key: "o1", Value: "ann"}, {Key: "o2", Value: "bob"}, {Key: "o3", Value: "eve"}})
		out, err := streamtest.Output(d, "out", str, str).ReadKeyValues()
		require.NoError(t, err)
		require.ElementsMatch(t, []kv[string]{{Key: "ann", Value: "ann@Paris"}, {Key: "bob", Value: "bob@Oslo"}}, out)
	})
	t.Run("topics with different partition counts", func(t *testing.T) {
		b := stream.NewBuilder()
		table.Join(stream.From(b, "orders", str, str), table.From(b, "customers", str, str, "customers"), joiner).To("out")
		topo, err := b.Build()
		require.NoError(t, err)
		_, err = streamtest.New(topo, streamtest.Partitions("orders", 2), streamtest.Partitions("customers", 3))
		require.ErrorIs(t, err, streamtest.ErrCoPartition)
		require.ErrorContains(t, err, "reads topics with")
	})
}

// junkAppender stores int64s with a trailing byte that Decode rejects.
type junkAppender struct{ codec.Codec[int64] }

func (c junkAppender) Append(dst []byte, v int64) ([]byte, error) {
	dst, err := c.Codec.Append(dst, v)
	return append(dst, 0xff), err
}

func TestJoinFailures(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		node  string
		panic bool
		msg   string
	}{
		{
			name: "panicking joiner",
			build: func(b *stream.Builder) {
				c := table.From(b, "customers", str, i64, "customers")
				table.Join(stream.From(b, "orders", str, i64), c, func(_ string, v, vt int64) int64 { return v / vt }).To("out")
			},
			node:  "join-4",
			panic: true,
		},
		{
			name: "panicking filter of the joined table names the filter",
			build: func(b *stream.Builder) {
				calls := 0 // the second call is the join's read
				c := table.From(b, "customers", str, i64, "customers").Filter(func(_ string, v int64) bool {
					calls++
					if calls == 2 {
						panic("filter failed")
					}
					return true
				})
				table.LeftJoin(stream.From(b, "orders", str, i64), c, func(_ string, v, vt int64, _ bool) int64 { return v }).To("out")
			},
			node:  "table-filter-2",
			panic: true,
		},
		{
			name: "undecodable table value",
			build: func(b *stream.Builder) {
				c := table.From(b, "customers", str, codec.Codec[int64](junkAppender{i64}), "customers")
				table.Join(stream.From(b, "orders", str, i64), c, func(_ string, v, vt int64) int64 { return v }).To("out")
			},
			node: "join-4",
			msg:  `store "customers": decode the stored value`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, tt.build)
			ctx := t.Context()
			require.NoError(t, streamtest.Input(d, "customers", str, i64).Pipe(ctx, "a", 0))
			err := streamtest.Input(d, "orders", str, i64).Pipe(ctx, "a", 1)
			var nerr *stream.NodeError
			require.ErrorAs(t, err, &nerr)
			require.Equal(t, tt.node, nerr.Node)
			var perr *stream.PanicError
			require.Equal(t, tt.panic, errors.As(err, &perr))
			require.ErrorContains(t, err, tt.msg)
		})
	}
}
