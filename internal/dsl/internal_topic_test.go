package dsl_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
)

// TestInternalTopicSizingAndSelfRead covers the InternalTopic fields a
// foreign-key join uses: PartitionsLike is passed on to the topology and
// described, a PartitionsLike topic no source reads is refused, and a
// sub-topology may read a topic it writes only when the topic allows it
// (ReadByWriter).
func TestInternalTopicSizingAndSelfRead(t *testing.T) {
	// One sub-topology: source "t" -> step -> sink "loop"; source "loop"
	// -> the same step.
	build := func(readByWriter bool, like string) (*dsl.Topology, error) {
		var log []string
		u := untyped{g: dsl.NewGraph(), log: &log}
		a := u.source("a", false, "t")
		back := u.source("back", true, "loop")
		m := u.step("m", dsl.KindProcessor, nil, false, a, back)
		sink := u.step("sink", dsl.KindSink, []string{"loop"}, true, m)
		u.g.AddInternalTopic(dsl.InternalTopic{Name: "loop", Writer: sink, PartitionsLike: &topology.Source{Topic: like}, ReadByWriter: readByWriter})
		return dsl.Build(u.g)
	}
	_, err := build(false, "t")
	require.ErrorIs(t, err, dsl.ErrTopicConflict)
	require.ErrorContains(t, err, `sub-topology 0 reads and writes internal topic "loop"`)

	built, err := build(true, "t")
	require.NoError(t, err)
	topo := dsl.Unwrap(built)
	require.Len(t, topo.SubTopologies, 1)
	require.Equal(t, []topology.InternalTopic{{Name: "loop", PartitionsLike: &topology.Source{Topic: "t"}, WrittenBy: 0, Cleanup: broker.CleanupDelete}}, topo.InternalTopics)
	require.Contains(t, built.Describe(""), `<app-id>-loop (partitions: as many as topic "t", cleanup: delete, written by sub-topology 0)`)

	_, err = build(true, "nowhere")
	require.ErrorContains(t, err, `internal topic "loop" is sized like topic "nowhere", which no source reads`)
}

// TestStoreRetention checks that a node's StoreRetention reaches the
// topology's StoreSpec (the largest when two nodes of a sub-topology give
// one store different retentions), and that a store without one is plain.
func TestStoreRetention(t *testing.T) {
	var log []string
	u := untyped{g: dsl.NewGraph(), log: &log}
	a := u.source("a", false, "t")
	m := u.step("m", dsl.KindProcessor, nil, false, a)
	m.Stores = []string{"win", "plain"}
	m.StoreRetention = map[string]time.Duration{"win": time.Hour}
	n := u.step("n", dsl.KindProcessor, nil, false, m)
	n.Stores = []string{"win"}
	n.StoreRetention = map[string]time.Duration{"win": 2 * time.Hour}
	built, err := dsl.Build(u.g)
	require.NoError(t, err)
	topo := dsl.Unwrap(built)
	require.Len(t, topo.SubTopologies, 1)
	require.Equal(t, []topology.StoreSpec{{Name: "win", Retention: 2 * time.Hour}, {Name: "plain"}}, topo.SubTopologies[0].Stores)
}
