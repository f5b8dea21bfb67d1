package duality_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// metricsTopology reads "in" (values "v<i>"), fans the source out to a
// split and a count, and writes both: the steps' counts can be checked
// against the input.
//
//	in -> split -> even -> To("even")
//	            -> odd (dropped: no step below)
//	   -> count("counts") -> To("counts-out")
func metricsTopology(t *testing.T) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	src := stream.From(b, "in", codec.String(), codec.String(), stream.Named("src"))
	parts := src.Split(stream.Named("parity"))
	even := parts.Branch("even", func(_, v string) bool { return (v[len(v)-1]-'0')%2 == 0 })
	parts.Branch("odd", func(string, string) bool { return true })
	even.To("even", stream.Named("even-sink"))
	counts := table.Count(stream.GroupByKey(src, stream.Named("group")), "counts", stream.Named("count"))
	counts.ToStream().To("counts-out", stream.Named("counts-sink"))
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}

// stepsByName adds up the step counts of every task by step name.
func stepsByName(tms []duality.TaskMetrics) map[string]duality.StepMetrics {
	out := map[string]duality.StepMetrics{}
	for _, tm := range tms {
		for _, s := range tm.Steps {
			o := out[s.Step]
			o.Step, o.Op = s.Step, s.Op
			o.RecordsIn += s.RecordsIn
			o.RecordsOut += s.RecordsOut
			o.LateRecordsDropped += s.LateRecordsDropped
			out[s.Step] = o
		}
	}
	return out
}

func TestTaskMetrics(t *testing.T) {
	const n = 400
	b := openBroker(t)
	for _, topic := range []string{"in", "even", "counts-out"} {
		createTopic(t, b, topic, 2)
	}
	produceN(t, b, "in", 0, n)
	logs := newLogRecorder()
	app, err := duality.New("tm", metricsTopology(t), b, duality.Logger(slog.New(logs)))
	require.NoError(t, err)
	require.Equal(t, "tm", app.ID())
	require.Empty(t, app.TaskMetrics(), "no task before the app runs")
	require.NoError(t, app.RunToEnd(t.Context()))

	tms := app.TaskMetrics()
	require.Len(t, tms, 2, "one sub-topology (GroupByKey does not repartition) on two partitions")
	var processed, produced uint64
	for _, tm := range tms {
		require.False(t, tm.Active, "task %s: the run is over", tm.Task)
		processed += tm.RecordsProcessed
		produced += tm.RecordsProduced
		require.NotEmpty(t, tm.Partitions)
		for _, p := range tm.Partitions {
			offs, err := b.ListOffsets(t.Context(), p.Topic, p.Partition)
			require.NoError(t, err)
			require.Equal(t, offs.Latest, p.Position, "%s/%d processed to its end", p.Topic, p.Partition)
			require.Equal(t, offs.Latest, p.Committed, "%s/%d committed", p.Topic, p.Partition)
			require.Zero(t, p.Lag, "%s/%d", p.Topic, p.Partition)
			if offs.Latest > 0 {
				require.Equal(t, offs.Latest, p.End, "%s/%d", p.Topic, p.Partition)
			}
		}
		for _, s := range tm.Stores {
			require.Equal(t, "counts", s.Store)
			require.Equal(t, tm.Task.Partition, s.Partition)
			require.NotZero(t, s.CacheHits+s.CacheMisses, "the count reads its store for every record")
		}
		if tm.RecordsProcessed >= duality.ProcessLatencySample {
			require.NotZero(t, tm.ProcessLatency.Count, "task %s: sampled latencies", tm.Task)
		}
	}
	m := app.Metrics()
	require.EqualValues(t, n, processed)
	require.Equal(t, m.RecordsProcessed, processed)
	written := len(readTopic(t, b, "even")) + len(readTopic(t, b, "counts-out"))
	require.EqualValues(t, written, produced, "the tasks' output records, changelogs excluded")
	require.Equal(t, m.RecordsProduced-m.ChangelogRecords, produced)
	require.Equal(t, m.Commits, m.CommitLatency.Count)
	require.Equal(t, m.Commits, m.CommitRecords.Count)
	require.Equal(t, m.RecordsProduced, m.CommitRecords.Sum)
	require.NotZero(t, m.ProcessLatency.Count)
	require.LessOrEqual(t, m.ProcessLatency.Count, uint64(n/duality.ProcessLatencySample+2),
		"one record in ProcessLatencySample per worker is measured")

	steps := stepsByName(tms)
	evens := uint64(len(readTopic(t, b, "even")))
	for _, want := range []duality.StepMetrics{
		{Step: "src", Op: "source", RecordsIn: n, RecordsOut: n}, // once, though two steps take it
		{Step: "parity", Op: "split", RecordsIn: n, RecordsOut: n},
		{Step: "parity-even", Op: "branch", RecordsIn: evens, RecordsOut: evens},
		{Step: "parity-odd", Op: "branch", RecordsIn: n - evens}, // no step below
		{Step: "even-sink", Op: "sink", RecordsIn: evens, RecordsOut: evens},
	} {
		require.Equal(t, want, steps[want.Step])
	}
	require.NotZero(t, evens)
	require.Less(t, evens, uint64(n))
	outs := uint64(len(readTopic(t, b, "counts-out")))
	require.EqualValues(t, n, steps["count"].RecordsIn, "every record counted")
	require.Equal(t, outs, steps["counts-sink"].RecordsOut)

	// A second run under the app id with memory state restores the
	// count's store from its changelog: the progress is in the store
	// metrics and the log.
	logs2 := newLogRecorder()
	again, err := duality.New("tm", metricsTopology(t), b, duality.Logger(slog.New(logs2)))
	require.NoError(t, err)
	require.NoError(t, again.RunToEnd(t.Context()))
	var restored int64
	for _, tm := range again.TaskMetrics() {
		for _, s := range tm.Stores {
			require.False(t, s.Restoring)
			require.LessOrEqual(t, s.Restored, s.RestoreTotal)
			restored += s.Restored
		}
	}
	require.NotZero(t, restored, "the second run restored the counts")
	var lines []string
	for _, r := range logs2.at(slog.LevelInfo) {
		if strings.Contains(r.Message, "restor") {
			lines = append(lines, r.Message)
		}
	}
	require.Contains(t, lines, "restoring store")
	require.Contains(t, lines, "restored store")
}

