package duality_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// The tests of RunToEnd check a bounded run's outputs against plain-Go
// models of the whole input: no flush records, no idle advance, and
// graces far longer than the input spans, so that without the end advance
// no window would close and no unmatched join record would come out.

// event is an input record: key, value and event time (Unix ms).
type event struct {
	key, value string
	ts         int64
}

var runEndBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()

// produceEvents appends evs to topic, partitioned by key, with their event
// times as broker timestamps.
func produceEvents(t *testing.T, b broker.Broker, topic string, evs []event) {
	t.Helper()
	recs := make([]broker.Record, len(evs))
	for i, e := range evs {
		recs[i] = broker.Record{Topic: topic, Partition: broker.PartitionByKey, Key: []byte(e.key), Value: []byte(e.value),
			Timestamp: time.UnixMilli(e.ts)}
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// runToEnd runs app to the end of its input, failing the test if that
// takes more than a minute (it hangs).
func runToEnd(t *testing.T, app *duality.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, app.RunToEnd(ctx))
}

// readWindowed reads topic's windowed results as "key@start-end" ->
// value, failing on a window emitted twice: final results come once.
func readWindowed(t *testing.T, b broker.Broker, topic string) map[string]int64 {
	t.Helper()
	wc := window.WindowedCodec(codec.String())
	out := map[string]int64{}
	for _, r := range readTopic(t, b, topic) {
		w, err := wc.Decode(r.Key)
		require.NoError(t, err)
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		k := fmt.Sprintf("%s@%d-%d", w.Key, w.Start.UnixMilli(), w.End.UnixMilli())
		_, dup := out[k]
		require.False(t, dup, "window %s emitted twice in %s", k, topic)
		out[k] = n
	}
	return out
}

// timeWindowCounts is the model of a windowed count of tumbling (advance
// = size) or hopping windows: every window of every key.
func timeWindowCounts(evs []event, key func(event) string, size, advance int64) map[string]int64 {
	out := map[string]int64{}
	for _, e := range evs {
		for start := e.ts - e.ts%advance; start > e.ts-size; start -= advance {
			out[fmt.Sprintf("%s@%d-%d", key(e), start, start+size)]++
		}
	}
	return out
}

// sessionCounts is the model of a session count: per key, records sorted
// by time, a new session where two are more than gap apart; a session
// window ends 1 ms after its last record.
func sessionCounts(evs []event, gap int64) map[string]int64 {
	byKey := map[string][]int64{}
	for _, e := range evs {
		byKey[e.key] = append(byKey[e.key], e.ts)
	}
	out := map[string]int64{}
	for k, ts := range byKey {
		slices.Sort(ts)
		start, n := ts[0], int64(0)
		for i, x := range ts {
			if i > 0 && x-ts[i-1] > gap {
				out[fmt.Sprintf("%s@%d-%d", k, start, ts[i-1]+1)] = n
				start, n = x, 0
			}
			n++
		}
		out[fmt.Sprintf("%s@%d-%d", k, start, ts[len(ts)-1]+1)] = n
	}
	return out
}

// pageViews returns n page views keyed by user, valued by page, with
// event times rising with disorder (up to 60 ms back).
func pageViews(n int) []event {
	evs := make([]event, n)
	for i := range evs {
		evs[i] = event{key: fmt.Sprint("user-", i%11), value: fmt.Sprint("page-", i%7), ts: runEndBase + int64(i)*9 - int64(i%5)*15}
	}
	return evs
}

// TestRunToEndWindowsBehindRepartition: tumbling and hopping counts with
// final results (EmitOnWindowClose) behind a repartition, and a session
// count with final results, emit every window exactly once with the
// model's count, with one worker or two, with the steps' own stream time
// or the task's (WithTaskStreamTime, closed in order of due time).
func TestRunToEndWindowsBehindRepartition(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers int
		opts    []stream.Option
	}{
		{"one worker", 1, nil},
		{"two workers", 2, nil},
		{"task stream time", 2, []stream.Option{window.WithTaskStreamTime()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openBroker(t)
			for _, topic := range []string{"views", "tumbling", "hopping", "sessions"} {
				createTopic(t, b, topic, 3)
			}
			evs := pageViews(900)
			produceEvents(t, b, "views", evs)

			sb := stream.NewBuilder()
			views := stream.From(sb, "views", codec.String(), codec.String())
			byPage := stream.GroupBy(views, func(_, page string) string { return page }, stream.Named("by-page"))
			opts := append(slices.Clone(tc.opts), window.EmitOnWindowClose())
			window.Count(byPage, window.Tumbling(100*time.Millisecond, time.Hour), "tumbling", opts...).
				ToStream().To("tumbling")
			window.Count(byPage, window.Hopping(100*time.Millisecond, 40*time.Millisecond, time.Hour), "hopping", opts...).
				ToStream().To("hopping")
			byUser := stream.GroupByKey(views)
			window.Count(byUser, window.Session(50*time.Millisecond, time.Hour), "sessions", opts...).
				ToStream().To("sessions")
			topo, err := sb.Build()
			require.NoError(t, err)
			app, err := duality.New("runend-windows", topo, b, duality.Workers(tc.workers))
			require.NoError(t, err)
			runToEnd(t, app)

			page := func(e event) string { return e.value }
			require.Equal(t, timeWindowCounts(evs, page, 100, 100), readWindowed(t, b, "tumbling"))
			require.Equal(t, timeWindowCounts(evs, page, 100, 40), readWindowed(t, b, "hopping"))
			require.Equal(t, sessionCounts(evs, 50), readWindowed(t, b, "sessions"))
			require.Zero(t, app.Metrics().LateRecordsDropped)
		})
	}
}

