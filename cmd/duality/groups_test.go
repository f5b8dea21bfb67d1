package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// TestGroupsLag: after an app processed the records a topic held, and
// more arrived, groups describe shows its committed offsets and the lag.
func TestGroupsLag(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ok(t, "", be.args("topics", "create", "in", "-p", "2")...)
		ok(t, "", be.args("topics", "create", "out", "-p", "2")...)
		var lines strings.Builder
		for i := range 10 {
			fmt.Fprintf(&lines, "k%d\tv%d\n", i, i)
		}
		ok(t, lines.String(), be.args("produce", "in")...)

		// The app consumes all ten, then stops (its process would exit,
		// releasing an embedded directory).
		b, closeBroker := be.open(t)
		sb := stream.NewBuilder()
		stream.From(sb, "in", codec.String(), codec.String()).To("out")
		topo, err := sb.Build()
		require.NoError(t, err)
		app, err := duality.New("copier", topo, b, duality.Workers(1))
		require.NoError(t, err)
		require.NoError(t, app.RunToEnd(t.Context()))
		closeBroker()

		ok(t, "k10\tv10\nk11\tv11\nk12\tv12\nk13\tv13\n", be.args("produce", "in")...)

		require.Contains(t, strings.Fields(ok(t, "", be.args("groups", "list")...)), "copier")
		var g groupJSON
		require.NoError(t, json.Unmarshal([]byte(ok(t, "", be.args("groups", "describe", "copier", "-o", "json")...)), &g))
		require.Equal(t, "copier", g.Group)
		require.Equal(t, "Empty", g.State)
		require.Empty(t, g.Members)
		require.Equal(t, int64(4), g.Lag)
		require.Len(t, g.Partitions, 2, "the partitions of the topic it reads: %+v", g.Partitions)
		var committed, ends, lag int64
		for i, p := range g.Partitions {
			require.Equal(t, "in", p.Topic)
			require.Equal(t, int32(i), p.Partition)
			require.Equal(t, p.End-p.Committed, p.Lag)
			committed += p.Committed
			ends += p.End
			lag += p.Lag
		}
		require.Equal(t, int64(10), committed)
		require.Equal(t, int64(14), ends)
		require.Equal(t, int64(4), lag)

		text := ok(t, "", be.args("groups", "describe", "copier")...)
		require.Contains(t, text, "group copier: Empty, 0 members, lag 4")
		require.Regexp(t, `(?m)^TOPIC\s+PARTITION\s+COMMITTED\s+END\s+LAG\s+MEMBER$`, text)
		require.Regexp(t, `(?m)^in\s+0\s+\d+\s+\d+\s+\d+\s+-$`, text)
	})
}

// TestGroupsMembers: on a cluster, a group's live members are shown with
// their partitions.
func TestGroupsMembers(t *testing.T) {
	be := kafkaBackend(t)
	ok(t, "", be.args("topics", "create", "in", "-p", "2")...)
	b, closeBroker := be.open(t)
	defer closeBroker()
	m, err := b.JoinGroup(t.Context(), "live", []string{"in"}, broker.JoinOptions{InstanceID: "worker-1"})
	require.NoError(t, err)
	select {
	case a := <-m.Assignments():
		require.Len(t, a.Partitions, 2)
	case <-time.After(waitBound):
		t.Fatal("no assignment")
	}
	var g groupJSON
	require.NoError(t, json.Unmarshal([]byte(ok(t, "", be.args("groups", "describe", "live", "-o", "json")...)), &g))
	require.Equal(t, "Stable", g.State)
	require.Len(t, g.Members, 1)
	require.Equal(t, m.MemberID(), g.Members[0].ID)
	require.Equal(t, "worker-1", g.Members[0].InstanceID)
	require.Equal(t, []string{"in/0", "in/1"}, g.Members[0].Partitions)
	require.Len(t, g.Partitions, 2)
	for _, p := range g.Partitions {
		require.Equal(t, int64(-1), p.Committed, "nothing committed yet")
		require.Equal(t, m.MemberID(), p.Member)
	}
	text := ok(t, "", be.args("groups", "describe", "live")...)
	require.Contains(t, text, "group live: Stable, 1 members, lag 0")
	require.Regexp(t, `(?m)^`+m.MemberID()+`\s+worker-1\s+\S+\s+\S+\s+in/0,in/1$`, text)
	require.NoError(t, m.Leave(t.Context()))
}
