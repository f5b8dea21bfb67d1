package runtime

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// TestStandbyPlacement checks the placement of standby tasks
// (plan.standbyTasks): the n members after a task's owner in member id
// order, wrapping around, never the owner, fewer in a small group, and
// only the tasks of sub-topologies with stores.
func TestStandbyPlacement(t *testing.T) {
	topo := &topology.Topology{SubTopologies: []*topology.SubTopology{
		{ID: 0, Sources: []topology.Source{{Topic: "in"}}, Sinks: []topology.Sink{{Topic: "out"}},
			Stores: []topology.StoreSpec{{Name: "counts"}}},
		{ID: 1, Sources: []topology.Source{{Topic: "other"}}, Sinks: []topology.Sink{{Topic: "out"}}}, // stateless
	}}
	p, err := newPlan("app", topo)
	require.NoError(t, err)
	// members returns members named m0, m1, ... in the order given
	// (not id order), member i owning partitions owned[i] of both
	// topics.
	members := func(owned ...[]int32) []broker.Member {
		var ms []broker.Member
		for i, ps := range owned {
			m := broker.Member{ID: fmt.Sprintf("m%d", i)}
			for _, n := range ps {
				m.Partitions = append(m.Partitions, broker.TopicPartition{Topic: "in", Partition: n},
					broker.TopicPartition{Topic: "other", Partition: n})
			}
			ms = append(ms, m)
		}
		return ms
	}
	three := members([]int32{0, 3}, []int32{1}, []int32{2})
	tests := []struct {
		name    string
		members []broker.Member
		self    string
		n       int
		want    []string // task ids
	}{
		{"alone", members([]int32{0, 1}), "m0", 1, nil},
		{"none asked", three, "m1", 0, nil},
		{"two members", members([]int32{0}, []int32{1}), "m1", 1, []string{"0_0"}},
		{"two members, more asked than members", members([]int32{0}, []int32{1}), "m0", 3, []string{"0_1"}},
		{"next of the owner", three, "m1", 1, []string{"0_0", "0_3"}},
		{"wraps around", three, "m0", 1, []string{"0_2"}},
		{"two after the owner", three, "m0", 2, []string{"0_1", "0_2"}},
		{"never the owner", three, "m2", 5, []string{"0_0", "0_1", "0_3"}},
		{"member without partitions", members([]int32{0, 1}, nil), "m1", 1, []string{"0_0", "0_1"}},
		{"not a member", three, "x", 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The placement depends on member ids, not on their order in
			// the assignment.
			for _, order := range [][]broker.Member{tt.members, reversed(tt.members)} {
				var got []string
				for _, task := range p.standbyTasks(broker.Assignment{Members: order}, tt.self, tt.n) {
					got = append(got, task.id.String())
				}
				require.Equal(t, tt.want, got)
			}
		})
	}
}

func reversed(ms []broker.Member) []broker.Member {
	out := make([]broker.Member, 0, len(ms))
	for i := len(ms) - 1; i >= 0; i-- {
		out = append(out, ms[i])
	}
	return out
}