// TestRunToEndLeftJoin: a stream-stream left join emits every match and,
// at the end, every left record that matched nothing, as the model gives.
// A windowed count of its output in the same task counts them all: at the
// end, the join's timer fires before the count's (an upstream step
// registers its timer first), so the unmatched records are not late. (With
// WithTaskStreamTime the count closes a window when the task's stream
// time passes its end plus grace, before the join emits the unmatched
// records of the window's last 40 ms, which are late then, in a bounded
// run as with Run.)
func TestRunToEndLeftJoin(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []stream.Option
	}{{"step stream time", nil}, {"task stream time", []stream.Option{window.WithTaskStreamTime()}}} {
		t.Run(tc.name, func(t *testing.T) {
			b := openBroker(t)
			for _, topic := range []string{"orders", "payments", "paid", "paid-counts"} {
				createTopic(t, b, topic, 2)
			}
			var orders, payments []event
			for i := range 300 {
				orders = append(orders, event{key: fmt.Sprint("c", i%13), value: fmt.Sprint("o", i), ts: runEndBase + int64(i)*10})
				if i%3 != 0 { // some orders are never paid
					payments = append(payments, event{key: fmt.Sprint("c", i%13), value: fmt.Sprint("p", i), ts: runEndBase + int64(i)*10 + int64(i%4)*6})
				}
			}
			produceEvents(t, b, "orders", orders)
			produceEvents(t, b, "payments", payments)

			sb := stream.NewBuilder()
			o := stream.GroupByKey(stream.From(sb, "orders", codec.String(), codec.String()))
			p := stream.GroupByKey(stream.From(sb, "payments", codec.String(), codec.String()))
			paid := window.LeftJoin(o, p, window.JoinTimeDifference(20*time.Millisecond, time.Hour),
				func(_ string, o, p string, found bool) string {
					if !found {
						return o + "+none"
					}
					return o + "+" + p
				}, "order-payments", tc.opts...)
			paid.To("paid")
			window.Count(stream.GroupByKey(paid), window.Tumbling(100*time.Millisecond, time.Hour),
				"paid-counts", window.EmitOnWindowClose()).
				ToStream().To("paid-counts")
			topo, err := sb.Build()
			require.NoError(t, err)
			app, err := duality.New("runend-join", topo, b)
			require.NoError(t, err)
			runToEnd(t, app)

			var want []string
			var outs []event // the join's output, with its timestamps
			for _, o := range orders {
				matched := false
				for _, p := range payments {
					if p.key == o.key && p.ts >= o.ts-20 && p.ts <= o.ts+20 {
						want = append(want, o.key+":"+o.value+"+"+p.value)
						outs = append(outs, event{key: o.key, ts: max(o.ts, p.ts)})
						matched = true
					}
				}
				if !matched {
					want = append(want, o.key+":"+o.value+"+none")
					outs = append(outs, event{key: o.key, ts: o.ts})
				}
			}
			var got []string
			for _, r := range readTopic(t, b, "paid") {
				got = append(got, string(r.Key)+":"+string(r.Value))
			}
			slices.Sort(want)
			slices.Sort(got)
			require.Equal(t, want, got)
			key := func(e event) string { return e.key }
			require.Equal(t, timeWindowCounts(outs, key, 100, 100), readWindowed(t, b, "paid-counts"))
		})
	}
}

