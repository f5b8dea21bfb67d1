package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// signalLog is a slog handler that keeps the messages logged and closes
// the channel of a message (see on) when it is first logged.
type signalLog struct {
	mu *struct {
		sync.Mutex
		msgs []string
		wait map[string]chan struct{}
	}
}

func newSignalLog() signalLog {
	return signalLog{mu: &struct {
		sync.Mutex
		msgs []string
		wait map[string]chan struct{}
	}{wait: map[string]chan struct{}{}}}
}

// on returns a channel closed once msg is logged.
func (h signalLog) on(msg string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.mu.wait[msg]
	if ch == nil {
		ch = make(chan struct{})
		h.mu.wait[msg] = ch
		if slices.Contains(h.mu.msgs, msg) {
			close(ch)
		}
	}
	return ch
}

// logged reports whether msg was logged.
func (h signalLog) logged(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.mu.msgs, msg)
}

func (h signalLog) Enabled(context.Context, slog.Level) bool { return true }

func (h signalLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Contains(h.mu.msgs, r.Message) {
		if ch := h.mu.wait[r.Message]; ch != nil {
			close(ch)
		}
	}
	h.mu.msgs = append(h.mu.msgs, r.Message)
	return nil
}

func (h signalLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalLog) WithGroup(string) slog.Handler      { return h }

// awaitSignal waits for ch, failing the test after a generous bound (not a
// synchronisation delay: ch is an explicit signal).
func awaitSignal[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		require.FailNow(t, "timed out waiting: "+what)
		panic("unreachable")
	}
}

// TestHandOffWhileFencedCommitHeld plays the app's loop (App.loop) through
// the sequence a reviewer found, with the real workers, replica run and
// embedded broker: a stateful task t moves to the member in a cooperative
// rebalance (generation 3) and restores in the background; meanwhile the
// group moves on to generation 4, so the worker's next commit, in 3, is
// fenced and held for generation 4's change (onFenced); then the loop
// hands t, restored, to the worker (App.handOff) before it hears of 4,
// and only then rebalances to 4. The worker must keep its tasks, commit
// the held commit again in 4 for the tasks that stay, and open t if 4
// keeps it: before, the hand-over made the worker give up (drop the held
// commit and stop), and generation 4 restarted all its tasks on a new
// worker from the committed offsets.
func TestHandOffWhileFencedCommitHeld(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep []int32 // the member's partitions in generation 4
	}{
		{"both kept", []int32{0, 1}},
		{"handed-over task moves away", []int32{0}},
		{"held task moves away", []int32{1}},
	} {
		t.Run(tc.name, func(t *testing.T) { testHandOffWhileHeld(t, tc.keep) })
	}
}

