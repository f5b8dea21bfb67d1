package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// show formats the records of a table's change stream as
// "key@[start,end)=value", or "key@[start,end) deleted" for tombstones,
// with times in ms.
func show[V any](t *testing.T, out *streamtest.OutputTopic[window.Windowed[string], V]) []string {
	t.Helper()
	recs, err := out.ReadAll()
	require.NoError(t, err)
	var lines []string
	for _, r := range recs {
		w := fmt.Sprintf("%s@[%d,%d)", r.Key.Key, r.Key.Start.UnixMilli(), r.Key.End.UnixMilli())
		if r.Tombstone {
			lines = append(lines, w+" deleted")
		} else {
			lines = append(lines, fmt.Sprintf("%s=%v", w, r.Value))
		}
	}
	return lines
}

// TestTableSteps runs table steps on the table of a windowed count:
// Filter, MapValues, and a GroupBy by window start whose sums need old
// values (sessions merging subtract the merged sessions' counts).
func TestTableSteps(t *testing.T) {
	for _, tc := range []struct {
		name        string
		w           window.Windows
		in          []int64 // timestamps of key "a"
		big, labels []string
		totals      []string // per window start: the sum of counts of every key
	}{{
		name:   "tumbling",
		w:      window.Tumbling(10*time.Millisecond, window.NoGrace),
		in:     []int64{1, 2, 12},
		big:    []string{"a@[0,10) deleted", "a@[0,10)=2", "a@[10,20) deleted"},
		labels: []string{"a@[0,10)=n1", "a@[0,10)=n2", "a@[10,20)=n1"},
		totals: []string{"0=1", "0=2", "10=1"},
	}, {
		name: "session",
		w:    window.Session(5*time.Millisecond, 10*time.Millisecond),
		in:   []int64{1, 10, 5},
		// 5 bridges [1,1] and [10,10] into [1,10]: both are deleted.
		big:    []string{"a@[1,2) deleted", "a@[10,11) deleted", "a@[1,2) deleted", "a@[10,11) deleted", "a@[1,11)=3"},
		labels: []string{"a@[1,2)=n1", "a@[10,11)=n1", "a@[1,2) deleted", "a@[10,11) deleted", "a@[1,11)=n3"},
		totals: []string{"1=1", "10=1", "1=0", "10=0", "1=3"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
			counts := window.Count(g, tc.w, "counts")
			counts.Filter(func(_ window.Windowed[string], n int64) bool { return n >= 2 }).ToStream().To("big")
			table.MapValues(counts, func(n int64) string { return fmt.Sprint("n", n) }).ToStream().To("labels")
			byStart := table.GroupBy(counts, func(w window.Windowed[string], n int64) (int64, int64) { return w.Start.UnixMilli(), n })
			byStart.Reduce(func(a, n int64) int64 { return a + n }, func(a, n int64) int64 { return a - n }, "totals").ToStream().To("totals")
			topo, err := b.Build()
			require.NoError(t, err)
			d, err := streamtest.New(topo)
			require.NoError(t, err)
			defer func() { require.NoError(t, d.Close()) }()
			in := streamtest.Input(d, "in", codec.String(), codec.String())
			for _, ts := range tc.in {
				require.NoError(t, in.PipeAt(t.Context(), "a", "x", time.UnixMilli(ts)))
			}
			wc := window.WindowedCodec(codec.String())
			require.Equal(t, tc.big, show(t, streamtest.Output(d, "big", wc, codec.Int64())))
			require.Equal(t, tc.labels, show(t, streamtest.Output(d, "labels", wc, codec.String())))
			totals, err := streamtest.Output(d, "totals", codec.Int64(), codec.Int64()).ReadKeyValues()
			require.NoError(t, err)
			var got []string
			for _, kv := range totals {
				got = append(got, fmt.Sprintf("%d=%d", kv.Key, kv.Value))
			}
			require.Equal(t, tc.totals, got)
		})
	}
}

