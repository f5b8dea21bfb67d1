package table

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// recordChanges attaches a change child to t that appends every change it
// gets to *got as "key: old -> new" ("-" for an absent value).
func recordChanges[V any](t Table[string, V], got *[]string) {
	n := &dsl.Node{Op: "record-changes", Kind: dsl.KindProcessor}
	t.core().AttachChanges(n, true, func(*dsl.Task) (tablecore.ChangeFn[string, V], error) {
		return func(_ context.Context, rc *stream.RecordContext, k string, old V, hasOld bool, nv V, hasNew bool) error {
			if rc.Tombstone != !hasNew {
				return fmt.Errorf("rc.Tombstone %v with hasNew %v", rc.Tombstone, hasNew)
			}
			show := func(v V, ok bool) string {
				if !ok {
					return "-"
				}
				return fmt.Sprint(v)
			}
			*got = append(*got, fmt.Sprintf("%s: %s -> %s", k, show(old, hasOld), show(nv, hasNew)))
			return nil
		}, nil
	})
}

func TestChangesCarryOldValues(t *testing.T) {
	str, i64 := codec.String(), codec.Int64()
	var source, filtered, mapped, counted, unwatched []string
	b := stream.NewBuilder()
	users := From(b, "users", str, i64, "users")
	recordChanges(users, &source)
	adults := users.Filter(func(_ string, age int64) bool { return age >= 18 })
	recordChanges(adults, &filtered)
	recordChanges(MapValues(adults, func(age int64) string { return fmt.Sprintf("age %d", age) }), &mapped)
	adults.ToStream().To("adults")
	counts := Count(stream.GroupByKey(stream.From(b, "clicks", str, str)), "clicks")
	recordChanges(counts, &counted)
	// A Filter whose children do not ask for old values gets none.
	n := &dsl.Node{Op: "no-old", Kind: dsl.KindProcessor}
	users.FilterNot(func(string, int64) bool { return false }).core().AttachChanges(n, false, func(*dsl.Task) (tablecore.ChangeFn[string, int64], error) {
		return func(_ context.Context, _ *stream.RecordContext, k string, old int64, hasOld bool, nv int64, hasNew bool) error {
			unwatched = append(unwatched, fmt.Sprintf("%s %d %v %d %v", k, old, hasOld, nv, hasNew))
			return nil
		}, nil
	})
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, streamtest.AppID("app"))
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()

	ctx := t.Context()
	in := streamtest.Input(d, "users", str, i64)
	require.NoError(t, in.Pipe(ctx, "ann", 17))
	require.NoError(t, in.Pipe(ctx, "ann", 18))
	require.NoError(t, in.Pipe(ctx, "ann", 30))
	require.NoError(t, in.Pipe(ctx, "ann", 12))
	require.NoError(t, in.PipeTombstone(ctx, "ann"))
	require.NoError(t, in.PipeTombstone(ctx, "bob")) // never there: dropped by the table
	require.NoError(t, in.Pipe(ctx, "cy", 40))
	require.NoError(t, in.Pipe(ctx, "cy", 40)) // no change: dropped by the table
	clicks := streamtest.Input(d, "clicks", str, str)
	require.NoError(t, clicks.Pipe(ctx, "x", "/"))
	require.NoError(t, clicks.Pipe(ctx, "x", "/"))

	require.Equal(t, []string{
		"ann: - -> 17", "ann: 17 -> 18", "ann: 18 -> 30", "ann: 30 -> 12", "ann: 12 -> -", "cy: - -> 40",
	}, source)
	require.Equal(t, []string{
		"ann: - -> -", "ann: - -> 18", "ann: 18 -> 30", "ann: 30 -> -", "ann: - -> -", "cy: - -> 40",
	}, filtered)
	require.Equal(t, []string{
		"ann: - -> -", "ann: - -> age 18", "ann: age 18 -> age 30", "ann: age 30 -> -", "ann: - -> -", "cy: - -> age 40",
	}, mapped)
	require.Equal(t, []string{"x: - -> 1", "x: 1 -> 2"}, counted)
	require.Equal(t, []string{
		"ann 0 false 17 true", "ann 0 false 18 true", "ann 0 false 30 true", "ann 0 false 12 true",
		"ann 0 false 0 false", "cy 0 false 40 true",
	}, unwatched)

	// The change stream of the filtered table is what it was before old
	// values existed: a tombstone for every rejected update.
	out, err := streamtest.Output(d, "adults", str, i64).ReadAll()
	require.NoError(t, err)
	var got []string
	for _, r := range out {
		got = append(got, fmt.Sprint(r.Key, " ", r.Value, " ", r.Tombstone))
	}
	require.Equal(t, []string{"ann 0 true", "ann 18 false", "ann 30 false", "ann 0 true", "ann 0 true", "cy 40 false"}, got)
}

// TestAggregateOldValueIsACopy checks that an aggregator that changes its
// aggregate in place does not change the old value its change carries.
func TestAggregateOldValueIsACopy(t *testing.T) {
	str := codec.String()
	var got []string
	b := stream.NewBuilder()
	seen := Aggregate(stream.GroupByKey(stream.From(b, "in", str, str)),
		func() map[string]bool { return map[string]bool{} },
		func(_ string, v string, a map[string]bool) map[string]bool { a[v] = true; return a },
		"seen", stream.WithValueCodec(codec.JSON[map[string]bool]()))
	recordChanges(seen, &got)
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.Input(d, "in", str, str)
	require.NoError(t, in.Pipe(t.Context(), "k", "a"))
	require.NoError(t, in.Pipe(t.Context(), "k", "b"))
	require.Equal(t, []string{"k: - -> map[a:true]", "k: map[a:true] -> map[a:true b:true]"}, got)
}

func TestRowChangeCodec(t *testing.T) {
	c := rowChangeCodec[string]{codec.String()}
	long := string(make([]byte, 300)) // a two-byte length
	for _, ch := range []rowChange[string]{
		{old: "a", hasOld: true},
		{new: "b", hasNew: true},
		{old: "old", hasOld: true, new: "new", hasNew: true},
		{old: "", hasOld: true, new: "", hasNew: true},
		{old: long, hasOld: true, new: long + "x", hasNew: true},
		{},
	} {
		b, err := c.Append([]byte("prefix"), ch)
		require.NoError(t, err)
		require.Equal(t, "prefix", string(b[:6]))
		got, err := c.Decode(b[6:])
		require.NoError(t, err)
		require.Equal(t, ch, got)
	}
	for _, bad := range [][]byte{nil, {4}, {flagOld}, {flagOld, 5, 'a'}, {0, 'x'}} {
		_, err := c.Decode(bad)
		require.ErrorIs(t, err, codec.ErrInvalid, "%q", bad)
	}
}

func FuzzRowChangeCodec(f *testing.F) {
	c := rowChangeCodec[string]{codec.String()}
	f.Add([]byte{flagOld | flagNew, 1, 'a', 'b'})
	f.Add([]byte{flagNew})
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := c.Decode(b)
		if err != nil {
			return
		}
		re, err := c.Append(nil, ch)
		require.NoError(t, err)
		got, err := c.Decode(re)
		require.NoError(t, err)
		require.Equal(t, ch, got)
	})
}
