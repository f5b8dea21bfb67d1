package table_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/crashtest"
)

const (
	fkCrashOrders    = 300
	fkCrashRounds    = 8
	fkCrashCustomers = 40
	fkCrashKills     = 4
	fkCrashMaxTime   = 30 * time.Second
)

// fkCrashTopics are the topics whose committed offsets tell that the join
// has processed everything: its inputs and its internal topics.
var fkCrashTopics = []string{
	"orders", "customers",
	"shop-enriched-subscription-registration", "shop-enriched-subscription-response",
}

// TestJoinByForeignKeyKill9 runs the foreign-key join (Pebble state) in a
// child process that is killed with SIGKILL at random moments while it
// works through orders that change customer every round, restarts it until
// it is done, and checks the results: every result ever written pairs an
// order's value with the customer that value names, and the newest result
// of every order is its last value joined with its customer. Then every
// customer is renamed and the child runs once more: each order is
// re-emitted exactly once, so the subscription store holds exactly one
// subscription per order after the kills.
func TestJoinByForeignKeyKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	x := crashtest.New(t, crashtest.Embedded)
	b := x.Open()
	ctx := t.Context()
	for topic, n := range map[string]int32{"orders": 3, "customers": 2, "enriched-changes": 3} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: n}))
	}
	var recs []broker.Record
	for c := range fkCrashCustomers {
		recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "c", c), Value: fmt.Append(nil, "name", c)})
	}
	customerOf := func(o, round int) int { return (o*7 + round*3) % fkCrashCustomers }
	for round := range fkCrashRounds {
		for o := range fkCrashOrders {
			v, err := codec.JSON[fkOrder]().Append(nil, fkOrder{Customer: fmt.Sprint("c", customerOf(o, round)), Item: fmt.Sprint("item", round)})
			require.NoError(t, err)
			recs = append(recs, broker.Record{Topic: "orders", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "o", o), Value: v})
		}
	}
	require.NoError(t, b.Produce(ctx, recs))
	require.NoError(t, b.Close())

	total := fkCrashOrders * fkCrashRounds
	kills := crashtest.Kills(fkCrashKills)
	x.Run(crashtest.Plan{
		// A kill due shortly before the end may come after the child has
		// finished.
		Kills: kills, MinKills: kills - 1,
		Schedule: crashtest.Spread(total, kills, 10*time.Millisecond),
		MaxTime:  fkCrashMaxTime,
	})

	b = x.Open()
	result := func(r broker.Record) (o, round, c int) {
		t.Helper()
		var err error
		o, err = strconv.Atoi(strings.TrimPrefix(string(r.Key), "o"))
		require.NoError(t, err)
		_, err = fmt.Sscanf(string(r.Value), "item%d for name%d", &round, &c)
		require.NoError(t, err, "result %q", r.Value)
		return o, round, c
	}
	first := readAll(t, b, "enriched-changes")
	latest := map[int]broker.Record{}
	for _, r := range first {
		if r.Value == nil {
			// An order that moved to a customer not read yet.
			o, err := strconv.Atoi(strings.TrimPrefix(string(r.Key), "o"))
			require.NoError(t, err)
			delete(latest, o)
			continue
		}
		o, round, c := result(r)
		require.Equal(t, customerOf(o, round), c, "order %d of round %d joined with another customer", o, round)
		latest[o] = r
	}
	require.Len(t, latest, fkCrashOrders)
	for o, r := range latest {
		_, round, _ := result(r)
		require.Equal(t, fkCrashRounds-1, round, "order %d's newest result", o)
	}
	t.Logf("%d results for %d order updates", len(first), total)

	recs = recs[:0]
	for c := range fkCrashCustomers {
		recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "c", c), Value: fmt.Append(nil, "new", c)})
	}
	require.NoError(t, b.Produce(ctx, recs))
	require.NoError(t, b.Close())
	x.Run(crashtest.Plan{MaxTime: fkCrashMaxTime})
	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	renamed := map[string]int{}
	seen := map[[2]int64]bool{}
	for _, r := range first {
		seen[[2]int64{int64(r.Partition), r.Offset}] = true
	}
	for _, r := range readAll(t, b, "enriched-changes") {
		if seen[[2]int64{int64(r.Partition), r.Offset}] {
			continue // phase 1
		}
		o, _ := strconv.Atoi(strings.TrimPrefix(string(r.Key), "o"))
		require.Equal(t, fmt.Sprintf("item%d for new%d", fkCrashRounds-1, customerOf(o, fkCrashRounds-1)), string(r.Value))
		renamed[string(r.Key)]++
	}
	require.Len(t, renamed, fkCrashOrders)
	for k, n := range renamed {
		require.Equal(t, 1, n, "re-emissions of %s", k)
	}
}

// TestJoinByForeignKeyKill9Child is the child process of
// TestJoinByForeignKeyKill9: it runs the join until the group has committed
// every record of its inputs and internal topics, three polls in a row (a
// commit's offsets can be readable a moment before its records).
func TestJoinByForeignKeyKill9Child(t *testing.T) {
	quiet := 0
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			topo, err := fkJoinBuilder().Build()
			if err != nil {
				return nil, err
			}
			return duality.New("shop", topo, env.Broker, duality.StateDir(env.StateDir),
				duality.Workers(2), duality.CommitInterval(2*time.Millisecond), duality.MaxUncommittedRecords(100), duality.FetchMaxRecords(50))
		},
		Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
			offs, err := crashtest.GroupOffsets(ctx, env.Broker, "shop", fkCrashTopics...)
			if err != nil {
				return crashtest.Progress{}, err
			}
			if offs.CaughtUp() {
				quiet++
			} else {
				quiet = 0
			}
			return crashtest.Progress{N: offs.CommittedSum("orders"), Done: quiet == 3}, nil
		},
	})
}
