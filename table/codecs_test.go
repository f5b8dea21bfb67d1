package table_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

type tally struct {
	N     int64 `json:"n"`
	Bytes int64 `json:"bytes"`
}

// Tables carry their codecs: From's, the aggregations' (Int64 for counts,
// the grouping's value codec for Reduce, codec.For of the aggregate),
// kept or chosen by type by the derived tables, and overridden by
// WithKeyCodec and WithValueCodec; stores and sinks encode with them.
func TestTablesCarryCodecs(t *testing.T) {
	jt := codec.JSON[tally]()
	b := stream.NewBuilder()
	users := table.From(b, "users", str, str, "users")
	require.Equal(t, str, users.KeyCodec())
	require.Equal(t, str, users.ValueCodec())
	lengths := table.MapValues(users, func(v string) int64 { return int64(len(v)) })
	require.Equal(t, i64, lengths.ValueCodec())
	require.Equal(t, str, table.MapValues(users, strings.ToUpper).ValueCodec())
	kept := table.Materialize(lengths, "lengths", stream.WithValueCodec(codec.Msgpack[int64]()))
	require.Equal(t, codec.Msgpack[int64](), kept.ValueCodec())
	kept.ToStream().To("lengths")

	clicks := stream.GroupByKey(stream.From(b, "clicks", str, str))
	counts := table.Count(clicks, "counts")
	require.Equal(t, i64, counts.ValueCodec())
	require.Equal(t, str, table.Reduce(clicks, func(a, v string) string { return a + v }, "concat").ValueCodec())
	tallies := table.Aggregate(clicks, func() tally { return tally{} },
		func(_, v string, a tally) tally { return tally{N: a.N + 1, Bytes: a.Bytes + int64(len(v))} }, "tallies")
	require.Equal(t, codec.Msgpack[tally](), tallies.ValueCodec())
	jsonTallies := table.Aggregate(clicks, func() tally { return tally{} },
		func(_, v string, a tally) tally { return tally{N: a.N + 1, Bytes: a.Bytes + int64(len(v))} }, "json-tallies",
		stream.WithValueCodec(jt))
	jsonTallies.ToStream().To("json-tallies")

	byLength := table.GroupBy(users, func(k, v string) (int64, string) { return int64(len(v)), k })
	perLength := byLength.Count("per-length")
	require.Equal(t, i64, perLength.KeyCodec())
	perLength.ToStream().To("per-length")
	joined := table.JoinTables(users, lengths, func(_, v string, n int64) string { return v + strings.Repeat("!", int(n)) })
	require.Equal(t, str, joined.ValueCodec())
	joinedLens := table.JoinTables(users, lengths, func(_, v string, n int64) float64 { return float64(n) / 2 })
	require.Equal(t, codec.Float64(), joinedLens.ValueCodec())

	d, err := streamtest.New(mustBuild(t, b))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	ctx := t.Context()
	require.NoError(t, streamtest.Input(d, "users", str, str).Pipe(ctx, "ann", "eu"))
	require.NoError(t, streamtest.Input(d, "clicks", str, str).Pipe(ctx, "ann", "/home"))

	n, ok, err := streamtest.Store(d, "lengths", str, codec.Msgpack[int64]()).Get("ann")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(2), n)
	got, err := streamtest.Output(d, "lengths", str, codec.Msgpack[int64]()).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []int64{2}, got)
	tl, ok, err := streamtest.Store(d, "tallies", str, codec.Msgpack[tally]()).Get("ann")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, tally{N: 1, Bytes: 5}, tl)
	raw := d.Records("json-tallies")
	require.Len(t, raw, 1)
	require.JSONEq(t, `{"n":1,"bytes":5}`, string(raw[0].Value))
	pl, err := streamtest.Output(d, "per-length", i64, i64).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []streamtest.KeyValue[int64, int64]{{Key: 2, Value: 1}}, pl)
}

// A codec option of the wrong type is a Build error, never a panic.
func TestTableCodecOptionOfWrongType(t *testing.T) {
	b := stream.NewBuilder()
	users := table.From(b, "users", str, str, "users")
	table.Materialize(users, "m", stream.WithKeyCodec(i64))
	table.Count(stream.GroupByKey(stream.From(b, "clicks", str, str)), "c", stream.WithValueCodec(str))
	table.JoinTables(users, users, func(_, a, b string) string { return a + b }, stream.WithValueCodec(i64))
	users.Filter(func(string, string) bool { return true }, stream.WithValueCodec(str))
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	for _, msg := range []string{
		`table-materialize "table-materialize-2": stream: invalid option: WithKeyCodec gives a codec of int64, the step's keys are string`,
		`count "count-4": stream: invalid option: WithValueCodec gives a codec of string, the step's values are int64`,
		`table-join "table-join-7": stream: invalid option: WithValueCodec gives a codec of int64, the step's values are string`,
		`does not take WithValueCodec`,
	} {
		require.ErrorContains(t, err, msg)
	}
}
