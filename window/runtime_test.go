package window_test

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/windowstore"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// readTopic returns every record of topic, partition by partition.
func readTopic(t *testing.T, b broker.Broker, topic string) []broker.Record {
	t.Helper()
	recs, err := broker.ReadAll(t.Context(), b, topic)
	require.NoError(t, err)
	return recs
}

// consumeFrom returns a consumer of b assigned the partitions of reqs at
// their offsets, closed with the test.
func consumeFrom(tb testing.TB, b broker.Broker, reqs []broker.FetchRequest) broker.Consumer {
	tb.Helper()
	c, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = c.Close() })
	from := make(map[broker.TopicPartition]int64, len(reqs))
	for _, r := range reqs {
		from[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset
	}
	c.Assign(from)
	return c
}

// awaitRecords long-polls topic until it holds at least n records with a
// value (not tombstones; bounded by 20 s).
func awaitRecords(t *testing.T, b broker.Broker, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	info, err := b.DescribeTopic(ctx, topic)
	require.NoError(t, err)
	reqs := make([]broker.FetchRequest, info.Config.Partitions)
	for p := range reqs {
		reqs[p] = broker.FetchRequest{Topic: topic, Partition: int32(p)}
	}
	c := consumeFrom(t, b, reqs)
	for seen := 0; seen < n; {
		polled, err := c.Poll(ctx, time.Second)
		recs := polled.Records
		require.NoError(t, err, "waiting for %d records in %q, have %d", n, topic, seen)
		for _, r := range recs {
			reqs[r.Partition].Offset = r.Offset + 1
			if r.Value != nil {
				seen++
			}
		}
	}
}

