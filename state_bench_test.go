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
