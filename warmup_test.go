package duality_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
)

// TestWarmupScaleOut scales the counter out from one instance to two, each
// with its own state directory, on two input partitions: A runs both
// tasks and holds their stores (thousands of keys), then B joins. Balance
// wants one task on B, but B holds no copy of its state, so the task stays
// on A, which goes on processing, and B gets a warm-up replica of it,
// which copies the store from its changelog. B's reads of changelogs are
// held back until the test has seen A process more input with B warming
// up, and B's probing rebalances (every 200 ms) leave the task on A; then
// B's copy catches up, B asks for a probing rebalance at once, and the
// task moves to B, whose restore reads nothing: the warm-up had applied
// the whole changelog. The counts stay exact. It runs on the embedded
// broker and on Kafka (kfake).
func TestWarmupScaleOut(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) broker.Broker
	}{
		{"embedded", func(t *testing.T) broker.Broker { return openBroker(t) }},
		{"kafka", func(t *testing.T) broker.Broker { return newKafkaBroker(t) }},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testWarmupScaleOut(t, be.open(t)) })
	}
}

func testWarmupScaleOut(t *testing.T, b broker.Broker) {
	const keys, first, more, last = 4000, 12_000, 12_400, 13_000
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	var mu sync.Mutex
	restored := map[string]int64{} // by instance: changelog records restored
	opts := func(inst string) []duality.Option {
		return []duality.Option{duality.StateDir(t.TempDir()), duality.FetchMaxWait(50 * time.Millisecond),
			// Thousands of changelog records are more than a copy
			// may lack and be caught up.
			duality.AcceptableRecoveryLag(100),
			duality.OnRestore(func(p duality.RestoreProgress) {
				if p.Done {
					mu.Lock()
					restored[inst] += p.Restored
					mu.Unlock()
				}
			})}
	}
	produceKeyed(t, b, 0, first, keys)
	appA := newCounter(t, b, opts("A")...)
	stopA, _ := runApp(t, appA)
	awaitRecords(t, b, "out", first)
	eventually(t, "A counted its changelog", func() bool {
		m := appA.Metrics()
		return m.RecordsProduced-m.ChangelogRecords == first
	})
	logged := appA.Metrics().ChangelogRecords
	require.Greater(t, logged, uint64(keys/2), "a store large enough that a restore shows")

	gb := &gatedBroker{Broker: b, gate: make(chan struct{})}
	appB := newCounter(t, gb, append(opts("B"), duality.ProbingRebalanceInterval(200*time.Millisecond))...)
	stopB, _ := runApp(t, appB)
	eventually(t, "B warms up a task", func() bool {
		m := appB.Metrics()
		return m.Assignments > 0 && m.WarmupTasks == 1
	})
	require.Zero(t, appB.Metrics().Tasks, "B runs nothing before its copy caught up")
	require.Equal(t, 2, appA.Metrics().Tasks, "A keeps both tasks meanwhile")
	// Probing rebalances every interval leave the task where it is
	// while B's copy is behind.
	eventually(t, "B probed twice", func() bool { return appB.Metrics().ProbingRebalances >= 2 })

	// A goes on processing both partitions while B warms up.
	processed := appA.Metrics().RecordsProcessed
	produceKeyed(t, b, first, more, keys)
	awaitRecords(t, b, "out", more)
	eventually(t, "A counted what it processed", func() bool {
		return appA.Metrics().RecordsProcessed == processed+uint64(more-first)
	})
	require.Zero(t, appB.Metrics().Tasks)
	require.Equal(t, 2, appA.Metrics().Tasks)
	eventually(t, "B still warms up", func() bool { return appB.Metrics().WarmupTasks == 1 })

	close(gb.gate) // B's copy catches up
	eventually(t, "the task moved to B", func() bool {
		return appB.Metrics().Tasks == 1 && appA.Metrics().Tasks == 1
	})
	mB := appB.Metrics()
	require.Zero(t, mB.WarmupTasks)
	require.GreaterOrEqual(t, mB.ProbingRebalances, uint64(1), "B asked for the rebalance that moved the task")
	require.NotZero(t, mB.StandbyRecords, "the warm-up copied the store")

	produceKeyed(t, b, more, last, keys)
	awaitRecords(t, b, "out", last)
	mu.Lock()
	require.Zero(t, restored["A"], "A started on empty changelogs and kept its tasks' state")
	require.Zero(t, restored["B"], "the warm-up left nothing to restore when the task moved")
	mu.Unlock()
	require.NoError(t, stopB()) // its task moves back to A, which restores what B wrote
	require.NoError(t, stopA())
	requireCounts(t, b, last, keys)
}

// gatedBroker holds back its Consumers' polls of changelog partitions
// until gate is closed.
type gatedBroker struct {
	broker.Broker
	gate chan struct{}
}

func (g *gatedBroker) NewConsumer(opts broker.ConsumerOptions) (broker.Consumer, error) {
	c, err := g.Broker.NewConsumer(opts)
	if err != nil {
		return nil, err
	}
	return &gatedConsumer{Consumer: c, gate: g.gate, assigned: map[broker.TopicPartition]bool{}}, nil
}

type gatedConsumer struct {
	broker.Consumer
	gate     chan struct{}
	assigned map[broker.TopicPartition]bool
}

func (c *gatedConsumer) Assign(positions map[broker.TopicPartition]int64) {
	for tp := range positions {
		c.assigned[tp] = true
	}
	c.Consumer.Assign(positions)
}

func (c *gatedConsumer) Unassign(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		delete(c.assigned, tp)
	}
	c.Consumer.Unassign(tps...)
}

// Poll waits, as a Poll that finds nothing does, while the gate is shut
// and a changelog partition is assigned.
func (c *gatedConsumer) Poll(ctx context.Context, maxWait time.Duration) (broker.Polled, error) {
	for tp := range c.assigned {
		if !strings.HasSuffix(tp.Topic, "-changelog") {
			continue
		}
		select {
		case <-c.gate:
		case <-ctx.Done():
			return broker.Polled{}, ctx.Err()
		case <-time.After(maxWait):
			return broker.Polled{}, nil
		}
		break
	}
	return c.Consumer.Poll(ctx, maxWait)
}
