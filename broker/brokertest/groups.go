package brokertest

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var groupCases = []testCase{
	{"Groups/Offsets", testGroupOffsets},
	{"Groups/JoinOne", testJoinOne},
	{"Groups/Rebalance", testRebalance},
	{"Groups/Independent", testIndependentGroups},
	{"Groups/UnequalPartitionCounts", testUnequalPartitionCounts},
}

func testGroupOffsets(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 3)
	for p := range int32(3) {
		produceValues(t, b, "t", p, seq("v", 10)...)
	}
	tp := func(p int32) broker.TopicPartition { return broker.TopicPartition{Topic: "t", Partition: p} }
	all := []broker.TopicPartition{tp(0), tp(1), tp(2)}

	got, err := b.FetchOffsets(ctx, "g1", all)
	require.NoError(t, err)
	require.Empty(t, got, "never committed: absent")

	require.NoError(t, b.CommitOffsets(ctx, "g1", map[broker.TopicPartition]int64{tp(0): 5, tp(1): 7}))
	got, err = b.FetchOffsets(ctx, "g1", all)
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{tp(0): 5, tp(1): 7}, got)

	got, err = b.FetchOffsets(ctx, "g2", all)
	require.NoError(t, err)
	require.Empty(t, got, "another group sees none of g1's offsets")

	require.NoError(t, b.CommitOffsets(ctx, "g2", map[broker.TopicPartition]int64{tp(0): 1}))
	require.NoError(t, b.CommitOffsets(ctx, "g1", map[broker.TopicPartition]int64{tp(0): 9, tp(2): 0}))
	got, err = b.FetchOffsets(ctx, "g1", all)
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{tp(0): 9, tp(1): 7, tp(2): 0}, got, "later commits overwrite, others stay")
	got, err = b.FetchOffsets(ctx, "g2", all)
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{tp(0): 1}, got)

	got, err = b.FetchOffsets(ctx, "g1", []broker.TopicPartition{tp(1)})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{tp(1): 7}, got, "only the asked partitions")
}

func testJoinOne(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "a", 3)
	createTopic(t, b, "b", 3)
	m, err := b.JoinGroup(ctx, "g", []string{"b", "a"}, broker.JoinOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, m.MemberID())
	a := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	require.Positive(t, a.Generation)
	require.Equal(t, allPartitions(3, "a", "b"), a.Partitions, "a lone member gets every partition")
	require.NoError(t, m.Leave(ctx))
	requireClosed(t, m)
}

func testRebalance(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	const n = 4
	createTopic(t, b, "a", n)
	createTopic(t, b, "b", n)
	topics := []string{"a", "b"}
	all := allPartitions(n, topics...)

	m1, err := b.JoinGroup(ctx, "g", topics, broker.JoinOptions{})
	require.NoError(t, err)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	require.Equal(t, all, a1.Partitions)

	m2, err := b.JoinGroup(ctx, "g", topics, broker.JoinOptions{})
	require.NoError(t, err)
	require.NotEqual(t, m1.MemberID(), m2.MemberID())
	a2 := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation > a1.Generation })
	// m1 sees the same generation as m2 (it may skip intermediate ones).
	b1 := recvAssignment(t, m1, func(a broker.Assignment) bool { return a.Generation >= a2.Generation })
	if b1.Generation > a2.Generation {
		a2 = recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation >= b1.Generation })
	}
	require.Equal(t, b1.Generation, a2.Generation)
	requireSplit(t, all, b1.Partitions, a2.Partitions)

	// Leaving gives everything back to the remaining member.
	require.NoError(t, m2.Leave(ctx))
	requireClosed(t, m2)
	c1 := recvAssignment(t, m1, func(a broker.Assignment) bool {
		return a.Generation > a2.Generation && len(a.Partitions) == len(all)
	})
	require.Equal(t, all, c1.Partitions)
	require.NoError(t, m1.Leave(ctx))
}

