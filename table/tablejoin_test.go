package table_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// side is one input record of a table-table join test: a row of the
// left table (names) or of the right one (balances).
type side struct {
	right bool
	in[int64]
}

func show(v string, ok bool) string {
	if !ok {
		return "-"
	}
	return v
}

func showInt(v int64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprint(v)
}

func TestJoinTables(t *testing.T) {
	input := []side{
		{false, in[int64]{Key: "c1", Value: 1}},        // ann
		{true, in[int64]{Key: "c1", Value: 10}},        //
		{false, in[int64]{Key: "c1", Value: 2}},        // ann -> anna
		{true, in[int64]{Key: "c1", Value: 20}},        //
		{true, in[int64]{Key: "c1", Tombstone: true}},  // right delete
		{true, in[int64]{Key: "c1", Tombstone: true}},  // again: no row changes
		{false, in[int64]{Key: "c1", Tombstone: true}}, // left delete
		{true, in[int64]{Key: "c2", Value: 5}},         //
		{false, in[int64]{Key: "c2", Value: 3}},        // bob
		{false, in[int64]{Key: "c2", Tombstone: true}}, //
		{false, in[int64]{Key: "c3", Tombstone: true}}, // never there
	}
	names := map[int64]string{1: "ann", 2: "anna", 3: "bob"}
	tests := []struct {
		name    string
		join    func(l table.Table[string, string], r table.Table[string, int64]) table.Table[string, string]
		changes []change[string]
		final   map[string]string // the joined table read through its lookup
	}{
		{
			name: "inner",
			join: func(l table.Table[string, string], r table.Table[string, int64]) table.Table[string, string] {
				return table.JoinTables(l, r, func(_ string, v string, vo int64) string { return v + "|" + fmt.Sprint(vo) })
			},
			changes: []change[string]{
				{Key: "c1", Value: "ann|10"}, {Key: "c1", Value: "anna|10"}, {Key: "c1", Value: "anna|20"},
				{Key: "c1", Del: true},
				{Key: "c2", Value: "bob|5"}, {Key: "c2", Del: true},
			},
		},
		{
			name: "left",
			join: func(l table.Table[string, string], r table.Table[string, int64]) table.Table[string, string] {
				return table.LeftJoinTables(l, r, func(_ string, v string, vo int64, found bool) string { return v + "|" + showInt(vo, found) })
			},
			changes: []change[string]{
				{Key: "c1", Value: "ann|-"}, {Key: "c1", Value: "ann|10"}, {Key: "c1", Value: "anna|10"}, {Key: "c1", Value: "anna|20"},
				{Key: "c1", Value: "anna|-"}, {Key: "c1", Del: true},
				{Key: "c2", Value: "bob|5"}, {Key: "c2", Del: true},
			},
		},
		{
			name: "outer",
			join: func(l table.Table[string, string], r table.Table[string, int64]) table.Table[string, string] {
				return table.OuterJoinTables(l, r, func(_ string, v string, hasV bool, vo int64, hasVO bool) string {
					return show(v, hasV) + "|" + showInt(vo, hasVO)
				})
			},
			changes: []change[string]{
				{Key: "c1", Value: "ann|-"}, {Key: "c1", Value: "ann|10"}, {Key: "c1", Value: "anna|10"}, {Key: "c1", Value: "anna|20"},
				{Key: "c1", Value: "anna|-"}, {Key: "c1", Del: true},
				{Key: "c2", Value: "-|5"}, {Key: "c2", Value: "bob|5"}, {Key: "c2", Value: "-|5"},
			},
			final: map[string]string{"c2": "-|5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, func(b *stream.Builder) {
				left := table.MapValues(table.From(b, "names", str, i64, "names"), func(id int64) string { return names[id] })
				right := table.From(b, "balances", str, i64, "balances")
				joined := tt.join(left, right)
				joined.ToStream().To("joined")
				// Read the joined table through its lookup.
				table.LeftJoin(stream.From(b, "lookups", str, str), joined, func(k, _ string, v string, found bool) string {
					return show(v, found)
				}).To("looked-up")
			}, streamtest.DefaultPartitions(2))
			for _, r := range input {
				topic := "names"
				if r.right {
					topic = "balances"
				}
				pipe(t, d, topic, i64, []in[int64]{r.in})
			}
			require.Equal(t, tt.changes, readChanges(t, streamtest.Output(d, "joined", str, str)))
			pipe(t, d, "lookups", str, []in[string]{{Key: "c1"}, {Key: "c2"}, {Key: "c3"}})
			out, err := streamtest.Output(d, "looked-up", str, str).ReadKeyValues()
			require.NoError(t, err)
			want := []kv[string]{}
			for _, k := range []string{"c1", "c2", "c3"} {
				v, ok := tt.final[k]
				want = append(want, kv[string]{Key: k, Value: show(v, ok)})
			}
			require.Equal(t, want, out)
		})
	}
}