// TestRestore runs a hopping count with final results and a session count
// emitting every update on the embedded broker, in three runs over
// growing input: with a state directory, after deleting it (state rebuilt
// from the changelogs, stream time included), and with memory state. Every
// window's final result must be emitted exactly once over the three runs,
// with the count the model gives, and the newest session updates must
// equal the model's sessions.
func TestRestore(t *testing.T) {
	const (
		parts = 3
		keys  = 7
		step  = 150 // records per run
	)
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"events", "final", "sessions"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: parts}))
	}
	hopping := window.Hopping(40*time.Millisecond, 10*time.Millisecond, 15*time.Millisecond)
	session := window.Session(9*time.Millisecond, 10*time.Millisecond)
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", codec.String(), codec.String()))
	wc := window.WindowedCodec(codec.String())
	window.Count(g, hopping, "hop-counts", window.EmitOnWindowClose()).ToStream().To("final")
	window.Count(g, session, "session-counts").ToStream().To("sessions")
	topo, err := sb.Build()
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "state")

	// Timestamps grow (with small disorder within grace) from a recent
	// base, so stream time of each partition is the largest timestamp
	// produced to it.
	base := time.Now().Add(-time.Hour).UnixMilli()
	var all []window.Rec
	streamTime := map[int32]int64{}
	for run := range 3 {
		var batch []broker.Record
		for i := run * step; i < (run+1)*step; i++ {
			r := window.Rec{Key: fmt.Sprint("k", i%keys), TS: base + int64(i)*2 + int64(i%3)*4}
			all = append(all, r)
			p := broker.KeyPartition([]byte(r.Key), parts)
			streamTime[p] = max(streamTime[p], r.TS)
			batch = append(batch, broker.Record{Topic: "events", Partition: p, Key: []byte(r.Key), Value: []byte("v"), Timestamp: time.UnixMilli(r.TS)})
		}
		require.NoError(t, b.Produce(ctx, batch))

		// The final results due by now: the model's windows closed by
		// their partition's stream time.
		due := 0
		for k := range window.Model(hopping, all) {
			if k.End+hopping.Grace().Milliseconds() <= streamTime[broker.KeyPartition([]byte(k.Key), parts)] {
				due++
			}
		}
		opts := []duality.Option{duality.CommitInterval(5 * time.Millisecond)}
		switch run {
		case 0:
			opts = append(opts, duality.StateDir(dir))
		case 1:
			require.NoError(t, os.RemoveAll(dir))
			opts = append(opts, duality.StateDir(dir))
		}
		app, err := duality.New("win", topo, b, opts...)
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		awaitRecords(t, b, "final", due)
		awaitRecords(t, b, "sessions", len(all)) // one update per record, besides tombstones
		stop()
		require.NoError(t, <-done)
		require.Len(t, readTopic(t, b, "final"), due, "run %d: final results due", run)
	}

	// Every window closed by now was emitted exactly once, with the
	// model's count.
	want := map[window.WKey]int64{}
	for k, n := range window.Model(hopping, all) {
		if k.End+hopping.Grace().Milliseconds() <= streamTime[broker.KeyPartition([]byte(k.Key), parts)] {
			want[k] = n
		}
	}
	got := map[window.WKey]int64{}
	for _, r := range readTopic(t, b, "final") {
		w, err := wc.Decode(r.Key)
		require.NoError(t, err)
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		k := window.WKey{w.Key, w.Start.UnixMilli(), w.End.UnixMilli()}
		_, dup := got[k]
		require.False(t, dup, "final result of %v emitted twice", k)
		got[k] = n
	}
	require.Equal(t, want, got)
	require.NotEmpty(t, got)

	// The newest session updates (tombstones delete) are the model's
	// sessions.
	sessions := map[window.WKey]int64{}
	tombstones := 0
	for _, r := range readTopic(t, b, "sessions") {
		w, err := wc.Decode(r.Key)
		require.NoError(t, err)
		k := window.WKey{w.Key, w.Start.UnixMilli(), w.End.UnixMilli()}
		if r.Value == nil {
			tombstones++
			delete(sessions, k)
			continue
		}
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		sessions[k] = n
	}
	require.Equal(t, window.Model(session, all), sessions)
	require.Greater(t, len(sessions), keys, "gaps split sessions")
	require.Positive(t, tombstones, "sessions grew and merged")

	// Expiry and final results delete by range: the hopping store's
	// changelog (no merges) holds no tombstone, and drops records by time
	// instead, retention plus a day after they were written.
	changelog := readTopic(t, b, "win-hop-counts-changelog")
	require.NotEmpty(t, changelog)
	for _, r := range changelog {
		require.NotNil(t, r.Value, "tombstone for %x in the changelog of a hopping store", r.Key)
	}
	info, err := b.DescribeTopic(ctx, "win-hop-counts-changelog")
	require.NoError(t, err)
	require.Equal(t, broker.CleanupCompactDelete, info.Config.Cleanup)
	require.Equal(t, hopping.Retention()+24*time.Hour, info.Config.RetentionTime)
}

