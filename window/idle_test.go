package window_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

// TestIdleQuiet: a step WithTaskStreamTime under IdleStreamTimeAdvance
// punctuates only when something is due (a final result, an unmatched
// join result, an expiry), not at every millisecond of the idle advance.
// One record goes in; once its result is out, a further idle period of
// 400 ms (by the app's clock) costs at most the expiry of the record's
// window: a few punctuations and commits, not hundreds.
//
// The clock is injected and moves 1 ms at every read, so the idle
// advance moves as fast as the worker looks at it, whatever the machine's
// speed.
func TestIdleQuiet(t *testing.T) {
	str := codec.String()
	cases := []struct {
		name  string
		build func(sb *stream.Builder)
		in    string // topic of the one record
	}{{
		name: "final-count",
		build: func(sb *stream.Builder) {
			g := stream.GroupByKey(stream.From(sb, "events", str, str))
			window.Count(g, window.Tumbling(100*time.Millisecond, 0), "counts", window.EmitOnWindowClose(), window.WithTaskStreamTime()).
				ToStream().To("out")
		},
		in: "events",
	}, {
		name: "left-join",
		build: func(sb *stream.Builder) {
			l := stream.GroupByKey(stream.From(sb, "events", str, str))
			r := stream.GroupByKey(stream.From(sb, "views", str, str))
			window.LeftJoin(l, r, window.JoinTimeDifference(50*time.Millisecond, 0), func(_, v1, v2 string, ok bool) string {
				return v1 + "+" + v2
			}, "j", window.WithTaskStreamTime()).To("out")
		},
		in: "events",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			b, err := embedded.Open(t.TempDir())
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, b.Close()) })
			for _, topic := range []string{"events", "views", "out"} {
				require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}))
			}
			sb := stream.NewBuilder()
			tc.build(sb)
			topo, err := sb.Build()
			require.NoError(t, err)

			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
			var clock atomic.Int64
			clock.Store(t0)
			now := func() time.Time { return time.UnixMilli(clock.Add(1)) }
			require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: tc.in, Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(t0)}}))
			app, err := duality.New("quiet", topo, b, duality.Clock(now), duality.FetchMaxWait(2*time.Millisecond),
				duality.CommitInterval(time.Millisecond), duality.IdleStreamTimeAdvance(10*time.Millisecond))
			require.NoError(t, err)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- app.Run(runCtx) }()
			awaitRecords(t, b, "out", 1)
			before := app.Metrics()
			from := clock.Load()
			deadline := time.Now().Add(20 * time.Second)
			for clock.Load() < from+400 {
				require.True(t, time.Now().Before(deadline), "the app's clock did not move")
				time.Sleep(time.Millisecond) // polling the worker's progress
			}
			stop()
			require.NoError(t, <-done)
			after := app.Metrics()
			punct, commits := after.Punctuations-before.Punctuations, after.Commits-before.Commits
			t.Logf("total: %d punctuations, %d commits, %d changelog records; over the idle period: %d punctuations, %d commits",
				after.Punctuations, after.Commits, after.ChangelogRecords, punct, commits)
			require.Len(t, readTopic(t, b, "out"), 1)
			// Due after the result: the expiry of the record's
			// segment, and the commit of the result if it was not
			// counted yet.
			require.LessOrEqual(t, punct, uint64(3))
			require.LessOrEqual(t, commits, uint64(3))
			require.LessOrEqual(t, after.Punctuations, uint64(5))
		})
	}
}