// requireSplit asserts that x and y are disjoint, both non-empty, together
// cover all, and that each keeps partition p of every topic together.
func requireSplit(t *testing.T, all, x, y []broker.TopicPartition) {
	t.Helper()
	require.NotEmpty(t, x, "with more partitions than members, every member gets some")
	require.NotEmpty(t, y, "with more partitions than members, every member gets some")
	union := append(slices.Clone(x), y...)
	slices.SortFunc(union, compareTP)
	require.Equal(t, all, union, "assignments %v and %v must be disjoint and cover every partition", x, y)
	topics := map[string]bool{}
	for _, tp := range all {
		topics[tp.Topic] = true
	}
	for _, part := range [][]broker.TopicPartition{x, y} {
		perPartition := map[int32]int{}
		for _, tp := range part {
			perPartition[tp.Partition]++
		}
		for p, count := range perPartition {
			require.Equal(t, len(topics), count, "partition %d of every topic goes to the same member: %v", p, part)
		}
	}
}

// requireClosed asserts that m's assignment channel is closed (after
// draining at most one pending assignment).
func requireClosed(t *testing.T, m broker.Membership) {
	t.Helper()
	timeout := time.After(waitBound)
	for {
		select {
		case _, open := <-m.Assignments():
			if !open {
				return
			}
		case <-timeout:
			require.FailNow(t, "assignments not closed after Leave", "member %s", m.MemberID())
		}
	}
}

func testIndependentGroups(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 2)
	m1, err := b.JoinGroup(ctx, "g1", []string{"t"}, broker.JoinOptions{})
	require.NoError(t, err)
	m2, err := b.JoinGroup(ctx, "g2", []string{"t"}, broker.JoinOptions{})
	require.NoError(t, err)
	// Distinct groups each get every partition (pub/sub).
	for _, m := range []broker.Membership{m1, m2} {
		a := recvAssignment(t, m, func(broker.Assignment) bool { return true })
		require.Equal(t, allPartitions(2, "t"), a.Partitions)
	}
	require.NoError(t, m1.Leave(ctx))
	require.NoError(t, m2.Leave(ctx))
}

// testUnequalPartitionCounts subscribes to topics with 4 and 2 partitions:
// the members' assignments still cover every partition once, and partition
// p of every topic that has one goes to a single member.
func testUnequalPartitionCounts(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "a", 4)
	createTopic(t, b, "b", 2)
	all := []broker.TopicPartition{{Topic: "a", Partition: 0}, {Topic: "b", Partition: 0},
		{Topic: "a", Partition: 1}, {Topic: "b", Partition: 1}, {Topic: "a", Partition: 2}, {Topic: "a", Partition: 3}}
	m1, err := b.JoinGroup(ctx, "g", []string{"a", "b"}, broker.JoinOptions{})
	require.NoError(t, err)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	require.Equal(t, all, a1.Partitions)
	m2, err := b.JoinGroup(ctx, "g", []string{"a", "b"}, broker.JoinOptions{})
	require.NoError(t, err)
	a2 := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation > a1.Generation })
	b1 := recvAssignment(t, m1, func(a broker.Assignment) bool { return a.Generation >= a2.Generation })
	if b1.Generation > a2.Generation {
		a2 = recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation >= b1.Generation })
	}
	require.Equal(t, b1.Generation, a2.Generation)
	union := append(slices.Clone(b1.Partitions), a2.Partitions...)
	slices.SortFunc(union, compareTP)
	require.Equal(t, all, union, "assignments %v and %v must be disjoint and cover every partition", b1.Partitions, a2.Partitions)
	owner := map[int32]string{}
	for _, m := range []struct {
		id    string
		parts []broker.TopicPartition
	}{{m1.MemberID(), b1.Partitions}, {m2.MemberID(), a2.Partitions}} {
		for _, tp := range m.parts {
			if o, ok := owner[tp.Partition]; ok {
				require.Equal(t, o, m.id, "partition %d of every topic goes to one member", tp.Partition)
			}
			owner[tp.Partition] = m.id
		}
	}
	require.NoError(t, m1.Leave(ctx))
	require.NoError(t, m2.Leave(ctx))
}
