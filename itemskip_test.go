package duality_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// boomOn panics on the key "boom": a step downstream of the one that
// emits items on its own.
func boomOn[V any](k string, _ V) {
	if k == "boom" {
		panic("boom")
	}
}

// boomOnWindow is boomOn for windowed counts.
func boomOnWindow(w window.Windowed[string], _ int64) { boomOn(w.Key, 0) }

// itemCase is a topology whose step emits items on its own (held
// changes, cached updates, final results, unmatched join records), one
// of which fails downstream; in are the records of "in" (key, value,
// timestamp in ms) of two runs of the app (in[0], then in[1] after a
// restart), want the output of both, formatted by format.
type itemCase struct {
	name   string
	build  func(b *stream.Builder)
	format func(r broker.Record) string
	in     [2][]testRecord
	want   []string
	// skipped is the ProcessingError of the failed item with Err
	// cleared; records is the number of records skipped.
	skipped duality.ProcessingError
	records uint64
	// opts are more options of the app; done says a run handled its
	// records (default: each was processed or skipped).
	opts []duality.Option
	done func(m duality.Metrics, n int) bool
}

type testRecord struct {
	k, v string
	ts   int64
}

var (
	str      = codec.String()
	windowed = window.WindowedCodec(codec.String())
)

func formatWindowedCount(r broker.Record) string {
	w, err := windowed.Decode(r.Key)
	if err != nil {
		return err.Error()
	}
	n, err := codec.Int64().Decode(r.Value)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s@[%d,%d)=%d", w.Key, w.Start.UnixMilli(), w.End.UnixMilli(), n)
}

func formatCount(r broker.Record) string {
	n, err := codec.Int64().Decode(r.Value)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s=%d", r.Key, n)
}

