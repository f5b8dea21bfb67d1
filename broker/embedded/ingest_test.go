package embedded

import (
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// pendingMarkers counts the pending markers stored for topic.
func pendingMarkers(t *testing.T, b *Broker, topic string) int {
	t.Helper()
	lo, hi := topicSpan(prefixChunks, b.mu.topics[topic].id)
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	require.NoError(t, err)
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if k := it.Key(); binary.BigEndian.Uint32(k[len(k)-4:]) == pendingIndex {
			n++
		}
	}
	require.NoError(t, it.Error())
	return n
}

// TestIngestedBatches produces batches of ingestMin bytes and more, whose
// chunks are ingested as sstables, next to small ones in the same call:
// they read back whole, before and after a reopen, no pending marker is
// left, and DeleteRecords deletes their chunks.
func TestIngestedBatches(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	opts := []Option{WithMaxRecordBytes(ingestMin + 4<<20), WithCleanupInterval(-1)}
	b, err := Open(dir, opts...)
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	huge := bigValue('h', ingestMin+1<<20+3)
	recs := []broker.Record{
		{Topic: "t", Partition: 0, Key: []byte("k0"), Value: []byte("small")},
		{Topic: "t", Partition: 0, Key: []byte("k1"), Value: huge},
		{Topic: "t", Partition: 1, Key: []byte("k2"), Value: []byte("other partition")},
	}
	require.NoError(t, b.Produce(ctx, recs))
	produce(t, b, "t", 0, "after")

	check := func(b *Broker) {
		t.Helper()
		got := fetchAll(t, b, "t", 0, 0)
		require.Len(t, got, 3)
		require.Equal(t, "small", string(got[0].Value))
		require.Equal(t, huge, got[1].Value)
		require.Equal(t, "after", string(got[2].Value))
		require.Equal(t, []string{"other partition"}, values(fetchAll(t, b, "t", 1, 0)))
		// Partition 0's records take ingestMin bytes or more: one
		// batch, ingested.
		require.Equal(t, stubChunks(t, b, "t", 0, chunkLen), chunkKeys(t, b, "t"))
		require.Zero(t, pendingMarkers(t, b, "t"))
	}
	check(b)
	require.NoError(t, b.Close())
	b, err = Open(dir, opts...)
	require.NoError(t, err)
	check(b)
	require.NoError(t, b.DeleteRecords(ctx, "t", 0, 2))
	require.Zero(t, chunkKeys(t, b, "t"))
	require.Equal(t, []string{"after"}, values(fetchAll(t, b, "t", 0, 2)))
}

// TestIngestedCall produces, in one call, records under batchLen's
// split that take ingestMin bytes or more for one partition: they stay one
// batch, ingested (not split into batches that would go through the
// write-ahead log and a memtable), and read back whole; the other
// partition's records of the call are split as usual.
func TestIngestedCall(t *testing.T) {
	ctx := t.Context()
	b := open(t, WithCleanupInterval(-1))
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	var recs []broker.Record
	for i := range 20 {
		recs = append(recs, broker.Record{Topic: "t", Partition: 0, Value: bigValue(byte(i), 900<<10)})
	}
	for i := range 10 {
		recs = append(recs, broker.Record{Topic: "t", Partition: 1, Value: bigValue(byte(i), 100<<10)})
	}
	require.NoError(t, b.Produce(ctx, slices.Clone(recs)))
	h, size, err := batchInfo(storedValue(t, b, recordKey(nil, b.mu.topics["t"].id, 0, 0)))
	require.NoError(t, err)
	require.Equal(t, uint32(20), h.Count, "one batch")
	require.GreaterOrEqual(t, size, ingestMin)
	require.Equal(t, stubChunks(t, b, "t", 0, chunkLen), chunkKeys(t, b, "t"))
	require.Zero(t, pendingMarkers(t, b, "t"))
	require.Len(t, batchKeys(t, b, "t", 1, batchLen), 10, "partition 1: a batch per 100 KiB record")
	require.Equal(t, valueBytes(recs[:20]), valueBytes(fetchAll(t, b, "t", 0, 0)))
	require.Equal(t, valueBytes(recs[20:]), valueBytes(fetchAll(t, b, "t", 1, 0)))
}

