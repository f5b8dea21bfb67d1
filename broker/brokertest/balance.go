package brokertest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var balanceCases = []testCase{
	{"Groups/Balance", testBalance},
	{"Groups/BalanceInvalid", testBalanceInvalid},
}

// testBalance joins two members with a JoinOptions.Balance that gives
// every partition number to the member with the greatest id and returns
// the members' user data as its data, and user data that changes: the
// assignments follow the balance, carry its data, list each member's
// user data as its UserDataFunc gave it at the join, and Rebalance starts
// a generation with the new user data, whose balance saw the numbers
// each member owned.
func testBalance(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	const n = 3
	createTopic(t, b, "a", n)
	createTopic(t, b, "b", n)
	topics := []string{"a", "b"}
	var mu sync.Mutex
	var seen [][]broker.BalanceMember // the inputs of the balances
	// The balance runs on a goroutine of the broker: it records its
	// input for the test to check.
	balance := func(members []broker.BalanceMember, numbers int32) ([][]int32, []byte) {
		mu.Lock()
		seen = append(seen, slices.Clone(members))
		mu.Unlock()
		out := make([][]int32, len(members))
		for p := range numbers {
			out[len(out)-1] = append(out[len(out)-1], p)
		}
		var data []byte
		for _, m := range members {
			data = fmt.Appendf(data, "%s=%s;", m.ID, m.UserData)
		}
		return out, data
	}
	var ud1, ud2 atomic.Value
	ud1.Store([]byte("one-1"))
	ud2.Store([]byte("two-1"))
	join := func(ud *atomic.Value) broker.Membership {
		m, err := b.JoinGroup(ctx, "g", topics, broker.JoinOptions{
			UserData:     []byte("ignored: UserDataFunc wins"),
			UserDataFunc: func() []byte { return ud.Load().([]byte) },
			Balance:      balance,
		})
		require.NoError(t, err)
		return m
	}
	m1 := join(&ud1)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	require.Equal(t, allPartitions(n, topics...), a1.Partitions)
	require.Equal(t, fmt.Sprintf("%s=one-1;", m1.MemberID()), string(a1.Data))

	m2 := join(&ud2)
	x1, x2 := sameGeneration(t, m1, m2, a1.Generation)
	last, first := m1, m2
	lastA, firstA := x1, x2
	if m2.MemberID() > m1.MemberID() {
		last, first, lastA, firstA = m2, m1, x2, x1
	}
	require.Equal(t, allPartitions(n, topics...), lastA.Partitions, "the balance gave %s everything", last.MemberID())
	require.Empty(t, firstA.Partitions, "the balance gave %s nothing", first.MemberID())
	ids := []string{m1.MemberID(), m2.MemberID()}
	uds := map[string]string{m1.MemberID(): "one-1", m2.MemberID(): "two-1"}
	slices.Sort(ids)
	wantData := fmt.Sprintf("%s=%s;%s=%s;", ids[0], uds[ids[0]], ids[1], uds[ids[1]])
	require.Equal(t, wantData, string(x1.Data), "every member gets the balance's data")
	require.Equal(t, wantData, string(x2.Data))
	for _, m := range x1.Members {
		require.Equal(t, uds[m.ID], string(m.UserData))
	}

	// New user data, then a rebalance asked by the member that has
	// nothing (on Kafka, possibly not the leader: its user data changed).
	ud1.Store([]byte("one-2"))
	ud2.Store([]byte("two-2"))
	uds = map[string]string{m1.MemberID(): "one-2", m2.MemberID(): "two-2"}
	require.NoError(t, first.Rebalance(ctx))
	y1, y2 := sameGeneration(t, m1, m2, x1.Generation)
	wantData = fmt.Sprintf("%s=%s;%s=%s;", ids[0], uds[ids[0]], ids[1], uds[ids[1]])
	require.Equal(t, wantData, string(y1.Data))
	require.Equal(t, wantData, string(y2.Data))
	mu.Lock()
	in := seen[len(seen)-1]
	for _, ms := range seen {
		require.True(t, slices.IsSortedFunc(ms, func(x, y broker.BalanceMember) int { return strings.Compare(x.ID, y.ID) }),
			"members sorted by id")
	}
	mu.Unlock()
	require.Len(t, in, 2)
	for _, m := range in {
		want := []int32{}
		if m.ID == last.MemberID() {
			want = []int32{0, 1, 2}
		}
		require.Equal(t, want, append([]int32{}, m.Owned...), "the balance sees the numbers %s owned", m.ID)
		require.Equal(t, uds[m.ID], string(m.UserData))
	}
	require.NoError(t, m1.Leave(ctx))
	require.NoError(t, m2.Leave(ctx))
	require.NoError(t, m1.Rebalance(ctx), "Rebalance after Leave is a no-op")
}

// testBalanceInvalid: a Balance whose assignment leaves a number out is
// ignored: the broker's own rule assigns the generation, without data.
func testBalanceInvalid(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	const n = 4
	createTopic(t, b, "a", n)
	bad := func(members []broker.BalanceMember, numbers int32) ([][]int32, []byte) {
		out := make([][]int32, len(members))
		out[0] = []int32{0} // the others are missing
		return out, []byte("bad")
	}
	join := func() broker.Membership {
		m, err := b.JoinGroup(ctx, "g", []string{"a"}, broker.JoinOptions{Balance: bad})
		require.NoError(t, err)
		return m
	}
	m1 := join()
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	require.Equal(t, allPartitions(n, "a"), a1.Partitions)
	require.Nil(t, a1.Data)
	m2 := join()
	x1, x2 := sameGeneration(t, m1, m2, a1.Generation)
	requireSplit(t, allPartitions(n, "a"), x1.Partitions, x2.Partitions)
	require.Nil(t, x1.Data)
	require.Nil(t, x2.Data)
	require.NoError(t, m1.Leave(ctx))
	require.NoError(t, m2.Leave(ctx))
}

// sameGeneration returns the assignments of m1 and m2 of one generation
// after after.
func sameGeneration(t *testing.T, m1, m2 broker.Membership, after int64) (broker.Assignment, broker.Assignment) {
	t.Helper()
	a2 := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation > after })
	a1 := recvAssignment(t, m1, func(a broker.Assignment) bool { return a.Generation >= a2.Generation })
	if a1.Generation > a2.Generation {
		a2 = recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation >= a1.Generation })
	}
	require.Equal(t, a1.Generation, a2.Generation)
	return a1, a2
}