var itemCases = []itemCase{
	{
		// A change held by EmitPerCommit fails at the flush: it alone is
		// skipped, the commit goes on, and it is not emitted again.
		name: "EmitPerCommit",
		build: func(b *stream.Builder) {
			counts := table.Count(stream.GroupByKey(stream.From(b, "in", str, str)), "counts")
			counts.ToStream(table.EmitPerCommit(100)).Peek(boomOn).To("out")
		},
		format: formatCount,
		in:     [2][]testRecord{{{"a", "x", 1}, {"boom", "x", 2}, {"b", "x", 3}}, {{"c", "x", 4}}},
		want:   []string{"a=1", "b=1", "c=1"},
		skipped: duality.ProcessingError{Partition: -1, Offset: -1, Flush: true,
			Step: "to-stream-per-commit-2", Item: "change of key boom"},
	},
	{
		// The same for an update held by CacheUpdates.
		name: "CacheUpdates",
		build: func(b *stream.Builder) {
			g := stream.GroupByKey(stream.From(b, "in", str, str))
			window.Count(g, window.Tumbling(10*time.Millisecond, window.NoGrace), "counts", window.CacheUpdates(), stream.Named("count")).
				ToStream().Peek(boomOnWindow).To("out")
		},
		format: formatWindowedCount,
		in:     [2][]testRecord{{{"a", "x", 5}, {"boom", "x", 6}, {"b", "x", 7}}, {{"c", "x", 8}}},
		want:   []string{"a@[0,10)=1", "b@[0,10)=1", "c@[0,10)=1"},
		skipped: duality.ProcessingError{Partition: -1, Offset: -1, Flush: true,
			Step: "count", Item: "cached update of boom@[1970-01-01T00:00:00Z,1970-01-01T00:00:00.01Z)"},
	},
	{
		// A final result that fails is skipped alone: the record that
		// closed its window goes on (the other final result it closed is
		// emitted), and the next records do not emit it again.
		name: "EmitOnWindowClose",
		build: func(b *stream.Builder) {
			g := stream.GroupByKey(stream.From(b, "in", str, str))
			window.Count(g, window.Tumbling(10*time.Millisecond, window.NoGrace), "counts", window.EmitOnWindowClose(), stream.Named("count")).
				ToStream().Peek(boomOnWindow).To("out")
		},
		format: formatWindowedCount,
		in:     [2][]testRecord{{{"a", "x", 5}, {"boom", "x", 6}, {"a", "x", 15}, {"c", "x", 25}}, {{"c", "x", 35}}},
		want:   []string{"a@[0,10)=1", "a@[10,20)=1", "c@[20,30)=1"},
		skipped: duality.ProcessingError{Topic: "in", Partition: 0, Offset: 2,
			Step: "count", Item: "final result of boom@[1970-01-01T00:00:00Z,1970-01-01T00:00:00.01Z)"},
	},
	{
		// The same for a final result emitted by a stream-time
		// punctuation: the step's timer, which the idle advance of stream
		// time fires.
		name: "EmitOnWindowClose by punctuation",
		build: func(b *stream.Builder) {
			g := stream.GroupByKey(stream.From(b, "in", str, str))
			window.Count(g, window.Tumbling(10*time.Millisecond, window.NoGrace), "counts",
				window.EmitOnWindowClose(), window.WithTaskStreamTime(), stream.Named("count")).
				ToStream().Peek(boomOnWindow).To("out")
		},
		format: formatWindowedCount,
		in:     [2][]testRecord{{{"a", "x", 5}, {"boom", "x", 6}}, nil},
		want:   []string{"a@[0,10)=1"},
		skipped: duality.ProcessingError{Partition: -1, Offset: -1, Punctuation: "stream-time",
			Step: "count", Item: "final result of boom@[1970-01-01T00:00:00Z,1970-01-01T00:00:00.01Z)"},
		opts: []duality.Option{duality.IdleStreamTimeAdvance(time.Millisecond)},
		done: func(m duality.Metrics, n int) bool {
			return m.RecordsProcessed == uint64(n) && (n == 0 || m.ItemsSkipped == 1)
		},
	},
	{
		// An unmatched record of a left join that fails (in the joiner)
		// when its window closes is skipped alone.
		name: "unmatched join record",
		build: func(b *stream.Builder) {
			l := stream.GroupByKey(stream.From(b, "in", str, str))
			r := stream.GroupByKey(stream.From(b, "right", str, str))
			window.LeftJoin(l, r, window.JoinTimeDifference(10*time.Millisecond, window.NoGrace),
				func(k, v1, v2 string, found bool) string {
					boomOn(k, v1)
					return v1 + "+" + v2
				}, "joins", stream.Named("join")).To("out")
		},
		format: func(r broker.Record) string { return string(r.Key) + "=" + string(r.Value) },
		in:     [2][]testRecord{{{"a", "x", 5}, {"boom", "y", 6}, {"c", "z", 30}}, {{"d", "w", 60}}},
		want:   []string{"a=x+", "c=z+"},
		skipped: duality.ProcessingError{Topic: "in", Partition: 0, Offset: 2,
			Step: "join", Item: "unmatched left record at 1970-01-01T00:00:00.006Z of key boom"},
	},
	{
		// EmitPerCommit(1) emits the held change of a when b's change
		// overflows it, within b's record; that record then fails in a
		// sibling step and is skipped: a's emission is dropped with it, so
		// a's change must be held again (emitted later, once), and b's
		// change must leave the buffer.
		name: "EmitPerCommit overflow in a skipped record",
		build: func(b *stream.Builder) {
			src := stream.From(b, "in", str, str)
			table.Count(stream.GroupByKey(src), "counts").
				ToStream(table.EmitPerCommit(1)).To("out")
			src.Peek(func(_, v string) {
				if v == "boom" {
					panic("boom")
				}
			}).To("audit")
		},
		format:  formatCount,
		in:      [2][]testRecord{{{"a", "x", 1}, {"b", "boom", 2}, {"c", "x", 3}}, {{"d", "x", 4}}},
		want:    []string{"a=1", "c=1", "d=1"},
		skipped: duality.ProcessingError{Topic: "in", Partition: 0, Offset: 1},
		records: 1,
	},
}