// TestIngestOrphans leaves, at a partition's next offset, the chunks and
// pending marker of an ingested batch whose group never committed (as a
// crash between the ingestion and the commit does): Open deletes them, and
// a later batch at that offset reads back whole. Without the marker such
// chunks are corruption (TestChunkDamage).
func TestIngestOrphans(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	opts := []Option{WithMaxRecordBytes(8 << 20), WithCleanupInterval(-1)}
	b, err := Open(dir, opts...)
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
	produce(t, b, "t", 0, "first")
	id := b.mu.topics["t"].id
	for i := range uint32(4) {
		require.NoError(t, b.db.Set(chunkKey(nil, id, 0, 1, i), make([]byte, chunkLen), pebble.Sync))
	}
	require.NoError(t, b.db.Set(chunkKey(nil, id, 0, 1, pendingIndex), nil, pebble.Sync))
	require.NoError(t, b.Close())
	// And the sstable a crash left before its ingestion.
	f, err := vfs.Default.Create(vfs.Default.PathJoin(dir, ingestFile), vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	b, err = Open(dir, opts...)
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	require.Zero(t, chunkKeys(t, b, "t"), "the orphaned chunks and marker are deleted")
	_, err = vfs.Default.Stat(vfs.Default.PathJoin(dir, ingestFile))
	require.ErrorIs(t, err, os.ErrNotExist)
	big := bigValue('b', chunkSize+10) // chunked, at offset 1
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Value: big}}))
	got := fetchAll(t, b, "t", 0, 0)
	require.Len(t, got, 2)
	require.Equal(t, big, got[1].Value)
}

// diskFS reports a free space the test sets, and none once the sstable of
// an ingestion is removed (ingestChunked removes it after the ingestion)
// when full is armed.
type diskFS struct {
	vfs.FS
	free atomic.Int64
	full atomic.Bool // once armed, an ingestion fills the disk
}

func (fs *diskFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	free := max(0, fs.free.Load())
	return vfs.DiskUsage{AvailBytes: uint64(free), TotalBytes: 1 << 40, UsedBytes: 1<<40 - uint64(free)}, nil
}

func (fs *diskFS) Remove(name string) error {
	if strings.HasSuffix(name, ingestFile) && fs.full.Load() {
		fs.free.Store(0)
	}
	return fs.FS.Remove(name)
}

// TestIngestedGroupRefused refuses a group (disk full) after its batch's
// chunks were ingested: the chunks are deleted at once, the broker stays
// usable, and the same batch produced again, at the same offset, reads
// back whole.
func TestIngestedGroupRefused(t *testing.T) {
	ctx := t.Context()
	const reserve = 1 << 20
	huge := bigValue('h', ingestMin+5)
	// Room for the ingestion, which takes more than half the margin (so
	// the guard measures the free space for it and for the group's batch
	// after it), then none for the group's batch.
	fs := &diskFS{FS: vfs.NewMem()}
	fs.free.Store(reserve + 3*int64(len(huge)))
	b, err := Open("data", WithFS(fs), WithDiskReserve(reserve), WithMaxRecordBytes(ingestMin+4<<20), WithCleanupInterval(-1))
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
	produce(t, b, "t", 0, "first")
	fs.full.Store(true)
	err = b.Produce(ctx, []broker.Record{{Topic: "t", Value: huge}})
	require.ErrorIs(t, err, broker.ErrDiskFull)
	require.True(t, broker.IsRetryable(err))
	require.Zero(t, chunkKeys(t, b, "t"), "the refused group's chunks are deleted")

	fs.full.Store(false)
	fs.free.Store(1 << 40)
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Value: huge}}))
	got := fetchAll(t, b, "t", 0, 0)
	require.Len(t, got, 2)
	require.Equal(t, int64(1), got[1].Offset)
	require.Equal(t, huge, got[1].Value)
	require.Zero(t, pendingMarkers(t, b, "t"))
	require.Equal(t, stubChunks(t, b, "t", 1, chunkLen), chunkKeys(t, b, "t"))
}