// TestJoinTablesFromAggregations joins two aggregations of one stream of
// repartitioned records, which share a sub-topology, and re-groups the
// joined table: its old values retract correctly.
func TestJoinTablesFromAggregations(t *testing.T) {
	d := newDriver(t, func(b *stream.Builder) {
		g := stream.GroupByKey(stream.From(b, "scores", str, i64))
		counts := table.Count(g, "counts")
		sums := table.Reduce(g, func(a, v int64) int64 { return a + v }, "sums")
		avg := table.JoinTables(sums, counts, func(_ string, sum, n int64) int64 { return sum / n })
		avg.ToStream().To("avg")
		// How many players have each average.
		table.GroupBy(avg, func(player string, a int64) (int64, string) { return a, player }).
			Count("per-average").ToStream().To("per-average")
	}, streamtest.DefaultPartitions(3))
	pipe(t, d, "scores", i64, []in[int64]{{Key: "p", Value: 10}, {Key: "q", Value: 10}, {Key: "p", Value: 20}})
	out, err := streamtest.Output(d, "avg", str, i64).ReadKeyValues()
	require.NoError(t, err)
	// Each score updates counts then sums: two joined changes per score.
	require.Equal(t, []kv[int64]{{Key: "p", Value: 10}, {Key: "q", Value: 10}, {Key: "p", Value: 5}, {Key: "p", Value: 15}}, out)
	per, err := streamtest.Store(d, "per-average", i64, i64).All()
	require.NoError(t, err)
	require.ElementsMatch(t, []streamtest.KeyValue[int64, int64]{{Key: 10, Value: 1}, {Key: 5, Value: 0}, {Key: 15, Value: 1}}, per)
}

func TestJoinTablesCoPartitioning(t *testing.T) {
	t.Run("different partition counts", func(t *testing.T) {
		b := stream.NewBuilder()
		table.JoinTables(table.From(b, "l", str, str, "l"), table.From(b, "r", str, str, "r"),
			func(_ string, a, b string) string { return a + b })
		topo, err := b.Build()
		require.NoError(t, err)
		_, err = streamtest.New(topo, streamtest.Partitions("l", 2), streamtest.Partitions("r", 3))
		require.ErrorIs(t, err, streamtest.ErrCoPartition)
	})
	t.Run("one table feeds the other", func(t *testing.T) {
		b := stream.NewBuilder()
		users := table.From(b, "users", str, str, "users")
		perRegion := table.GroupBy(users, func(id, region string) (string, string) { return region, id }).Count("per-region")
		table.JoinTables(users, perRegion, func(_ string, region string, n int64) string { return region })
		_, err := b.Build()
		require.ErrorIs(t, err, stream.ErrNotCoPartitioned)
		require.ErrorContains(t, err, "read it back with From")
	})
	t.Run("tables of two builders", func(t *testing.T) {
		b1, b2 := stream.NewBuilder(), stream.NewBuilder()
		table.JoinTables(table.From(b1, "l", str, str, "l"), table.From(b2, "r", str, str, "r"),
			func(_ string, a, b string) string { return a + b })
		_, err := b1.Build()
		require.ErrorIs(t, err, stream.ErrForeignStream)
	})
	t.Run("nil joiner", func(t *testing.T) {
		b := stream.NewBuilder()
		table.OuterJoinTables[string, string, string, string](table.From(b, "l", str, str, "l"), table.From(b, "r", str, str, "r"), nil)
		_, err := b.Build()
		require.ErrorIs(t, err, stream.ErrNilFunc)
	})
}

