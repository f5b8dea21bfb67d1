package embedded

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/logfmt"
)

// bigValue returns n bytes that differ from those of another tag.
func bigValue(tag byte, n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = tag + byte(i%251)
	}
	return v
}

// chunkKeys counts the chunk keys stored for topic.
func chunkKeys(t *testing.T, b *Broker, topic string) int {
	t.Helper()
	lo, hi := topicSpan(prefixChunks, b.mu.topics[topic].id)
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	require.NoError(t, err)
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	require.NoError(t, it.Error())
	return n
}

// withChunkLen makes the broker write chunks of n bytes instead of
// chunkLen's: chunkSize writes the layout of the versions before chunkLen.
func withChunkLen(n int) Option { return optionFunc(func(c *config) { c.chunkLen = n }) }

// withOneBatch makes the broker write an append's records for a partition
// as one batch, as the versions before batchLen did, chunked when over
// chunkSize: logs hold such batches of several records.
func withOneBatch() Option { return optionFunc(func(c *config) { c.batchLen = math.MaxInt }) }

// stubChunks returns the number of chunks that the stub of the batch at
// offset off of topic's partition 0 says, after checking that it is the
// number of chunks of n bytes its length takes.
func stubChunks(t *testing.T, b *Broker, topic string, off int64, n int) int {
	t.Helper()
	v := storedValue(t, b, recordKey(nil, b.mu.topics[topic].id, 0, off))
	require.True(t, chunked(v), "the batch at offset %d is chunked", off)
	count, size, _, err := parseStub(v)
	require.NoError(t, err)
	require.Equal(t, (size-logfmt.HeaderLen+n-1)/n, int(count), "the batch at offset %d in chunks of %d bytes", off, n)
	return int(count)
}

func storedValue(t *testing.T, b *Broker, key []byte) []byte {
	t.Helper()
	v, closer, err := b.db.Get(key)
	require.NoError(t, err)
	defer closer.Close()
	return bytes.Clone(v)
}

// TestChunkedBatches stores batches larger than chunkSize in chunks and
// reads them back whole: from their start, from inside, after a reopen,
// and by OffsetForTime.
func TestChunkedBatches(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	opts := []Option{WithMaxRecordBytes(8 << 20), WithCleanupInterval(-1)}
	b, err := Open(dir, opts...)
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
	big := bigValue('a', 3*chunkSize+12345)
	recs := []broker.Record{
		{Topic: "t", Key: []byte("k0"), Value: []byte("small")},
		{Topic: "t", Key: []byte("k1"), Value: big, Headers: []broker.Header{{Key: "h", Value: []byte("x")}}},
		{Topic: "t", Key: []byte("k2"), Value: nil},
	}
	require.NoError(t, b.Produce(ctx, recs))
	produce(t, b, "t", 0, "after") // offset 3, not chunked

	// The big record makes a batch alone, chunked; the small ones
	// around it batches of their own.
	id := b.mu.topics["t"].id
	stub := storedValue(t, b, recordKey(nil, id, 0, 1))
	require.True(t, chunked(stub))
	require.Len(t, stub, stubLen)
	require.Equal(t, stubChunks(t, b, "t", 1, chunkLen), chunkKeys(t, b, "t"))
	_, size, err := batchInfo(stub)
	require.NoError(t, err)
	wantBytes := int64(size)
	for _, off := range []int64{0, 2, 3} {
		v := storedValue(t, b, recordKey(nil, id, 0, off))
		require.False(t, chunked(v))
		wantBytes += int64(len(v))
	}
	require.Equal(t, wantBytes, b.mu.topics["t"].parts[0].state.bytes)

	check := func(b *Broker) {
		t.Helper()
		got := fetchAll(t, b, "t", 0, 0)
		require.Equal(t, []int64{0, 1, 2, 3}, offsets(got))
		require.Equal(t, "small", string(got[0].Value))
		require.Equal(t, big, got[1].Value)
		require.Equal(t, recs[1].Headers, got[1].Headers)
		require.Nil(t, got[2].Value)
		require.Equal(t, "after", string(got[3].Value))
		// From inside the chunked batch.
		got = fetchAll(t, b, "t", 0, 2)
		require.Equal(t, []int64{2, 3}, offsets(got))
		off, err := b.OffsetForTime(ctx, "t", 0, time.UnixMilli(0))
		require.NoError(t, err)
		require.Equal(t, int64(0), off)
	}
	check(b)
	require.NoError(t, b.Close())
	b, err = Open(dir, opts...)
	require.NoError(t, err)
	check(b)
}