// TestTableJoinByWindowedKey joins two windowed aggregations of one
// grouping by their windowed keys.
func TestTableJoinByWindowedKey(t *testing.T) {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.Int64()))
	w := window.Tumbling(10*time.Millisecond, window.NoGrace)
	counts := window.Count(g, w, "counts")
	sums := window.Reduce(g, w, func(a, v int64) int64 { return a + v }, "sums")
	table.JoinTables(counts, sums, func(_ window.Windowed[string], n, sum int64) string {
		return fmt.Sprintf("%d/%d", sum, n)
	}).ToStream().To("means")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.Input(d, "in", codec.String(), codec.Int64())
	for i, v := range []int64{4, 6, 10} {
		require.NoError(t, in.PipeAt(t.Context(), "a", v, time.UnixMilli(int64(i)*5)))
	}
	// Each record updates the count, then the sum, and the join emits on
	// both updates once both windows exist.
	require.Equal(t, []string{
		"a@[0,10)=4/1",
		"a@[0,10)=4/2", "a@[0,10)=10/2",
		"a@[10,20)=10/1",
	}, show(t, streamtest.Output(d, "means", window.WindowedCodec(codec.String()), codec.String())))
}

// TestTableFinalResults: the table of an aggregation with
// EmitOnWindowClose holds a window once its final result is out. Its
// table steps see the final results only, each as a new row, and a
// lookup of an open window finds nothing (Kafka Streams'
// suppress(untilWindowCloses)).
func TestTableFinalResults(t *testing.T) {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	w := window.Tumbling(10*time.Millisecond, window.NoGrace).WithRetention(time.Hour)
	updates := window.Count(g, w, "updates")
	finals := window.Count(g, w, "finals", window.EmitOnWindowClose())
	table.MapValues(finals, func(n int64) string { return fmt.Sprint("final ", n) }).ToStream().To("finals")
	table.LeftJoinTables(updates, finals, func(_ window.Windowed[string], n, f int64, closed bool) string {
		if !closed {
			return fmt.Sprintf("%d, open", n)
		}
		return fmt.Sprintf("%d, final %d", n, f)
	}).ToStream().To("joined")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.Input(d, "in", codec.String(), codec.String())
	for _, ts := range []int64{1, 2, 12, 25} {
		require.NoError(t, in.PipeAt(t.Context(), "a", "x", time.UnixMilli(ts)))
	}
	wc := window.WindowedCodec(codec.String())
	require.Equal(t, []string{"a@[0,10)=final 2", "a@[10,20)=final 1"}, show(t, streamtest.Output(d, "finals", wc, codec.String())))
	// The updates of a window find it open in the final table until its
	// final result is out (a record of the next window closes it); the
	// final result then changes the joined row.
	require.Equal(t, []string{
		"a@[0,10)=1, open", "a@[0,10)=2, open",
		"a@[10,20)=1, open", "a@[0,10)=2, final 2",
		"a@[20,30)=1, open", "a@[10,20)=1, final 1",
	}, show(t, streamtest.Output(d, "joined", wc, codec.String())))
}