// TestQuery reads windowed stores of a running app: a key's windows over a
// time range and all windows over a time range, for tumbling windows and
// sessions, checked against the model.
func TestQuery(t *testing.T) {
	const parts = 2
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"events", "counts", "sessions"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: parts}))
	}
	tumbling := window.Tumbling(10*time.Millisecond, 0).WithRetention(time.Hour)
	session := window.Session(5*time.Millisecond, 0).WithRetention(time.Hour)
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", codec.String(), codec.String()))
	counts := window.Count(g, tumbling, "counts")
	counts.ToStream().To("counts")
	sessions := window.Count(g, session, "sessions")
	sessions.ToStream().To("sessions")
	sliding := window.Sliding(4*time.Millisecond, 0).WithRetention(time.Hour)
	slides := window.Count(g, sliding, "slides")
	topo, err := sb.Build()
	require.NoError(t, err)

	base := time.Now().Add(-time.Hour).UnixMilli() / 1000 * 1000
	var all []window.Rec
	var batch []broker.Record
	for i := range 200 {
		r := window.Rec{Key: fmt.Sprint("k", i%5), TS: base + int64(i)*3 + int64(i%4)}
		all = append(all, r)
		batch = append(batch, broker.Record{Topic: "events", Partition: broker.PartitionByKey, Key: []byte(r.Key), Value: []byte("v"), Timestamp: time.UnixMilli(r.TS)})
	}
	require.NoError(t, b.Produce(ctx, batch))

	app, err := duality.New("q", topo, b, duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	qc, err := duality.QueryWindows(app, counts)
	require.NoError(t, err)
	qs, err := duality.QueryWindows(app, sessions)
	require.NoError(t, err)
	ql, err := duality.QueryWindows(app, slides)
	require.NoError(t, err)
	_, errf := qc.FetchAll(ctx, time.UnixMilli(0), time.Now())
	require.NoError(t, errf(), "the error function reports nothing before the loop")
	seq, errf := qc.FetchAll(ctx, time.UnixMilli(0), time.Now())
	for range seq {
	}
	require.ErrorIs(t, errf(), duality.ErrStoreNotReady, "not running")

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	awaitRecords(t, b, "counts", len(all))
	awaitRecords(t, b, "sessions", len(all))

	collect := func(seq iter.Seq2[window.Windowed[string], int64], errf func() error) map[window.WKey]int64 {
		t.Helper()
		got := map[window.WKey]int64{}
		for w, n := range seq {
			got[window.WKey{w.Key, w.Start.UnixMilli(), w.End.UnixMilli()}] = n
		}
		require.NoError(t, errf())
		return got
	}
	in := func(m map[window.WKey]int64, key string, lo, hi int64) map[window.WKey]int64 {
		out := map[window.WKey]int64{}
		for k, n := range m {
			if (key == "" || k.Key == key) && k.Start >= lo && k.Start < hi {
				out[k] = n
			}
		}
		return out
	}
	lo, hi := base+100, base+400
	// Queries read committed state, which the stores may reflect a little
	// after the output became visible: wait until every record is counted.
	for _, q := range []*duality.ReadOnlyWindowStore[string, int64]{qc, qs} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			var total int64
			seq, errf := q.FetchAll(ctx, time.UnixMilli(0), time.UnixMilli(base+10_000))
			for _, n := range seq {
				total += n
			}
			if errf() == nil && total == int64(len(all)) {
				break
			}
			require.True(t, time.Now().Before(deadline), "counted %d of %d records, error %v", total, len(all), errf())
		}
	}
	for name, tc := range map[string]struct {
		q *duality.ReadOnlyWindowStore[string, int64]
		w window.Windows
	}{"tumbling": {qc, tumbling}, "session": {qs, session}, "sliding": {ql, sliding}} {
		t.Run(name, func(t *testing.T) {
			want := window.Model(tc.w, all)
			require.Equal(t, want, collect(tc.q.FetchAll(ctx, time.UnixMilli(0), time.UnixMilli(base+10_000))))
			require.Equal(t, in(want, "", lo, hi), collect(tc.q.FetchAll(ctx, time.UnixMilli(lo), time.UnixMilli(hi))))
			for i := range 5 {
				key := fmt.Sprint("k", i)
				got := collect(tc.q.Fetch(ctx, key, time.UnixMilli(lo), time.UnixMilli(hi)))
				require.Equal(t, in(want, key, lo, hi), got)
				require.NotEmpty(t, got)
			}
			// Fetch stops when the loop does.
			n := 0
			seq, errf := tc.q.Fetch(ctx, "k1", time.UnixMilli(0), time.UnixMilli(base+10_000))
			for range seq {
				n++
				break
			}
			require.NoError(t, errf())
			require.Equal(t, 1, n)
		})
	}
}