// TestFailedItemsFollowThePolicy: under SkipOnError an item a step emits
// on its own (at a flush, or within a record) that fails downstream is
// skipped alone, reported with a ProcessingError naming the step and the
// item, counted in ItemsSkipped, and never emitted again; the flush or
// record goes on.
func TestFailedItemsFollowThePolicy(t *testing.T) {
	for _, tc := range itemCases {
		t.Run(tc.name, func(t *testing.T) {
			b := openBroker(t)
			for _, topic := range []string{"in", "right", "out", "audit"} {
				createTopic(t, b, topic, 1)
			}
			sb := stream.NewBuilder()
			tc.build(sb)
			topo, err := sb.Build()
			require.NoError(t, err)
			var mu sync.Mutex
			var skipped []duality.ProcessingError
			var itemsSkipped, recordsSkipped uint64
			handled := 0
			for run, in := range tc.in {
				var recs []broker.Record
				for _, r := range in {
					recs = append(recs, broker.Record{Topic: "in", Partition: 0, Key: []byte(r.k), Value: []byte(r.v), Timestamp: time.UnixMilli(r.ts)})
				}
				if len(recs) > 0 {
					require.NoError(t, b.Produce(t.Context(), recs))
				}
				handled += len(recs)
				// Commits only when the app stops: the flush then holds
				// every change.
				opts := append([]duality.Option{duality.Workers(1), duality.CommitInterval(time.Hour),
					duality.OnProcessingError(duality.SkipOnError(func(pe *duality.ProcessingError) {
						require.ErrorContains(t, pe, "boom")
						p := *pe
						p.Err = nil
						mu.Lock()
						skipped = append(skipped, p)
						mu.Unlock()
					}))}, tc.opts...)
				app, err := duality.New("items", topo, b, opts...)
				require.NoError(t, err)
				stop, _ := runApp(t, app)
				n := len(recs)
				done := tc.done
				if done == nil {
					done = func(m duality.Metrics, n int) bool { return m.RecordsProcessed+m.RecordsSkipped == uint64(n) }
				}
				eventually(t, fmt.Sprintf("run %d: %d records handled", run, n), func() bool { return done(app.Metrics(), n) })
				require.NoError(t, stop(), "run %d", run)
				itemsSkipped += app.Metrics().ItemsSkipped
				recordsSkipped += app.Metrics().RecordsSkipped
			}
			var got []string
			for _, r := range readTopic(t, b, "out") {
				got = append(got, tc.format(r))
			}
			require.Equal(t, tc.want, got)
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, skipped, 1, "skipped once: %v", skipped)
			require.Equal(t, tc.skipped, skipped[0])
			require.Equal(t, tc.records, recordsSkipped)
			require.Equal(t, 1-tc.records, itemsSkipped)
		})
	}
}

// TestFailedItemStopsFailOnError: under FailOnError a failed item stops
// the app with a ProcessingError that names the flush, the step and the
// item, once.
func TestFailedItemStopsFailOnError(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	sb := stream.NewBuilder()
	itemCases[0].build(sb)
	topo, err := sb.Build()
	require.NoError(t, err)
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: "in", Partition: 0, Key: []byte("boom"), Value: []byte("x")}}))
	app, err := duality.New("items-fail", topo, b, duality.CommitInterval(time.Millisecond))
	require.NoError(t, err)
	err = app.Run(t.Context())
	var pe *duality.ProcessingError
	require.ErrorAs(t, err, &pe)
	require.True(t, pe.Flush)
	require.Equal(t, "change of key boom", pe.Item)
	require.True(t, strings.HasPrefix(err.Error(),
		`duality: app "items-fail": task 0_0: flush: change of key boom emitted by step "to-stream-per-commit-2": step "peek-3": panic: boom`), err.Error())
	require.Empty(t, readTopic(t, b, "out"))
}
