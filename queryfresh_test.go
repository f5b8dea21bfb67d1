package duality_test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// TestQueryFreshAfterLagZero is the probe of a user who waits for the
// app's group lag to reach 0 and then queries: round after round, it
// appends amounts to some of 182 groups, waits until the group has
// committed every input offset, and reads the sums, by Get and by All.
// They must hold every committed record at once: the writes of a commit
// are visible to queries as soon as its offsets are, not at the worker's
// next poll.
func TestQueryFreshAfterLagZero(t *testing.T) {
	const (
		groups = 182
		rounds = 150
	)
	b := openBroker(t)
	createTopic(t, b, "amounts", 4)
	sb := stream.NewBuilder()
	amounts := stream.From(sb, "amounts", codec.String(), codec.Int64())
	table.Reduce(stream.GroupByKey(amounts), func(a, v int64) int64 { return a + v }, "sums")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("fresh", topo, b, duality.Workers(2), duality.StateDir(t.TempDir()),
		duality.CommitInterval(20*time.Millisecond))
	require.NoError(t, err)
	sums, err := duality.Query(app, "sums", codec.String(), codec.Int64())
	require.NoError(t, err)
	runApp(t, app)

	ctx := t.Context()
	want := map[string]int64{}
	stale := 0
	for round := range rounds {
		// Every round touches a few groups, one of them in every
		// partition most of the time.
		var recs []broker.Record
		for i := range 12 {
			g := fmt.Sprintf("g%03d", (round*31+i*17)%groups)
			amount := int64(round*12 + i + 1)
			want[g] += amount
			v, err := codec.Int64().Append(nil, amount)
			require.NoError(t, err)
			recs = append(recs, broker.Record{Topic: "amounts", Partition: broker.PartitionByKey, Key: []byte(g), Value: v})
		}
		require.NoError(t, b.Produce(ctx, recs))
		waitLagZero(t, b, "fresh", "amounts")

		_, got, err := collect(sums.All(ctx))
		require.NoError(t, err)
		if !maps.Equal(got, want) {
			stale++
			diff := 0
			for g, n := range want {
				if got[g] != n {
					diff++
				}
			}
			t.Errorf("round %d: lag 0 but All is stale in %d of %d groups", round, diff, len(want))
		}
		for i := range 12 {
			g := fmt.Sprintf("g%03d", (round*31+i*17)%groups)
			n, ok, err := sums.Get(ctx, g)
			require.NoError(t, err)
			if !ok || n != want[g] {
				t.Errorf("round %d: lag 0 but Get(%s) = %d, %v; want %d", round, g, n, ok, want[g])
			}
		}
		if stale > 5 {
			t.FailNow()
		}
	}
}

// waitLagZero waits until group has committed every offset of topics,
// polling every millisecond for at most 10 s.
func waitLagZero(t *testing.T, b broker.Broker, group string, topics ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lag, err := broker.GroupLag(t.Context(), b, group, topics...)
		require.NoError(t, err)
		if lag == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "lag still %d after 10 s", lag)
		time.Sleep(time.Millisecond)
	}
}