// TestQueryNotOwned runs two instances: a key's windows are served by the
// instance that owns its partition, the other answers with a
// *duality.NotOwnedError; FetchAll of both together is every window.
func TestQueryNotOwned(t *testing.T) {
	const parts = 4
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.NoError(t, b.CreateTopic(ctx, "events", broker.TopicConfig{Partitions: parts}))
	w := window.Tumbling(10*time.Millisecond, 0).WithRetention(time.Hour)
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", codec.String(), codec.String()))
	counts := window.Count(g, w, "counts")
	topo, err := sb.Build()
	require.NoError(t, err)
	base := time.Now().Add(-time.Hour).UnixMilli()
	var all []window.Rec
	var batch []broker.Record
	for i := range 120 {
		r := window.Rec{Key: fmt.Sprint("k", i%9), TS: base + int64(i)*2}
		all = append(all, r)
		batch = append(batch, broker.Record{Topic: "events", Partition: broker.PartitionByKey, Key: []byte(r.Key), Value: []byte("v"), Timestamp: time.UnixMilli(r.TS)})
	}
	require.NoError(t, b.Produce(ctx, batch))
	want := window.Model(w, all)

	var views []*duality.ReadOnlyWindowStore[string, int64]
	for range 2 {
		app, err := duality.New("q2", topo, b, duality.CommitInterval(5*time.Millisecond))
		require.NoError(t, err)
		q, err := duality.QueryWindows(app, counts)
		require.NoError(t, err)
		views = append(views, q)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		t.Cleanup(func() {
			stop()
			require.NoError(t, <-done)
		})
	}
	from, to := time.UnixMilli(base-100), time.UnixMilli(base+10_000)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		union := map[window.WKey]int64{}
		owners := 0
		for _, q := range views {
			seq, errf := q.FetchAll(ctx, from, to)
			n := 0
			for w, c := range seq {
				union[window.WKey{w.Key, w.Start.UnixMilli(), w.End.UnixMilli()}] = c
				n++
			}
			if errf() == nil && n > 0 {
				owners++
			}
		}
		if owners == 2 && maps.Equal(union, want) {
			break
		}
		require.True(t, time.Now().Before(deadline), "two owners serving every window: have %d owners, %d of %d windows", owners, len(union), len(want))
	}
	for i := range 9 {
		key := fmt.Sprint("k", i)
		served := 0
		for _, q := range views {
			seq, errf := q.Fetch(ctx, key, from, to)
			got := map[window.WKey]int64{}
			for w, c := range seq {
				got[window.WKey{w.Key, w.Start.UnixMilli(), w.End.UnixMilli()}] = c
			}
			if err := errf(); err != nil {
				var no *duality.NotOwnedError
				require.ErrorAs(t, err, &no)
				require.Equal(t, broker.KeyPartition([]byte(key), parts), no.Partition)
				require.Empty(t, got)
				continue
			}
			served++
			wantKey := map[window.WKey]int64{}
			for k, n := range want {
				if k.Key == key {
					wantKey[k] = n
				}
			}
			require.Equal(t, wantKey, got)
		}
		require.Equal(t, 1, served, key)
	}
}

// TestJoinRestore runs a left join on the embedded broker in three runs
// over growing input (state dir, state dir deleted, memory state): every
// joined pair and every unmatched left record due by the end is emitted
// exactly once, as the model says.
func TestJoinRestore(t *testing.T) {
	const (
		parts = 2
		step  = 120
	)
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"clicks", "views", "joined"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: parts}))
	}
	const before, after, grace = 6, 3, 10
	w := window.JoinTimeDifference(0, grace*time.Millisecond).Before(before * time.Millisecond).After(after * time.Millisecond)
	sb := stream.NewBuilder()
	str := codec.String()
	l := stream.GroupByKey(stream.From(sb, "clicks", str, str))
	r := stream.GroupByKey(stream.From(sb, "views", str, str))
	window.LeftJoin(l, r, w, func(_, v1, v2 string, ok bool) string {
		if !ok {
			v2 = "-"
		}
		return v1 + "+" + v2
	}, "click-view").To("joined")
	topo, err := sb.Build()
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "state")

	base := time.Now().Add(-time.Hour).UnixMilli()
	var all []window.JoinRec
	streamTime := map[int32]int64{}
	for run := range 3 {
		var batch []broker.Record
		for i := run * step; i < (run+1)*step; i++ {
			rec := window.JoinRec{Left: i%3 != 0, Key: fmt.Sprint("k", i%5), TS: base + int64(i)*2 + int64(i%4)}
			topic := "views"
			rec.ID = fmt.Sprint("R", i)
			if rec.Left {
				topic, rec.ID = "clicks", fmt.Sprint("L", i)
			}
			all = append(all, rec)
			p := broker.KeyPartition([]byte(rec.Key), parts)
			streamTime[p] = max(streamTime[p], rec.TS)
			batch = append(batch, broker.Record{Topic: topic, Partition: p, Key: []byte(rec.Key), Value: []byte(rec.ID), Timestamp: time.UnixMilli(rec.TS)})
		}
		require.NoError(t, b.Produce(ctx, batch))
		// Expected by now: every pair, and the unmatched left records
		// whose partition's stream time passed their close time.
		var want []string
		for _, s := range window.LeftJoinModel(before, after, all) {
			if !strings.HasSuffix(s, "+-") {
				want = append(want, s)
				continue
			}
			for _, rec := range all {
				if rec.Left && s == rec.Key+":"+rec.ID+"+-" &&
					rec.TS+before+after+grace < streamTime[broker.KeyPartition([]byte(rec.Key), parts)] {
					want = append(want, s)
				}
			}
		}
		slices.Sort(want)

		opts := []duality.Option{duality.CommitInterval(5 * time.Millisecond)}
		switch run {
		case 0:
			opts = append(opts, duality.StateDir(dir))
		case 1:
			require.NoError(t, os.RemoveAll(dir))
			opts = append(opts, duality.StateDir(dir))
		}
		app, err := duality.New("join", topo, b, opts...)
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		awaitRecords(t, b, "joined", len(want))
		stop()
		require.NoError(t, <-done)
		var got []string
		for _, rec := range readTopic(t, b, "joined") {
			got = append(got, string(rec.Key)+":"+string(rec.Value))
		}
		slices.Sort(got)
		require.Equal(t, want, got, "run %d", run)
	}
}

