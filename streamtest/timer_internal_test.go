package streamtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/timerscript"
	"github.com/duality-streams/duality/internal/topology"
)

// TestStreamTimer: a one-shot stream-time timer fires once when stream
// time reaches its due time, in due-time order with the task's other
// stream-time punctuations (registration order on ties), is disarmed
// after firing unless its punctuator sets it again, takes the last due
// time set, and does nothing once canceled.
func TestStreamTimer(t *testing.T) {
	topo := &topology.Topology{SubTopologies: []*topology.SubTopology{{
		Sources: []topology.Source{{Topic: "in"}},
		Sinks:   []topology.Sink{{Topic: "out"}},
		NewTask: timerscript.NewProc,
	}}}
	d, err := New(wrap(t, topo))
	require.NoError(t, err)
	defer d.Close()
	var want []string
	for i, s := range timerscript.Steps {
		require.NoError(t, d.PipeRaw(t.Context(), broker.Record{Topic: "in", Partition: 0, Value: []byte(s.Cmds), Timestamp: time.UnixMilli(s.TS)}))
		want = append(want, s.Want...)
		var got []string
		for _, r := range d.Records("out") {
			got = append(got, string(r.Value))
		}
		require.Equal(t, want, got, "after step %d (ts %d, %q)", i, s.TS, s.Cmds)
	}
}
