package table_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// usersPerRegion counts the users (keyed by id, valued by region) of each
// region over four partitions.
func usersPerRegion(t *testing.T) *streamtest.Driver {
	return newDriver(t, func(b *stream.Builder) {
		users := table.From(b, "users", str, str, "users")
		byRegion := table.GroupBy(users, func(id, region string) (string, string) { return region, id }, stream.Named("by-region"))
		byRegion.Count("users-per-region").ToStream().To("counts")
	}, streamtest.DefaultPartitions(4))
}

func TestTableGroupByCountRetracts(t *testing.T) {
	d := usersPerRegion(t)
	pipe(t, d, "users", str, []in[string]{
		{Key: "alice", Value: "eu"},
		{Key: "bob", Value: "eu"},
		{Key: "carol", Value: "us"},
		{Key: "alice", Value: "us"},    // moves: eu -1, us +1
		{Key: "alice", Value: "us"},    // no change: dropped by the table
		{Key: "bob", Tombstone: true},  // deleted: eu -1
		{Key: "dave", Tombstone: true}, // never there: nothing
		{NoKey: true, Value: "eu"},     // dropped by the table
		{Key: "carol", Value: "asia"},  // us -1, asia +1
		{Key: "bob", Value: "asia"},    // back: asia +1
	})
	state, err := streamtest.Store(d, "users-per-region", str, i64).All()
	require.NoError(t, err)
	require.ElementsMatch(t, []kv[int64]{{Key: "eu", Value: 0}, {Key: "us", Value: 1}, {Key: "asia", Value: 2}}, state)
	out, err := streamtest.Output(d, "counts", str, i64).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []kv[int64]{
		{Key: "eu", Value: 1}, {Key: "eu", Value: 2}, {Key: "us", Value: 1},
		{Key: "eu", Value: 1}, {Key: "us", Value: 2},
		{Key: "eu", Value: 0},
		{Key: "us", Value: 1}, {Key: "asia", Value: 1},
		{Key: "asia", Value: 2},
	}, out)
}

// TestTableGroupByAcrossPartitions checks that a row moving between groups
// of different partitions is subtracted in the old group's task and added
// in the new group's task: the repartition topic carries one record for
// each, in the group's partition.
func TestTableGroupByAcrossPartitions(t *testing.T) {
	d := usersPerRegion(t)
	// Find two regions whose groups live in different partitions.
	regions := []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"}
	pipe(t, d, "users", str, []in[string]{{Key: "u0", Value: "r0"}})
	rep := d.Records("app-by-region-repartition")
	require.Len(t, rep, 1)
	from := rep[0].Partition
	var to string
	for _, r := range regions[1:] {
		pipe(t, d, "users", str, []in[string]{{Key: "probe", Value: r}})
		if partitionOf(t, d, "app-by-region-repartition", r) != from {
			to = r
			break
		}
	}
	require.NotEmpty(t, to, "no region in another partition")
	pipe(t, d, "users", str, []in[string]{{Key: "probe", Tombstone: true}})

	before := len(d.Records("app-by-region-repartition"))
	pipe(t, d, "users", str, []in[string]{{Key: "u0", Value: to}})
	rep = d.Records("app-by-region-repartition")
	require.Len(t, rep, before+2, "a move writes a subtraction and an addition")
	require.NotEqual(t, partitionOf(t, d, "app-by-region-repartition", "r0"), partitionOf(t, d, "app-by-region-repartition", to))

	counts := streamtest.Store(d, "users-per-region", str, i64)
	for region, want := range map[string]int64{"r0": 0, to: 1} {
		n, ok, err := counts.Get(region)
		require.NoError(t, err)
		require.True(t, ok, region)
		require.Equal(t, want, n, region)
	}
}

// partitionOf returns the partition of topic's records with key k.
func partitionOf(t *testing.T, d *streamtest.Driver, topic, k string) int32 {
	t.Helper()
	p := int32(-1)
	for _, r := range d.Records(topic) {
		if string(r.Key) == k {
			require.True(t, p == -1 || p == r.Partition, "key %q in two partitions", k)
			p = r.Partition
		}
	}
	require.NotEqual(t, int32(-1), p, "no record with key %q", k)
	return p
}

type order struct {
	Customer string `json:"customer"`
	Amount   int64  `json:"amount"`
}

type total struct {
	Orders int64 `json:"orders"`
	Amount int64 `json:"amount"`
}