// TestCacheUpdates runs hopping and session counts with CacheUpdates on
// the embedded broker: the newest update of every window equals the
// model, fewer updates are emitted than records update windows, and every
// tombstone retracts a session that was emitted before.
func TestCacheUpdates(t *testing.T) {
	const parts = 2
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"events", "hops", "sessions"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: parts}))
	}
	hopping := window.Hopping(40*time.Millisecond, 10*time.Millisecond, 15*time.Millisecond)
	session := window.Session(9*time.Millisecond, 10*time.Millisecond)
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", codec.String(), codec.String()))
	wc := window.WindowedCodec(codec.String())
	window.Count(g, hopping, "hop-counts", window.CacheUpdates()).ToStream().To("hops")
	window.Count(g, session, "session-counts", window.CacheUpdates()).ToStream().To("sessions")
	topo, err := sb.Build()
	require.NoError(t, err)

	base := time.Now().Add(-time.Hour).UnixMilli()
	var all []window.Rec
	var batch []broker.Record
	for i := range 600 {
		r := window.Rec{Key: fmt.Sprint("k", i%7), TS: base + int64(i)*2 + int64(i%3)*4}
		all = append(all, r)
		batch = append(batch, broker.Record{Topic: "events", Partition: broker.PartitionByKey, Key: []byte(r.Key), Value: []byte("v"), Timestamp: time.UnixMilli(r.TS)})
	}
	require.NoError(t, b.Produce(ctx, batch))
	app, err := duality.New("cache", topo, b, duality.CommitInterval(20*time.Millisecond))
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		lag, err := broker.GroupLag(ctx, b, "cache", "events")
		if err == nil && lag == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "lag %d, error %v", lag, err)
	}
	stop()
	require.NoError(t, <-done)

	newest := func(topic string) (map[window.WKey]int64, int) {
		m := map[window.WKey]int64{}
		emitted := map[window.WKey]bool{}
		recs := readTopic(t, b, topic)
		for _, r := range recs {
			w, err := wc.Decode(r.Key)
			require.NoError(t, err)
			k := window.WKey{w.Key, w.Start.UnixMilli(), w.End.UnixMilli()}
			if r.Value == nil {
				require.True(t, emitted[k], "tombstone for %v, which was never emitted", k)
				delete(m, k)
				continue
			}
			emitted[k] = true
			n, err := codec.Int64().Decode(r.Value)
			require.NoError(t, err)
			m[k] = n
		}
		return m, len(recs)
	}
	hops, n := newest("hops")
	require.Equal(t, window.Model(hopping, all), hops)
	t.Logf("%d updates emitted for %d records of 4 windows each", n, len(all))
	require.Less(t, n, 4*len(all), "each record updates 4 windows; the cache emits fewer updates")
	sessions, _ := newest("sessions")
	require.Equal(t, window.Model(session, all), sessions)
}

