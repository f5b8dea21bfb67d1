package dsl_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
)

// TestWrap: a valid topology written by hand is wrapped as it is, and
// Unwrap gives it back; a nil or zero Topology unwraps to nil.
func TestWrap(t *testing.T) {
	raw := &topology.Topology{SubTopologies: []*topology.SubTopology{{
		Sources: []topology.Source{{Topic: "in"}}, Sinks: []topology.Sink{{Topic: "out"}}, NewTask: unusedTask,
	}}}
	topo, err := dsl.Wrap(raw)
	require.NoError(t, err)
	require.Same(t, raw, dsl.Unwrap(topo))
	require.Empty(t, topo.Describe(""))
	require.Nil(t, dsl.Unwrap(nil))
	require.Nil(t, dsl.Unwrap(&dsl.Topology{}))
	require.Empty(t, (&dsl.Topology{}).Describe(""))
}

func unusedTask(topology.TaskEnv) (topology.Processor, error) { return nil, errors.New("unused") }

// TestValidate: Wrap reports every way a topology written by hand breaks
// the contract of package topology, all at once, each matching
// ErrInvalidTopology (conflicts also ErrTopicConflict or
// ErrStoreConflict). These checks were the runtime's (duality.New) before
// the topology was validated once, here.
func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		topo  *topology.Topology
		is    []error
		wants []string
	}{
		{name: "nil", topo: nil, wants: []string{"nil topology"}},
		{name: "no sub-topologies", topo: &topology.Topology{}, wants: []string{"no sub-topologies"}},
		{
			name: "sub-topologies and internal topics",
			topo: &topology.Topology{
				SubTopologies: []*topology.SubTopology{
					{ID: 0, Sources: []topology.Source{{Topic: "t"}}, Sinks: []topology.Sink{{Topic: "app-t"}}, NewTask: nil},
					{ID: 0, Sources: []topology.Source{{Topic: "t"}, {Topic: "x", Internal: true}, {Topic: "bad/name"}}, NewTask: unusedTask},
					nil,
					{ID: 2, NewTask: unusedTask},
				},
				InternalTopics: []topology.InternalTopic{{Name: "y", WrittenBy: 7}, {Name: "t", WrittenBy: 0}, {Name: "t"}, {Name: "n", Partitions: -1}},
			},
			is: []error{dsl.ErrTopicConflict, broker.ErrInvalidTopicName},
			wants: []string{"sub-topology 0 has no NewTask", "ID 0 used twice", `topic "t" is read by sub-topologies 0 and 0`,
				`"x" is internal but not declared`, "bad/name", "written by unknown sub-topology 7",
				"sub-topology at index 2 is nil", "sub-topology 2 has no source topics",
				`internal topic "t" declared twice`, `internal topic "n": negative partition count -1`},
		},
		{
			name: "partitions like a topic no source reads",
			topo: &topology.Topology{
				SubTopologies: []*topology.SubTopology{
					{ID: 0, Sources: []topology.Source{{Topic: "a"}}, Sinks: []topology.Sink{{Topic: "x", Internal: true}}, NewTask: unusedTask},
					{ID: 1, Sources: []topology.Source{{Topic: "b"}, {Topic: "x", Internal: true}}, NewTask: unusedTask},
				},
				InternalTopics: []topology.InternalTopic{{Name: "x", WrittenBy: 0, PartitionsLike: &topology.Source{Topic: "c"}}},
			},
			wants: []string{`internal topic "x" is sized like topic "c", which no source reads`},
		},
		{
			name: "global stores",
			topo: &topology.Topology{
				SubTopologies: []*topology.SubTopology{{ID: 0, Sources: []topology.Source{{Topic: "in"}},
					Stores: []topology.StoreSpec{{Name: "local"}}, NewTask: unusedTask}},
				GlobalStores: []topology.GlobalStore{
					{Name: "local", Topic: "g1"},
					{Name: "g", Topic: "in"},
					{Name: "g2", Topic: "g2"},
					{Name: "g3", Topic: "g2"},
					{Name: "bad name", Topic: "g4"},
				},
			},
			is: []error{dsl.ErrTopicConflict, dsl.ErrStoreConflict, broker.ErrInvalidTopicName},
			wants: []string{
				`global store "local": the name is empty or used by another store`,
				`topic "in" feeds global store "g" and is read by sub-topology 0`,
				`topic "g2" feeds global stores "g2" and "g3"`,
				`global store "bad name"`,
			},
		},
		{
			name: "changelog named like an internal topic",
			topo: &topology.Topology{
				SubTopologies: []*topology.SubTopology{{ID: 0, Sources: []topology.Source{{Topic: "in"}},
					Stores: []topology.StoreSpec{{Name: "s"}}, NewTask: unusedTask}},
				InternalTopics: []topology.InternalTopic{{Name: "s-changelog", WrittenBy: 0}},
			},
			is:    []error{dsl.ErrTopicConflict},
			wants: []string{`store "s": its changelog topic "s-changelog" is also declared as an internal topic`},
		},
		{
			name: "store of two sub-topologies",
			topo: &topology.Topology{
				SubTopologies: []*topology.SubTopology{
					{ID: 0, Sources: []topology.Source{{Topic: "a"}}, Stores: []topology.StoreSpec{{Name: "s"}}, NewTask: unusedTask},
					{ID: 1, Sources: []topology.Source{{Topic: "b"}}, Stores: []topology.StoreSpec{{Name: "s"}}, NewTask: unusedTask},
				},
			},
			is:    []error{dsl.ErrStoreConflict},
			wants: []string{`store "s" is used by sub-topologies 0 and 1`},
		},
		{
			name: "store declared twice",
			topo: &topology.Topology{
				SubTopologies: []*topology.SubTopology{{ID: 0, Sources: []topology.Source{{Topic: "in"}},
					Stores: []topology.StoreSpec{{Name: "s"}, {Name: "s"}}, NewTask: unusedTask}},
			},
			is:    []error{dsl.ErrStoreConflict},
			wants: []string{`sub-topology 0 declares store "s" twice`},
		},
		{
			name: "invalid store name and retention",
			topo: &topology.Topology{
				SubTopologies: []*topology.SubTopology{{ID: 0, Sources: []topology.Source{{Topic: "in"}},
					Stores: []topology.StoreSpec{{Name: "a/b"}, {Name: ""}, {Name: "w", Retention: -1}}, NewTask: unusedTask}},
			},
			is:    []error{broker.ErrInvalidTopicName},
			wants: []string{`store "a/b": it must be a valid topic name`, `store "": it must be a valid topic name`, `store "w": negative retention -1ns`},
		},
		{
			name: "store layouts",
			topo: &topology.Topology{
				SubTopologies: []*topology.SubTopology{{ID: 0, Sources: []topology.Source{{Topic: "in"}},
					Stores: []topology.StoreSpec{
						{Name: "ok", Kind: topology.StoreWindow, Retention: time.Hour, Segment: 30 * time.Minute},
						{Name: "w", Kind: topology.StoreWindow, Retention: time.Hour},
						{Name: "s", Kind: topology.StoreSession, Segment: time.Second},
						{Name: "kv", Segment: time.Second},
						{Name: "x", Kind: 9},
					}, NewTask: unusedTask}},
			},
			wants: []string{
				`window store "w": segment interval 0s and retention 1h0m0s must be positive whole milliseconds`,
				`session store "s": segment interval 1s and retention 0s must be positive whole milliseconds`,
				`key-value store "kv": segment interval 1s; only window and session stores have segments`,
				`store "x": unknown kind StoreKind(9)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, err := dsl.Wrap(tt.topo)
			require.Nil(t, topo)
			require.ErrorIs(t, err, dsl.ErrInvalidTopology)
			for _, target := range tt.is {
				require.ErrorIs(t, err, target)
			}
			for _, want := range tt.wants {
				require.ErrorContains(t, err, want)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tt.wants), "one line per problem")
		})
	}
}