func testHandOffWhileHeld(t *testing.T, keep []int32) {
	ctx := t.Context()
	b := memBroker(t, map[string]int32{"in": 2, "out": 2})
	logs := newSignalLog()
	cfg := DefaultConfig()
	cfg.Workers = 1
	cfg.MaxUncommittedRecords = 1 // a commit after every record
	cfg.CommitInterval = time.Hour
	cfg.FetchMaxWait = 20 * time.Millisecond // the worker notices a commit's outcome after a fetch
	cfg.Logger = slog.New(logs)
	a, err := New("app", counterTopology("in"), b, cfg)
	require.NoError(t, err)

	// What Run does before its loop.
	a.shut = newShutdown(ctx, a.cfg.ShutdownTimeout)
	t.Cleanup(a.shut.end)
	topics, err := a.plan.ensureTopics(ctx, a.b, "")
	require.NoError(t, err)
	_, err = a.resolveInstanceID()
	require.NoError(t, err)
	require.NoError(t, a.openState(topics))
	a.topics = topics
	a.copies.reset(a.db)
	t.Cleanup(func() { require.NoError(t, a.closeState()) })
	t.Cleanup(func() { require.NoError(t, errors.Join(a.closeSlots(), a.closeStandbys())) })

	// The members' partitions, by user data: the app's balance deals
	// them (the earliest member with one).
	deal := map[string][]int32{}
	balance := func(ms []broker.BalanceMember, _ int32) ([][]int32, []byte) {
		out := make([][]int32, len(ms))
		for i, m := range ms {
			out[i] = deal[string(m.UserData)]
		}
		return out, nil
	}
	x, err := b.JoinGroup(ctx, "app", a.plan.sourceTopics, broker.JoinOptions{UserData: []byte("x")})
	require.NoError(t, err)
	deal["a"], deal["x"] = []int32{0}, []int32{1}
	m, err := b.JoinGroup(ctx, "app", a.plan.sourceTopics, broker.JoinOptions{UserData: []byte("a"), Balance: balance})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Leave(context.WithoutCancel(ctx))) })
	asg := <-m.Assignments()
	require.Equal(t, int64(2), asg.Generation)
	g, err := a.start(ctx, m, asg, topics)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = g.stop(stopReason{})
		}
	})
	require.Len(t, g.workers, 1)
	w := g.workers[0]

	// Generation 3: partition 1 moves here; its task restores in the
	// background.
	deal["a"] = []int32{0, 1}
	delete(deal, "x")
	require.NoError(t, x.Leave(ctx))
	asg = <-m.Assignments()
	require.Equal(t, int64(3), asg.Generation)
	moved, err := a.rebalance(ctx, g, asg)
	require.NoError(t, err)
	require.True(t, moved)

	// Generation 4, which the app hears of only after the hand-over.
	deal["a"], deal["y"] = keep, nil
	for _, p := range []int32{0, 1} {
		if !slices.Contains(keep, p) {
			deal["y"] = append(deal["y"], p)
		}
	}
	y, err := b.JoinGroup(ctx, "app", a.plan.sourceTopics, broker.JoinOptions{UserData: []byte("y")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, y.Leave(context.WithoutCancel(ctx))) })

	// The worker's commit of a record of partition 0, in generation 3,
	// is fenced and held.
	held := logs.on("commit fenced by a newer generation: holding it for the rebalance")
	produceTo(t, b, "in", 0, "k")
	awaitSignal(t, "the fenced commit held", held)

	restored := awaitSignal(t, "the moved task restored", (<-chan *task)(g.restored))
	require.Equal(t, topology.TaskID{Partition: 1}, restored.id)
	require.NoError(t, a.handOff(ctx, g, restored))
	select {
	case <-w.exited:
		require.FailNow(t, "the worker stopped at the hand-over")
	default:
	}

	asg = <-m.Assignments()
	require.Equal(t, int64(4), asg.Generation)
	moved, err = a.rebalance(ctx, g, asg)
	require.NoError(t, err)
	require.True(t, moved)
	require.Same(t, w, g.workers[0], "the worker goes on: none replaced it")
	select {
	case <-w.exited:
		require.FailNow(t, "the worker stopped")
	default:
	}
	require.Equal(t, slices.Contains(keep, 0), logs.logged("committing the fenced commit again in the new generation"),
		"the held commit is committed again when it holds work of a task that stays")

	// The worker runs the tasks of generation 4, t among them if kept.
	var want []string
	if slices.Contains(keep, 0) {
		want = append(want, "0 k=1") // the held commit's
	}
	for _, p := range keep {
		produceTo(t, b, "in", p, "n")
		want = append(want, fmt.Sprintf("%d n=1", p))
	}
	require.Equal(t, want, awaitOut(t, b, len(want)))
	stopped = true
	require.NoError(t, g.stop(stopReason{}))
	require.Equal(t, want, awaitOut(t, b, len(want)), "nothing else")
}

// produceTo appends a record with key key to partition p of topic.
func produceTo(t *testing.T, b broker.Broker, topic string, p int32, key string) {
	t.Helper()
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: topic, Partition: p, Key: []byte(key), Value: []byte("v")}}))
}

// awaitOut reads "out" until it has n records and returns them as
// "<partition> <value>", sorted.
func awaitOut(t *testing.T, b broker.Broker, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	defer c.Close()
	c.Assign(map[broker.TopicPartition]int64{{Topic: "out", Partition: 0}: 0, {Topic: "out", Partition: 1}: 0})
	var got []string
	for len(got) < n {
		polled, err := c.Poll(ctx, time.Second)
		require.NoError(t, err, "waiting for %d records in out, have %v", n, got)
		for _, r := range polled.Records {
			got = append(got, fmt.Sprintf("%d %s", r.Partition, r.Value))
		}
	}
	// What else is there now.
	for {
		polled, err := c.Poll(ctx, 0)
		require.NoError(t, err)
		if len(polled.Records) == 0 {
			break
		}
		for _, r := range polled.Records {
			got = append(got, fmt.Sprintf("%d %s", r.Partition, r.Value))
		}
	}
	slices.Sort(got)
	return got
}
