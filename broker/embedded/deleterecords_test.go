package embedded

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// storedBatches returns the base offsets and total size of the batches
// stored for topic/partition.
func storedBatches(t *testing.T, b *Broker, topic string, partition int32) ([]int64, int64) {
	t.Helper()
	p, err := b.lookupPartition(topic, partition)
	require.NoError(t, err)
	it, err := b.partitionIter(p, p.wstate.next)
	require.NoError(t, err)
	defer it.Close()
	var bases []int64
	var size int64
	for valid := it.First(); valid; valid = it.Next() {
		off, _ := recordKeyOffset(it.Key())
		v, err := it.ValueAndErr()
		require.NoError(t, err)
		bases = append(bases, off)
		size += int64(len(v))
	}
	require.NoError(t, it.Error())
	return bases, size
}

// TestDeleteRecordsStorage checks what DeleteRecords does to the stored
// batches: those wholly below the new log start go (their bytes leave the
// partition's byte count and count in Metrics.BytesRemoved), one that
// straddles it stays until a later deletion passes it, and the log start
// and the byte count survive a reopen.
func TestDeleteRecordsStorage(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := Open(dir, WithCleanupInterval(-1))
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1, RetentionTime: -1}))
	produce(t, b, "t", 0, "a0", "a1") // offsets 0-1
	produce(t, b, "t", 0, "b0", "b1") // 2-3
	produce(t, b, "t", 0, "c0", "c1") // 4-5
	bases, total := storedBatches(t, b, "t", 0)
	require.Equal(t, []int64{0, 2, 4}, bases)
	require.Equal(t, total, b.mu.topics["t"].parts[0].state.bytes)

	require.NoError(t, b.DeleteRecords(ctx, "t", 0, 3))
	bases, size := storedBatches(t, b, "t", 0)
	require.Equal(t, []int64{2, 4}, bases, "the straddling batch stays")
	require.Equal(t, size, b.mu.topics["t"].parts[0].state.bytes)
	require.Equal(t, uint64(total-size), b.Metrics().BytesRemoved)
	require.Equal(t, []string{"b1", "c0", "c1"}, values(fetchAll(t, b, "t", 0, 3)))

	require.NoError(t, b.DeleteRecords(ctx, "t", 0, 4))
	bases, size = storedBatches(t, b, "t", 0)
	require.Equal(t, []int64{4}, bases)
	require.Equal(t, size, b.mu.topics["t"].parts[0].state.bytes)
	require.Equal(t, uint64(total-size), b.Metrics().BytesRemoved)
	require.NoError(t, b.Close())

	b, err = Open(dir, WithCleanupInterval(-1))
	require.NoError(t, err)
	offs, err := b.ListOffsets(ctx, "t", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 4, Latest: 6}, offs, "the log start survives a reopen")
	require.Equal(t, size, b.mu.topics["t"].parts[0].state.bytes)
	_, err = b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Offset: 3}}, broker.FetchOptions{})
	var oor *broker.OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor)
	require.Equal(t, []string{"c0", "c1"}, values(fetchAll(t, b, "t", 0, 4)))

	// Deleting everything leaves no batch; appends go on at offset 6.
	require.NoError(t, b.DeleteRecords(ctx, "t", 0, 6))
	bases, size = storedBatches(t, b, "t", 0)
	require.Empty(t, bases)
	require.Zero(t, size)
	require.Zero(t, b.mu.topics["t"].parts[0].state.bytes)
	produce(t, b, "t", 0, "d0")
	require.Equal(t, []int64{6}, offsets(fetchAll(t, b, "t", 0, 6)))
}

