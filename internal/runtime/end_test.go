package runtime

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/internal/topology"
)

// TestEndOrder: a bounded run advances sub-topologies upstream first,
// whatever their IDs; sub-topologies that feed each other in a cycle (a
// foreign-key join's subscription and response topics) are one group;
// independent ones come in the order of their smallest ID. Topics the
// topology writes and reads are staged, internal or not.
func TestEndOrder(t *testing.T) {
	type sub struct {
		id      int
		sources []topology.Source
		sinks   []topology.Sink
	}
	in := func(topic string) topology.Source { return topology.Source{Topic: topic, Internal: true} }
	out := func(topic string) topology.Sink { return topology.Sink{Topic: topic, Internal: true} }
	for _, tc := range []struct {
		name   string
		subs   []sub
		want   [][]int
		staged []string
	}{
		{
			name: "chain against the IDs",
			subs: []sub{
				{0, []topology.Source{in("b")}, []topology.Sink{{Topic: "out"}}},
				{1, []topology.Source{in("a")}, []topology.Sink{out("b")}},
				{2, []topology.Source{{Topic: "input"}}, []topology.Sink{out("a")}},
			},
			want:   [][]int{{2}, {1}, {0}},
			staged: []string{"app-a", "app-b"},
		},
		{
			name: "cycle and an independent sub-topology",
			subs: []sub{
				{0, []topology.Source{{Topic: "left"}, in("response")}, []topology.Sink{out("subscription"), {Topic: "joined"}}},
				{1, []topology.Source{{Topic: "right"}, in("subscription")}, []topology.Sink{out("response")}},
				{2, []topology.Source{{Topic: "other"}}, []topology.Sink{{Topic: "other-out"}}},
				{3, []topology.Source{{Topic: "joined"}}, []topology.Sink{{Topic: "final"}}},
			},
			want:   [][]int{{0, 1}, {2}, {3}},
			staged: []string{"app-response", "app-subscription", "joined"},
		},
		{
			name: "diamond",
			subs: []sub{
				{0, []topology.Source{{Topic: "input"}}, []topology.Sink{out("x"), out("y")}},
				{1, []topology.Source{in("z")}, nil},
				{2, []topology.Source{in("x")}, []topology.Sink{out("z")}},
				{3, []topology.Source{in("y")}, []topology.Sink{out("z")}},
			},
			want:   [][]int{{0}, {2}, {3}, {1}},
			staged: []string{"app-x", "app-y", "app-z"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := &topology.Topology{}
			for _, s := range tc.subs {
				topo.SubTopologies = append(topo.SubTopologies, &topology.SubTopology{ID: s.id, Sources: s.sources, Sinks: s.sinks})
			}
			p, err := newPlan("app", topo)
			require.NoError(t, err)
			require.Equal(t, tc.want, p.endOrder())
			var staged []string
			for _, topic := range p.sourceTopics {
				if p.staged[topic] {
					staged = append(staged, topic)
				}
			}
			require.Equal(t, tc.staged, staged)
		})
	}
}
