package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
)

// recvAssignment waits for an assignment of m that satisfies ok.
func recvAssignment(t *testing.T, m broker.Membership, ok func(broker.Assignment) bool) broker.Assignment {
	t.Helper()
	timeout := time.After(waitBound)
	for {
		select {
		case a, open := <-m.Assignments():
			require.True(t, open, "assignments closed")
			if ok(a) {
				return a
			}
		case <-timeout:
			require.FailNow(t, "no matching assignment")
		}
	}
}

// TestGroupMembersUserData joins two members with user data: each
// member's assignment lists both, with their user data and partitions,
// which agree with what each member got.
func TestGroupMembersUserData(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 4}))
	require.NoError(t, b.CreateTopic(ctx, "b", broker.TopicConfig{Partitions: 4}))
	m1, err := b.JoinGroup(ctx, "g", []string{"a", "b"}, broker.JoinOptions{UserData: []byte("host-1:8080")})
	require.NoError(t, err)
	defer m1.Leave(context.Background())
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	require.Len(t, a1.Members, 1)
	m2, err := b.JoinGroup(ctx, "g", []string{"a", "b"}, broker.JoinOptions{UserData: []byte("host-2:8080")})
	require.NoError(t, err)
	defer m2.Leave(context.Background())
	x := recvAssignment(t, m1, func(a broker.Assignment) bool { return a.Generation > a1.Generation && len(a.Members) == 2 })
	y := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation >= x.Generation })
	require.Equal(t, x.Generation, y.Generation)
	require.Equal(t, x.Members, y.Members, "every member sees the same members")
	byID := map[string]broker.Member{}
	for _, m := range x.Members {
		byID[m.ID] = m
	}
	require.Equal(t, "host-1:8080", string(byID[m1.MemberID()].UserData))
	require.Equal(t, "host-2:8080", string(byID[m2.MemberID()].UserData))
	require.Equal(t, x.Partitions, byID[m1.MemberID()].Partitions)
	require.Equal(t, y.Partitions, byID[m2.MemberID()].Partitions)
	require.Len(t, x.Partitions, 4, "two partition numbers of two topics each")
	require.Len(t, y.Partitions, 4)

	_, err = b.JoinGroup(ctx, "g2", []string{"a"}, broker.JoinOptions{UserData: make([]byte, broker.MaxUserData+1)})
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
	_, err = b.JoinGroup(ctx, "g2", []string{"missing"}, broker.JoinOptions{})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
}

// TestGroupStaticMember restarts a static member (same InstanceID): it
// gets its partitions back, and the other member keeps its own.
func TestGroupStaticMember(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 4}))
	m1, err := b.JoinGroup(ctx, "g", []string{"t"}, broker.JoinOptions{InstanceID: "instance-1"})
	require.NoError(t, err)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	m2, err := b.JoinGroup(ctx, "g", []string{"t"}, broker.JoinOptions{InstanceID: "instance-2"})
	require.NoError(t, err)
	defer m2.Leave(context.Background())
	x := recvAssignment(t, m1, func(a broker.Assignment) bool { return a.Generation > a1.Generation && len(a.Members) == 2 })
	y := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation >= x.Generation })
	require.Len(t, x.Partitions, 2)
	require.Len(t, y.Partitions, 2)

	// A static member's Leave does not leave the group; the restart with
	// the same instance id takes its place.
	require.NoError(t, m1.Leave(ctx))
	m1b, err := b.JoinGroup(ctx, "g", []string{"t"}, broker.JoinOptions{InstanceID: "instance-1"})
	require.NoError(t, err)
	defer m1b.Leave(context.Background())
	again := recvAssignment(t, m1b, func(broker.Assignment) bool { return true })
	require.Equal(t, x.Partitions, again.Partitions, "the restarted member gets its partitions back")
	select {
	case a := <-m2.Assignments():
		require.Equal(t, y.Partitions, a.Partitions, "the other member keeps its partitions")
	default:
	}
}

// TestBrokerCloseEndsEverything closes the broker under a member, a
// committer and a consumer: the member's assignments channel closes and
// the others return broker.ErrClosed.
func TestBrokerCloseEndsEverything(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	m, err := b.JoinGroup(ctx, "g", []string{"t"}, broker.JoinOptions{})
	require.NoError(t, err)
	recvAssignment(t, m, func(broker.Assignment) bool { return true })
	cm, err := b.NewCommitter(ctx, "w")
	require.NoError(t, err)
	con, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	con.Assign(map[broker.TopicPartition]int64{{Topic: "t"}: 0})

	require.NoError(t, b.Close())
	select {
	case _, open := <-m.Assignments():
		require.False(t, open, "the assignments channel is closed")
	case <-time.After(waitBound):
		require.FailNow(t, "assignments not closed")
	}
	require.NoError(t, m.Leave(ctx), "leaving after the broker closed is a no-op")
	require.ErrorIs(t, cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("t", 0, "v")}}), broker.ErrClosed)
	_, err = con.Poll(ctx, 0)
	require.ErrorIs(t, err, broker.ErrClosed)
	_, err = b.NewCommitter(ctx, "w2")
	require.ErrorIs(t, err, broker.ErrClosed)
	_, err = b.NewConsumer(broker.ConsumerOptions{})
	require.ErrorIs(t, err, broker.ErrClosed)
	require.NoError(t, b.Close(), "closing twice")
}

// TestGroupLostAssignment makes the coordinator forget a member (one
// heartbeat answered UNKNOWN_MEMBER_ID, as after a session timeout): the
// member delivers a lost assignment of its generation at once, its
// commits with that generation are fenced, and it rejoins and gets a new
// assignment.
func TestGroupLostAssignment(t *testing.T) {
	c := newCluster(t)
	b := newBroker(t, c)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	m, err := b.JoinGroup(ctx, "g", []string{"t"}, broker.JoinOptions{})
	require.NoError(t, err)
	defer m.Leave(context.Background())
	first := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	require.False(t, first.Lost)
	require.Len(t, first.Partitions, 2)
	id := m.MemberID()

	c.ControlKey(int16(kmsg.Heartbeat), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		resp := kreq.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
	lost := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	require.True(t, lost.Lost, "the member's next assignment says it is lost")
	require.Equal(t, first.Generation, lost.Generation)
	require.Empty(t, lost.Partitions)
	require.Empty(t, lost.Members)

	again := recvAssignment(t, m, func(a broker.Assignment) bool { return !a.Lost })
	require.Greater(t, again.Generation, first.Generation)
	require.Equal(t, first.Partitions, again.Partitions, "the rejoined member gets the partitions again")

	// The lost generation's commits are fenced; the new one's pass.
	cm, err := b.NewCommitter(ctx, "w")
	require.NoError(t, err)
	defer cm.Close()
	offsets := map[broker.TopicPartition]int64{{Topic: "t"}: 0}
	err = cm.Commit(ctx, broker.CommitRequest{Group: "g", Generation: first.Generation, MemberID: id, Offsets: offsets})
	require.ErrorIs(t, err, broker.ErrFenced)
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Group: "g", Generation: again.Generation, MemberID: m.MemberID(), Offsets: offsets}))
}