// TestDeleteRecordsRaces runs DeleteRecords, retention by size and
// appends concurrently: the partition's byte count stays the size of its
// stored batches, and what is fetchable from the log start is contiguous.
func TestDeleteRecordsRaces(t *testing.T) {
	ctx := t.Context()
	b := open(t, WithCleanupInterval(-1))
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1, RetentionTime: -1, RetentionBytes: 4 << 10}))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		defer close(stop)
		for i := 0; i < 300; i++ {
			recs := make([]broker.Record, 1+i%4)
			for j := range recs {
				recs[j] = broker.Record{Topic: "t", Partition: 0, Value: fmt.Appendf(nil, "v%d-%d", i, j)}
			}
			if err := b.Produce(ctx, recs); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.Cleanup(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			offs, err := b.ListOffsets(ctx, "t", 0)
			if err != nil {
				t.Error(err)
				return
			}
			before := offs.Earliest + rng.Int64N(offs.Latest-offs.Earliest+1)
			if err := b.DeleteRecords(ctx, "t", 0, before); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	_, size := storedBatches(t, b, "t", 0)
	st, _, _ := b.mu.topics["t"].parts[0].snapshot()
	require.Equal(t, size, st.bytes, "byte count and stored batches agree")
	recs := fetchAll(t, b, "t", 0, st.logStart)
	for i, r := range recs {
		require.Equal(t, st.logStart+int64(i), r.Offset)
	}
	require.Equal(t, st.next, st.logStart+int64(len(recs)))
}

// TestDeleteRecordsCrashClone takes crash clones (the synced data plus a
// random part of the unsynced data) while a producer appends and a purger
// deletes records, in sync mode: in every clone the log start is at least
// the last acknowledged DeleteRecords (it never moves back), every
// acknowledged record at or above it is there, and what is there from the
// log start is contiguous.
func TestDeleteRecordsCrashClone(t *testing.T) {
	ctx := t.Context()
	fs := vfs.NewCrashableMem()
	opts := []Option{WithFS(fs), WithCleanupInterval(-1)}
	b, err := Open("data", opts...)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1, RetentionTime: -1}))

	var mu sync.Mutex
	var ackedEnd, ackedPurge int64 // guarded by mu
	progress := make(chan struct{}, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			recs := make([]broker.Record, 1+i%5)
			for j := range recs {
				recs[j] = broker.Record{Topic: "t", Partition: 0, Value: fmt.Appendf(nil, "i%d-j%d", i, j)}
			}
			if err := b.Produce(ctx, recs); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ackedEnd = recs[len(recs)-1].Offset + 1
			mu.Unlock()
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			offs, err := b.ListOffsets(ctx, "t", 0)
			if err != nil {
				t.Error(err)
				return
			}
			before := (offs.Earliest + offs.Latest + 1) / 2
			if err := b.DeleteRecords(ctx, "t", 0, before); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ackedPurge = max(ackedPurge, before)
			mu.Unlock()
		}
	})
	rng := rand.New(rand.NewPCG(3, 4))
	for c := range 6 {
		for range 10 {
			<-progress
		}
		mu.Lock()
		end, purge := ackedEnd, ackedPurge
		mu.Unlock()
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})
		cb, err := Open("data", WithFS(clone), WithCleanupInterval(-1))
		require.NoError(t, err, "clone %d", c)
		offs, err := cb.ListOffsets(ctx, "t", 0)
		require.NoError(t, err)
		require.GreaterOrEqual(t, offs.Earliest, purge, "clone %d: the log start moved back", c)
		require.GreaterOrEqual(t, offs.Latest, end, "clone %d: acknowledged records lost", c)
		recs := fetchAll(t, cb, "t", 0, offs.Earliest)
		require.Len(t, recs, int(offs.Latest-offs.Earliest), "clone %d", c)
		for i, r := range recs {
			require.Equal(t, offs.Earliest+int64(i), r.Offset, "clone %d: contiguous from the log start", c)
		}
		_, size := storedBatches(t, cb, "t", 0)
		require.Equal(t, size, cb.mu.topics["t"].parts[0].state.bytes, "clone %d: byte count", c)
		require.NoError(t, cb.Close())
	}
	close(stop)
	wg.Wait()
}
