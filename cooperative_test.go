package duality_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// TestCooperativeRebalance runs the word count of kafka_test.go (a
// repartition topic and a store) on two instances, then starts a third
// while input keeps coming: the two keep the tasks that stay with them
// running across the rebalance (none of their tasks is opened again,
// none of their stores restored), the third opens the tasks that move to
// it, and the counts are exact: every word's updates are 1, 2, ..., its
// count (nothing lost, nothing doubled).
func TestCooperativeRebalance(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testCooperativeRebalance(t, openBroker(t)) })
	t.Run("kafka", func(t *testing.T) { testCooperativeRebalance(t, newKafkaBroker(t)) })
}

// coopInstance is one app of testCooperativeRebalance with what it reports.
type coopInstance struct {
	app      *duality.App
	restores atomic.Int64 // stores restored (OnRestore's last report)
	// gap is the longest time between two input records processed in a
	// row while gapOn is set, on the partitions the instance keeps.
	mu    sync.Mutex
	last  time.Time
	gap   time.Duration
	gapOn bool
}

func (in *coopInstance) processed() {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	if in.gapOn && !in.last.IsZero() {
		in.gap = max(in.gap, now.Sub(in.last))
	}
	in.last = now
}

func testCooperativeRebalance(t *testing.T, b broker.Broker) {
	const parts = 6
	createTopic(t, b, kafkaWords, parts)
	createTopic(t, b, kafkaCounts, parts)
	newInstance := func() *coopInstance {
		in := &coopInstance{}
		sb := stream.NewBuilder()
		words := stream.From(sb, kafkaWords, codec.String(), codec.String()).Peek(func(string, string) { in.processed() })
		byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
		table.Count(byWord, "counts").ToStream().To(kafkaCounts)
		topo, err := sb.Build()
		require.NoError(t, err)
		in.app, err = duality.New("kafka-count", topo, b,
			duality.StateDir(t.TempDir()), duality.CacheMaxBytes(0), duality.Workers(2),
			duality.CommitInterval(20*time.Millisecond), duality.FetchMaxRecords(20),
			duality.OnRestore(func(p duality.RestoreProgress) {
				if p.Done {
					in.restores.Add(1)
				}
			}))
		require.NoError(t, err)
		return in
	}
	model := map[string]int64{}
	next := 0
	produce := func(n int) {
		produceKafkaWords(t, b, next, next+n, model)
		next += n
	}

	a, bb := newInstance(), newInstance()
	runApp(t, a.app)
	runApp(t, bb.app)
	// Two sub-topologies (the count's input, then its repartition topic):
	// two tasks per partition number.
	eventually(t, "two instances with 3 partition numbers each", func() bool {
		return a.app.Metrics().Tasks == parts && bb.app.Metrics().Tasks == parts
	})
	produce(1000)
	awaitRecords(t, b, kafkaCounts, next)
	openedA, openedB := a.app.Metrics().TasksOpened, bb.app.Metrics().TasksOpened
	restoresA, restoresB := a.restores.Load(), bb.restores.Load()

	// Input keeps coming, at a pace; first without a rebalance, for the
	// longest gap between two records processed that the pace and the
	// commits make on their own.
	gaps := func(on bool) (ga, gb time.Duration) {
		for _, in := range []*coopInstance{a, bb} {
			in.mu.Lock()
			in.gapOn, in.last = on, time.Time{}
			ga, gb, in.gap = gb, in.gap, 0
			in.mu.Unlock()
		}
		return ga, gb
	}
	pace := time.NewTicker(2 * time.Millisecond)
	defer pace.Stop()
	gaps(true)
	steady := time.Now()
	for range 50 {
		produce(10)
		<-pace.C
	}
	steadyTime := time.Since(steady)
	baseA, baseB := gaps(true)

	// A third instance joins while input keeps coming.
	c := newInstance()
	start := time.Now()
	runApp(t, c.app)
	for c.app.Metrics().Tasks != 2*parts/3 || a.app.Metrics().Tasks != 2*parts/3 || bb.app.Metrics().Tasks != 2*parts/3 {
		require.Less(t, time.Since(start), 20*time.Second, "three instances with 2 partition numbers each")
		produce(10)
		<-pace.C
	}
	rebalanced := time.Since(start)
	produce(1000)
	awaitRecords(t, b, kafkaCounts, next)
	gapA, gapB := gaps(false)

	t.Logf("rebalance took %v; longest gap between two input records processed by A and B: %v and %v "+
		"(%v and %v in %v without a rebalance); C restored %d stores; A and B opened %d and %d tasks, restored %d and %d stores",
		rebalanced.Round(time.Millisecond), gapA.Round(time.Millisecond), gapB.Round(time.Millisecond),
		baseA.Round(time.Millisecond), baseB.Round(time.Millisecond), steadyTime.Round(time.Millisecond), c.restores.Load(),
		a.app.Metrics().TasksOpened-openedA, bb.app.Metrics().TasksOpened-openedB, a.restores.Load()-restoresA, bb.restores.Load()-restoresB)
	require.Equal(t, openedA, a.app.Metrics().TasksOpened, "A opened no task again")
	require.Equal(t, openedB, bb.app.Metrics().TasksOpened, "B opened no task again")
	require.Equal(t, restoresA, a.restores.Load(), "A restored no store")
	require.Equal(t, restoresB, bb.restores.Load(), "B restored no store")
	require.EqualValues(t, 2*parts/3, c.app.Metrics().TasksOpened, "C opened the tasks that moved to it")
	requireKafkaCounts(t, b, model)
}