// TestTableSkippedFinalResult: a final result that fails in a step below
// the aggregation is skipped alone (streamtest skips as SkipOnError
// does), with what every step below did for it. The window stays in the
// aggregation's table: lookups find it, as Kafka Streams' suppress reads
// an evicted window from the aggregation's store, while the steps below,
// which never got the change, lack it.
func TestTableSkippedFinalResult(t *testing.T) {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	// The updates' grace keeps [0,10) open after the final results'
	// closed it, so that its updates look the final table up.
	updates := window.Count(g, window.Tumbling(10*time.Millisecond, 20*time.Millisecond).WithRetention(time.Hour), "updates")
	finals := window.Count(g, window.Tumbling(10*time.Millisecond, window.NoGrace).WithRetention(time.Hour), "finals",
		window.EmitOnWindowClose(), stream.Named("finals"))
	table.Materialize(finals, "final-rows").ToStream().
		Peek(func(w window.Windowed[string], _ int64) {
			if w.Key == "boom" {
				panic("boom")
			}
		}).To("final-out")
	table.LeftJoinTables(updates, finals, func(_ window.Windowed[string], n, f int64, closed bool) string {
		if !closed {
			return fmt.Sprintf("%d, open", n)
		}
		return fmt.Sprintf("%d, final %d", n, f)
	}).ToStream().To("joined")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.Input(d, "in", codec.String(), codec.String())
	require.NoError(t, in.PipeAt(t.Context(), "a", "x", time.UnixMilli(5)))
	require.NoError(t, in.PipeAt(t.Context(), "boom", "x", time.UnixMilli(6)))
	// 15 closes [0,10) for the final results: a's goes out, boom's fails
	// below and is skipped; the record goes on.
	err = in.PipeAt(t.Context(), "a", "x", time.UnixMilli(15))
	var pe *duality.ProcessingError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "finals", pe.Step)
	require.Equal(t, "final result of boom@[1970-01-01T00:00:00Z,1970-01-01T00:00:00.01Z)", pe.Item)
	// boom's late record updates [0,10) in the updates only; the join
	// finds boom's window in the final table.
	require.NoError(t, in.PipeAt(t.Context(), "boom", "x", time.UnixMilli(7)))

	wc := window.WindowedCodec(codec.String())
	require.Equal(t, []string{"a@[0,10)=1"}, show(t, streamtest.Output(d, "final-out", wc, codec.Int64())))
	require.Equal(t, []string{
		"a@[0,10)=1, open",
		"boom@[0,10)=1, open",
		"a@[10,20)=1, open", "a@[0,10)=1, final 1",
		"boom@[0,10)=2, final 1",
	}, show(t, streamtest.Output(d, "joined", wc, codec.String())))
	rows := streamtest.Store(d, "final-rows", wc, codec.Int64())
	for key, want := range map[string]bool{"a": true, "boom": false} {
		_, ok, err := rows.Get(window.Windowed[string]{Key: key, Start: time.UnixMilli(0), End: time.UnixMilli(10)})
		require.NoError(t, err)
		require.Equal(t, want, ok, key)
	}
}

// TestTableSkippedCachedUpdate: an update held by CacheUpdates that fails
// in a step below is skipped alone; the window's next change starts from
// the value the skipped one set (the window's value at the previous
// flush, as Kafka Streams' caching store reads old values from the
// store), so a table aggregation below that subtracts old values misses
// the skipped change.
func TestTableSkippedCachedUpdate(t *testing.T) {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	counts := window.Count(g, window.Tumbling(10*time.Millisecond, window.NoGrace), "counts",
		window.CacheUpdates(), stream.Named("count"))
	counts.ToStream().Peek(func(w window.Windowed[string], n int64) {
		if w.Key == "boom" && n == 1 {
			panic("boom")
		}
	}).To("out")
	byStart := table.GroupBy(counts, func(w window.Windowed[string], n int64) (int64, int64) { return w.Start.UnixMilli(), n })
	byStart.Reduce(func(a, n int64) int64 { return a + n }, func(a, n int64) int64 { return a - n }, "totals").ToStream().To("totals")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.Input(d, "in", codec.String(), codec.String())
	require.NoError(t, in.PipeAt(t.Context(), "a", "x", time.UnixMilli(1)))
	// streamtest flushes after every record: boom's first update is an
	// item of that flush, which fails below and is skipped.
	err = in.PipeAt(t.Context(), "boom", "x", time.UnixMilli(2))
	var pe *duality.ProcessingError
	require.ErrorAs(t, err, &pe)
	require.True(t, pe.Flush)
	require.Equal(t, "cached update of boom@[1970-01-01T00:00:00Z,1970-01-01T00:00:00.01Z)", pe.Item)
	require.NoError(t, in.PipeAt(t.Context(), "boom", "x", time.UnixMilli(3)))

	wc := window.WindowedCodec(codec.String())
	require.Equal(t, []string{"a@[0,10)=1", "boom@[0,10)=2"}, show(t, streamtest.Output(d, "out", wc, codec.Int64())))
	// boom's change from 1 to 2 subtracts the 1 the totals never got
	// (the total of both windows is 3).
	totals, err := streamtest.Output(d, "totals", codec.Int64(), codec.Int64()).ReadKeyValues()
	require.NoError(t, err)
	var got []string
	for _, kv := range totals {
		got = append(got, fmt.Sprintf("%d=%d", kv.Key, kv.Value))
	}
	require.Equal(t, []string{"0=1", "0=2"}, got)
}