// TestUnchunkedLargeBatchReads reads a large batch stored whole, as the
// broker stored every batch before it wrote chunks: data directories
// written then still read.
func TestUnchunkedLargeBatchReads(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	opts := []Option{WithMaxRecordBytes(8 << 20), WithCleanupInterval(-1)}
	b, err := Open(dir, opts...)
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1, RetentionBytes: 1000}))
	big := bigValue('b', 2*chunkSize)
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Value: big}}))
	// Rewrite it in the old layout: the whole batch under its record key.
	got := fetchAll(t, b, "t", 0, 0)
	old, err := logfmt.AppendBatch(nil, 0, got)
	require.NoError(t, err)
	id := b.mu.topics["t"].id
	lo, hi := chunkSpan(recordKey(nil, id, 0, 0))
	require.NoError(t, b.db.DeleteRange(lo, hi, pebble.Sync))
	require.NoError(t, b.db.Set(recordKey(nil, id, 0, 0), old, pebble.Sync))
	require.NoError(t, b.Close())

	b, err = Open(dir, opts...)
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	got = fetchAll(t, b, "t", 0, 0)
	require.Len(t, got, 1)
	require.Equal(t, big, got[0].Value)
	// Retention counts its length and deletes it.
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Value: []byte("x")}}))
	require.NoError(t, b.Cleanup(ctx))
	offs, err := b.ListOffsets(ctx, "t", 0)
	require.NoError(t, err)
	require.Equal(t, int64(1), offs.Earliest)
}

// TestChunkLenChange writes chunked batches in the 1 MiB chunks of the
// versions before chunkLen (in the group's batch and ingested; one of two
// big records, as the versions before batchLen wrote them), then
// reopens the log as today's broker: they read back whole, a new batch
// gets chunks of chunkLen, compaction rewrites an old batch in chunks of
// chunkLen, and retention deletes old batches with their chunks. Then an
// old broker (1 MiB chunks) reopens the log and reads back the batches in
// chunks of chunkLen: the layout is readable both ways.
func TestChunkLenChange(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	opts := []Option{WithMaxRecordBytes(ingestMin + 4<<20), WithCleanupInterval(-1)}
	old := append(slices.Clone(opts), withChunkLen(chunkSize), withOneBatch())
	big := func(tag byte) []byte { return bigValue(tag, 3*chunkSize+5) }
	huge := bigValue('h', ingestMin+chunkSize+3)

	b, err := Open(dir, old...)
	require.NoError(t, err)
	// Retention keeps the last 4 MiB: the batch of offset 2 and after.
	require.NoError(t, b.CreateTopic(ctx, "r", broker.TopicConfig{Partitions: 1, RetentionBytes: 4 << 20}))
	require.NoError(t, b.CreateTopic(ctx, "c", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}))
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "r", Value: big('a')}}))
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "r", Value: huge}})) // ingested
	require.NoError(t, b.Produce(ctx, []broker.Record{
		{Topic: "c", Key: []byte("x"), Value: big('b')},
		{Topic: "c", Key: []byte("y"), Value: big('c')},
	}))
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "c", Key: []byte("x"), Value: []byte("small")}}))
	oldChunks := stubChunks(t, b, "r", 0, chunkSize) + stubChunks(t, b, "r", 1, chunkSize)
	require.Equal(t, oldChunks, chunkKeys(t, b, "r"))
	require.Equal(t, stubChunks(t, b, "c", 0, chunkSize), chunkKeys(t, b, "c"))
	require.NoError(t, b.Close())

	b, err = Open(dir, opts...)
	require.NoError(t, err)
	require.Equal(t, [][]byte{big('a'), huge}, valueBytes(fetchAll(t, b, "r", 0, 0)))
	got := fetchAll(t, b, "c", 0, 0)
	require.Equal(t, [][]byte{big('b'), big('c'), []byte("small")}, valueBytes(got))
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "r", Value: big('d')}}))
	produce(t, b, "r", 0, "small")
	newChunks := stubChunks(t, b, "r", 2, chunkLen)
	require.Equal(t, oldChunks+newChunks, chunkKeys(t, b, "r"))

	require.NoError(t, b.Cleanup(ctx))
	offs, err := b.ListOffsets(ctx, "r", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 2, Latest: 4}, offs)
	require.Equal(t, newChunks, chunkKeys(t, b, "r"), "the old batches' chunks are deleted")
	require.Equal(t, stubChunks(t, b, "c", 0, chunkLen), chunkKeys(t, b, "c"), "the compacted batch in new chunks")
	check := func(b *Broker) {
		t.Helper()
		require.Equal(t, [][]byte{big('d'), []byte("small")}, valueBytes(fetchAll(t, b, "r", 0, 2)))
		got := fetchAll(t, b, "c", 0, 1)
		require.Equal(t, []int64{1, 2}, offsets(got))
		require.Equal(t, [][]byte{big('c'), []byte("small")}, valueBytes(got))
	}
	check(b)
	require.NoError(t, b.Close())

	b, err = Open(dir, old...)
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	check(b)
}

