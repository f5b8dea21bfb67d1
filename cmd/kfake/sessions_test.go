package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// serveSessions starts an in-process cluster of one broker with the
// session enforcement of run, for t.
func serveSessions(t *testing.T) *kfake.Cluster {
	t.Helper()
	var logMu sync.Mutex
	s := newSessions(func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		t.Logf(format, args...)
	})
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.ListenFn(s.listen),
		kfake.GroupMinSessionTimeout(100*time.Millisecond), kfake.SeedTopics(4, "t"))
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		s.run(ctx, cl)
	}()
	t.Cleanup(func() {
		cancel()
		<-swept
		cl.Close()
		c.Close()
	})
	return c
}

// joinAndDie joins group through a connection of its own with a
// JoinGroup the group makes wait (the live members must rejoin), and
// closes the connection while it waits, as a process killed with -9
// during a rebalance does. It returns the member id kfake gave it.
func joinAndDie(t *testing.T, addr, group string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	rd := bufio.NewReader(conn)
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("dies"))
	join := func(memberID string, corr int32) {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 5
		req.Group, req.MemberID = group, memberID
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 2000, 3000
		req.ProtocolType = "consumer"
		meta := kmsg.NewConsumerMemberMetadata()
		meta.Topics = []string{"t"}
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", meta.AppendTo(nil)
		req.Protocols = append(req.Protocols, p)
		_, err := conn.Write(f.AppendRequest(nil, req, corr))
		require.NoError(t, err)
	}
	// The first join (no member id) is answered MEMBER_ID_REQUIRED with
	// the id to join with.
	join("", 1)
	var size [4]byte
	_, err = io.ReadFull(rd, size[:])
	require.NoError(t, err)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(rd, body)
	require.NoError(t, err)
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = 5
	require.NoError(t, resp.ReadFrom(body[4:])) // after the correlation id
	require.Equal(t, kerr.MemberIDRequired.Code, resp.ErrorCode)
	require.NotEmpty(t, resp.MemberID)
	// The second join waits for the others; the connection closes
	// under it (deferred).
	join(resp.MemberID, 2)
	return resp.MemberID
}

// TestSessionsRemoveDeadJoiner: a member whose client dies while its
// JoinGroup waits is part of the rebalance that completes with it, and
// kfake alone starts no session timer for it about every other time, so
// the group turns stable with the dead member holding partitions for
// good (see sessions). With the session enforcement of run, every group
// ends with its live member alone, holding every partition; the live
// member is never removed (it keeps its member id throughout).
func TestSessionsRemoveDeadJoiner(t *testing.T) {
	c := serveSessions(t)
	addr := c.ListenAddrs()[0]
	const groups = 16 // kfake alone keeps the dead member in a few of them
	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for i := range groups {
		group := fmt.Sprintf("g%d", i)
		live, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics("t"),
			kgo.Balancers(kgo.RangeBalancer()), kgo.SessionTimeout(2*time.Second),
			kgo.HeartbeatInterval(100*time.Millisecond), kgo.RebalanceTimeout(3*time.Second))
		require.NoError(t, err)
		t.Cleanup(live.Close)
		wg.Go(func() { errs <- deadJoinerRound(t.Context(), c, live, addr, group, t) })
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	require.NoError(t, errors.Join(all...))
}

// deadJoinerRound runs one group of TestSessionsRemoveDeadJoiner: live
// polls (so that it joins and heartbeats) while a member joins and dies,
// and the group must end with live alone, in a stable generation.
func deadJoinerRound(ctx context.Context, c *kfake.Cluster, live *kgo.Client, addr, group string, t *testing.T) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			live.PollFetches(ctx)
		}
	}()
	first, err := c.WaitGroupStable(ctx, group, 1)
	if err != nil {
		return fmt.Errorf("group %s: the live member never joined: %w", group, err)
	}
	liveID := first.Members[0].MemberID
	dead := joinAndDie(t, addr, group)
	// The rebalance completes with the dead member: its JoinGroup
	// counts. Then kfake either times it (its response went into the
	// closed connection's buffer) or keeps it.
	joinedCtx, joinedCancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = c.WaitGroupInfo(joinedCtx, group, func(g *kfake.GroupInfo) bool {
		return g != nil && slices.ContainsFunc(g.Members, func(m kfake.GroupMember) bool { return m.MemberID == dead })
	})
	joinedCancel()
	if err != nil {
		return fmt.Errorf("group %s: the dying member %s never joined: %w", group, dead, err)
	}
	g, err := c.WaitGroupInfo(ctx, group, func(g *kfake.GroupInfo) bool {
		return g != nil && g.State == "Stable" && len(g.Members) == 1
	})
	if err != nil {
		return fmt.Errorf("group %s: the dead member %s is still in the group: %+v: %w", group, dead, g, err)
	}
	if got := g.Members[0].MemberID; got != liveID {
		return fmt.Errorf("group %s: the member left is %s, want the live member %s, which must not have been removed", group, got, liveID)
	}
	if n := g.Members[0].NumAssigned(); n != 4 {
		return fmt.Errorf("group %s: the live member has %d partitions, want all 4", group, n)
	}
	return nil
}
