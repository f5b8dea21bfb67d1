package brokertest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var groupAdminCases = []testCase{
	{"GroupAdmin/Offsets", testGroupAdminOffsets},
	{"GroupAdmin/Members", testGroupAdminMembers},
}

// groupAdmin returns b as a broker.GroupAdmin; every broker the suite runs
// against must implement it.
func groupAdmin(t *testing.T, b broker.Broker) broker.GroupAdmin {
	t.Helper()
	ga, ok := b.(broker.GroupAdmin)
	require.True(t, ok, "%T does not implement broker.GroupAdmin", b)
	return ga
}

// testGroupAdminOffsets: a group that only committed offsets is listed
// and described as Empty with its offsets; an unknown group is an error.
func testGroupAdminOffsets(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	ga := groupAdmin(t, b)
	groups, err := ga.ListGroups(ctx)
	require.NoError(t, err)
	require.Empty(t, groups, "a fresh broker has no groups")

	createTopic(t, b, "a", 2)
	createTopic(t, b, "b", 1)
	produceValues(t, b, "a", 0, seq("v", 5)...)
	produceValues(t, b, "a", 1, seq("v", 3)...)
	produceValues(t, b, "b", 0, seq("v", 4)...)
	require.NoError(t, b.CommitOffsets(ctx, "g2", map[broker.TopicPartition]int64{{Topic: "a", Partition: 0}: 4, {Topic: "b", Partition: 0}: 1}))
	require.NoError(t, b.CommitOffsets(ctx, "g1", map[broker.TopicPartition]int64{{Topic: "a", Partition: 1}: 3}))

	groups, err = ga.ListGroups(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"g1", "g2"}, groups, "sorted by name")

	d, err := ga.DescribeGroup(ctx, "g2")
	require.NoError(t, err)
	require.Equal(t, "g2", d.Name)
	require.Equal(t, "Empty", d.State)
	require.Empty(t, d.Members)
	require.Equal(t, map[broker.TopicPartition]int64{{Topic: "a", Partition: 0}: 4, {Topic: "b", Partition: 0}: 1}, d.Offsets)

	_, err = ga.DescribeGroup(ctx, "nobody")
	require.ErrorIs(t, err, broker.ErrUnknownGroup)
}

// testGroupAdminMembers: a joined member is described with its partitions
// while it is in the group.
func testGroupAdminMembers(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	ga := groupAdmin(t, b)
	createTopic(t, b, "a", 2)
	createTopic(t, b, "b", 2)
	m, err := b.JoinGroup(ctx, "g", []string{"a", "b"}, broker.JoinOptions{InstanceID: "one"})
	require.NoError(t, err)
	a := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	require.Len(t, a.Partitions, 4)

	groups, err := ga.ListGroups(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"g"}, groups)
	d, err := ga.DescribeGroup(ctx, "g")
	require.NoError(t, err)
	require.Equal(t, "Stable", d.State)
	require.Len(t, d.Members, 1)
	require.Equal(t, m.MemberID(), d.Members[0].ID)
	require.Equal(t, "one", d.Members[0].InstanceID)
	want := []broker.TopicPartition{{Topic: "a", Partition: 0}, {Topic: "a", Partition: 1}, {Topic: "b", Partition: 0}, {Topic: "b", Partition: 1}}
	require.Equal(t, want, d.Members[0].Partitions, "sorted by topic, then partition")
	require.Empty(t, d.Offsets)
	require.NoError(t, m.Leave(ctx))
}