// TestCacheUpdatesTableSteps regroups the tables of hopping and session
// counts with CacheUpdates by key on the embedded broker and sums their
// counts: the sums need the old value of every change (the count of a
// window at the previous flush, the count of every merged session), so
// each key's sum ends as its records times the windows per record.
func TestCacheUpdatesTableSteps(t *testing.T) {
	const parts = 2
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.NoError(t, b.CreateTopic(ctx, "events", broker.TopicConfig{Partitions: parts}))
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", codec.String(), codec.String()))
	sum := func(a, n int64) int64 { return a + n }
	sub := func(a, n int64) int64 { return a - n }
	byKey := func(w window.Windowed[string], n int64) (string, int64) { return w.Key, n }
	hops := window.Count(g, window.Hopping(40*time.Millisecond, 10*time.Millisecond, 15*time.Millisecond), "hop-counts", window.CacheUpdates())
	hopSums := table.GroupBy(hops, byKey).Reduce(sum, sub, "hop-sums")
	sessions := window.Count(g, window.Session(9*time.Millisecond, 10*time.Millisecond), "session-counts", window.CacheUpdates())
	sessionSums := table.GroupBy(sessions, byKey).Reduce(sum, sub, "session-sums")
	topo, err := sb.Build()
	require.NoError(t, err)

	base := time.Now().Add(-time.Hour).UnixMilli()
	perKey := map[string]int64{}
	var batch []broker.Record
	for i := range 600 {
		r := window.Rec{Key: fmt.Sprint("k", i%7), TS: base + int64(i)*2 + int64(i%3)*4}
		perKey[r.Key]++
		batch = append(batch, broker.Record{Topic: "events", Partition: broker.PartitionByKey, Key: []byte(r.Key), Value: []byte("v"), Timestamp: time.UnixMilli(r.TS)})
	}
	require.NoError(t, b.Produce(ctx, batch))
	app, err := duality.New("cache-steps", topo, b, duality.CommitInterval(20*time.Millisecond))
	require.NoError(t, err)
	qh, err := duality.QueryTable(app, hopSums)
	require.NoError(t, err)
	qs, err := duality.QueryTable(app, sessionSums)
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	wantHops := map[string]int64{}
	for k, n := range perKey {
		wantHops[k] = 4 * n // every record is in 4 hopping windows
	}
	for _, tc := range []struct {
		q    *duality.ReadOnlyStore[string, int64]
		want map[string]int64
	}{{qh, wantHops}, {qs, perKey}} {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			got := map[string]int64{}
			seq, errf := tc.q.All(ctx)
			for k, n := range seq {
				got[k] = n
			}
			if errf() == nil && maps.Equal(got, tc.want) {
				break
			}
			require.True(t, time.Now().Before(deadline), "%s: sums %v, want %v, error %v", tc.q.Name(), got, tc.want, errf())
		}
	}
}

// TestIdleAdvance runs a final-only tumbling count WithTaskStreamTime on
// the embedded broker with duality.IdleStreamTimeAdvance: when the input
// stops, the task's stream time moves on with the clock and the last
// windows of every partition close, so every window's final result is
// emitted, exactly once, without further input.
func TestIdleAdvance(t *testing.T) {
	const parts = 2
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"events", "final"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: parts}))
	}
	w := window.Tumbling(10*time.Millisecond, 5*time.Millisecond)
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", codec.String(), codec.String()))
	wc := window.WindowedCodec(codec.String())
	window.Count(g, w, "counts", window.EmitOnWindowClose(), window.WithTaskStreamTime()).ToStream().To("final")
	topo, err := sb.Build()
	require.NoError(t, err)

	base := time.Now().Add(-time.Hour).UnixMilli()
	var all []window.Rec
	var batch []broker.Record
	for i := range 100 {
		r := window.Rec{Key: fmt.Sprint("k", i%5), TS: base + int64(i)}
		all = append(all, r)
		batch = append(batch, broker.Record{Topic: "events", Partition: broker.PartitionByKey, Key: []byte(r.Key), Value: []byte("v"), Timestamp: time.UnixMilli(r.TS)})
	}
	require.NoError(t, b.Produce(ctx, batch))
	want := window.Model(w, all)

	app, err := duality.New("idle", topo, b, duality.CommitInterval(5*time.Millisecond), duality.IdleStreamTimeAdvance(20*time.Millisecond))
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	awaitRecords(t, b, "final", len(want))
	stop()
	require.NoError(t, <-done)
	got := map[window.WKey]int64{}
	for _, r := range readTopic(t, b, "final") {
		k, err := wc.Decode(r.Key)
		require.NoError(t, err)
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		key := window.WKey{k.Key, k.Start.UnixMilli(), k.End.UnixMilli()}
		_, dup := got[key]
		require.False(t, dup, "final result of %v emitted twice", key)
		got[key] = n
	}
	require.Equal(t, want, got)
}