// TestRunToEndStages: per-page counts of 100 ms windows feed, through a
// second repartition, per-second sums of those counts. The second stage
// is advanced only after the first stage's final results reached it, so
// none is late: every second's sum is the number of views in it.
func TestRunToEndStages(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "views", 3)
	createTopic(t, b, "per-second", 2)
	evs := pageViews(1200)
	produceEvents(t, b, "views", evs)

	sb := stream.NewBuilder()
	views := stream.From(sb, "views", codec.String(), codec.String())
	byPage := stream.GroupBy(views, func(_, page string) string { return page }, stream.Named("by-page"))
	perPage := window.Count(byPage, window.Tumbling(100*time.Millisecond, time.Hour), "per-page", window.EmitOnWindowClose())
	all := stream.GroupBy(perPage.ToStream(), func(window.Windowed[string], int64) string { return "all" }, stream.Named("all"))
	window.Reduce(all, window.Tumbling(time.Second, time.Hour), func(a, b int64) int64 { return a + b }, "per-second",
		window.EmitOnWindowClose()).ToStream().To("per-second")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("runend-stages", topo, b, duality.Workers(2))
	require.NoError(t, err)
	runToEnd(t, app)

	all1 := func(event) string { return "all" }
	require.Equal(t, timeWindowCounts(evs, all1, 1000, 1000), readWindowed(t, b, "per-second"))
	require.Zero(t, app.Metrics().LateRecordsDropped)
}

// TestRunToEndForeignKeyJoin: a foreign-key join's two sub-topologies
// feed each other through internal topics; a bounded run processes the
// subscriptions and responses until both are caught up.
func TestRunToEndForeignKeyJoin(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "orders", 3)
	createTopic(t, b, "products", 2)
	createTopic(t, b, "order-lines", 3)
	var products, orders []event
	for i := range 20 {
		products = append(products, event{key: fmt.Sprint("prod-", i), value: fmt.Sprint("Product ", i), ts: runEndBase})
	}
	want := map[string]string{}
	for i := range 200 {
		prod := fmt.Sprint("prod-", i*7%25) // some products do not exist
		orders = append(orders, event{key: fmt.Sprint("order-", i), value: prod, ts: runEndBase + int64(i)})
		if i*7%25 < 20 {
			want[fmt.Sprint("order-", i)] = fmt.Sprint("order-", i, ": Product ", i*7%25)
		}
	}
	produceEvents(t, b, "products", products)
	produceEvents(t, b, "orders", orders)

	sb := stream.NewBuilder()
	o := table.From(sb, "orders", codec.String(), codec.String(), "orders")
	p := table.From(sb, "products", codec.String(), codec.String(), "products")
	lines := table.JoinByForeignKey(o, p, func(prod string) string { return prod },
		func(prod, name string) string { return name }, "order-lines")
	stream.Map(lines.ToStream(), func(k, name string) (string, string) { return k, k + ": " + name }).
		To("order-lines")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("runend-fk", topo, b)
	require.NoError(t, err)
	runToEnd(t, app)

	got := map[string]string{}
	for _, r := range readTopic(t, b, "order-lines") {
		got[string(r.Key)] = string(r.Value)
	}
	require.Equal(t, want, got)
}