// valueBytes returns the values of recs.
func valueBytes(recs []broker.Record) [][]byte {
	out := make([][]byte, len(recs))
	for i := range recs {
		out[i] = recs[i].Value
	}
	return out
}

// TestChunkedCleanup checks that retention, DeleteRecords, compaction and
// DeleteTopic delete the chunks of the batches they delete, count the
// batches' whole sizes, and that compaction rewrites a large batch in
// chunks. Appends write one batch per partition, as the versions before
// batchLen did, so that compaction finds a chunked batch of two records
// to rewrite.
func TestChunkedCleanup(t *testing.T) {
	ctx := t.Context()
	b := open(t, WithMaxRecordBytes(8<<20), WithCleanupInterval(-1), withOneBatch())
	big := func(tag byte) []byte { return bigValue(tag, chunkSize+chunkSize/2) } // chunked

	t.Run("retention", func(t *testing.T) {
		require.NoError(t, b.CreateTopic(ctx, "r", broker.TopicConfig{Partitions: 1, RetentionBytes: chunkSize}))
		for _, tag := range []byte{'a', 'b'} {
			require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "r", Value: big(tag)}}))
		}
		produce(t, b, "r", 0, "small")
		require.Equal(t, stubChunks(t, b, "r", 0, chunkLen)+stubChunks(t, b, "r", 1, chunkLen), chunkKeys(t, b, "r"))
		require.NoError(t, b.Cleanup(ctx))
		offs, err := b.ListOffsets(ctx, "r", 0)
		require.NoError(t, err)
		require.Equal(t, broker.Offsets{Earliest: 2, Latest: 3}, offs)
		require.Equal(t, 0, chunkKeys(t, b, "r"))
		require.Less(t, b.mu.topics["r"].parts[0].state.bytes, int64(100))
	})

	t.Run("delete records", func(t *testing.T) {
		require.NoError(t, b.CreateTopic(ctx, "d", broker.TopicConfig{Partitions: 1}))
		for _, tag := range []byte{'a', 'b'} {
			require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "d", Value: big(tag)}}))
		}
		before := b.mu.topics["d"].parts[0].state.bytes
		require.NoError(t, b.DeleteRecords(ctx, "d", 0, 1))
		require.Equal(t, stubChunks(t, b, "d", 1, chunkLen), chunkKeys(t, b, "d"))
		require.Equal(t, before/2, b.mu.topics["d"].parts[0].state.bytes)
		got := fetchAll(t, b, "d", 0, 1)
		require.Len(t, got, 1)
		require.Equal(t, big('b'), got[0].Value)
	})

	t.Run("compaction", func(t *testing.T) {
		require.NoError(t, b.CreateTopic(ctx, "c", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}))
		// Batch 0: a big "x" that a later "x" replaces, and a big "y"
		// that stays: rewritten, in half as many chunks. Batch 2: the
		// big "x" again, replaced whole by batch 3.
		require.NoError(t, b.Produce(ctx, []broker.Record{
			{Topic: "c", Key: []byte("x"), Value: big('a')},
			{Topic: "c", Key: []byte("y"), Value: big('b')},
		}))
		require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "c", Key: []byte("x"), Value: big('c')}}))
		require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "c", Key: []byte("x"), Value: []byte("small")}}))
		before := stubChunks(t, b, "c", 0, chunkLen)
		require.Equal(t, before+stubChunks(t, b, "c", 2, chunkLen), chunkKeys(t, b, "c"))
		require.NoError(t, b.Cleanup(ctx))
		got := fetchAll(t, b, "c", 0, 1) // the log starts at the first record kept
		require.Equal(t, []int64{1, 3}, offsets(got))
		require.Equal(t, big('b'), got[0].Value)
		require.Equal(t, stubChunks(t, b, "c", 0, chunkLen), chunkKeys(t, b, "c"), "the rewritten batch's chunks only")
		require.Less(t, chunkKeys(t, b, "c"), before)
		id := b.mu.topics["c"].id
		require.True(t, chunked(storedValue(t, b, recordKey(nil, id, 0, 0))))
		var stored int64
		for _, off := range []int64{0, 3} {
			_, n, err := batchInfo(storedValue(t, b, recordKey(nil, id, 0, off)))
			require.NoError(t, err)
			stored += int64(n)
		}
		require.Equal(t, stored, b.mu.topics["c"].parts[0].state.bytes)
	})

	t.Run("delete topic", func(t *testing.T) {
		require.NoError(t, b.CreateTopic(ctx, "gone", broker.TopicConfig{Partitions: 1}))
		require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "gone", Value: big('a')}}))
		lo, hi := topicSpan(prefixChunks, b.mu.topics["gone"].id)
		require.NoError(t, b.DeleteTopic(ctx, "gone"))
		it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		require.NoError(t, err)
		require.False(t, it.First())
		require.NoError(t, it.Close())
	})
}

