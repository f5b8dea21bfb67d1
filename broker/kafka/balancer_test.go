package kafka

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
)

// numbersOf returns the partition numbers of each member of plan.
func numbersOf(plan *syncPlan) map[string][]int32 {
	out := make(map[string][]int32)
	for _, m := range plan.members {
		var ns []int32
		for _, tp := range m.Partitions {
			if !slices.Contains(ns, tp.Partition) {
				ns = append(ns, tp.Partition)
			}
		}
		out[m.ID] = ns
	}
	return out
}

// requireCoPartitioned asserts that plan gives every partition of topics
// to exactly one member, partition p of every topic to the same one, and
// that the members' shares of partition numbers differ by at most one.
func requireCoPartitioned(t *testing.T, plan *syncPlan, topics map[string]int32) {
	t.Helper()
	owner := make(map[broker.TopicPartition]string)
	byNumber := make(map[int32]string)
	minN, maxN := 1<<30, -1
	for _, m := range plan.members {
		require.True(t, slices.IsSortedFunc(m.Partitions, compareTP), "member %s partitions %v sorted by partition, then topic", m.ID, m.Partitions)
		for _, tp := range m.Partitions {
			_, dup := owner[tp]
			require.False(t, dup, "%v assigned twice", tp)
			owner[tp] = m.ID
			if o, ok := byNumber[tp.Partition]; ok {
				require.Equal(t, o, m.ID, "partition %d of every topic goes to one member", tp.Partition)
			}
			byNumber[tp.Partition] = m.ID
		}
	}
	for _, ns := range numbersOf(plan) {
		minN, maxN = min(minN, len(ns)), max(maxN, len(ns))
	}
	require.LessOrEqual(t, maxN-minN, 1, "shares differ by at most one: %v", numbersOf(plan))
	for topic, n := range topics {
		for p := range n {
			_, ok := owner[broker.TopicPartition{Topic: topic, Partition: p}]
			require.True(t, ok, "%s/%d is assigned", topic, p)
		}
	}
	require.Len(t, owner, func() int {
		total := 0
		for _, n := range topics {
			total += int(n)
		}
		return total
	}())
}

func members(ids ...string) []joinMember {
	out := make([]joinMember, len(ids))
	for i, id := range ids {
		out[i] = joinMember{id: id, topics: []string{"a", "b"}}
	}
	return out
}

func TestBalanceCoPartitioned(t *testing.T) {
	for _, tc := range []struct {
		members int
		topics  map[string]int32
	}{
		{1, map[string]int32{"a": 4, "b": 4}},
		{2, map[string]int32{"a": 4, "b": 4}},
		{3, map[string]int32{"a": 4, "b": 4}},
		{3, map[string]int32{"a": 8, "b": 2}},
		{5, map[string]int32{"a": 3, "b": 3}}, // more members than partitions
		{4, map[string]int32{"a": 16, "b": 16}},
	} {
		t.Run(fmt.Sprintf("%d members %v", tc.members, tc.topics), func(t *testing.T) {
			var ids []string
			for i := range tc.members {
				ids = append(ids, fmt.Sprintf("m%d", i))
			}
			plan := balance(members(ids...), tc.topics, nil, nil)
			require.Len(t, plan.members, tc.members)
			requireCoPartitioned(t, plan, tc.topics)
		})
	}
}

// TestBalanceSticky replays generations: members join and leave, each
// member reporting the numbers it got last. Numbers move only as much as
// balance requires.
func TestBalanceSticky(t *testing.T) {
	topics := map[string]int32{"a": 12, "b": 12}
	owned := map[string][]int32{}
	step := func(ids ...string) (plan *syncPlan, moved int) {
		var ms []joinMember
		for _, id := range ids {
			ms = append(ms, joinMember{id: id, topics: []string{"a", "b"}, owned: owned[id]})
		}
		plan = balance(ms, topics, nil, nil)
		requireCoPartitioned(t, plan, topics)
		next := numbersOf(plan)
		prevOwner := map[int32]string{}
		for id, ns := range owned {
			for _, n := range ns {
				prevOwner[n] = id
			}
		}
		for id, ns := range next {
			for _, n := range ns {
				// A number moves when its owner is still a member
				// and loses it (a leaver's numbers must move).
				if o, ok := prevOwner[n]; ok && o != id && slices.Contains(ids, o) {
					moved++
				}
			}
		}
		owned = next
		return plan, moved
	}
	_, moved := step("m1")
	require.Zero(t, moved)
	_, moved = step("m1", "m2")
	require.Equal(t, 6, moved, "half of m1's numbers move to the new member, no more")
	_, moved = step("m1", "m2", "m3")
	require.Equal(t, 4, moved, "each of m1 and m2 gives 2 to m3")
	before := map[string][]int32{"m1": owned["m1"], "m3": owned["m3"]}
	_, moved = step("m1", "m3")
	require.Zero(t, moved, "when m2 leaves, nobody else moves")
	for id, ns := range before {
		for _, n := range ns {
			require.Contains(t, owned[id], n, "%s keeps %d", id, n)
		}
	}
	// A member rejoining with a new id (a restart without instance id)
	// owns nothing: it gets a fair share, the others keep theirs.
	_, moved = step("m1", "m3", "m4")
	require.Equal(t, 4, moved)
}

