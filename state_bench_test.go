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
	"github.com/duality-streams/duality/table"
)

// BenchmarkRestore measures restoring a store from its changelog: b.N
// distinct keys with 20-byte values in one changelog partition, restored
// into a fresh Pebble state directory (StateDir) or into memory. The
// timer covers the app's start up to the end of the restoration.
func BenchmarkRestore(b *testing.B) {
	for _, mode := range []string{"pebble", "memory"} {
		b.Run(mode, func(b *testing.B) {
			brk, err := embedded.Open(b.TempDir(), embedded.WithCleanupInterval(-1))
			require.NoError(b, err)
			defer brk.Close()
			ctx := context.Background()
			require.NoError(b, brk.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 1}))
			require.NoError(b, brk.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}))
			require.NoError(b, brk.CreateTopic(ctx, countLog, broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}))
			value := make([]byte, 20)
			for i := 0; i < b.N; i += 10000 {
				recs := make([]broker.Record, 0, 10000)
				for j := i; j < min(b.N, i+10000); j++ {
					recs = append(recs, broker.Record{Topic: countLog, Key: fmt.Appendf(nil, "key-%09d", j), Value: value})
				}
				require.NoError(b, brk.Produce(ctx, recs))
			}
			var opts []duality.Option
			if mode == "pebble" {
				opts = append(opts, duality.StateDir(b.TempDir()))
			}
			var restored atomic.Int64
			done := make(chan struct{})
			opts = append(opts, duality.OnRestore(func(p duality.RestoreProgress) {
				if p.Done {
					restored.Store(p.Restored)
					close(done)
				}
			}))
			topo, err := buildCounter()
			require.NoError(b, err)
			app, err := duality.New(countApp, topo, brk, opts...)
			require.NoError(b, err)
			b.ResetTimer()
			runCtx, stop := context.WithCancel(ctx)
			errc := make(chan error, 1)
			go func() { errc <- app.Run(runCtx) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				b.Fatal("restore took over a minute")
			}
			b.StopTimer()
			stop()
			require.NoError(b, <-errc)
			require.EqualValues(b, b.N, restored.Load())
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkCount measures the stateful counter end to end on the embedded
// broker (interval sync), like BenchmarkPipeline: b.N input records over
// 10,000 keys in 4 partitions are produced first, then the app counts
// them with Pebble state until all counts are committed, with the record
// cache (default) and without (CacheMaxBytes(0)). It reports the changelog
// records written per input record: with the cache one per key and
// commit, without one per input record.
func BenchmarkCount(b *testing.B) {
	for _, mode := range []string{"cache", "no-cache"} {
		b.Run(mode, func(b *testing.B) {
			opts := []duality.Option{duality.StateDir(b.TempDir())}
			if mode == "no-cache" {
				opts = append(opts, duality.CacheMaxBytes(0))
			}
			benchCount(b, opts...)
		})
	}
}

func benchCount(b *testing.B, opts ...duality.Option) {
	brk, err := embedded.Open(b.TempDir(), embedded.WithSyncInterval(100*time.Millisecond), embedded.WithCleanupInterval(-1))
	require.NoError(b, err)
	defer brk.Close()
	ctx := context.Background()
	require.NoError(b, brk.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 4}))
	require.NoError(b, brk.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 4}))
	n := b.N
	for i := 0; i < n; i += 10000 {
		recs := make([]broker.Record, 0, 10000)
		for j := i; j < min(n, i+10000); j++ {
			recs = append(recs, broker.Record{Topic: "in", Partition: broker.PartitionByKey, Key: fmt.Appendf(nil, "k%d", j%10000), Value: []byte("v")})
		}
		require.NoError(b, brk.Produce(ctx, recs))
	}
	sb := stream.NewBuilder()
	var count atomic.Int64
	all := make(chan struct{})
	stream.Process(stream.From(sb, "in", codec.String(), codec.String()),
		func() stream.Processor[string, string, string, string] { return &counter{} }, stream.WithStores(stream.BytesStoreSpec(countStore))).
		Peek(func(_, _ string) {
			if count.Add(1) == int64(n) {
				close(all)
			}
		}).
		To("out")
	topo, err := sb.Build()
	require.NoError(b, err)
	app, err := duality.New(countApp, topo, brk, opts...)
	require.NoError(b, err)
	b.ResetTimer()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	<-all
	stop() // Run commits the rest before it returns
	require.NoError(b, <-done)
	b.StopTimer()
	m := app.Metrics()
	require.EqualValues(b, n, m.RecordsProcessed)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(m.ChangelogRecords)/float64(n), "changelog/record")
}

// BenchmarkGlobalBootstrap measures bootstrapping a global store: b.N
// distinct keys with 20-byte values in the 4 partitions of its topic, read
// into a fresh Pebble state directory or into memory. The timer covers
// the app's start up to the end of the bootstrap.
func BenchmarkGlobalBootstrap(b *testing.B) {
	for _, mode := range []string{"pebble", "memory"} {
		b.Run(mode, func(b *testing.B) {
			brk, err := embedded.Open(b.TempDir(), embedded.WithCleanupInterval(-1))
			require.NoError(b, err)
			defer brk.Close()
			ctx := context.Background()
			for _, topic := range []string{"customers", "orders", "out"} {
				require.NoError(b, brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 4}))
			}
			value := make([]byte, 20)
			for i := 0; i < b.N; i += 10000 {
				recs := make([]broker.Record, 0, 10000)
				for j := i; j < min(b.N, i+10000); j++ {
					recs = append(recs, broker.Record{Topic: "customers", Partition: int32(j % 4), Key: fmt.Appendf(nil, "key-%09d", j), Value: value})
				}
				require.NoError(b, brk.Produce(ctx, recs))
			}
			var opts []duality.Option
			if mode == "pebble" {
				opts = append(opts, duality.StateDir(b.TempDir()))
			}
			var restored atomic.Int64
			var parts atomic.Int32
			done := make(chan struct{})
			opts = append(opts, duality.OnRestore(func(p duality.RestoreProgress) {
				if p.Done {
					restored.Add(p.Restored)
					if parts.Add(1) == int32(min(b.N, 4)) {
						close(done)
					}
				}
			}))
			sb := stream.NewBuilder()
			customers := table.Global(sb, "customers", codec.String(), codec.String(), "customers-global")
			table.JoinGlobal(stream.From(sb, "orders", codec.String(), codec.String()), customers,
				func(_, c string) string { return c }, func(_, _, name string) string { return name }).
				To("out")
			topo, err := sb.Build()
			require.NoError(b, err)
			app, err := duality.New("gbench", topo, brk, opts...)
			require.NoError(b, err)
			b.ResetTimer()
			runCtx, stop := context.WithCancel(ctx)
			errc := make(chan error, 1)
			go func() { errc <- app.Run(runCtx) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				b.Fatal("bootstrap took over a minute")
			}
			b.StopTimer()
			stop()
			require.NoError(b, <-errc)
			require.EqualValues(b, b.N, restored.Load())
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