// TestChunkDamage damages the chunks of a stored batch behind the broker's
// back: reads of that batch fail with an error matching broker.ErrCorrupt
// naming the topic, partition and offset, and so does Open when it is the
// partition's last batch or a chunk lies past the partition's end.
func TestChunkDamage(t *testing.T) {
	ctx := t.Context()
	opts := []Option{WithMaxRecordBytes(8 << 20), WithCleanupInterval(-1)}
	cases := []struct {
		name   string
		damage func(b *Broker, id uint64) error
	}{
		{"missing chunk", func(b *Broker, id uint64) error {
			return b.db.Delete(chunkKey(nil, id, 0, 1, 1), pebble.Sync)
		}},
		{"extra chunk", func(b *Broker, id uint64) error {
			n, _, _, err := parseStub(storedValue(t, b, recordKey(nil, id, 0, 1)))
			if err != nil {
				return err
			}
			return b.db.Set(chunkKey(nil, id, 0, 1, n), []byte("x"), pebble.Sync)
		}},
		{"flipped byte", func(b *Broker, id uint64) error {
			v := storedValue(t, b, chunkKey(nil, id, 0, 1, 1))
			v[len(v)/2] ^= 0x01
			return b.db.Set(chunkKey(nil, id, 0, 1, 1), v, pebble.Sync)
		}},
		{"short chunk", func(b *Broker, id uint64) error {
			v := storedValue(t, b, chunkKey(nil, id, 0, 1, 0))
			return b.db.Set(chunkKey(nil, id, 0, 1, 0), v[:len(v)-1], pebble.Sync)
		}},
		{"bad stub", func(b *Broker, id uint64) error {
			v := storedValue(t, b, recordKey(nil, id, 0, 1))
			v[5] = 0xff // the length
			return b.db.Set(recordKey(nil, id, 0, 1), v, pebble.Sync)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := Open(dir, opts...)
			require.NoError(t, err)
			require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
			produce(t, b, "t", 0, "first")
			later := time.Now().Add(time.Hour)
			require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Value: bigValue('a', 2*chunkSize+7), Timestamp: later}})) // chunked
			require.NoError(t, tc.damage(b, b.mu.topics["t"].id))

			recs, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Offset: 0}}, broker.FetchOptions{MaxRecords: 1})
			require.NoError(t, err)
			require.Equal(t, []string{"first"}, values(recs))
			_, err = b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Offset: 1}}, broker.FetchOptions{})
			require.ErrorIs(t, err, broker.ErrCorrupt)
			var te *broker.TopicError
			require.ErrorAs(t, err, &te)
			require.Equal(t, "t", te.Topic)
			require.Contains(t, err.Error(), "offset 1")
			_, err = b.OffsetForTime(ctx, "t", 0, later.Add(-time.Minute))
			require.ErrorIs(t, err, broker.ErrCorrupt)
			require.NoError(t, b.Close())

			_, err = Open(dir, opts...)
			require.ErrorIs(t, err, broker.ErrCorrupt, "the damaged batch is the last one")
		})
	}

	t.Run("chunk past the end", func(t *testing.T) {
		dir := t.TempDir()
		b, err := Open(dir, opts...)
		require.NoError(t, err)
		require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
		produce(t, b, "t", 0, "first")
		require.NoError(t, b.db.Set(chunkKey(nil, b.mu.topics["t"].id, 0, 1, 0), []byte("stray"), pebble.Sync))
		require.NoError(t, b.Close())
		_, err = Open(dir, opts...)
		require.ErrorIs(t, err, broker.ErrCorrupt)
		require.Contains(t, err.Error(), fmt.Sprintf("offset %d at or beyond the next offset %d", 1, 1))
	})
}