// TestIdleSkipRearm: a record skipped under SkipOnError after the
// aggregation ran (a sibling step failed) is undone, the final result it
// emitted included, and the aggregation's timer is armed again for the
// restored state: the idle advance emits that final result at its close
// time (10), although the skipped record had armed the timer at the close
// of its own window (30). The clock stays where the test sets it: stream
// time stops at 15.
func TestIdleSkipRearm(t *testing.T) {
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"in", "out", "audit"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}))
	}
	str := codec.String()
	sb := stream.NewBuilder()
	src := stream.From(sb, "in", str, str)
	window.Count(stream.GroupByKey(src), window.Tumbling(10*time.Millisecond, window.NoGrace).WithRetention(time.Hour), "counts",
		window.EmitOnWindowClose(), window.WithTaskStreamTime()).ToStream().To("out")
	src.Peek(func(_ string, v string) {
		if v == "boom" {
			panic("boom")
		}
	}).To("audit")
	topo, err := sb.Build()
	require.NoError(t, err)

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var clock atomic.Int64
	clock.Store(t0)
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	require.NoError(t, b.Produce(ctx, []broker.Record{
		{Topic: "in", Key: []byte("a"), Value: []byte("x"), Timestamp: time.UnixMilli(t0 + 5)},
		{Topic: "in", Key: []byte("b"), Value: []byte("boom"), Timestamp: time.UnixMilli(t0 + 25)},
	}))
	app, err := duality.New("skip-rearm", topo, b, duality.Clock(now), duality.FetchMaxWait(2*time.Millisecond),
		duality.IdleStreamTimeAdvance(10*time.Millisecond), duality.OnProcessingError(duality.SkipOnError(nil)))
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	for app.Metrics().RecordsSkipped == 0 {
		require.True(t, time.Now().Before(deadline), "the record was not skipped")
		time.Sleep(time.Millisecond) // polling the worker's progress
	}
	// Stream time: the last input's (5) plus the idle time beyond 10 ms.
	clock.Store(t0 + 20)
	awaitRecords(t, b, "out", 1)
	stop()
	require.NoError(t, <-done)
	recs := readTopic(t, b, "out")
	require.Len(t, recs, 1)
	w, err := window.WindowedCodec(str).Decode(recs[0].Key)
	require.NoError(t, err)
	n, err := codec.Int64().Decode(recs[0].Value)
	require.NoError(t, err)
	require.Equal(t, "a@[0,10)=1", formatWindowed(window.Windowed[string]{Key: w.Key, Start: time.UnixMilli(w.Start.UnixMilli() - t0), End: time.UnixMilli(w.End.UnixMilli() - t0)}, n))
	require.Equal(t, uint64(1), app.Metrics().RecordsSkipped)
}

// TestIdleAdvanceAfterRestart: a window left open when the app stopped
// (its input stopped too) is closed by the idle advance after a restart,
// because the task's stream time starts from the one the aggregation
// persisted, but only after the task caught up with its partition. The first run has no idle advance, so the
// window stays open; the second deletes the state directory too, so the
// stream time comes back from the changelog.
func TestIdleAdvanceAfterRestart(t *testing.T) {
	ctx := t.Context()
	str := codec.String()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"events", "out"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}))
	}
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", str, str))
	window.Count(g, window.Tumbling(100*time.Millisecond, 0), "counts", window.EmitOnWindowClose(), window.WithTaskStreamTime()).
		ToStream().To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var batch []broker.Record
	for i := range 3 {
		batch = append(batch, broker.Record{Topic: "events", Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(t0 + int64(i))})
	}
	require.NoError(t, b.Produce(ctx, batch))
	dir := t.TempDir()

	run := func(opts ...duality.Option) (app *duality.App, stop func()) {
		app, err := duality.New("restart", topo, b, append(opts, duality.StateDir(dir), duality.CommitInterval(time.Millisecond))...)
		require.NoError(t, err)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		return app, func() {
			cancel()
			require.NoError(t, <-done)
		}
	}
	app, stop := run()
	// The three records are counted and committed: the window, its close
	// index entry and the stream time are in the changelog.
	for deadline := time.Now().Add(20 * time.Second); app.Metrics().ChangelogRecords < 3; time.Sleep(time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the records were not committed")
	}
	stop()
	require.Empty(t, readTopic(t, b, "out"), "the window is still open")

	require.NoError(t, os.RemoveAll(dir))
	// A record of the same window arrives while the app is down: the
	// restarted task must process it before its idle advance starts,
	// although the clock jumps a minute at every read (a long restore of
	// other tasks, say), or it would close the window without it.
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "events", Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(t0 + 50)}}))
	var clock atomic.Int64
	clock.Store(t0)
	now := func() time.Time { return time.UnixMilli(clock.Add(time.Minute.Milliseconds())) }
	_, stop = run(duality.Clock(now), duality.FetchMaxWait(2*time.Millisecond), duality.IdleStreamTimeAdvance(10*time.Millisecond))
	awaitRecords(t, b, "out", 1)
	stop()
	out := readTopic(t, b, "out")
	require.Len(t, out, 1)
	n, err := codec.Int64().Decode(out[0].Value)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
}