// TestBalanceCarriesMembers checks the assignment's user data: every
// member's user data and partitions reach every member, through the
// encodings kgo moves.
func TestBalanceCarriesMembers(t *testing.T) {
	b1 := &balancer{userData: []byte("host-1:8080")}
	b2 := &balancer{userData: nil}
	var joined []kmsg.JoinGroupResponseMember
	for i, b := range []*balancer{b1, b2} {
		joined = append(joined, kmsg.JoinGroupResponseMember{
			MemberID:         fmt.Sprintf("member-%d", i+1),
			ProtocolMetadata: b.JoinGroupMetadata([]string{"a", "b"}, nil, 1),
		})
	}
	mb, topics, err := b1.MemberBalancer(joined)
	require.NoError(t, err)
	require.Equal(t, map[string]struct{}{"a": {}, "b": {}}, topics)
	assignments := mb.Balance(map[string]int32{"a": 2, "b": 2}).IntoSyncAssignment()
	require.Len(t, assignments, 2)
	for i, sa := range assignments {
		b := []*balancer{b1, b2}[i]
		got, err := b.ParseSyncAssignment(sa.MemberAssignment)
		require.NoError(t, err)
		require.Empty(t, got, "kgo is told nothing is assigned: its client never fetches")
		assigned, ms, data := b.last()
		require.Nil(t, data, "no Balance: no data")
		require.Equal(t, []broker.TopicPartition{{Topic: "a", Partition: int32(i)}, {Topic: "b", Partition: int32(i)}}, assigned)
		require.Equal(t, []broker.Member{
			{ID: "member-1", UserData: []byte("host-1:8080"), Partitions: []broker.TopicPartition{{Topic: "a", Partition: 0}, {Topic: "b", Partition: 0}}},
			{ID: "member-2", UserData: nil, Partitions: []broker.TopicPartition{{Topic: "a", Partition: 1}, {Topic: "b", Partition: 1}}},
		}, ms)
	}
	// Each member sends what it got with its next join (stickiness).
	_, owned, err := decodeJoinData(mustMeta(t, b2.JoinGroupMetadata([]string{"a", "b"}, nil, 2)).UserData)
	require.NoError(t, err)
	require.Equal(t, []int32{1}, owned)
}

func mustMeta(t *testing.T, b []byte) kmsg.ConsumerMemberMetadata {
	var m kmsg.ConsumerMemberMetadata
	require.NoError(t, m.ReadFrom(b))
	return m
}

// TestDecodeMalformed feeds truncated and foreign data to the decoders:
// errors, never panics.
func TestDecodeMalformed(t *testing.T) {
	join := encodeJoinData([]byte("endpoint"), []int32{0, 3, 7})
	members := encodeMembers([]broker.Member{{ID: "m", UserData: []byte("u"), Partitions: []broker.TopicPartition{{Topic: "t", Partition: 2}}}}, nil)
	for i := range len(join) {
		_, _, err := decodeJoinData(join[:i])
		require.Error(t, err, "join data cut at %d", i)
	}
	for i := range len(members) {
		_, _, err := decodeMembers(members[:i])
		require.Error(t, err, "members cut at %d", i)
	}
	_, _, err := decodeJoinData([]byte{0, 1, 2})
	require.ErrorContains(t, err, "another Duality version")
	_, _, err = decodeMembers([]byte{dataVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	require.Error(t, err)
}

func FuzzDecodeMembers(f *testing.F) {
	f.Add(encodeMembers([]broker.Member{{ID: "m", UserData: []byte("u"), Partitions: []broker.TopicPartition{{Topic: "t", Partition: 2}}}}, nil))
	f.Add(encodeMembers([]broker.Member{{ID: "m", Partitions: []broker.TopicPartition{{Topic: "t", Partition: 0}}}}, []byte("placement")))
	f.Add(encodeJoinData([]byte("x"), []int32{1, 2}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if ms, balanced, err := decodeMembers(data); err == nil {
			again, balanced2, err := decodeMembers(encodeMembers(ms, balanced))
			require.NoError(t, err)
			require.Equal(t, ms, again)
			require.Equal(t, balanced, balanced2)
		}
		if ud, owned, err := decodeJoinData(data); err == nil {
			ud2, owned2, err := decodeJoinData(encodeJoinData(ud, owned))
			require.NoError(t, err)
			require.Equal(t, ud, ud2)
			require.Equal(t, owned, owned2)
		}
	})
}