// TestReplicaUpdate checks how the replica run applies the updates of a
// generation's cooperative rebalances (standbyRun.update): the copies it
// keeps stay where they are (no new listing of their changelogs), the
// probing rebalance's timer goes on, a standby copy of a task that moves
// here restores from where it is, a task revoked while restoring is
// dropped (its copy closed, or kept as a replica when it becomes one),
// and the replica metrics follow each update as soon as it is posted.
func TestReplicaUpdate(t *testing.T) {
	topo := &topology.Topology{SubTopologies: []*topology.SubTopology{
		{ID: 0, Sources: []topology.Source{{Topic: "in"}}, Sinks: []topology.Sink{{Topic: "out"}},
			Stores: []topology.StoreSpec{{Name: "counts"}}},
	}}
	p, err := newPlan("app", topo)
	require.NoError(t, err)
	a := &App{plan: p, cfg: Config{ProbingRebalanceInterval: time.Hour}, log: slog.New(slog.DiscardHandler)}
	taskAt := func(n int32) *task {
		return p.tasksFor(broker.Assignment{Partitions: []broker.TopicPartition{{Topic: "in", Partition: n}}})[0]
	}
	t0, t1, t2 := taskAt(0), taskAt(1), taskAt(2)
	r := &standbyRun{a: a, byTP: map[broker.TopicPartition]*standbyStore{}, log: a.log}
	r.mail.init()
	apply := func(u *replicaUpdate) {
		r.post(u)
		got := r.mail.takeUpdate()
		require.Same(t, u, got)
		r.update(got)
	}
	copyOf := func(tk *task) *standbyStore {
		return r.byTP[broker.TopicPartition{Topic: "app-counts-changelog", Partition: tk.id.Partition}]
	}
	position := func() { // as open does, without a broker
		for _, s := range r.stores {
			if !s.positioned {
				s.positioned = true
				if s.kind == kindRestore {
					r.startRestore(s, 0, 100)
				}
			}
		}
	}

	apply(&replicaUpdate{gen: 1, standbys: []*task{t0}, warmups: []*task{t1}, warmupNums: []int32{1}})
	require.Len(t, r.stores, 2)
	require.NotNil(t, r.probe)
	probeAt := r.probe.next
	require.True(t, r.probe.early)
	require.Equal(t, Metrics{StandbyTasks: 1, WarmupTasks: 1}, pick(a.Metrics()))
	position()
	standby0, warm1 := copyOf(t0), copyOf(t1)
	r.probe.early = false // it asked early already

	// A cooperative rebalance that changes nothing here keeps it all.
	apply(&replicaUpdate{gen: 2, standbys: []*task{t0}, warmups: []*task{t1}, warmupNums: []int32{1}})
	require.Same(t, standby0, copyOf(t0))
	require.Same(t, warm1, copyOf(t1))
	require.True(t, standby0.positioned && warm1.positioned, "no new listing")
	require.Equal(t, probeAt, r.probe.next, "the probe's timer goes on")
	require.False(t, r.probe.early, "asking early happens once per set of warm-ups")

	// t0 moves here: its standby copy restores from where it is; a new
	// warm-up set may ask early again, the timer still goes on.
	t0active := taskAt(0)
	apply(&replicaUpdate{gen: 3, warmups: []*task{t2}, warmupNums: []int32{2}, restore: []*task{t0active}})
	require.Same(t, standby0, copyOf(t0))
	require.Equal(t, kindRestore, standby0.kind)
	require.False(t, standby0.positioned, "listed again for its restore's target")
	require.Nil(t, copyOf(t1), "the old warm-up is closed")
	require.Equal(t, probeAt, r.probe.next)
	require.True(t, r.probe.early)
	require.Equal(t, Metrics{WarmupTasks: 1}, pick(a.Metrics()))
	position()
	require.Equal(t, int64(100), standby0.rs.target)
	require.Len(t, r.restoring, 1)

	// Revoked while restoring, and a standby here now: the copy stays,
	// a standby again; without warm-ups the probe stops.
	apply(&replicaUpdate{gen: 4, standbys: []*task{t0}, drop: []*task{t0active}})
	require.Empty(t, r.restoring)
	require.Same(t, standby0, copyOf(t0))
	require.Equal(t, kindStandby, standby0.kind)
	require.Nil(t, standby0.rs)
	require.Nil(t, r.probe)
	require.Len(t, r.stores, 1)

	// Updates posted before the run takes them add up.
	t1active := taskAt(1)
	r.post(&replicaUpdate{gen: 5, restore: []*task{t1active}})
	r.post(&replicaUpdate{gen: 6, restore: []*task{t2}, drop: []*task{t1active}})
	u := r.mail.takeUpdate()
	require.Equal(t, []*task{t2}, u.restore)
	require.Equal(t, []*task{t1active}, u.drop)
	r.update(u)
	require.Nil(t, copyOf(t0), "no longer a standby")
	require.NotNil(t, copyOf(t2))
	require.Len(t, r.restoring, 1)
	require.Zero(t, a.Metrics().StandbyTasks)
}

// pick keeps the replica fields of m.
func pick(m Metrics) Metrics {
	return Metrics{StandbyTasks: m.StandbyTasks, WarmupTasks: m.WarmupTasks, StandbyLag: m.StandbyLag}
}
