package embedded

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// TestCrashClone takes crash clones of a crashable in-memory file system
// (the synced data plus a random part of the unsynced data, as after a power
// failure) while producers run, and reopens each clone:
//
//   - in sync mode, every batch acknowledged before the clone is there;
//   - in both modes, what is there is, per partition, contiguous offsets
//     from 0 made of whole batches (never part of one), and in interval mode
//     every batch acknowledged before the last explicit sync is there.
func TestCrashClone(t *testing.T) {
	for _, mode := range []struct {
		name     string
		interval time.Duration
	}{{"sync", 0}, {"interval", time.Hour}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := t.Context()
			fs := vfs.NewCrashableMem()
			opts := []Option{WithFS(fs), WithCleanupInterval(-1)}
			if mode.interval > 0 {
				opts = append(opts, WithSyncInterval(mode.interval))
			}
			b, err := Open("data", opts...)
			require.NoError(t, err)
			defer b.Close()
			require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))

			var mu sync.Mutex
			var acked []cloneAck
			var wg sync.WaitGroup
			stop := make(chan struct{})
			progress := make(chan struct{}, 1)
			for w := range 3 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						n := 1 + (w+i)%5
						recs := make([]broker.Record, n)
						for j := range recs {
							recs[j] = broker.Record{Topic: "t", Partition: int32(w % 2), Value: fmt.Appendf(nil, "w%d-i%d-j%d-of-%d", w, i, j, n)}
						}
						if err := b.Produce(ctx, recs); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						acked = append(acked, cloneAck{recs[0].Partition, recs[0].Offset})
						mu.Unlock()
						select {
						case progress <- struct{}{}:
						default:
						}
					}
				})
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for c := range 4 {
				// Let some batches in, then clone.
				for {
					mu.Lock()
					n := len(acked)
					mu.Unlock()
					if n >= 20*(c+1) {
						break
					}
					<-progress
				}
				var must []cloneAck
				if mode.interval > 0 {
					// Batches acknowledged before an explicit sync survive.
					mu.Lock()
					must = append(must, acked...)
					mu.Unlock()
					require.NoError(t, b.syncWAL())
				}
				mu.Lock()
				if mode.interval == 0 {
					must = append(must, acked...)
				}
				mu.Unlock()
				clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 30, RNG: rng})
				checkClone(t, clone, must, c)
			}
			close(stop)
			wg.Wait()
		})
	}
}

// cloneAck is an acknowledged batch: its partition and base offset.
type cloneAck struct {
	partition int32
	base      int64
}

// checkClone opens a crash clone and checks its records.
func checkClone(t *testing.T, fs *vfs.MemFS, must []cloneAck, c int) {
	t.Helper()
	b, err := Open("data", WithFS(fs), WithCleanupInterval(-1))
	require.NoError(t, err, "clone %d", c)
	defer b.Close()
	present := map[string]bool{}
	for p := range int32(2) {
		recs := fetchAll(t, b, "t", p, 0)
		for i, r := range recs {
			require.Equal(t, int64(i), r.Offset, "clone %d partition %d: contiguous offsets", c, p)
		}
		// Whole batches: a record "j-of-n" comes with its n-1 siblings.
		for i := 0; i < len(recs); {
			var w, it, j, n int
			_, err := fmt.Sscanf(string(recs[i].Value), "w%d-i%d-j%d-of-%d", &w, &it, &j, &n)
			require.NoError(t, err)
			require.Equal(t, 0, j, "clone %d partition %d offset %d: a batch starts with its first record", c, p, i)
			require.LessOrEqual(t, i+n, len(recs), "clone %d partition %d offset %d: batch cut short", c, p, i)
			for k := range n {
				require.Equal(t, fmt.Sprintf("w%d-i%d-j%d-of-%d", w, it, k, n), string(recs[i+k].Value))
			}
			present[fmt.Sprintf("%d@%d", p, i)] = true
			i += n
		}
	}
	for _, a := range must {
		require.True(t, present[fmt.Sprintf("%d@%d", a.partition, a.base)], "clone %d: acknowledged batch %d@%d lost", c, a.partition, a.base)
	}
}
