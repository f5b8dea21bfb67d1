package embedded

import (
	"sync"
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