// TestTaskMetricsLag checks that a task's lag shows while it is behind:
// a step blocks at the 300th record, after the worker has published its
// position (it commits, and so publishes, every 10 outputs).
func TestTaskMetricsLag(t *testing.T) {
	const n, block = 600, 300
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	produceN(t, b, "in", 0, n)
	blocked, release := make(chan struct{}), make(chan struct{})
	var seen int
	var once, released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	sb := stream.NewBuilder()
	stream.From(sb, "in", codec.String(), codec.String()).Peek(func(string, string) {
		if seen++; seen == block {
			once.Do(func() { close(blocked) })
			<-release
		}
	}).To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("lag", topo, b, duality.MaxUncommittedRecords(10))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	t.Cleanup(unblock) // before runApp's cleanup stops the app, also when the test fails
	<-blocked
	tm := app.TaskMetrics()
	require.Len(t, tm, 1)
	require.True(t, tm[0].Active)
	p := tm[0].Partitions[0]
	require.Equal(t, "in", p.Topic)
	require.Less(t, p.Position, int64(block))
	require.Greater(t, p.End, p.Position, "the fetch reached past the position")
	require.Equal(t, p.End-p.Position, p.Lag)
	require.Positive(t, p.Lag)
	unblock()
	awaitRecords(t, b, "out", n)
	eventually(t, "lag 0", func() bool {
		p := app.TaskMetrics()[0].Partitions[0]
		return p.Lag == 0 && p.Position == n
	})
	require.NoError(t, stop())
	require.False(t, app.TaskMetrics()[0].Active)
}

// stuckEnds is a broker whose listings of one topic's offsets, once
// armed, hang until their context ends: a slow or unreachable broker as
// the lag's listing meets it.
type stuckEnds struct {
	broker.Broker
	topic   string
	armed   atomic.Bool
	once    sync.Once
	entered chan struct{} // closed by the first listing that hangs
}

func (s *stuckEnds) ListOffsets(ctx context.Context, topic string, partition int32) (broker.Offsets, error) {
	if topic != s.topic || !s.armed.Load() {
		return s.Broker.ListOffsets(ctx, topic, partition)
	}
	s.once.Do(func() { close(s.entered) })
	<-ctx.Done()
	return broker.Offsets{}, ctx.Err()
}

// TestTaskMetricsLagListingDoesNotHoldTheWorker: the listing of a
// partition's end for the lag (PartitionMetrics.End) runs beside the
// worker, so a listing that hangs delays the lag, not the processing,
// nor TaskMetrics, nor the app's stop.
func TestTaskMetricsLagListingDoesNotHoldTheWorker(t *testing.T) {
	const n = 500
	eb := openBroker(t)
	createTopic(t, eb, "in", 1)
	createTopic(t, eb, "out", 1)
	b := &stuckEnds{Broker: eb, topic: "in", entered: make(chan struct{})}
	produceN(t, eb, "in", 0, 10)
	app, err := duality.New("stuck-lag", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b, duality.FetchMaxRecords(10))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	awaitRecords(t, eb, "out", 10) // started: its position resumed, caught up
	b.armed.Store(true)

	// A backlog: the worker fetches past the end it knew and lists the
	// end, which hangs; it processes the backlog meanwhile.
	produceN(t, eb, "in", 10, n)
	select {
	case <-b.entered:
	case <-time.After(20 * time.Second):
		require.FailNow(t, "the worker never listed the end of the partition it was behind in")
	}
	awaitRecords(t, eb, "out", n)
	eventually(t, "the backlog processed, its end known from the fetch", func() bool {
		p := app.TaskMetrics()[0].Partitions[0]
		return p.Position == n && p.End == n && p.Lag == 0
	})
	require.NoError(t, stop(), "the stop ends the hanging listing")
}

func TestStoreSizes(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	recs := make([]broker.Record, 100)
	for i := range recs {
		recs[i] = broker.Record{Topic: "in", Partition: broker.PartitionByKey, Key: fmt.Appendf(nil, "k%d", i%10), Value: []byte("x")}
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	sb := stream.NewBuilder()
	table.Count(stream.GroupByKey(stream.From(sb, "in", codec.String(), codec.String())), "counts").ToStream().To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("sizes", topo, b, duality.StateDir(t.TempDir()))
	require.NoError(t, err)
	require.Nil(t, app.StoreSizes(), "not running")
	stop, _ := runApp(t, app)
	eventually(t, "10 keys in the committed state", func() bool {
		var keys int64
		sizes := app.StoreSizes()
		for _, s := range sizes {
			require.Equal(t, "counts", s.Store)
			keys += s.Keys
		}
		return len(sizes) == 2 && keys == 10
	})
	require.NoError(t, stop())
	require.Nil(t, app.StoreSizes())
}
