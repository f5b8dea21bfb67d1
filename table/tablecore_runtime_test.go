package table_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// newestFrom long-polls topic from the offsets in reqs, recording the
// newest value of every key in newest (a tombstone removes the key),
// until newest equals want, bounded by 20 s; it returns the records read.
func newestFrom(t *testing.T, b broker.Broker, reqs []broker.FetchRequest, newest, want map[string]string) []broker.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var all []broker.Record
	c := consumeFrom(t, b, reqs)
	for !maps.Equal(newest, want) {
		polled, err := c.Poll(ctx, time.Second)
		recs := polled.Records
		require.NoError(t, err, "waiting for the newest values of %q: have %d keys, want %d", reqs[0].Topic, len(newest), len(want))
		for _, r := range recs {
			reqs[r.Partition].Offset = r.Offset + 1
			if r.Value == nil {
				delete(newest, string(r.Key))
			} else {
				newest[string(r.Key)] = string(r.Value)
			}
		}
		all = append(all, recs...)
	}
	return all
}

// TestTableGroupByAndJoinRuntime runs a table GroupBy with Count and an
// outer table-table join (materialised and queried) on the embedded
// broker (3 partitions), in two
// runs: the second starts from an empty state directory, so the users
// and accounts tables and the counts are rebuilt from their changelogs
// before users move between regions and are deleted. The newest count of
// each region and the newest joined row of each user must match a model,
// and each region's count must move by at most one per update (a
// retraction lost or applied twice after the restore would break it).
func TestTableGroupByAndJoinRuntime(t *testing.T) {
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"users", "accounts", "region-counts", "user-accounts"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 3}))
	}
	sb := stream.NewBuilder()
	users := table.From(sb, "users", str, str, "users")
	table.GroupBy(users, func(user, region string) (string, string) { return region, user }, stream.Named("by-region")).
		Count("per-region").ToStream().To("region-counts")
	accounts := table.From(sb, "accounts", str, i64, "accounts")
	joined := table.OuterJoinTables(users, accounts, func(_ string, region string, hasRegion bool, balance int64, hasBalance bool) string {
		return show(region, hasRegion) + "|" + showInt(balance, hasBalance)
	})
	table.Materialize(joined, "user-accounts").ToStream().To("user-accounts")
	topo, err := sb.Build()
	require.NoError(t, err)

	// The model.
	regionOf := map[string]string{}
	balanceOf := map[string]int64{}
	counts := map[string]int64{}
	rng := rand.New(rand.NewPCG(1, 2))
	regions := []string{"eu", "us", "asia", "africa", "oceania"}
	batch := func(n int) []broker.Record {
		var recs []broker.Record
		for range n {
			user := fmt.Sprintf("u%d", rng.IntN(60))
			switch r := rng.IntN(10); {
			case r < 6: // set or move
				region := regions[rng.IntN(len(regions))]
				if old, ok := regionOf[user]; ok {
					counts[old]--
				}
				regionOf[user] = region
				counts[region]++
				recs = append(recs, broker.Record{Topic: "users", Partition: broker.PartitionByKey, Key: []byte(user), Value: []byte(region)})
			case r < 8: // delete
				if old, ok := regionOf[user]; ok {
					counts[old]--
					delete(regionOf, user)
				}
				recs = append(recs, broker.Record{Topic: "users", Partition: broker.PartitionByKey, Key: []byte(user)})
			case r < 9: // balance
				bal := int64(rng.IntN(1000))
				balanceOf[user] = bal
				v, _ := i64.Append(nil, bal)
				recs = append(recs, broker.Record{Topic: "accounts", Partition: broker.PartitionByKey, Key: []byte(user), Value: v})
			default: // account closed
				delete(balanceOf, user)
				recs = append(recs, broker.Record{Topic: "accounts", Partition: broker.PartitionByKey, Key: []byte(user)})
			}
		}
		return recs
	}
	wantCounts := func() map[string]string {
		m := map[string]string{}
		for region, n := range counts {
			v, _ := i64.Append(nil, n)
			m[region] = string(v)
		}
		return m
	}
	wantJoined := func() map[string]string {
		m := map[string]string{}
		for user, region := range regionOf {
			bal, ok := balanceOf[user]
			m[user] = region + "|" + showInt(bal, ok)
		}
		for user, bal := range balanceOf {
			if _, ok := regionOf[user]; !ok {
				m[user] = "-|" + showInt(bal, true)
			}
		}
		return m
	}

	dir := filepath.Join(t.TempDir(), "state")
	countReqs := []broker.FetchRequest{{Topic: "region-counts", Partition: 0}, {Topic: "region-counts", Partition: 1}, {Topic: "region-counts", Partition: 2}}
	joinReqs := []broker.FetchRequest{{Topic: "user-accounts", Partition: 0}, {Topic: "user-accounts", Partition: 1}, {Topic: "user-accounts", Partition: 2}}
	var countRecs []broker.Record
	newestCounts, newestJoined := map[string]string{}, map[string]string{}
	for run := range 2 {
		if run == 1 {
			require.NoError(t, os.RemoveAll(dir))
		}
		require.NoError(t, b.Produce(ctx, batch(400)))
		app, err := duality.New("tables", topo, b, duality.StateDir(dir), duality.CommitInterval(5*time.Millisecond))
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		countRecs = append(countRecs, newestFrom(t, b, countReqs, newestCounts, wantCounts())...)
		newestFrom(t, b, joinReqs, newestJoined, wantJoined())
		// The materialised join and the counts answer queries with the
		// same rows. Queries see committed state, applied to the stores
		// just after the commit that made the outputs visible: poll.
		for store, want := range map[string]map[string]string{"user-accounts": wantJoined(), "per-region": wantCounts()} {
			q, err := duality.Query(app, store, codec.Bytes(), codec.Bytes())
			require.NoError(t, err)
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				all, errf := q.All(ctx)
				got := map[string]string{}
				for k, v := range all {
					got[string(k)] = string(v)
				}
				require.NoError(c, errf())
				require.Equal(c, want, got, "store %s", store)
			}, 10*time.Second, 5*time.Millisecond)
		}
		stop()
		require.NoError(t, <-done)
	}

	// Every update of a region's count is one more, one less or the same
	// (a user updated within the region) as the previous one.
	prev := map[string]int64{}
	for _, r := range countRecs {
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		d := n - prev[string(r.Key)]
		require.True(t, d >= -1 && d <= 1, "region %q went from %d to %d", r.Key, prev[string(r.Key)], n)
		require.GreaterOrEqual(t, n, int64(0), "region %q", r.Key)
		prev[string(r.Key)] = n
	}
}

// TestJoinTablesRuntimeRefusesPartitionMismatch: the runtime refuses to
// run a table-table join of topics with different partition counts.
func TestJoinTablesRuntimeRefusesPartitionMismatch(t *testing.T) {
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.NoError(t, b.CreateTopic(ctx, "names", broker.TopicConfig{Partitions: 2}))
	require.NoError(t, b.CreateTopic(ctx, "balances", broker.TopicConfig{Partitions: 3}))
	sb := stream.NewBuilder()
	table.JoinTables(table.From(sb, "names", str, str, "names"), table.From(sb, "balances", str, i64, "balances"),
		func(_ string, n string, b int64) string { return n })
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("join", topo, b)
	require.NoError(t, err)
	err = app.Run(ctx)
	require.ErrorIs(t, err, stream.ErrNotCoPartitioned)
	require.ErrorContains(t, err, "names: 2")
	require.ErrorContains(t, err, "balances: 3")
}