// TestJoinIdleAdvance: a left join WithTaskStreamTime emits its last
// unmatched records when the runtime advances the idle task's stream
// time, without further input.
func TestJoinIdleAdvance(t *testing.T) {
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"clicks", "views", "joined"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 2}))
	}
	sb := stream.NewBuilder()
	str := codec.String()
	l := stream.GroupByKey(stream.From(sb, "clicks", str, str))
	r := stream.GroupByKey(stream.From(sb, "views", str, str))
	window.LeftJoin(l, r, window.JoinTimeDifference(5*time.Millisecond, 5*time.Millisecond), func(_, v1, v2 string, ok bool) string {
		if !ok {
			v2 = "-"
		}
		return v1 + "+" + v2
	}, "j", window.WithTaskStreamTime()).To("joined")
	topo, err := sb.Build()
	require.NoError(t, err)
	base := time.Now().Add(-time.Hour).UnixMilli()
	var batch []broker.Record
	want := map[string]bool{}
	for i := range 20 {
		key, id := fmt.Sprint("k", i%4), fmt.Sprint("L", i)
		want[key+":"+id+"+-"] = true
		batch = append(batch, broker.Record{Topic: "clicks", Partition: broker.PartitionByKey, Key: []byte(key), Value: []byte(id), Timestamp: time.UnixMilli(base + int64(i))})
	}
	require.NoError(t, b.Produce(ctx, batch))
	app, err := duality.New("jidle", topo, b, duality.CommitInterval(5*time.Millisecond), duality.IdleStreamTimeAdvance(20*time.Millisecond))
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	awaitRecords(t, b, "joined", len(want))
	stop()
	require.NoError(t, <-done)
	got := map[string]bool{}
	for _, rec := range readTopic(t, b, "joined") {
		s := string(rec.Key) + ":" + string(rec.Value)
		require.False(t, got[s], "%s emitted twice", s)
		got[s] = true
	}
	require.Equal(t, want, got)
}

