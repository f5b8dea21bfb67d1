package brokertest

import (
	"slices"
	"strings"
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
	{"Groups/Members", testGroupMembers},
	{"Groups/UserDataTooLarge", testUserDataTooLarge},
	{"Groups/StaticMember", testStaticMember},
	{"Groups/OnePhaseMove", testOnePhaseMove},
}

// testOnePhaseMove has a third member join two: the two keep the
// partitions they had but the third's share (sticky), and the
// partitions that move do so in one step, safely (see
// broker.Assignment): a commit of a moved partition in the old
// generation is fenced and leaves nothing visible, while the old
// members' commits of what they kept, and the new member's of what it
// got, pass in the new generation.
func testOnePhaseMove(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	const n = 6
	createTopic(t, b, "in", n)
	createTopic(t, b, "out", 1)
	topics := []string{"in"}
	m1, err := b.JoinGroup(ctx, "g", topics, broker.JoinOptions{})
	require.NoError(t, err)
	defer m1.Leave(ctx)
	m2, err := b.JoinGroup(ctx, "g", topics, broker.JoinOptions{})
	require.NoError(t, err)
	defer m2.Leave(ctx)
	two := recvSameGeneration(t, m1, m2)
	requireSplit(t, allPartitions(n, topics...), two[0].Partitions, two[1].Partitions)

	m3, err := b.JoinGroup(ctx, "g", topics, broker.JoinOptions{})
	require.NoError(t, err)
	defer m3.Leave(ctx)
	three := recvSameGeneration(t, m1, m2, m3)
	for i, a := range three {
		require.Len(t, a.Partitions, n/3, "member %d: an equal share", i+1)
		if i < 2 {
			require.Subset(t, two[i].Partitions, a.Partitions, "member %d keeps what it had but the new member's share", i+1)
		}
	}
	// A partition that moved from m1 to m3, and one m1 kept.
	var moved, kept broker.TopicPartition
	for _, tp := range two[0].Partitions {
		if slices.Contains(three[2].Partitions, tp) {
			moved = tp
		} else {
			kept = tp
		}
	}
	require.Contains(t, three[2].Partitions, moved, "m3 took a partition of m1's")
	gen := three[0].Generation

	old := broker.CommitRequest{Group: "g", Generation: two[0].Generation, MemberID: m1.MemberID(),
		Records: []broker.Record{rec("out", 0, "k", "zombie")}, Offsets: map[broker.TopicPartition]int64{moved: 10}}
	require.ErrorIs(t, commit(ctx, b, old), broker.ErrFenced, "the old owner's commit in the old generation")
	require.NoError(t, commit(ctx, b, broker.CommitRequest{Group: "g", Generation: gen, MemberID: m1.MemberID(),
		Records: []broker.Record{rec("out", 0, "k", "kept")}, Offsets: map[broker.TopicPartition]int64{kept: 5}}))
	require.NoError(t, commit(ctx, b, broker.CommitRequest{Group: "g", Generation: gen, MemberID: m3.MemberID(),
		Records: []broker.Record{rec("out", 0, "k", "moved")}, Offsets: map[broker.TopicPartition]int64{moved: 7}}))
	offsets, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{moved, kept})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{moved: 7, kept: 5}, offsets)
	require.Equal(t, []string{"kept", "moved"}, values(fetchAll(t, b, "out", 0, 0)), "nothing of the fenced commit is visible")
}

// recvSameGeneration waits until every member has an assignment of one
// generation with all of them in it, and returns those assignments.
func recvSameGeneration(t *testing.T, ms ...broker.Membership) []broker.Assignment {
	t.Helper()
	out := make([]broker.Assignment, len(ms))
	var gen int64
	for {
		done := true
		for i, m := range ms {
			if out[i].Generation >= gen && len(out[i].Members) == len(ms) && !out[i].Lost {
				continue
			}
			out[i] = recvAssignment(t, m, func(a broker.Assignment) bool {
				return a.Generation >= gen && len(a.Members) == len(ms) && !a.Lost
			})
			if out[i].Generation > gen {
				gen, done = out[i].Generation, false
			}
		}
		if done {
			for _, a := range out {
				if a.Generation != gen {
					done = false
				}
			}
		}
		if done {
			return out
		}
	}
}

