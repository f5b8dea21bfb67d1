package stream_test

import (
	"github.com/duality-streams/duality/stream"
)

// topologyView reads a built topology's structure in tests.
type topologyView stream.Topology

func (v *topologyView) sinks() []string {
	var out []string
	for _, st := range v.SubTopologies {
		for _, s := range st.Sinks {
			out = append(out, s.Topic)
		}
	}
	return out
}
