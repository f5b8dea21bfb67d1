package table_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// Every table step takes stream.Named; steps made of several steps name
// their parts after it.
func TestNamedSteps(t *testing.T) {
	b := stream.NewBuilder()
	users := table.From(b, "users", str, str, "users", stream.Named("users"))
	regions := table.From(b, "regions", str, str, "regions")
	active := users.Filter(func(_, v string) bool { return v != "" }, stream.Named("active"))
	upper := table.MapValues(active, strings.ToUpper, stream.Named("upper"))
	inactive := users.FilterNot(func(_, v string) bool { return v != "" }, stream.Named("inactive"))
	joined := table.JoinTables(upper, inactive, func(_, a, b string) string { return a + b }, stream.Named("both"))
	table.Materialize(joined, "both-store", stream.Named("both-kept"))
	table.LeftJoinTables(users, regions, func(_, a, b string, _ bool) string { return a + b }, stream.Named("with-region"))
	table.OuterJoinTables(users, regions, func(_, a string, _ bool, b string, _ bool) string { return a + b }, stream.Named("either"))
	users.ToStream(table.EmitPerCommit(10), stream.Named("user-changes")).To("user-changes")
	clicks := stream.From(b, "clicks", str, str)
	table.Join(clicks, users, func(_, c, u string) string { return c + u }, stream.Named("click-user")).To("a")
	table.LeftJoin(clicks, users, func(_, c, u string, _ bool) string { return c + u }, stream.Named("click-user-left")).To("b")
	g := table.Global(b, "countries", str, str, "countries")
	table.JoinGlobal(clicks, g, func(k, _ string) string { return k }, func(_, c, n string) string { return c + n }, stream.Named("click-country")).To("c")
	table.LeftJoinGlobal(clicks, g, func(k, _ string) string { return k }, func(_, c, n string, _ bool) string { return c + n }, stream.Named("click-country-left")).To("d")
	grouped := stream.GroupByKey(clicks)
	table.Count(grouped, "click-counts", stream.Named("count-clicks"))
	table.Reduce(grouped, func(a, v string) string { return a + v }, "click-concat", stream.Named("concat-clicks"))
	table.Aggregate(grouped, func() int64 { return 0 }, func(_, v string, a int64) int64 { return a + int64(len(v)) }, "click-bytes", stream.Named("sum-click-bytes"))
	byRegion := table.GroupBy(users, func(k, v string) (string, string) { return v, k }, stream.Named("by-region"))
	byRegion.Count("region-counts", stream.Named("count-regions"))
	byRegion.Reduce(func(a, v string) string { return a + v }, func(a, _ string) string { return a }, "region-concat", stream.Named("concat-regions"))
	table.AggregateTable(byRegion, func() int64 { return 0 },
		func(_, _ string, a int64) int64 { return a + 1 }, func(_, _ string, a int64) int64 { return a - 1 },
		"region-sums", stream.Named("sum-regions"))
	table.JoinByForeignKey(users, regions, func(v string) string { return v }, func(u, r string) string { return u + r },
		"user-regions", stream.Named("user-region"))
	topo, err := b.Build()
	require.NoError(t, err)
	desc := topo.Describe()
	for _, name := range []string{
		"Source: users-source", "Processor: users (table, stores: [users])", "Processor: active (table-filter)", "Processor: upper (table-map-values)",
		"Processor: inactive (table-filter-not)", "Processor: both (table-join)", "Processor: both-this (table-join-this, stores: [users])",
		"Processor: both-other (table-join-other, stores: [users])", "Processor: both-kept (table-materialize, stores: [both-store])",
		"Processor: with-region (table-left-join)", "Processor: either (table-outer-join)",
		"Processor: user-changes (to-stream-per-commit)",
		"Processor: click-user (join, stores: [users])", "Processor: click-user-table (join-table)", "Processor: click-user-left (left-join, stores: [users])",
		"Processor: click-country (join-global, global stores: [countries])", "Processor: click-country-left (left-join-global, global stores: [countries])",
		"Processor: count-clicks (count, stores: [click-counts])", "Processor: concat-clicks (reduce, stores: [click-concat])", "Processor: sum-click-bytes (aggregate, stores: [click-bytes])",
		"Sink: by-region-sink", "Source: by-region-source", "Processor: count-regions (table-count, stores: [region-counts])",
		"Processor: concat-regions (table-reduce, stores: [region-concat])", "Processor: sum-regions (table-aggregate, stores: [region-sums])",
		"Processor: user-region (fk-join, stores: [user-regions, users])", "Processor: user-region-subscribe (fk-join-subscribe)",
		"Processor: user-region-subscription (fk-join-subscription, stores: [user-regions-subscription-store, regions])", "Processor: user-region-foreign (fk-join-foreign, stores: [user-regions-subscription-store])",
		"Sink: user-region-response-sink", "Source: user-region-response-source",
	} {
		require.Contains(t, desc, name)
	}
}

