package window_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

// TestDescribe: Describe shows a windowed step's windows, the retention
// of its store and when it emits, on the line below the step, and its
// store's changelog with the retention the runtime gives it.
func TestDescribe(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		build func(g stream.Grouped[string, string])
		step  string // the step's line, the detail line below it
		store string // the store's line
	}{
		{
			name: "tumbling count",
			build: func(g stream.Grouped[string, string]) {
				window.Count(g, window.Tumbling(time.Minute, 10*time.Second), "counts", stream.Named("count"))
			},
			step:  "    Processor: count (windowed-count, stores: [counts])\n      windows: tumbling(size 1m0s, grace 10s), retention 1m10s, emit: every update\n",
			store: "    counts (sub-topology 0, changelog: <app-id>-counts-changelog, cleanup: compact,delete, retention: 24h1m10s)\n",
		},
		{
			name: "hopping count with a retention, on window close",
			build: func(g stream.Grouped[string, string]) {
				window.Count(g, window.Hopping(10*ms, 2*ms, window.NoGrace).WithRetention(time.Hour), "counts", stream.Named("count"), window.EmitOnWindowClose())
			},
			step:  "    Processor: count (windowed-count, stores: [counts])\n      windows: hopping(size 10ms, advance 2ms, grace 0s), retention 1h0m0s, emit: on window close\n",
			store: "    counts (sub-topology 0, changelog: <app-id>-counts-changelog, cleanup: compact,delete, retention: 25h0m0s)\n",
		},
		{
			name: "sliding reduce with cached updates",
			build: func(g stream.Grouped[string, string]) {
				window.Reduce(g, window.Sliding(5*ms, ms), func(a, v string) string { return a + v }, "concat",
					stream.Named("concat"), window.CacheUpdates())
			},
			step:  "    Processor: concat (windowed-reduce, stores: [concat])\n      windows: sliding(difference 5ms, grace 1ms), retention 12ms, emit: newest update per window per commit\n",
			store: "    concat (sub-topology 0, changelog: <app-id>-concat-changelog, cleanup: compact,delete, retention: 24h0m0.012s)\n",
		},
		{
			name: "session aggregate on the task's stream time",
			build: func(g stream.Grouped[string, string]) {
				window.AggregateSessions(g, window.Session(time.Minute, window.NoGrace),
					func() int64 { return 0 }, func(_, _ string, n int64) int64 { return n + 1 }, func(_ string, a, b int64) int64 { return a + b },
					"sessions", stream.Named("sessions"), window.WithTaskStreamTime())
			},
			step:  "    Processor: sessions (session-aggregate, stores: [sessions])\n      windows: session(gap 1m0s, grace 0s), retention 1m0s, emit: every update, stream time: the task's\n",
			store: "    sessions (sub-topology 0, changelog: <app-id>-sessions-changelog, cleanup: compact,delete, retention: 24h1m0s)\n",
		},
		{
			name: "left join",
			build: func(g stream.Grouped[string, string]) {
				window.LeftJoin(g, g, window.JoinTimeDifference(5*time.Second, time.Second),
					func(_, a, b string, _ bool) string { return a + b }, "pairs", stream.Named("pairs"))
			},
			step:  "    Processor: pairs (left-join)\n      windows: join(before 5s, after 5s, grace 1s), retention 11.001s, unmatched left records: on window close\n",
			store: "    pairs (sub-topology 0, changelog: <app-id>-pairs-changelog, cleanup: compact,delete, retention: 24h0m11.001s)\n",
		},
		{
			name: "outer join",
			build: func(g stream.Grouped[string, string]) {
				window.OuterJoin(g, g, window.JoinTimeDifference(5*time.Second, 0).Before(time.Second),
					func(_ string, a string, _ bool, b string, _ bool) string { return a + b }, "pairs")
			},
			step:  "    Processor: outer-join-3\n      windows: join(before 1s, after 5s, grace 0s), retention 6.001s, unmatched records: on window close\n",
			store: "    pairs (sub-topology 0, changelog: <app-id>-pairs-changelog, cleanup: compact,delete, retention: 24h0m6.001s)\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tc.build(stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String())))
			topo, err := b.Build()
			require.NoError(t, err)
			desc := topo.Describe()
			require.Contains(t, desc, tc.step)
			require.Contains(t, desc, tc.store)
		})
	}
}
