package embedded

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// TestUserDataFuncOutsideLock checks that the coordinator reads a member's
// user data without its lock held: while a rebalance waits for a member's
// UserDataFunc (slow: it reads local state), the group's other calls that
// take the lock go on (a commit's fence check, DescribeGroup), and the
// rebalance completes with the data the function returned.
func TestUserDataFuncOutsideLock(t *testing.T) {
	b := open(t)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 2}))
	entered, proceed := make(chan struct{}), make(chan struct{})
	var armed sync.Once
	var hold bool // set before the second join, read by the rebalance it starts
	m1, err := b.JoinGroup(ctx, "g", []string{"a"}, broker.JoinOptions{UserDataFunc: func() []byte {
		if hold {
			armed.Do(func() { close(entered) })
			<-proceed
		}
		return []byte("m1")
	}})
	require.NoError(t, err)
	first := <-m1.Assignments()
	hold = true

	joined := make(chan broker.Membership, 1)
	go func() {
		m2, err := b.JoinGroup(ctx, "g", []string{"a"}, broker.JoinOptions{})
		if err != nil {
			close(joined)
			return
		}
		joined <- m2
	}()
	<-entered // the rebalance waits for m1's user data

	// Calls that take the coordinator's lock go on meanwhile.
	others := make(chan error, 1)
	go func() {
		if _, err := b.DescribeGroup(ctx, "g"); err != nil {
			others <- err
			return
		}
		others <- b.groups.checkMember("g", first.Generation, m1.MemberID())
	}()
	select {
	case err := <-others:
		require.NoError(t, err, "the generation has not moved on yet")
	case <-time.After(10 * time.Second):
		require.FailNow(t, "the coordinator's lock is held while a UserDataFunc runs")
	}
	close(proceed)
	m2, ok := <-joined
	require.True(t, ok, "the second member joined")
	a1, a2 := <-m1.Assignments(), <-m2.Assignments()
	require.Equal(t, first.Generation+1, a1.Generation)
	require.Equal(t, a1.Generation, a2.Generation)
	require.Len(t, a1.Partitions, 1)
	require.Len(t, a2.Partitions, 1)
	for _, m := range a2.Members {
		if m.ID == m1.MemberID() {
			require.Equal(t, []byte("m1"), m.UserData)
		}
	}
	require.NoError(t, m2.Leave(ctx))
	require.NoError(t, m1.Leave(ctx))
}

// heldRebalance joins a member to group with a UserDataFunc that blocks
// once armed, then starts a join of a second member in the background,
// whose rebalance waits for the first member's user data: it returns
// once that rebalance is held, with the function that releases it and
// the second member's join result.
func heldRebalance(t *testing.T, b *Broker, group string) (release func(), second <-chan error) {
	t.Helper()
	ctx := t.Context()
	entered, proceed := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	var once sync.Once
	m1, err := b.JoinGroup(ctx, group, []string{"a"}, broker.JoinOptions{UserDataFunc: func() []byte {
		if armed.Load() {
			once.Do(func() { close(entered) })
			<-proceed
		}
		return nil
	}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m1.Leave(context.Background())) })
	armed.Store(true)
	errc := make(chan error, 1)
	go func() {
		m2, err := b.JoinGroup(ctx, group, []string{"a"}, broker.JoinOptions{})
		if err == nil {
			t.Cleanup(func() { require.NoError(t, m2.Leave(context.Background())) })
		}
		errc <- err
	}()
	<-entered
	var released sync.Once
	release = func() { released.Do(func() { close(proceed) }) }
	t.Cleanup(release)
	return release, errc
}

// within waits for errc, failing the test if it takes more than a
// generous bound (not a synchronisation delay: errc is the signal).
func within(t *testing.T, what string, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		require.FailNow(t, what+": still waiting")
		return nil
	}
}

// TestGroupsRebalanceIndependently: while one group's rebalance waits for
// a member's user data, another group's members join, rebalance and
// leave.
func TestGroupsRebalanceIndependently(t *testing.T) {
	b := open(t)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 2}))
	release, second := heldRebalance(t, b, "g1")

	errc := make(chan error, 1)
	go func() {
		m, err := b.JoinGroup(ctx, "g2", []string{"a"}, broker.JoinOptions{})
		if err == nil {
			err = errors.Join(m.Rebalance(ctx), m.Leave(ctx))
		}
		errc <- err
	}()
	require.NoError(t, within(t, "another group's join, rebalance and leave", errc))
	release()
	require.NoError(t, within(t, "the held group's join", second))
}

// askedCtx is a context that tells when its Done channel is first asked
// for: a call that waits on the context has reached its wait.
type askedCtx struct {
	context.Context
	once  sync.Once
	asked chan struct{}
}

func (c *askedCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.asked) })
	return c.Context.Done()
}

// TestGroupWaitHonoursContext: a join, or a member's Rebalance, waiting
// for the group's rebalance in progress returns its context's error as
// soon as the context is canceled, and leaves the group as it was: the
// held rebalance completes with the members it had, and the group goes
// on.
func TestGroupWaitHonoursContext(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, b *Broker, m broker.Membership) error
	}{
		{"join", func(ctx context.Context, b *Broker, _ broker.Membership) error {
			m, err := b.JoinGroup(ctx, "g", []string{"a"}, broker.JoinOptions{})
			if err == nil {
				_ = m.Leave(context.Background())
			}
			return err
		}},
		{"rebalance", func(ctx context.Context, _ *Broker, m broker.Membership) error { return m.Rebalance(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			ctx := t.Context()
			require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 2}))
			other, err := b.JoinGroup(ctx, "g", []string{"a"}, broker.JoinOptions{})
			require.NoError(t, err)
			release, second := heldRebalance(t, b, "g")
			before := <-other.Assignments()

			cctx, cancel := context.WithCancel(ctx)
			waiting := &askedCtx{Context: cctx, asked: make(chan struct{})}
			errc := make(chan error, 1)
			go func() { errc <- tc.call(waiting, b, other) }()
			select {
			case <-waiting.asked:
			case <-time.After(10 * time.Second):
				require.FailNow(t, "the call does not watch its context while it waits")
			}
			cancel()
			require.ErrorIs(t, within(t, "the canceled call", errc), context.Canceled)

			release()
			require.NoError(t, within(t, "the held join", second))
			d, err := b.DescribeGroup(ctx, "g")
			require.NoError(t, err)
			require.Len(t, d.Members, 3, "the canceled call changed no membership")
			after := <-other.Assignments()
			require.Equal(t, before.Generation+1, after.Generation, "only the held join made a generation")
			require.Len(t, after.Members, 3)

			// The group goes on.
			require.NoError(t, other.Rebalance(ctx))
			require.Equal(t, after.Generation+1, (<-other.Assignments()).Generation)
			require.NoError(t, other.Leave(ctx))
		})
	}
}
