package table_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// A zero Table (for example the result of table.From on a nil builder)
// as the second side of a table-table join must give a Build error, not a
// panic.
func TestJoinTablesZeroOther(t *testing.T) {
	b := stream.NewBuilder()
	users := table.From(b, "users", codec.String(), codec.String(), "users")
	var zero table.Table[string, string]
	require.NotPanics(t, func() {
		table.JoinTables(users, zero, func(_, a, b string) string { return a + b })
	})
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrForeignStream)
}

// Inner foreign-key join: a left row whose customer does not exist has no
// result row; updating it (same foreign key) or deleting it must not emit
// a tombstone for a row that never existed.
func TestFKInnerNoPhantomTombstones(t *testing.T) {
	d, err := streamtest.New(fkJoinTopology(t, false), streamtest.AppID("app"))
	require.NoError(t, err)
	defer d.Close()
	runFKSteps(t, d, []fkStep{
		{order: "o1", value: fkOrder{"c1", "book"}},
		{order: "o1", value: fkOrder{"c1", "pen"}},
		{order: "o1", del: true},
	})
}

// A table read from a topic: a tombstone for a key it never held.
func TestFromDropsTombstoneOfAbsentKey(t *testing.T) {
	b := stream.NewBuilder()
	users := table.From(b, "users", codec.String(), codec.String(), "users")
	users.ToStream().To("user-changes")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, streamtest.Input(d, "users", codec.String(), codec.String()).PipeTombstone(t.Context(), "ghost"))
	recs, err := streamtest.Output(d, "user-changes", codec.String(), codec.String()).ReadAll()
	require.NoError(t, err)
	require.Empty(t, recs)
}

// A right row re-written with the same value: Kafka Streams' materialised
// source table drops the idempotent update (emit-on-change), so nothing
// reaches the join.
func TestFKRightIdempotentUpdate(t *testing.T) {
	d, err := streamtest.New(fkJoinTopology(t, false), streamtest.AppID("app"))
	require.NoError(t, err)
	defer d.Close()
	runFKSteps(t, d, []fkStep{
		{customer: "c1", name: "Ann"},
		{order: "o1", value: fkOrder{"c1", "book"}, want: []string{"o1=book for Ann"}},
		{order: "o3", value: fkOrder{"c1", "cup"}, want: []string{"o3=cup for Ann"}},
		{customer: "c1", name: "Ann"},
	})
}
