package duality_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
)

// runAll runs app until it has processed n records, then stops it: with a
// commit interval of an hour, the shutdown commit is the only one not
// forced by a bound.
func runAll(t *testing.T, app *duality.App, n uint64) {
	t.Helper()
	stop, _ := runApp(t, app)
	eventually(t, "records processed", func() bool { return app.Metrics().RecordsProcessed == n })
	require.NoError(t, stop())
}

func values(recs []broker.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

// TestCacheHotKey counts 500 records of one key within one commit: with
// the record cache the commit logs one changelog record (the final count),
// without it one record per write, in write order. A restart with the
// other setting rebuilds the count from either changelog.
func TestCacheHotKey(t *testing.T) {
	const n = 500
	all := make([]string, n)
	for i := range all {
		all[i] = strconv.Itoa(i + 1)
	}
	tests := []struct {
		name      string
		opts      []duality.Option
		changelog []string
		restart   duality.Option
	}{
		{"cache on", nil, []string{"500"}, duality.CacheMaxBytes(0)},
		{"cache off", []duality.Option{duality.CacheMaxBytes(0)}, all, duality.CacheMaxBytes(duality.DefaultCacheMaxBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBroker(t)
			createTopic(t, b, "in", 1)
			createTopic(t, b, "out", 1)
			produceKeyed(t, b, 0, n, 1)
			opts := append([]duality.Option{duality.CommitInterval(time.Hour), duality.Workers(1)}, tt.opts...)
			app, err := duality.New(countApp, counterTopology(t), b, opts...)
			require.NoError(t, err)
			runAll(t, app, n)

			m := app.Metrics()
			require.Equal(t, uint64(1), m.Commits)
			require.Equal(t, uint64(len(tt.changelog)), m.ChangelogRecords)
			require.Equal(t, uint64(n+len(tt.changelog)), m.RecordsProduced)
			require.Zero(t, m.CacheFlushes)
			require.Equal(t, tt.changelog, values(readTopic(t, b, countLog)))
			require.Equal(t, all, values(readTopic(t, b, "out")), "output does not depend on the cache")

			// In-memory state: the restart restores from the changelog.
			produceKeyed(t, b, n, n+1, 1)
			app2, err := duality.New(countApp, counterTopology(t), b, duality.CommitInterval(time.Hour), tt.restart)
			require.NoError(t, err)
			runAll(t, app2, 1)
			out := readTopic(t, b, "out")
			require.Equal(t, "501", string(out[len(out)-1].Value))
		})
	}
}

// producePairs appends records i in [from, to) with key "k<(i/2)%keys>":
// every key twice in a row.
func producePairs(t *testing.T, b broker.Broker, from, to, keys int) {
	t.Helper()
	var recs []broker.Record
	for i := from; i < to; i++ {
		recs = append(recs, broker.Record{Topic: "in", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "k%d", (i/2)%keys), Value: fmt.Appendf(nil, "v%d", i)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// requireRunningCounts checks that "out" holds, for each of keys keys, the
// counts 1..per exactly once and in order.
func requireRunningCounts(t *testing.T, b broker.Broker, keys, per int) {
	t.Helper()
	got := map[string][]string{}
	for _, r := range readTopic(t, b, "out") {
		got[string(r.Key)] = append(got[string(r.Key)], string(r.Value))
	}
	want := make([]string, per)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	require.Len(t, got, keys)
	for k, vs := range got {
		require.Equal(t, want, vs, "counts of %s", k)
	}
}

// TestCacheByteBound checks that a worker whose record cache grows beyond
// CacheMaxBytes commits early, long before its commit interval, that each
// commit logs a key written twice since the previous one once, and that
// state restored from the changelog those commits wrote is right.
func TestCacheByteBound(t *testing.T) {
	const n, keys = 400, 100
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	producePairs(t, b, 0, n, keys)
	// An entry counts about 100 bytes (key "k<i>", a count, 96 of
	// overhead): a flush every 20 keys or so.
	app, err := duality.New(countApp, counterTopology(t), b,
		duality.CommitInterval(time.Hour), duality.Workers(1), duality.CacheMaxBytes(2000))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	eventually(t, "records processed", func() bool { return app.Metrics().RecordsProcessed == n })
	eventually(t, "early commits", func() bool {
		m := app.Metrics()
		return m.CacheFlushes >= n/50 && m.Commits+1 >= m.CacheFlushes // the last may be in flight
	})
	require.NotEmpty(t, readTopic(t, b, countLog), "early commits wrote changelog records")
	require.NoError(t, stop())
	m := app.Metrics()
	require.Equal(t, m.CacheFlushes+1, m.Commits, "every commit but the shutdown's was forced by the bound")
	logged := len(readTopic(t, b, countLog))
	require.Equal(t, uint64(logged), m.ChangelogRecords)
	// A flush splits at most one pair of writes of a key.
	require.LessOrEqual(t, logged, n/2+int(m.Commits), "keys written twice between two flushes are logged once")
	requireRunningCounts(t, b, keys, n/keys)

	producePairs(t, b, n, 2*n, keys)
	app2, err := duality.New(countApp, counterTopology(t), b, duality.CacheMaxBytes(2000))
	require.NoError(t, err)
	runAll(t, app2, n)
	requireRunningCounts(t, b, keys, 2*n/keys)
}

// TestCacheBoundPerWorker checks that the bound is for the instance: with
// two workers each gets half, so the same input flushes more often than
// with one worker and the same bound.
func TestCacheBoundPerWorker(t *testing.T) {
	const n, keys = 400, 100
	flushes := func(workers int) uint64 {
		b := openBroker(t)
		createTopic(t, b, "in", 2)
		createTopic(t, b, "out", 2)
		produceKeyed(t, b, 0, n, keys)
		app, err := duality.New(countApp, counterTopology(t), b,
			duality.CommitInterval(time.Hour), duality.Workers(workers), duality.CacheMaxBytes(4000))
		require.NoError(t, err)
		runAll(t, app, n)
		requireCounts(t, b, n, keys)
		return app.Metrics().CacheFlushes
	}
	one, two := flushes(1), flushes(2)
	require.NotZero(t, one)
	require.Greater(t, two, one, fmt.Sprintf("flushes with one worker: %d, with two: %d", one, two))
}
