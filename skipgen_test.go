package duality_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
)

// coalescingBroker delivers a member's assignments through a gate that
// keeps only the newest one while closed, as broker.Membership allows
// ("holds only the newest assignment") and as Kafka does when a member is
// slow to rejoin: the member then sees a generation jump by more than one.
type coalescingBroker struct {
	broker.Broker
	gate chan struct{} // a send lets the held assignments through
	mu   sync.Mutex
	hold bool
}

type coalescingMember struct {
	broker.Membership
	ch chan broker.Assignment
}

func (m *coalescingMember) Assignments() <-chan broker.Assignment { return m.ch }

func (g *coalescingBroker) JoinGroup(ctx context.Context, group string, topics []string, opts broker.JoinOptions) (broker.Membership, error) {
	m, err := g.Broker.JoinGroup(ctx, group, topics, opts)
	if err != nil {
		return nil, err
	}
	cm := &coalescingMember{Membership: m, ch: make(chan broker.Assignment, 1)}
	go func() {
		defer close(cm.ch)
		for a := range m.Assignments() {
			g.mu.Lock()
			hold := g.hold
			g.mu.Unlock()
			if hold {
				<-g.gate
			drain:
				for {
					select {
					case b, ok := <-m.Assignments():
						if !ok {
							return
						}
						a = b
					default:
						break drain
					}
				}
			}
			cm.ch <- a
		}
	}()
	return cm, nil
}

// TestSkippedGenerationDropsWork: A holds uncommitted work for in/1 when Y
// joins, takes in/1, processes and commits it, and leaves; A sees only the
// last generation, where it owns in/1 again. Committing A's old work then
// would write every output twice, so A must drop it and resume from Y's
// committed offsets.
func TestSkippedGenerationDropsWork(t *testing.T) {
	eb := openBroker(t)
	createTopic(t, eb, "in", 2)
	createTopic(t, eb, "out", 1)
	g := &coalescingBroker{Broker: eb, gate: make(chan struct{})}

	var recs []broker.Record
	for i := range 10 {
		recs = append(recs, broker.Record{Topic: "in", Partition: 1, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	require.NoError(t, eb.Produce(t.Context(), recs))

	fn, done := counting(10, prefixTo("out"))
	app, err := duality.New("skip", mapTopology(t, []string{"in"}, "out", fn), g,
		duality.Workers(1), duality.CommitInterval(time.Hour))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	<-done // A processed in/1 offsets 0..9, uncommitted

	g.mu.Lock()
	g.hold = true
	g.mu.Unlock()
	y, err := eb.JoinGroup(t.Context(), "skip", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	asg := <-y.Assignments()
	require.Equal(t, []broker.TopicPartition{{Topic: "in", Partition: 1}}, asg.Partitions)
	var out []broker.Record
	for i := range 10 {
		out = append(out, broker.Record{Topic: "out", Partition: broker.PartitionByKey, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "out-v%d", i)})
	}
	require.NoError(t, eb.Commit(t.Context(), broker.CommitRequest{Records: out, Group: "skip", Generation: asg.Generation, MemberID: y.MemberID(),
		Offsets: map[broker.TopicPartition]int64{{Topic: "in", Partition: 1}: 10}}))
	require.NoError(t, y.Leave(t.Context()))
	g.gate <- struct{}{} // A now sees only the newest generation

	// Once A has taken the new assignment, its old generation is settled.
	eventually(t, "the app takes the coalesced assignment", func() bool { return app.Metrics().Assignments >= 2 })
	require.NoError(t, stop())
	counts := map[string]int{}
	for _, r := range readTopic(t, eb, "out") {
		counts[string(r.Value)]++
	}
	require.Len(t, counts, 10)
	for v, c := range counts {
		require.Equal(t, 1, c, "output %s written %d times", v, c)
	}
}
