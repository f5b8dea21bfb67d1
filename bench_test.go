package duality_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// BenchmarkPipeline measures a Filter+MapValues+To pipeline over 100-byte
// values on the embedded broker (interval sync), end to end: b.N input
// records are produced first, then the app runs until it has processed
// them all and, stopped, has committed their output. The full comparison against a raw baseline lives in
// benchmarks/.
func BenchmarkPipeline(b *testing.B) {
	brk, err := embedded.Open(b.TempDir(), embedded.WithSyncInterval(100*time.Millisecond), embedded.WithCleanupInterval(-1))
	require.NoError(b, err)
	defer brk.Close()
	ctx := context.Background()
	require.NoError(b, brk.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 4}))
	require.NoError(b, brk.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 4}))
	n := b.N
	value := make([]byte, 100)
	for i := 0; i < n; i += 10000 {
		recs := make([]broker.Record, 0, 10000)
		for j := i; j < min(n, i+10000); j++ {
			recs = append(recs, broker.Record{Topic: "in", Partition: int32(j % 4), Key: fmt.Appendf(nil, "k%d", j), Value: value})
		}
		require.NoError(b, brk.Produce(ctx, recs))
	}
	sb := stream.NewBuilder()
	in := stream.From(sb, "in", codec.Bytes(), codec.Bytes())
	kept := in.Filter(func(_, v []byte) bool { return len(v) > 0 })
	var count atomic.Int64
	all := make(chan struct{})
	stream.MapValues(kept, func(v []byte) []byte { return v }).
		Peek(func(_, _ []byte) {
			if count.Add(1) == int64(n) {
				close(all)
			}
		}).
		To("out")
	topo, err := sb.Build()
	require.NoError(b, err)
	app, err := duality.New("bench", topo, brk)
	require.NoError(b, err)

	b.ResetTimer()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	<-all
	stop() // Run commits the rest before it returns
	require.NoError(b, <-done)
	b.StopTimer()
	require.EqualValues(b, n, app.Metrics().RecordsProduced)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
