package runtime

import (
	"fmt"
	"testing"

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
