package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/window"
)

// BenchmarkCount pipes records (1000 keys, one record per millisecond)
// through windowed counts in the test driver (in-memory stores, a commit
// per record), so it measures the aggregation's per-record cost, not the
// runtime's.
func BenchmarkCount(b *testing.B) {
	for _, tc := range []struct {
		name string
		w    window.Windows
		opts []stream.Option
	}{
		{"tumbling", window.Tumbling(10*time.Second, 0), nil},
		{"hopping", window.Hopping(10*time.Second, 2*time.Second, 0), nil},
		{"tumbling-final", window.Tumbling(10*time.Second, 0), []stream.Option{window.EmitOnWindowClose()}},
		{"sliding", window.Sliding(time.Second, 0), nil},
		{"session", window.Session(time.Second, 0), nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sb := stream.NewBuilder()
			g := stream.GroupByKey(stream.From(sb, "in", codec.String(), codec.String()))
			window.Count(g, tc.w, "counts", tc.opts...).ToStream().To("out")
			topo, err := sb.Build()
			require.NoError(b, err)
			d, err := streamtest.New(topo)
			require.NoError(b, err)
			defer d.Close()
			in := streamtest.Input(d, "in", codec.String(), codec.String())
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = fmt.Sprint("key-", i)
			}
			ctx := b.Context()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := in.PipeAt(ctx, keys[i%len(keys)], "v", time.UnixMilli(int64(i))); err != nil {
					b.Fatal(err)
				}
				i++
				if i%100_000 == 0 {
					streamtest.Output(d, "out", codec.Bytes(), codec.Bytes()).ReadAll()
				}
			}
		})
	}
}
