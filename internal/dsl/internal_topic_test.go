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

// TestStoreRetention checks that a node's StoreSpecs reach the
// topology's StoreSpec (the largest retention when two nodes of a
// sub-topology give one store different retentions), that a store
// without one is plain, and that two layouts of one store are an error.
func TestStoreRetention(t *testing.T) {
	build := func(nSpec topology.StoreSpec) (*topology.Topology, error) {
		var log []string
		u := untyped{g: dsl.NewGraph(), log: &log}
		a := u.source("a", false, "t")
		m := u.step("m", dsl.KindProcessor, nil, false, a)
		m.Stores = []string{"win", "plain"}
		m.StoreSpecs = map[string]topology.StoreSpec{"win": {Kind: topology.StoreWindow, Retention: time.Hour, Segment: 30 * time.Minute}}
		n := u.step("n", dsl.KindProcessor, nil, false, m)
		n.Stores = []string{"win"}
		n.StoreSpecs = map[string]topology.StoreSpec{"win": nSpec}
		built, err := dsl.Build(u.g)
		if err != nil {
			return nil, err
		}
		return dsl.Unwrap(built), nil
	}
	topo, err := build(topology.StoreSpec{Kind: topology.StoreWindow, Retention: 2 * time.Hour, Segment: 30 * time.Minute})
	require.NoError(t, err)
	require.Len(t, topo.SubTopologies, 1)
	require.Equal(t, []topology.StoreSpec{{Name: "win", Kind: topology.StoreWindow, Retention: 2 * time.Hour, Segment: 30 * time.Minute}, {Name: "plain"}}, topo.SubTopologies[0].Stores)

	_, err = build(topology.StoreSpec{Kind: topology.StoreSession, Retention: time.Hour, Segment: 30 * time.Minute})
	require.ErrorIs(t, err, dsl.ErrStoreConflict)
	require.ErrorContains(t, err, `store "win" is declared as a window store with segments of 30m0s and as a session store`)
}
