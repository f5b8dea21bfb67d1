package stream_test

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/stream"
)

// TestTopologyIsOpaque: a Topology exposes no field, so code outside the
// module can only describe and run it, never change what Build checked
// (topo.SubTopologies[0].Sources[0].Topic = "x" does not compile).
func TestTopologyIsOpaque(t *testing.T) {
	typ := reflect.TypeFor[stream.Topology]()
	for i := range typ.NumField() {
		require.False(t, typ.Field(i).IsExported(), "exported field %s", typ.Field(i).Name)
	}
	var nilTopo *stream.Topology
	require.Empty(t, nilTopo.Describe())
}