func TestJoinTablesDescribe(t *testing.T) {
	b := stream.NewBuilder()
	j := table.LeftJoinTables(table.From(b, "l", str, str, "l"), table.From(b, "r", str, str, "r"),
		func(_ string, a, b string, _ bool) string { return a + b })
	j.ToStream().To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	require.Equal(t, `Topology
  Sub-topology 0
    Source: source-0 (topics: [l])
      --> table-1
    Processor: table-1 (stores: [l])
      --> table-left-join-this-4
      <-- source-0
    Source: source-2 (topics: [r])
      --> table-3
    Processor: table-3 (stores: [r])
      --> table-left-join-other-5
      <-- source-2
    Processor: table-left-join-this-4 (stores: [r])
      --> table-left-join-6
      <-- table-1
    Processor: table-left-join-other-5 (stores: [l])
      --> table-left-join-6
      <-- table-3
    Processor: table-left-join-6
      --> sink-7
      <-- table-left-join-this-4, table-left-join-other-5
    Sink: sink-7 (topic: out)
      <-- table-left-join-6
  Stores
    l (sub-topology 0, changelog: <app-id>-l-changelog, cleanup: compact)
    r (sub-topology 0, changelog: <app-id>-r-changelog, cleanup: compact)
`, topo.Describe())
}

// TestMaterializeJoin keeps an outer join in a store: its rows are the
// joined table's rows, deletes included, and its changelog logs them.
func TestMaterializeJoin(t *testing.T) {
	d := newDriver(t, func(b *stream.Builder) {
		l := table.From(b, "l", str, str, "l")
		r := table.From(b, "r", str, str, "r")
		j := table.OuterJoinTables(l, r, func(_ string, a string, hasA bool, b string, hasB bool) string {
			return show(a, hasA) + "|" + show(b, hasB)
		})
		m := table.Materialize(j, "joined")
		m.Filter(func(_, v string) bool { return v != "-|x" }).ToStream().To("out")
	})
	pipe(t, d, "l", str, []in[string]{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}})
	pipe(t, d, "r", str, []in[string]{{Key: "a", Value: "x"}, {Key: "c", Value: "x"}, {Key: "z", Tombstone: true}})
	pipe(t, d, "l", str, []in[string]{{Key: "b", Tombstone: true}})
	state, err := streamtest.Store(d, "joined", str, str).All()
	require.NoError(t, err)
	require.Equal(t, []kv[string]{{Key: "a", Value: "1|x"}, {Key: "c", Value: "-|x"}}, state)
	require.Equal(t, []change[string]{
		{Key: "a", Value: "1|-"}, {Key: "b", Value: "2|-"}, {Key: "a", Value: "1|x"}, {Key: "c", Del: true}, {Key: "b", Del: true},
	}, readChanges(t, streamtest.Output(d, "out", str, str)))
	require.Equal(t, []change[string]{
		{Key: "a", Value: "1|-"}, {Key: "b", Value: "2|-"}, {Key: "a", Value: "1|x"}, {Key: "c", Value: "-|x"}, {Key: "b", Del: true},
	}, readChanges(t, streamtest.Output(d, "app-joined-changelog", str, str)))

	b := stream.NewBuilder()
	table.Materialize(table.From(b, "l", str, str, "l").Filter(func(string, string) bool { return true }), "l", stream.WithKeyCodec[string](nil))
	_, err = b.Build()
	require.ErrorIs(t, err, stream.ErrNilCodec)
	require.ErrorIs(t, err, stream.ErrStoreConflict)
}
