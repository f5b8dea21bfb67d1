package embedded

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// TestSyncFaultPoisons fails the write-ahead log's fsync in the middle of
// a run: a Produce (sync mode) or the periodic sync (interval mode) gets the
// I/O error (no panic), every later write fails while reads keep working,
// and after a restart the acknowledged records (sync mode) are there with
// contiguous offsets. (A failed WAL write, unlike a failed sync, makes
// Pebble panic by design; that is covered by the child-process tests.)
func TestSyncFaultPoisons(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"sync", nil}, {"interval", []Option{WithSyncInterval(time.Millisecond)}}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := t.Context()
			mem := vfs.NewMem()
			var broken atomic.Bool
			fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
				switch op.Kind {
				case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
				default:
					return nil
				}
				if broken.Load() && strings.HasSuffix(op.Path, ".log") {
					return errorfs.ErrInjected
				}
				return nil
			}))
			b, err := Open("data", append(mode.opts, WithFS(fs), WithCleanupInterval(-1))...)
			require.NoError(t, err)
			require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
			produce(t, b, "t", 0, "a", "b")
			require.NoError(t, b.db.LogData(nil, pebble.Sync)) // "a", "b" durable in both modes

			broken.Store(true)
			// In interval mode writes succeed until the periodic sync
			// fails; keep writing until one is refused.
			var failed error
			acked := 2
			for ; failed == nil && acked < 1_000_000; acked++ {
				failed = b.Produce(ctx, []broker.Record{{Topic: "t", Value: []byte("x")}})
			}
			require.Error(t, failed)
			acked--
			t.Logf("%d records acknowledged, then: %v", acked, failed)
			require.True(t, errors.Is(failed, errorfs.ErrInjected) || strings.Contains(failed.Error(), "injected"), "%v", failed)
			err = b.Produce(ctx, []broker.Record{{Topic: "t", Value: []byte("y")}})
			require.Error(t, err, "writes after a failed one are refused")
			require.Error(t, b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{{Topic: "t"}: 1}))
			recs, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "t"}}, broker.FetchOptions{})
			require.NoError(t, err, "reads still work")
			require.GreaterOrEqual(t, len(recs), 2)
			_ = b.Close() // may report the failure

			broken.Store(false)
			b, err = Open("data", WithFS(fs), WithCleanupInterval(-1))
			require.NoError(t, err)
			defer b.Close()
			recs = fetchAll(t, b, "t", 0, 0)
			require.GreaterOrEqual(t, len(recs), 2)
			if mode.opts == nil {
				require.GreaterOrEqual(t, len(recs), acked, "sync mode keeps every acknowledged record")
			}
			require.Equal(t, []string{"a", "b"}, values(recs[:2]))
			for i, r := range recs {
				require.Equal(t, int64(i), r.Offset)
			}
			produce(t, b, "t", 0, "after")
			require.Equal(t, int64(len(recs)), fetchAll(t, b, "t", 0, int64(len(recs)))[0].Offset)
		})
	}
}