// TestTableGroupByAggregate sums the amounts of open orders per customer:
// an order that changes amount or customer, or is deleted, is subtracted
// from its old customer's total.
func TestTableGroupByAggregate(t *testing.T) {
	oc, tc := codec.JSON[order](), codec.JSON[total]()
	d := newDriver(t, func(b *stream.Builder) {
		orders := table.From(b, "orders", str, oc, "orders")
		byCustomer := table.GroupBy(orders, func(_ string, o order) (string, int64) { return o.Customer, o.Amount })
		totals := table.AggregateTable(byCustomer,
			func() total { return total{} },
			func(_ string, amount int64, t total) total {
				return total{Orders: t.Orders + 1, Amount: t.Amount + amount}
			},
			func(_ string, amount int64, t total) total {
				return total{Orders: t.Orders - 1, Amount: t.Amount - amount}
			},
			"totals", stream.WithValueCodec(tc))
		totals.ToStream().To("totals")
	}, streamtest.DefaultPartitions(3))
	pipe(t, d, "orders", oc, []in[order]{
		{Key: "o1", Value: order{"ann", 10}},
		{Key: "o2", Value: order{"ann", 5}},
		{Key: "o3", Value: order{"ben", 7}},
		{Key: "o1", Value: order{"ann", 30}}, // amount changes: -10 +30
		{Key: "o2", Value: order{"ben", 5}},  // moves to ben
		{Key: "o3", Tombstone: true},         // deleted
	})
	state, err := streamtest.Store(d, "totals", str, tc).All()
	require.NoError(t, err)
	require.ElementsMatch(t, []kv[total]{{Key: "ann", Value: total{1, 30}}, {Key: "ben", Value: total{1, 5}}}, state)
	out, err := streamtest.Output(d, "totals", str, tc).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []kv[total]{
		{Key: "ann", Value: total{1, 10}}, {Key: "ann", Value: total{2, 15}}, {Key: "ben", Value: total{1, 7}},
		{Key: "ann", Value: total{2, 35}},
		{Key: "ann", Value: total{1, 30}}, {Key: "ben", Value: total{2, 12}},
		{Key: "ben", Value: total{1, 5}},
	}, out)
	changelog, err := streamtest.Output(d, "app-totals-changelog", str, tc).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, out, changelog)
}

// TestTableGroupByReduce keeps the sum of the scores of each team, over a
// filtered and mapped table: the Filter's deletes retract too.
func TestTableGroupByReduce(t *testing.T) {
	d := newDriver(t, func(b *stream.Builder) {
		players := table.From(b, "players", str, str, "players") // "team:score"
		active := players.FilterNot(func(_, v string) bool { return v == "" })
		scores := table.MapValues(active, func(v string) [2]string {
			var p [2]string
			for i := range v {
				if v[i] == ':' {
					p[0], p[1] = v[:i], v[i+1:]
				}
			}
			return p
		})
		byTeam := table.GroupBy(scores, func(_ string, p [2]string) (string, int64) {
			return p[0], int64(len(p[1])) // the score is the length of the digits string, to keep the test short
		})
		byTeam.Reduce(func(a, v int64) int64 { return a + v }, func(a, v int64) int64 { return a - v }, "team-scores").
			ToStream().To("scores")
	})
	pipe(t, d, "players", str, []in[string]{
		{Key: "p1", Value: "red:111"},
		{Key: "p2", Value: "red:22"},
		{Key: "p1", Value: ""},        // filtered out: red -3
		{Key: "p2", Value: "blue:22"}, // red -2, blue +2
		{Key: "p1", Value: "blue:1"},  // blue +1
		{Key: "p1", Tombstone: true},  // blue -1
	})
	out, err := streamtest.Output(d, "scores", str, i64).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []kv[int64]{
		{Key: "red", Value: 3}, {Key: "red", Value: 5},
		{Key: "red", Value: 2},
		{Key: "red", Value: 0}, {Key: "blue", Value: 2},
		{Key: "blue", Value: 3},
		{Key: "blue", Value: 2},
	}, out)
}

func TestTableGroupByBuildErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		want  error
	}{
		{"nil selector", func(b *stream.Builder) {
			table.GroupBy[string, string, string, string](table.From(b, "in", str, str, "s"), nil).Count("c")
		}, stream.ErrNilFunc},
		{"nil key codec", func(b *stream.Builder) {
			table.GroupBy(table.From(b, "in", str, str, "s"), func(k, v string) (string, string) { return v, k }, stream.WithKeyCodec[string](nil)).Count("c")
		}, stream.ErrNilCodec},
		{"nil value codec", func(b *stream.Builder) {
			table.GroupBy(table.From(b, "in", str, str, "s"), func(k, v string) (string, string) { return v, k }, stream.WithValueCodec[string](nil)).Count("c")
		}, stream.ErrNilCodec},
		{"nil subtractor", func(b *stream.Builder) {
			g := table.GroupBy(table.From(b, "in", str, i64, "s"), func(k string, v int64) (string, int64) { return k, v })
			g.Reduce(func(a, v int64) int64 { return a + v }, nil, "r")
		}, stream.ErrNilFunc},
		{"nil aggregate codec", func(b *stream.Builder) {
			g := table.GroupBy(table.From(b, "in", str, i64, "s"), func(k string, v int64) (string, int64) { return k, v })
			table.AggregateTable(g, func() int64 { return 0 }, func(_ string, v, a int64) int64 { return a + v },
				func(_ string, v, a int64) int64 { return a - v }, "a", stream.WithValueCodec[int64](nil))
		}, stream.ErrNilCodec},
		{"store used twice", func(b *stream.Builder) {
			g := table.GroupBy(table.From(b, "in", str, i64, "s"), func(k string, v int64) (string, int64) { return k, v })
			g.Count("s")
		}, stream.ErrStoreConflict},
		{"empty name", func(b *stream.Builder) {
			table.GroupBy(table.From(b, "in", str, str, "s"), func(k, v string) (string, string) { return v, k }, stream.Named("")).Count("c")
		}, stream.ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tt.build(b)
			_, err := b.Build()
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestTableGroupByDescribe(t *testing.T) {
	b := stream.NewBuilder()
	users := table.From(b, "users", str, str, "users")
	table.GroupBy(users, func(id, region string) (string, string) { return region, id }).Count("per-region")
	topo, err := b.Build()
	require.NoError(t, err)
	require.Equal(t, `Topology
  Sub-topology 0
    Source: source-0 (topics: [users])
      --> table-1
    Processor: table-1 (stores: [users])
      --> table-group-by-2
      <-- source-0
    Processor: table-group-by-2
      --> table-group-by-2-sink
      <-- table-1
    Sink: table-group-by-2-sink (topic: <app-id>-table-group-by-2-repartition)
      <-- table-group-by-2
  Sub-topology 1
    Source: table-group-by-2-source (topics: [<app-id>-table-group-by-2-repartition])
      --> table-count-5
    Processor: table-count-5 (stores: [per-region])
      <-- table-group-by-2-source
  Internal topics
    <app-id>-table-group-by-2-repartition (partitions: as many as its writer's sources, cleanup: delete, written by sub-topology 0)
  Stores
    users (sub-topology 0, changelog: <app-id>-users-changelog, cleanup: compact)
    per-region (sub-topology 1, changelog: <app-id>-per-region-changelog, cleanup: compact)
`, topo.Describe())
}

func TestTableGroupByPartitionsOption(t *testing.T) {
	b := stream.NewBuilder()
	users := table.From(b, "users", str, str, "users")
	table.GroupBy(users, func(id, region string) (string, string) { return region, id }, stream.Named("by-region"), stream.Partitions(6)).Count("per-region")
	topo, err := b.Build()
	require.NoError(t, err)
	require.Contains(t, topo.Describe(), "by-region-repartition (partitions: 6,")
}

// TestTableStepPanics: a panic in a user function of a table step fails
// the record with a *stream.NodeError naming the step.
func TestTableStepPanics(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		pipe  string // topic whose record panics
		node  string
	}{
		{"group-by selector", func(b *stream.Builder) {
			users := table.From(b, "users", str, i64, "users")
			table.GroupBy(users, func(k string, v int64) (string, int64) { return k[:v], v }).Count("c")
		}, "users", "table-group-by-2"},
		{"aggregate adder", func(b *stream.Builder) {
			users := table.From(b, "users", str, i64, "users")
			g := table.GroupBy(users, func(k string, v int64) (string, int64) { return k, v })
			table.AggregateTable(g, func() int64 { return 0 }, func(_ string, v, a int64) int64 { return a / (v - 9) },
				func(_ string, v, a int64) int64 { return a - v }, "a")
		}, "users", "table-aggregate-5"},
		{"table join joiner", func(b *stream.Builder) {
			l := table.From(b, "users", str, i64, "users")
			r := table.From(b, "other", str, i64, "other")
			table.JoinTables(l, r, func(_ string, a, b int64) int64 { return a / (b - 9) })
		}, "users", "table-join-this-4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, tt.build)
			if tt.name == "table join joiner" {
				require.NoError(t, streamtest.Input(d, "other", str, i64).Pipe(t.Context(), "a", 9))
			}
			err := streamtest.Input(d, tt.pipe, str, i64).Pipe(t.Context(), "a", 9)
			var nerr *stream.NodeError
			require.ErrorAs(t, err, &nerr)
			require.Equal(t, tt.node, nerr.Node)
			var perr *stream.PanicError
			require.ErrorAs(t, err, &perr)
		})
	}
}