// batchKeys returns the offsets of the batches stored for topic's
// partition p, and checks that none is chunked and none is over limit
// bytes unless it holds one record.
func batchKeys(t *testing.T, b *Broker, topic string, p int32, limit int) []int64 {
	t.Helper()
	id := b.mu.topics[topic].id
	lo := recordKey(nil, id, p, 0)
	hi := recordKey(nil, id, p, math.MaxInt64)
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	require.NoError(t, err)
	defer it.Close()
	var bases []int64
	for valid := it.First(); valid; valid = it.Next() {
		v := it.Value()
		require.False(t, chunked(v))
		h, err := logfmt.ReadHeader(v)
		require.NoError(t, err)
		require.True(t, len(v) <= limit || h.Count == 1, "batch at %d: %d bytes, %d records", h.BaseOffset, len(v), h.Count)
		bases = append(bases, h.BaseOffset)
	}
	require.NoError(t, it.Error())
	return bases
}

// TestAppendSplit produces, in one call, more bytes to a partition than
// batchLen: they are stored as consecutive batches of at most batchLen
// bytes (a record over it alone), none chunked, and read back whole and
// in order, from any offset, before and after a reopen; for records of
// one partition (staged without an index) and of several interleaved.
func TestAppendSplit(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	const limit = 1000
	opts := []Option{WithCleanupInterval(-1), optionFunc(func(c *config) { c.batchLen = limit })}
	b, err := Open(dir, opts...)
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(ctx, "one", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.CreateTopic(ctx, "two", broker.TopicConfig{Partitions: 2}))
	var one, two []broker.Record
	for i := range 100 {
		v := fmt.Appendf(nil, "value %d %040d", i, i)
		if i == 50 {
			v = bigValue('z', 3*limit) // over batchLen, under chunkSize
		}
		one = append(one, broker.Record{Topic: "one", Key: fmt.Appendf(nil, "k%d", i), Value: v})
		two = append(two, broker.Record{Topic: "two", Partition: int32(i % 2), Key: fmt.Appendf(nil, "k%d", i), Value: v})
	}
	require.NoError(t, b.Produce(ctx, slices.Clone(one)))
	require.NoError(t, b.Produce(ctx, slices.Clone(two)))
	produce(t, b, "one", 0, "after")

	check := func(b *Broker) {
		t.Helper()
		bases := batchKeys(t, b, "one", 0, limit)
		require.Greater(t, len(bases), 4, "split into batches")
		got := fetchAll(t, b, "one", 0, 0)
		require.Equal(t, valueBytes(append(slices.Clone(one), broker.Record{Value: []byte("after")})), valueBytes(got))
		for i, r := range got {
			require.Equal(t, int64(i), r.Offset)
		}
		require.Contains(t, bases, int64(50), "the big record makes a batch")
		require.Contains(t, bases, int64(51))
		from := fetchAll(t, b, "one", 0, 37) // inside a batch
		require.Equal(t, int64(37), from[0].Offset)
		require.Equal(t, valueBytes(got[37:]), valueBytes(from))
		for p := range int32(2) {
			require.Greater(t, len(batchKeys(t, b, "two", p, limit)), 1)
			got := fetchAll(t, b, "two", p, 0)
			require.Len(t, got, 50)
			for i, r := range got {
				require.Equal(t, int64(i), r.Offset)
				require.Equal(t, two[2*i+int(p)].Value, r.Value)
			}
		}
	}
	check(b)
	require.NoError(t, b.Close())
	b, err = Open(dir, opts...)
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	check(b)
}
