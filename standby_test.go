package duality_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
)

// TestStandbyFailover runs two instances of the counter, each with its
// own state directory, on one input partition: A processes, B keeps a
// standby copy of A's store (NumStandbyReplicas(1)); then A stops and B
// takes the task over. With the standby, B's restore reads only the
// changelog records its copy had not applied (none, when A stops idle
// with the copy caught up); without, the whole changelog. The counts stay
// exact either way. It runs on the embedded broker and on Kafka (kfake).
func TestStandbyFailover(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) broker.Broker
	}{
		{"embedded", func(t *testing.T) broker.Broker { return openBroker(t) }},
		{"kafka", func(t *testing.T) broker.Broker { return newKafkaBroker(t) }},
	}
	for _, be := range backends {
		for _, standbys := range []int{0, 1} {
			for _, idle := range []bool{true, false} {
				if standbys == 0 && !idle {
					continue // the same as idle without standby
				}
				name := be.name + "/no-standby"
				if standbys > 0 {
					name = be.name + "/standby"
					if idle {
						name += "/caught-up"
					} else {
						name += "/tail"
					}
				}
				t.Run(name, func(t *testing.T) { testStandbyFailover(t, be.open(t), standbys, idle) })
			}
		}
	}
}

// testStandbyFailover is TestStandbyFailover on b with standbys standby
// replicas. idle stops A once B's copy applied everything A wrote; else
// A stops right after more input was processed, with whatever tail the
// copy has not applied yet.
func testStandbyFailover(t *testing.T, b broker.Broker, standbys int, idle bool) {
	const keys = 11
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	var mu sync.Mutex
	restored := map[string]int64{} // by instance: changelog records restored
	onRestore := func(inst string) duality.Option {
		return duality.OnRestore(func(p duality.RestoreProgress) {
			if p.Done {
				mu.Lock()
				restored[inst] += p.Restored
				mu.Unlock()
			}
		})
	}
	opts := func(inst string) []duality.Option {
		return []duality.Option{duality.StateDir(t.TempDir()), duality.NumStandbyReplicas(standbys), onRestore(inst),
			duality.FetchMaxWait(50 * time.Millisecond)}
	}
	produceKeyed(t, b, 0, 400, keys)
	appA := newCounter(t, b, opts("A")...)
	stopA, _ := runApp(t, appA)
	awaitRecords(t, b, "out", 400)
	appB := newCounter(t, b, opts("B")...)
	stopB, _ := runApp(t, appB)
	// One partition: A keeps it (the first member on the embedded
	// broker, the sticky owner on Kafka), B holds its standby.
	eventually(t, "B joined", func() bool { return appB.Metrics().Assignments > 0 && appA.Metrics().Assignments > 1 })
	if standbys > 0 {
		eventually(t, "B keeps a standby task", func() bool { return appB.Metrics().StandbyTasks == 1 })
	}
	require.Equal(t, 1, appA.Metrics().Tasks)
	require.Zero(t, appA.Metrics().StandbyTasks)
	require.Zero(t, appB.Metrics().Tasks)
	mid := 1000 // the input A has processed when B's copy catches up
	if !idle {
		mid = 800
	}
	produceKeyed(t, b, 400, mid, keys)
	awaitRecords(t, b, "out", mid)
	if standbys > 0 {
		// A is idle: its changelog records are all written, and counted
		// once its metrics count the commit of its last output (they
		// count a commit's records just after the broker has it).
		eventually(t, "A's metrics counted its commits", func() bool {
			m := appA.Metrics()
			return m.RecordsProduced-m.ChangelogRecords == uint64(mid)
		})
		logged := appA.Metrics().ChangelogRecords
		require.NotZero(t, logged)
		eventually(t, "B's standby caught up", func() bool {
			m := appB.Metrics()
			return m.StandbyRecords == logged && m.StandbyLag == 0
		})
	}
	if mid < 1000 {
		produceKeyed(t, b, mid, 1000, keys)
		awaitRecords(t, b, "out", 1000)
	}
	require.NoError(t, stopA())
	mA := appA.Metrics()
	eventually(t, "B took the task over", func() bool { return appB.Metrics().Tasks == 1 })
	require.Zero(t, appB.Metrics().StandbyTasks)
	require.Zero(t, appB.Metrics().StandbyLag)
	produceKeyed(t, b, 1000, 1400, keys)
	awaitRecords(t, b, "out", 1400)
	require.NoError(t, stopB())
	mB := appB.Metrics()
	requireCounts(t, b, 1400, keys)
	mu.Lock()
	defer mu.Unlock()
	require.Zero(t, restored["A"], "A started on an empty changelog")
	// B's copy held the changelog's first StandbyRecords records (it
	// started empty); the takeover's restore read exactly the rest of
	// what A wrote.
	require.Equal(t, int64(mA.ChangelogRecords-mB.StandbyRecords), restored["B"])
	switch {
	case standbys == 0:
		require.Zero(t, mB.StandbyRecords)
	case idle:
		require.Zero(t, restored["B"], "the caught-up standby left nothing to restore")
	default:
		require.Less(t, restored["B"], int64(mA.ChangelogRecords), "the standby left only a tail to restore")
	}
}
