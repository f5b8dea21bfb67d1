package duality_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// BenchmarkStringCount measures the hot path of a string-keyed count in
// steady state: table.Count over 10,000 string keys in 4 partitions, its
// changes written to a topic, on the embedded broker (interval sync) with
// Pebble state, the record cache on and one worker (one core's work). The app first processes
// countWarmup records, so that its buffers, caches and stores are at
// their working sizes; the timer and the readings then cover the next
// b.N records, up to the last one's processing (its commit is not
// waited for). Besides ns/op (per record) it reports allocs/record and
// B/record, which count every allocation of the process meanwhile (the
// embedded broker's, the commits' and the fetches' included) without
// rounding, and cpu-ns/record, the process's CPU time (0 where it cannot
// be read), the figure to compare on a shared machine. Run it with a
// fixed count, e.g. -benchtime=200000x.
func BenchmarkStringCount(b *testing.B) {
	const (
		keys        = 10_000
		partitions  = 4
		countWarmup = 100_000
	)
	brk, err := embedded.Open(b.TempDir(), embedded.WithSyncInterval(100*time.Millisecond), embedded.WithCleanupInterval(-1))
	require.NoError(b, err)
	defer brk.Close()
	ctx := context.Background()
	require.NoError(b, brk.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: partitions}))
	require.NoError(b, brk.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: partitions}))
	n := b.N
	total := countWarmup + n
	for i := 0; i < total; i += 10000 {
		recs := make([]broker.Record, 0, 10000)
		for j := i; j < min(total, i+10000); j++ {
			recs = append(recs, broker.Record{Topic: "in", Partition: broker.PartitionByKey,
				Key: fmt.Appendf(nil, "user-%d", j*7919%keys), Value: []byte("click")})
		}
		require.NoError(b, brk.Produce(ctx, recs))
	}
	sb := stream.NewBuilder()
	var seen atomic.Int64
	warm, resumed, all := make(chan struct{}), make(chan struct{}), make(chan struct{})
	counts := table.Count(stream.GroupByKey(stream.From(sb, "in", codec.String(), codec.String())), "counts")
	counts.ToStream().Peek(func(string, int64) {
		switch seen.Add(1) {
		case countWarmup:
			close(warm)
			<-resumed // the timer restarts before the measured records
		case int64(total):
			close(all)
		}
	}).To("out")
	topo, err := sb.Build()
	require.NoError(b, err)
	app, err := duality.New("stringcount", topo, brk, duality.StateDir(b.TempDir()), duality.Workers(1))
	require.NoError(b, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	<-warm
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	b.ResetTimer()
	close(resumed)
	<-all
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	stop()
	require.NoError(b, <-done)
	require.EqualValues(b, total, app.Metrics().RecordsProcessed)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n), "allocs/record")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n), "B/record")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/record")
}