// testGroupMembers joins two members with user data: the assignments of
// a generation list both, sorted by id, with their user data and the
// partitions each member got.
func testGroupMembers(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "a", 4)
	createTopic(t, b, "b", 4)
	topics := []string{"a", "b"}
	m1, err := b.JoinGroup(ctx, "g", topics, broker.JoinOptions{UserData: []byte("http://one:8080")})
	require.NoError(t, err)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	require.Equal(t, []broker.Member{{ID: m1.MemberID(), UserData: []byte("http://one:8080"), Partitions: a1.Partitions}}, a1.Members)

	m2, err := b.JoinGroup(ctx, "g", topics, broker.JoinOptions{UserData: []byte("http://two:8080")})
	require.NoError(t, err)
	a2 := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation > a1.Generation })
	b1 := recvAssignment(t, m1, func(a broker.Assignment) bool { return a.Generation >= a2.Generation })
	if b1.Generation > a2.Generation {
		a2 = recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation >= b1.Generation })
	}
	require.Equal(t, b1.Generation, a2.Generation)
	requireSplit(t, allPartitions(4, topics...), b1.Partitions, a2.Partitions)
	want := []broker.Member{
		{ID: m1.MemberID(), UserData: []byte("http://one:8080"), Partitions: b1.Partitions},
		{ID: m2.MemberID(), UserData: []byte("http://two:8080"), Partitions: a2.Partitions},
	}
	slices.SortFunc(want, func(x, y broker.Member) int { return strings.Compare(x.ID, y.ID) })
	require.Equal(t, want, b1.Members, "every member's assignment lists every member")
	require.Equal(t, want, a2.Members, "every member's assignment lists every member")
	require.NoError(t, m1.Leave(ctx))
	require.NoError(t, m2.Leave(ctx))
}

func testUserDataTooLarge(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 1)
	_, err := b.JoinGroup(t.Context(), "g", []string{"t"}, broker.JoinOptions{UserData: make([]byte, broker.MaxUserData+1)})
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
	m, err := b.JoinGroup(t.Context(), "g", []string{"t"}, broker.JoinOptions{UserData: make([]byte, broker.MaxUserData)})
	require.NoError(t, err, "MaxUserData bytes are accepted")
	a := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	require.Len(t, a.Members, 1)
	require.Len(t, a.Members[0].UserData, broker.MaxUserData)
	require.NoError(t, m.Leave(t.Context()))
}

// testStaticMember restarts a static member: the member joining with the
// InstanceID of a current one takes its partitions, the old member's
// Assignments channel closes, and its commits are fenced.
func testStaticMember(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	const n = 4
	createTopic(t, b, "in", n)
	createTopic(t, b, "out", 1)
	all := allPartitions(n, "in")
	s1, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{InstanceID: "i-1"})
	require.NoError(t, err)
	recvAssignment(t, s1, func(broker.Assignment) bool { return true })
	d, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	ad := recvAssignment(t, d, func(a broker.Assignment) bool { return len(a.Members) == 2 })
	a1 := recvAssignment(t, s1, func(a broker.Assignment) bool { return a.Generation >= ad.Generation })
	requireSplit(t, all, a1.Partitions, ad.Partitions)

	s2, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{InstanceID: "i-1"})
	require.NoError(t, err)
	require.NotEqual(t, s1.MemberID(), s2.MemberID())
	a2 := recvAssignment(t, s2, func(a broker.Assignment) bool {
		return slices.ContainsFunc(a.Members, func(m broker.Member) bool { return m.ID == s2.MemberID() })
	})
	require.Len(t, a2.Members, 2, "the new instance replaced the old one: %+v", a2.Members)
	require.False(t, slices.ContainsFunc(a2.Members, func(m broker.Member) bool { return m.ID == s1.MemberID() }))
	require.Equal(t, a1.Partitions, a2.Partitions, "the restarted static member keeps its partitions")
	// The replaced member is done: its Assignments channel closes (on
	// Kafka once its next heartbeat is answered FENCED_INSTANCE_ID), and
	// it never rejoins, which would take the id back from s2.
	requireClosed(t, s1)

	c := newCommitter(t, b, "app-i-1-0")
	tp := a1.Partitions[0]
	err = c.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "zombie")}, Group: "g",
		Generation: a1.Generation, MemberID: s1.MemberID(), Offsets: map[broker.TopicPartition]int64{tp: 1},
	})
	require.ErrorIs(t, err, broker.ErrFenced, "the replaced member is fenced")
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{tp})
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, c.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "live")}, Group: "g",
		Generation: a2.Generation, MemberID: s2.MemberID(), Offsets: map[broker.TopicPartition]int64{tp: 1},
	}))
	recs, err := broker.ReadAll(ctx, b, "out")
	require.NoError(t, err)
	require.Equal(t, []string{"live"}, values(recs))
	require.NoError(t, s2.Leave(ctx))
	require.NoError(t, d.Leave(ctx))
	_ = s1.Leave(ctx) // replaced: leaving is a no-op or an error, by backend
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

// requireClosed waits, at most waitBound, for m's Assignments channel to
// close, dropping the assignments still delivered.
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
			require.FailNow(t, "assignments not closed", "member %s: waited %v", m.MemberID(), waitBound)
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