// A step reports at Build an option it does not take, naming the step
// and the option.
func TestOptionNotTaken(t *testing.T) {
	b := stream.NewBuilder()
	users := table.From(b, "users", str, str, "users", stream.Partitions(3))
	users.Filter(func(_, v string) bool { return true }, stream.WithTimestamp(func(_, _ string, ts time.Time) time.Time { return ts }))
	table.Count(stream.GroupByKey(stream.From(b, "clicks", str, str)), "counts", window.EmitOnWindowClose())
	users.ToStream(stream.Named("changes")).To("out")
	stream.From(b, "other", str, str).Filter(func(string, string) bool { return true }, table.EmitPerCommit(3))
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	for _, msg := range []string{
		`source "source-0" does not take Partitions; Partitions applies to Repartition and table.GroupBy`,
		`table-filter "table-filter-2" does not take WithTimestamp; WithTimestamp applies to From and FromTopics only`,
		`count "count-4" does not take EmitOnWindowClose; EmitOnWindowClose applies to windowed aggregations`,
		`ToStream of "table-1": Named names the step EmitPerCommit adds; a plain ToStream adds no step`,
		`filter "filter-7" does not take EmitPerCommit; EmitPerCommit applies to Table.ToStream`,
	} {
		require.ErrorContains(t, err, msg)
	}
}

// table.From takes stream.WithTimestamp with stream.From's semantics:
// the extracted time is the records' timestamp and the task's event
// time (stream time), and an invalid one fails the record, naming the
// source.
func TestFromWithTimestamp(t *testing.T) {
	b := stream.NewBuilder()
	// Values are "<ms>" of event time.
	at := func(_, v string, recordTime time.Time) time.Time {
		if v == "keep" {
			return recordTime
		}
		ms, err := time.ParseDuration(v + "ms")
		if err != nil {
			return time.UnixMilli(-1)
		}
		return time.UnixMilli(ms.Milliseconds())
	}
	users := table.From(b, "users", str, str, "users", stream.Named("users"), stream.WithTimestamp(at))
	users.ToStream().To("out")
	d, err := streamtest.New(mustBuild(t, b))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	ctx := t.Context()
	in := streamtest.Input(d, "users", str, str)
	recordTime := time.UnixMilli(9_000_000)
	for _, v := range []string{"1500", "3200", "2100", "keep"} {
		require.NoError(t, in.PipeAt(ctx, "u-"+v, v, recordTime))
	}
	require.NoError(t, in.PipeRecord(ctx, streamtest.Record[string, string]{Key: "u-1500", Tombstone: true, Timestamp: time.UnixMilli(4000)}))
	var got []int64
	for _, r := range d.Records("out") {
		got = append(got, r.Timestamp.UnixMilli())
	}
	require.Equal(t, []int64{1500, 3200, 2100, 9_000_000, 4000}, got, "the table's changes carry the extracted timestamps; a tombstone keeps its own")
	st, ok := d.StreamTime(0, 0)
	require.True(t, ok)
	require.Equal(t, int64(9_000_000), st.UnixMilli())

	off := int64(len(d.Records("users")))
	err = d.PipeRaw(ctx, broker.Record{Topic: "users", Key: []byte("u-bad"), Value: []byte("bad"), Timestamp: recordTime})
	require.ErrorIs(t, err, stream.ErrInvalidTimestamp)
	var ne *stream.NodeError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, stream.NodeError{Node: "users-source", Topic: "users", Partition: 0, Offset: off, Err: ne.Err}, *ne)
	v, ok, err := streamtest.Store(d, "users", str, str).Get("u-bad")
	require.NoError(t, err)
	require.False(t, ok, "the failed record is not in the table")
	require.Equal(t, "", v)
}

func mustBuild(t *testing.T, b *stream.Builder) *stream.Topology {
	t.Helper()
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}