// TestRunToEndStopsAtTheEnd: records appended after the run started (by
// the app's own processor, on its first record) are not processed; a
// second bounded run of the app id processes exactly those.
func TestRunToEndStopsAtTheEnd(t *testing.T) {
	const n, more = 50, 20
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	produceN(t, b, "in", 0, n)
	var once sync.Once
	appendMore := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) (err error) {
		once.Do(func() {
			recs := make([]broker.Record, 0, more)
			for i := n; i < n+more; i++ {
				recs = append(recs, broker.Record{Topic: "in", Partition: broker.PartitionByKey,
					Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
			}
			err = b.Produce(ctx, recs)
		})
		if err != nil {
			return err
		}
		return prefixTo("out")(ctx, env, rec)
	}
	app, err := duality.New("runend-stop", mapTopology(t, []string{"in"}, "out", appendMore), b, duality.Workers(2))
	require.NoError(t, err)
	runToEnd(t, app)
	requireExactlyOnce(t, b, "out", n)
	lag, err := broker.GroupLag(t.Context(), b, "runend-stop", "in")
	require.NoError(t, err)
	require.EqualValues(t, more, lag)
	require.ErrorIs(t, app.RunToEnd(t.Context()), duality.ErrRunCalled)
	require.ErrorIs(t, app.Run(t.Context()), duality.ErrRunCalled)

	app, err = duality.New("runend-stop", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b)
	require.NoError(t, err)
	runToEnd(t, app)
	requireExactlyOnce(t, b, "out", n+more)
}

// TestRunToEndCompactedTail: the last offsets of a compacted topic may
// hold no record (an expired tombstone compacted away); the run reaches
// the end all the same.
func TestRunToEndCompactedTail(t *testing.T) {
	b := openBroker(t)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "rows", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}))
	createTopic(t, b, "out", 1)
	old := time.Now().Add(-48 * time.Hour) // the tombstone expired
	require.NoError(t, b.Produce(ctx, []broker.Record{
		{Topic: "rows", Key: []byte("a"), Value: []byte("1"), Timestamp: old},
		{Topic: "rows", Key: []byte("b"), Value: []byte("2"), Timestamp: old},
		{Topic: "rows", Key: []byte("a"), Value: nil, Timestamp: old}, // deletes a
	}))
	require.NoError(t, b.Cleanup(ctx))
	offs, err := b.ListOffsets(ctx, "rows", 0)
	require.NoError(t, err)
	require.EqualValues(t, 3, offs.Latest)
	recs, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "rows", Offset: offs.Earliest}}, broker.FetchOptions{})
	require.NoError(t, err)
	require.Len(t, recs, 1, "compaction keeps only b")

	app, err := duality.New("runend-compacted", mapTopology(t, []string{"rows"}, "out", prefixTo("out")), b)
	require.NoError(t, err)
	runToEnd(t, app)
	out := readTopic(t, b, "out")
	require.Len(t, out, 1)
	require.Equal(t, "out-2", string(out[0].Value))
	committed, err := b.FetchOffsets(ctx, "runend-compacted", []broker.TopicPartition{{Topic: "rows"}})
	require.NoError(t, err)
	require.EqualValues(t, 3, committed[broker.TopicPartition{Topic: "rows"}])
}

// TestRunToEndCanceled: a bounded run stopped by its context commits what
// it processed and returns an error matching the context's: it did not
// reach the end.
func TestRunToEndCanceled(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	produceN(t, b, "in", 0, 10)
	ctx, cancel := context.WithCancel(t.Context())
	stopAt := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		if string(rec.Key) == "k4" {
			cancel()
		}
		return prefixTo("out")(ctx, env, rec)
	}
	app, err := duality.New("runend-cancel", mapTopology(t, []string{"in"}, "out", stopAt), b)
	require.NoError(t, err)
	err = app.RunToEnd(ctx)
	require.ErrorIs(t, err, context.Canceled)
	out := readTopic(t, b, "out")
	lag, lerr := broker.GroupLag(t.Context(), b, "runend-cancel", "in")
	require.NoError(t, lerr)
	require.EqualValues(t, 10, int64(len(out))+lag, "what was processed is committed, the rest is left")

	app, err = duality.New("runend-cancel", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b)
	require.NoError(t, err)
	canceled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	require.ErrorIs(t, app.RunToEnd(canceled), context.Canceled)
}
