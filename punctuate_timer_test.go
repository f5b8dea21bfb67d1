package duality_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/timerscript"
	"github.com/duality-streams/duality/internal/topology"
)

// TestStreamTimerRuntime: the runtime's one-shot stream-time timers
// (topology.TaskEnv.StreamTimer) fire as streamtest's do: once at their
// due time, in due-time order with the task's other stream-time
// punctuations, re-armed, replaced, disarmed and canceled.
func TestStreamTimerRuntime(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	topo := &topology.Topology{SubTopologies: []*topology.SubTopology{{
		Sources: []topology.Source{{Topic: "in"}},
		Sinks:   []topology.Sink{{Topic: "out"}},
		NewTask: timerscript.NewProc,
	}}}
	var in []broker.Record
	var want []string
	for _, s := range timerscript.Steps {
		in = append(in, broker.Record{Topic: "in", Partition: 0, Value: []byte(s.Cmds), Timestamp: time.UnixMilli(s.TS)})
		want = append(want, s.Want...)
	}
	require.NoError(t, b.Produce(t.Context(), in))
	app, err := duality.New("timer", wrap(t, topo), b, duality.FetchMaxWait(5*time.Millisecond))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	awaitRecords(t, b, "out", len(want))
	require.NoError(t, stop())
	require.Equal(t, want, outValues(t, b, "out"))
	require.Equal(t, uint64(len(want)), app.Metrics().Punctuations)
}