// TestExpiryAfterRestore checks that windows expired by range deletion,
// which a restore from the changelog brings back, are deleted again when
// the task starts: after the state directory is deleted, a restart with no
// new input ends with exactly the unexpired windows in the store, and the
// changelog never got a tombstone. The last record jumps ahead: the
// windows it expires outlive its advance, also across the restore.
func TestExpiryAfterRestore(t *testing.T) {
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"events", "counts"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}))
	}
	tumbling := window.Tumbling(10*time.Millisecond, 0).WithRetention(40 * time.Millisecond)
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", codec.String(), codec.String()))
	counts := window.Count(g, tumbling, "counts")
	counts.ToStream().To("counts")
	topo, err := sb.Build()
	require.NoError(t, err)

	base := time.Now().Add(-time.Hour).UnixMilli() / 1000 * 1000
	var all []window.Rec
	for i := range 299 {
		all = append(all, window.Rec{Key: fmt.Sprint("k", i%3), TS: base + int64(i)})
	}
	all = append(all, window.Rec{Key: "k0", TS: base + 400})
	// The windows left once stream time is the last timestamp: those of
	// segments (20 ms, half the retention) not wholly older than the
	// stream time before the last advance (the one expiry reaches) minus
	// the retention.
	st, expAt := all[len(all)-1].TS, all[len(all)-2].TS
	want := map[window.WKey]int64{}
	for k, n := range window.Model(tumbling, all) {
		if windowstore.FloorDiv(k.Start, 20) >= windowstore.FloorDiv(expAt-40, 20) {
			want[k] = n
		}
	}
	require.Less(t, len(want), len(window.Model(tumbling, all))/4, "most windows expire")

	dir := filepath.Join(t.TempDir(), "state")
	for run := range 2 {
		if run == 1 {
			require.NoError(t, os.RemoveAll(dir))
		}
		app, err := duality.New("exp", topo, b, duality.CommitInterval(5*time.Millisecond), duality.StateDir(dir))
		require.NoError(t, err)
		q, err := duality.QueryWindows(app, counts)
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		if run == 0 {
			// Ten batches, each committed before the next is produced, so
			// that the changelog holds windows that expire later (a
			// window expiring before its first commit never reaches it).
			for i := 0; i < len(all); i += 30 {
				var batch []broker.Record
				for _, r := range all[i : i+30] {
					batch = append(batch, broker.Record{Topic: "events", Partition: 0, Key: []byte(r.Key), Value: []byte("v"), Timestamp: time.UnixMilli(r.TS)})
				}
				require.NoError(t, b.Produce(ctx, batch))
				awaitRecords(t, b, "counts", i+30)
			}
		}
		// Queries read committed state, which follows the commits a
		// little later: wait until it holds exactly the windows left.
		var got map[window.WKey]int64
		var qerr error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got = map[window.WKey]int64{}
			seq, errf := q.FetchAll(ctx, time.UnixMilli(0), time.UnixMilli(st+1))
			for w, n := range seq {
				got[window.WKey{w.Key, w.Start.UnixMilli(), w.End.UnixMilli()}] = n
			}
			if qerr = errf(); qerr == nil && maps.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				break
			}
		}
		stop()
		require.NoError(t, <-done)
		require.NoError(t, qerr, "run %d", run)
		require.Equal(t, want, got, "run %d: the windows left after expiry", run)
	}
	require.Len(t, readTopic(t, b, "counts"), len(all), "the restart emitted nothing")
	changelog := readTopic(t, b, "exp-counts-changelog")
	for _, r := range changelog {
		require.NotNil(t, r.Value, "tombstone for %x in the changelog", r.Key)
	}
	require.Greater(t, len(changelog), 2*len(want), "the changelog holds expired windows")
}

// TestLateMetric: records that a windowed aggregation and a join drop as
// late are counted in the app's Metrics.LateRecordsDropped, without
// WithStats.
func TestLateMetric(t *testing.T) {
	ctx := t.Context()
	str := codec.String()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"events", "views", "counts", "joined"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}))
	}
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, "events", str, str))
	window.Count(g, window.Tumbling(10*time.Millisecond, 0), "counts").ToStream().To("counts")
	v := stream.GroupByKey(stream.From(sb, "views", str, str))
	window.Join(v, g, window.JoinTimeDifference(10*time.Millisecond, 0), func(_, a, b string) string { return a + b }, "j").To("joined")
	topo, err := sb.Build()
	require.NoError(t, err)
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	rec := func(topic string, ts int64) broker.Record {
		return broker.Record{Topic: topic, Key: []byte("k"), Value: []byte("v"), Timestamp: time.UnixMilli(t0 + ts)}
	}
	// events: 100 then 0 (late for the count: [0,10) closed at 10; late
	// for the join: its window [-10, 10] closed); views: 100 (joins the
	// event at 100), then 50 (late for the join).
	require.NoError(t, b.Produce(ctx, []broker.Record{rec("events", 100), rec("events", 0), rec("views", 100), rec("views", 50)}))
	app, err := duality.New("late", topo, b, duality.CommitInterval(time.Millisecond))
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	for deadline := time.Now().Add(20 * time.Second); app.Metrics().RecordsProcessed < 4; time.Sleep(time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the records were not processed")
	}
	stop()
	require.NoError(t, <-done)
	require.Equal(t, uint64(3), app.Metrics().LateRecordsDropped)
	require.Len(t, readTopic(t, b, "counts"), 1)
	require.Len(t, readTopic(t, b, "joined"), 1)
}
