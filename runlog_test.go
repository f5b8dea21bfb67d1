package duality_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// TestRunLogsLifecycle checks what Run logs at Info and above: a line
// when it joins the group, one per assignment or rebalance, lines for
// the restoration of each store partition, one Error line when it fails,
// and nothing per record, however many records it processes.
func TestRunLogsLifecycle(t *testing.T) {
	const n = 2000
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	produceN(t, b, "in", 0, n)
	topo := func() *stream.Topology {
		sb := stream.NewBuilder()
		src := stream.From(sb, "in", codec.String(), codec.String())
		table.Count(stream.GroupByKey(src.Peek(func(_, v string) {
			if v == "boom" {
				panic("poison record")
			}
		})), "counts").ToStream().To("out")
		topo, err := sb.Build()
		require.NoError(t, err)
		return topo
	}

	// A first instance counts the input: its store's changelog is what
	// the next ones restore (they keep no local state).
	first, err := duality.New("lifecycle", topo(), b)
	require.NoError(t, err)
	stop, _ := runApp(t, first)
	eventually(t, "input processed", func() bool { return first.Metrics().RecordsProcessed >= n })
	require.NoError(t, stop())

	// run runs app until it fails (or the test ends) and returns its
	// error's channel.
	run := func(app *duality.App) <-chan error {
		ctx, cancel := context.WithCancel(t.Context())
		errc, exited := make(chan error, 1), make(chan struct{})
		go func() {
			defer close(exited)
			errc <- app.Run(ctx)
		}()
		t.Cleanup(func() {
			cancel()
			<-exited
		})
		return errc
	}
	logsA, logsB := newLogRecorder(), newLogRecorder()
	a, err := duality.New("lifecycle", topo(), b, duality.Logger(slog.New(logsA)))
	require.NoError(t, err)
	doneA := run(a)
	eventually(t, "a runs its tasks", func() bool { return a.Metrics().Tasks == 2 })
	bb, err := duality.New("lifecycle", topo(), b, duality.Logger(slog.New(logsB)))
	require.NoError(t, err)
	doneB := run(bb)
	eventually(t, "the tasks shared between a and b", func() bool {
		return a.Metrics().Tasks == 1 && bb.Metrics().Tasks == 1
	})

	// A poison record in each partition fails both instances, each once.
	require.NoError(t, b.Produce(t.Context(), []broker.Record{
		{Topic: "in", Partition: 0, Key: []byte("x"), Value: []byte("boom")},
		{Topic: "in", Partition: 1, Key: []byte("x"), Value: []byte("boom")},
	}))
	require.ErrorContains(t, <-doneA, "poison record")
	require.ErrorContains(t, <-doneB, "poison record")

	for name, logs := range map[string]logRecorder{"a": logsA, "b": logsB} {
		var info []string
		for _, r := range logs.at(slog.LevelInfo) {
			info = append(info, r.Message)
			require.Equal(t, "lifecycle", r.Attrs["app"], "%s: %q", name, r.Message)
		}
		require.Contains(t, info, "joined group", name)
		rebalances := 0
		for _, m := range info {
			if m == "assigned" || m == "rebalanced cooperatively" {
				rebalances++
			}
		}
		require.GreaterOrEqual(t, rebalances, 1, "%s: %q", name, info)
		require.Contains(t, info, "restoring store", name)
		require.Contains(t, info, "restored store", name)
		// Nothing per record: a few dozen lines at most for thousands
		// of records restored and processed.
		require.Less(t, len(info), 40, "%s: %q", name, info)
		require.Empty(t, logs.at(slog.LevelWarn), name)
		errs := logs.at(slog.LevelError)
		require.Len(t, errs, 1, name)
		require.Equal(t, "run failed", errs[0].Message)
	}
	var restored []any
	for _, r := range logsA.at(slog.LevelInfo) {
		if r.Message == "restored store" {
			require.Equal(t, "counts", r.Attrs["store"])
			restored = append(restored, r.Attrs["partition"])
		}
	}
	require.True(t, slices.Contains(restored, any(int64(0))) || slices.Contains(restored, any(int64(1))), "%v", restored)
	require.NotZero(t, a.Metrics().Assignments)
}
