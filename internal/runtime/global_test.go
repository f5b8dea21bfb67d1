package runtime

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/internal/topology"
)

// TestStepperGlobalRebuildCanceled: a rebuild of a global store (its
// position out of range: records deleted under it) that a ctx ends
// midway leaves the store as readers see it, and the next CatchUpGlobals
// rebuilds it and follows the topic again, rather than applying records
// to the rebuild's hidden slot, which no reader sees.
func TestStepperGlobalRebuildCanceled(t *testing.T) {
	b, err := embedded.Open("/b", embedded.WithFS(vfs.NewMem()), embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"in", "out", "g"} {
		require.NoError(t, b.CreateTopic(t.Context(), topic, broker.TopicConfig{Partitions: 1}))
	}
	produceG := func(from, to int) {
		var recs []broker.Record
		for i := from; i < to; i++ {
			recs = append(recs, broker.Record{Topic: "g", Partition: 0, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
		}
		require.NoError(t, b.Produce(t.Context(), recs))
	}
	produceG(0, 3)

	topo := &topology.Topology{
		SubTopologies: []*topology.SubTopology{{
			Sources: []topology.Source{{Topic: "in"}},
			Sinks:   []topology.Sink{{Topic: "out"}},
			NewTask: newTimerProc,
		}},
		GlobalStores: []topology.GlobalStore{{Name: "gs", Topic: "g"}},
	}
	cfg := DefaultConfig()
	cfg.FetchMaxRecords = 1 // the rebuild takes a fetch per record
	ctx, cancel := context.WithCancel(t.Context())
	rebuilding := false
	cfg.OnRestore = func(p RestoreProgress) {
		if rebuilding && !p.Done {
			cancel() // after the rebuild's first record
		}
	}
	a, err := New("app", topo, b, cfg)
	require.NoError(t, err)
	s, _, err := a.Step(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	get := func(key string) string {
		t.Helper()
		v, ok, err := s.StoreGet("gs", 0, []byte(key))
		require.NoError(t, err)
		if !ok {
			return "<absent>"
		}
		return string(v)
	}
	require.Equal(t, "v0", get("k0"))

	// The store's position (3) falls below the topic's earliest offset.
	produceG(3, 8)
	require.NoError(t, b.DeleteRecords(t.Context(), "g", 0, 5))
	rebuilding = true
	require.ErrorIs(t, s.CatchUpGlobals(ctx), context.Canceled)
	rebuilding = false
	require.Equal(t, "v0", get("k0"), "readers see the store as it was")
	require.Equal(t, "<absent>", get("k5"))

	produceG(8, 9)
	require.NoError(t, s.CatchUpGlobals(t.Context()))
	for key, want := range map[string]string{"k0": "<absent>", "k4": "<absent>", "k5": "v5", "k7": "v7", "k8": "v8"} {
		require.Equal(t, want, get(key), "key %s after the rebuild", key)
	}
}
