package stream_test

import (
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// sinks returns the fixed sink topics of a built topology.
func sinks(topo *stream.Topology) []string {
	var out []string
	for _, st := range dsl.Unwrap((*dsl.Topology)(topo)).SubTopologies {
		for _, s := range st.Sinks {
			out = append(out, s.Topic)
		}
	}
	return out
}
