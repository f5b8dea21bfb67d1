package duality_test

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// TestQueryWrongKind: a query of the wrong kind of store is an error when
// it is made (a windowed store queried as a key-value store used to read
// garbage or fail at the first read with a decode error).
func TestQueryWrongKind(t *testing.T) {
	sb := stream.NewBuilder()
	lines := stream.From(sb, "lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] { return strings.FieldsSeq(line) })
	byWord := stream.GroupBy(words, func(_, w string) string { return w })
	counts := table.Count(byWord, "counts")
	perMinute := window.Count(byWord, window.Tumbling(time.Minute, window.NoGrace), "words-1m")
	sessions := window.Count(byWord, window.Session(time.Minute, window.NoGrace), "word-sessions")
	big := perMinute.Filter(func(_ window.Windowed[string], n int64) bool { return n > 1 })
	bigStored := table.Materialize(big, "big")
	window.Join(byWord, byWord, window.JoinTimeDifference(time.Second, window.NoGrace),
		func(_, a, b string) string { return a + b }, "self-join").To("pairs")
	topo, err := sb.Build()
	require.NoError(t, err)
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	defer b.Close()
	app, err := duality.New("kind", topo, b)
	require.NoError(t, err)

	_, err = duality.Query(app, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	_, err = duality.QueryTable(app, counts)
	require.NoError(t, err)
	_, err = duality.QueryWindows(app, perMinute)
	require.NoError(t, err)
	_, err = duality.QueryWindows(app, sessions)
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"window store as key-value", func() error {
			_, err := duality.Query(app, "words-1m", codec.String(), codec.Int64())
			return err
		}(), `store "words-1m" is a window store: query it with duality.QueryWindows`},
		{"session store as key-value", func() error {
			_, err := duality.Query(app, "word-sessions", codec.Bytes(), codec.Bytes())
			return err
		}(), `store "word-sessions" is a session store: query it with duality.QueryWindows`},
		{"windowed table as key-value", func() error {
			_, err := duality.QueryTable(app, perMinute)
			return err
		}(), `store "words-1m" is a window store: query it with duality.QueryWindows`},
		{"join buffer", func() error {
			_, err := duality.Query(app, "self-join", codec.Bytes(), codec.Bytes())
			return err
		}(), `store "self-join" is a join buffer store of a windowed join, which cannot be queried`},
		{"key-value store as windows", func() error {
			_, err := duality.QueryWindows(app, bigStored)
			return err
		}(), `store "big" is a key-value store: query it with duality.Query or duality.QueryTable`},
		{"derived table", func() error {
			_, err := duality.QueryWindows(app, big)
			return err
		}(), `the table is derived from the table of store "words-1m" (by Filter, MapValues or a join) and has no store of its own`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.err, duality.ErrWrongStoreKind)
			require.ErrorContains(t, tc.err, tc.want)
		})
	}
	_, err = duality.QueryWindows(app, table.Table[window.Windowed[string], int64]{})
	require.ErrorIs(t, err, duality.ErrInvalidConfig)
	_, err = duality.QueryWindows[string, int64](nil, perMinute)
	require.ErrorIs(t, err, duality.ErrInvalidConfig)
}

// TestQueryWindowedTable queries a windowed count with QueryWindows, and
// a filtered copy of it, materialised in a key-value store keyed by
// windowed keys, with QueryTable.
func TestQueryWindowedTable(t *testing.T) {
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.CreateTopic(ctx, "clicks", broker.TopicConfig{Partitions: 2}))
	sb := stream.NewBuilder()
	byUser := stream.GroupByKey(stream.From(sb, "clicks", codec.String(), codec.String()))
	counts := window.Count(byUser, window.Tumbling(10*time.Millisecond, window.NoGrace).WithRetention(time.Hour), "clicks-10ms")
	busy := table.Materialize(counts.Filter(func(_ window.Windowed[string], n int64) bool { return n >= 3 }), "busy-windows")
	topo, err := sb.Build()
	require.NoError(t, err)

	base := time.Now().Add(-time.Hour).UnixMilli() / 10 * 10
	want := map[window.Windowed[string]]int64{}
	var recs []broker.Record
	for i := range 60 {
		user := fmt.Sprint("u", i%4)
		ts := base + int64(i)
		start := ts / 10 * 10
		want[window.Windowed[string]{Key: user, Start: time.UnixMilli(start), End: time.UnixMilli(start + 10)}]++
		recs = append(recs, broker.Record{Topic: "clicks", Partition: broker.PartitionByKey, Key: []byte(user), Value: []byte("c"), Timestamp: time.UnixMilli(ts)})
	}
	require.NoError(t, b.Produce(ctx, recs))
	wantBusy := maps.Clone(want)
	maps.DeleteFunc(wantBusy, func(_ window.Windowed[string], n int64) bool { return n < 3 })
	require.NotEmpty(t, wantBusy)
	require.Less(t, len(wantBusy), len(want))

	app, err := duality.New("qwt", topo, b, duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	windows, err := duality.QueryWindows(app, counts)
	require.NoError(t, err)
	busyQ, err := duality.QueryTable(app, busy)
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	// Times from the epoch compare equal to those decoded from the store.
	norm := func(w window.Windowed[string]) window.Windowed[string] {
		return window.Windowed[string]{Key: w.Key, Start: time.UnixMilli(w.Start.UnixMilli()), End: time.UnixMilli(w.End.UnixMilli())}
	}
	from, to := time.UnixMilli(base), time.UnixMilli(base+100)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got, gotBusy := map[window.Windowed[string]]int64{}, map[window.Windowed[string]]int64{}
		seq, errf := windows.FetchAll(ctx, from, to)
		for w, n := range seq {
			got[norm(w)] = n
		}
		err1 := errf()
		seq, errf = busyQ.All(ctx)
		for w, n := range seq {
			gotBusy[norm(w)] = n
		}
		if err1 == nil && errf() == nil && maps.Equal(got, want) && maps.Equal(gotBusy, wantBusy) {
			break
		}
		require.True(t, time.Now().Before(deadline), "windows %v (error %v), busy %v (error %v)", got, err1, gotBusy, errf())
	}
	// Get routes a windowed key to the partition of its record key, where
	// the aggregation kept its windows.
	for w, n := range wantBusy {
		v, ok, err := busyQ.Get(ctx, w)
		require.NoError(t, err)
		require.True(t, ok, w)
		require.Equal(t, n, v)
	}
}
