package streamtest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

// wrap validates a topology written by hand, as Build validates a built
// one, and returns it as the driver takes it.
func wrap(t *testing.T, raw *topology.Topology) *stream.Topology {
	t.Helper()
	topo, err := dsl.Wrap(raw)
	require.NoError(t, err)
	return (*stream.Topology)(topo)
}
