package table_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// BenchmarkTableGroupByMove measures one update of a table row that moves
// it to another group of a table GroupBy Count, through streamtest (one
// partition, memory stores, a commit per record): the table's store
// read and write, the subtraction and addition records on the repartition
// topic, and two count updates.
func BenchmarkTableGroupByMove(b *testing.B) {
	d := benchDriver(b, func(sb *stream.Builder) {
		users := table.From(sb, "users", str, str, "users")
		table.GroupBy(users, func(u, region string) (string, string) { return region, u }).
			Count("per-region").ToStream().To("counts")
	})
	in := streamtest.Input(d, "users", str, str)
	regions := []string{"eu", "us", "asia"}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, in.Pipe(b.Context(), fmt.Sprint("u", i%1000), regions[i%3]))
		i++
	}
}

// BenchmarkJoinTablesUpdate measures one update of the left side of an
// inner table-table join whose right side has the key: the left store's
// old and new row, a lookup in the right store, the joiner and one output
// record.
func BenchmarkJoinTablesUpdate(b *testing.B) {
	d := benchDriver(b, func(sb *stream.Builder) {
		l := table.From(sb, "l", str, i64, "l")
		r := table.From(sb, "r", str, i64, "r")
		table.JoinTables(l, r, func(_ string, a, b int64) int64 { return a + b }).ToStream().To("out")
	})
	right := streamtest.Input(d, "r", str, i64)
	for k := range 1000 {
		require.NoError(b, right.Pipe(b.Context(), fmt.Sprint("k", k), int64(k)))
	}
	left := streamtest.Input(d, "l", str, i64)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, left.Pipe(b.Context(), fmt.Sprint("k", i%1000), int64(i)))
		i++
	}
}

func benchDriver(b *testing.B, build func(*stream.Builder)) *streamtest.Driver {
	sb := stream.NewBuilder()
	build(sb)
	topo, err := sb.Build()
	require.NoError(b, err)
	d, err := streamtest.New(topo, streamtest.AppID("bench"))
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, d.Close()) })
	return d
}
