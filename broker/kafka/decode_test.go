package kafka

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
)

// decodeChunk reads rp, fetched from offset from, as Poll does: the
// records and the offset after them.
func decodeChunk(tp broker.TopicPartition, rp *kmsg.FetchResponseTopicPartition, from int64) ([]broker.Record, int64, error) {
	dec := kgo.DefaultDecompressor()
	s := scanBatches(rp.RecordBatches)
	if s.err != nil {
		return nil, 0, s.err
	}
	ch, err := newChunk(tp, rp, from, s, dec)
	if err != nil {
		return nil, 0, err
	}
	var out []broker.Record
	for {
		var r broker.Record
		ok, err := ch.peek(&r, tp, dec)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			break
		}
		ch.take()
		out = append(out, r)
	}
	if !ch.done() {
		return nil, 0, fmt.Errorf("chunk not read to its end")
	}
	return out, ch.end, nil
}

// decodeFranz reads rp with franz-go's ProcessFetchPartition, read
// committed, as the consumer did before it decoded batches itself.
func decodeFranz(tp broker.TopicPartition, rp *kmsg.FetchResponseTopicPartition, from int64) ([]broker.Record, int64, error) {
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset: from, IsolationLevel: kgo.ReadCommitted(), Topic: tp.Topic, Partition: tp.Partition,
	}, rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return nil, 0, fp.Err
	}
	var out []broker.Record
	for _, kr := range fp.Records {
		r := broker.Record{Key: kr.Key, Value: kr.Value, Timestamp: kr.Timestamp,
			Topic: tp.Topic, Partition: tp.Partition, Offset: kr.Offset}
		for _, h := range kr.Headers {
			r.Headers = append(r.Headers, broker.Header{Key: h.Key, Value: h.Value})
		}
		out = append(out, r)
	}
	return out, max(from, next), nil
}

// requireSameDecode checks that Poll's decoding of rp from offset from
// gives exactly what franz-go's does.
func requireSameDecode(t *testing.T, tp broker.TopicPartition, rp *kmsg.FetchResponseTopicPartition, from int64) []broker.Record {
	t.Helper()
	want, wantEnd, wantErr := decodeFranz(tp, rp, from)
	got, gotEnd, gotErr := decodeChunk(tp, rp, from)
	if wantErr != nil {
		require.ErrorIs(t, gotErr, errCorruptBatch, "franz-go: %v", wantErr)
		return nil
	}
	require.NoError(t, gotErr)
	require.Equal(t, want, got, "from %d", from)
	require.Equal(t, wantEnd, gotEnd, "from %d", from)
	return got
}

// TestDecodeMatchesFranzGo reads a partition written with every
// compression codec (the written batches' attributes show each, a
// transactional batch among the compressed ones), headers, nil and empty
// keys and values, and interleaved committed and aborted transactions of
// two producers, from every offset, whole and cut at every batch and in
// the middle of batches: Poll's decoding returns exactly the records, in
// the same form, and the same next offset as franz-go's
// ProcessFetchPartition.
func TestDecodeMatchesFranzGo(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	defer c.Close()
	ctx := t.Context()
	client := func(opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("t"),
			kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
		require.NoError(t, err)
		t.Cleanup(cl.Close)
		return cl
	}
	n := 0
	recs := func(k int) []*kgo.Record {
		var out []*kgo.Record
		for range k {
			// franz-go sends a batch compressed only when that makes
			// it smaller: the padding makes every batch compressible.
			r := &kgo.Record{Value: fmt.Appendf(nil, "v%d-%0200d", n, n), Timestamp: time.UnixMilli(1_700_000_000_000 + int64(n)*7)}
			switch n % 4 {
			case 0:
				r.Key = fmt.Appendf(nil, "k%d", n)
			case 1:
				r.Key, r.Value = []byte{}, nil // empty key, tombstone
			case 2:
				r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte("x")}, {Key: "", Value: nil}}
			}
			n++
			out = append(out, r)
		}
		return out
	}
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(),
		kgo.Lz4Compression(), kgo.ZstdCompression()} {
		cl := client(kgo.ProducerBatchCompression(codec))
		require.NoError(t, cl.ProduceSync(ctx, recs(5)...).FirstErr())
		require.NoError(t, cl.ProduceSync(ctx, recs(3)...).FirstErr())
	}
	plain := client()
	ta := client(kgo.TransactionalID("a"), kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	tb := client(kgo.TransactionalID("b"))
	txn := func(cl *kgo.Client, k int) {
		require.NoError(t, cl.BeginTransaction())
		require.NoError(t, cl.ProduceSync(ctx, recs(k)...).FirstErr())
	}
	end := func(cl *kgo.Client, commit kgo.TransactionEndTry) {
		require.NoError(t, cl.EndTransaction(ctx, commit))
	}
	txn(ta, 3)
	txn(tb, 2)
	require.NoError(t, ta.ProduceSync(ctx, recs(2)...).FirstErr())
	end(ta, kgo.TryAbort)
	require.NoError(t, plain.ProduceSync(ctx, recs(2)...).FirstErr())
	require.NoError(t, tb.ProduceSync(ctx, recs(1)...).FirstErr())
	end(tb, kgo.TryCommit)
	txn(ta, 2)
	end(ta, kgo.TryCommit)
	txn(tb, 2)
	end(tb, kgo.TryAbort)
	txn(ta, 1)
	txn(tb, 1)
	end(tb, kgo.TryAbort)
	end(ta, kgo.TryCommit)
	require.NoError(t, plain.ProduceSync(ctx, recs(2)...).FirstErr())

	tp := broker.TopicPartition{Topic: "t"}
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("t")
	mreq.Topics = append(mreq.Topics, mt)
	meta, err := mreq.RequestWith(ctx, plain)
	require.NoError(t, err)
	require.Len(t, meta.Topics, 1)
	fetch := func(from int64, maxBytes int32) *kmsg.FetchResponseTopicPartition {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxBytes, req.IsolationLevel, req.SessionEpoch = -1, 1<<30, 1, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "t", meta.Topics[0].TopicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = from, maxBytes, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, plain)
		require.NoError(t, err)
		require.Len(t, resp.Topics, 1)
		require.Len(t, resp.Topics[0].Partitions, 1)
		p := &resp.Topics[0].Partitions[0]
		require.Zero(t, p.ErrorCode)
		return p
	}
	whole := fetch(0, 1<<30)
	lso := whole.LastStableOffset
	all := requireSameDecode(t, tp, whole, 0)
	// Committed: 40 plain, 1+2 of b, 2+1 of a, 2 plain; aborted: 5 of
	// a, 2+1 of b.
	require.Len(t, all, 40+2+3+3+2)
	require.NotEmpty(t, whole.AbortedTransactions)
	// The batches as written: every codec, and a compressed batch of a
	// transaction.
	codecs := make(map[kgo.CompressionCodecType]int)
	txnCompressed := 0
	for raw := whole.RecordBatches; len(raw) >= batchHeaderLen; {
		h := parseBatchHeader(raw)
		codec := kgo.CompressionCodecType(h.attrs & attrCompression)
		codecs[codec]++
		if h.attrs&attrTransactional != 0 && h.attrs&attrControl == 0 && codec != kgo.CodecNone {
			txnCompressed++
		}
		raw = raw[binary.BigEndian.Uint32(raw[8:])+12:]
	}
	for _, codec := range []kgo.CompressionCodecType{kgo.CodecNone, kgo.CodecGzip, kgo.CodecSnappy, kgo.CodecLz4, kgo.CodecZstd} {
		require.NotZero(t, codecs[codec], "no batch of codec %d among %v", codec, codecs)
	}
	require.NotZero(t, txnCompressed, "no compressed transactional batch")
	for from := int64(0); from <= lso; from++ {
		rp := fetch(from, 1<<30)
		requireSameDecode(t, tp, rp, from)
		// One batch only (the first comes whole), and cut short.
		requireSameDecode(t, tp, fetch(from, 1), from)
		raw := rp.RecordBatches
		for _, cut := range []int{max(len(raw)-1, 0), len(raw) / 2, min(len(raw), 70), min(len(raw), 17)} {
			cp := *rp
			cp.RecordBatches = raw[:cut]
			requireSameDecode(t, tp, &cp, from)
		}
	}

	// A damaged batch is corrupt, for both.
	bad := *whole
	bad.RecordBatches = append([]byte(nil), whole.RecordBatches...)
	bad.RecordBatches[70] ^= 0xff
	requireSameDecode(t, tp, &bad, 0)
}

// recordBatch encodes a record batch of magic 2 with attributes attrs,
// from offset base, one record per value, with its CRC.
func recordBatch(base int64, attrs int16, firstTS, maxTS int64, values ...string) []byte {
	return keyedBatch(base, attrs, firstTS, maxTS, "k", values...)
}

// abortMarker is the control batch of producer -1 ending its aborted
// transaction, at offset off.
func abortMarker(off int64) []byte {
	return keyedBatch(off, attrTransactional|attrControl, 3, 3, "\x00\x00\x00\x00", "\x00\x00\x00\x00\x00\x00")
}

// keyedBatch is recordBatch with the key key for every record.
func keyedBatch(base int64, attrs int16, firstTS, maxTS int64, key string, values ...string) []byte {
	var recs []byte
	for i, v := range values {
		var body []byte
		body = append(body, 0)
		body = kbin.AppendVarlong(body, int64(i))
		body = kbin.AppendVarint(body, int32(i))
		body = kbin.AppendVarintBytes(body, []byte(key))
		body = kbin.AppendVarintBytes(body, []byte(v))
		body = kbin.AppendVarint(body, 0)
		recs = kbin.AppendVarint(recs, int32(len(body)))
		recs = append(recs, body...)
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(base))
	b = binary.BigEndian.AppendUint32(b, 0) // length, below
	b = binary.BigEndian.AppendUint32(b, 0) // leader epoch
	b = append(b, 2)
	b = binary.BigEndian.AppendUint32(b, 0) // CRC, below
	b = binary.BigEndian.AppendUint16(b, uint16(attrs))
	b = binary.BigEndian.AppendUint32(b, uint32(len(values)-1))
	b = binary.BigEndian.AppendUint64(b, uint64(firstTS))
	b = binary.BigEndian.AppendUint64(b, uint64(maxTS))
	b = binary.BigEndian.AppendUint64(b, ^uint64(0)) // producer ID -1
	b = binary.BigEndian.AppendUint16(b, ^uint16(0))
	b = binary.BigEndian.AppendUint32(b, ^uint32(0))
	b = binary.BigEndian.AppendUint32(b, uint32(len(values)))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[batchCRCFrom:], crc32c))
	return b
}

// compressedBatch is recordBatch with its records compressed with codec
// (kgo.DefaultCompressor), when that makes them smaller.
func compressedBatch(codec kgo.CompressionCodec, base int64, attrs int16, values ...string) []byte {
	plain := recordBatch(base, attrs, 1, 2, values...)
	comp, err := kgo.DefaultCompressor(codec)
	if err != nil {
		panic(err)
	}
	recs, used := comp.Compress(new(bytes.Buffer), plain[batchHeaderLen:])
	b := append(plain[:batchHeaderLen:batchHeaderLen], recs...)
	binary.BigEndian.PutUint16(b[21:], uint16(attrs)|uint16(used))
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[batchCRCFrom:], crc32c))
	return b
}

// messageV1 encodes a message of magic 1 (the format before record
// batches) at offset off.
func messageV1(off, ts int64, key, value string) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(off))
	b = binary.BigEndian.AppendUint32(b, 0) // size, below
	b = binary.BigEndian.AppendUint32(b, 0) // CRC, below
	b = append(b, 1, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(value)))
	b = append(b, value...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[12:], crc32.ChecksumIEEE(b[16:]))
	return b
}

// TestDecodeFormats covers what kfake does not write: batches with log
// append time, messages of the old format (decoded by franz-go), and
// batches whose header does not hold.
func TestDecodeFormats(t *testing.T) {
	tp := broker.TopicPartition{Topic: "t", Partition: 3}
	resp := func(raw ...[]byte) *kmsg.FetchResponseTopicPartition {
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = 3
		for _, b := range raw {
			rp.RecordBatches = append(rp.RecordBatches, b...)
		}
		rp.HighWatermark, rp.LastStableOffset = 100, 100
		return &rp
	}

	// Log append time: every record has the batch's max timestamp.
	got := requireSameDecode(t, tp, resp(recordBatch(10, attrLogAppendTime, 1000, 5000, "a", "b")), 11)
	require.Len(t, got, 1)
	require.Equal(t, int64(11), got[0].Offset)
	require.Equal(t, int64(5000), got[0].Timestamp.UnixMilli())
	got = requireSameDecode(t, tp, resp(recordBatch(10, 0, 1000, 5000, "a", "b")), 10)
	require.Equal(t, []int64{1000, 1001}, []int64{got[0].Timestamp.UnixMilli(), got[1].Timestamp.UnixMilli()})

	// The old format goes through franz-go.
	got = requireSameDecode(t, tp, resp(messageV1(4, 77, "k", "x"), messageV1(5, 78, "k", "y")), 5)
	require.Equal(t, []string{"y"}, values(got))
	require.Equal(t, int32(3), got[0].Partition)

	// Compressed batches, and an aborted transaction, its abort
	// marker and a committed batch of the same producer after it.
	long := strings.Repeat("x", 300)
	for _, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.ZstdCompression()} {
		b := compressedBatch(codec, 0, 0, "a"+long, "b"+long)
		require.NotZero(t, b[22]&attrCompression, "compressed")
		got = requireSameDecode(t, tp, resp(b), 1)
		require.Equal(t, []string{"b" + long}, values(got))
	}
	rp := resp(compressedBatch(kgo.GzipCompression(), 0, attrTransactional, "a"+long, "b"+long),
		abortMarker(2),
		recordBatch(3, attrTransactional, 1, 2, "c", "d"))
	at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
	at.ProducerID = -1
	rp.AbortedTransactions = append(rp.AbortedTransactions, at)
	got = requireSameDecode(t, tp, rp, 0)
	require.Equal(t, []string{"c", "d"}, values(got))

	// A batch too short for its header, and one claiming more records
	// than it holds, are corrupt.
	short := recordBatch(0, 0, 0, 0, "a")[:50]
	binary.BigEndian.PutUint32(short[8:], uint32(len(short)-12))
	_, _, err := decodeChunk(tp, resp(short), 0)
	require.ErrorIs(t, err, errCorruptBatch)
	more := recordBatch(0, 0, 0, 0, "a")
	binary.BigEndian.PutUint32(more[57:], 2)
	binary.BigEndian.PutUint32(more[17:], crc32.Checksum(more[batchCRCFrom:], crc32c))
	_, _, err = decodeChunk(tp, resp(more), 0)
	require.ErrorIs(t, err, errCorruptBatch)
}

func values(recs []broker.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// FuzzDecode reads arbitrary record batches, their CRCs made right so
// that their records are decoded, from an arbitrary offset, with an
// aborted transaction or none: the decoding never panics, what it
// returns lies at or after the fetch offset, in order, before the end
// it reports, and, when franz-go's ProcessFetchPartition decodes the
// batches too, it returns the same records, or more when franz-go stops
// earlier (a lower next offset).
func FuzzDecode(f *testing.F) {
	control := abortMarker(2)
	f.Add(recordBatch(0, 0, 1, 2, "a", "b"), int64(0), int64(-1))
	f.Add(append(recordBatch(0, attrTransactional, 1, 2, "a", "b"), control...), int64(1), int64(0))
	f.Add(append(messageV1(0, 5, "k", "v"), messageV1(1, 6, "k", "w")...), int64(0), int64(-1))
	long := strings.Repeat("x", 300)
	f.Add(compressedBatch(kgo.GzipCompression(), 0, 0, "a"+long, "b"+long), int64(0), int64(-1))
	f.Add(append(compressedBatch(kgo.ZstdCompression(), 0, 0, "a"+long, "b"+long),
		compressedBatch(kgo.ZstdCompression(), 2, 0, "c"+long)...), int64(1), int64(-1))
	// An aborted transaction, its abort marker, and a committed batch
	// of the same producer after it.
	f.Add(slices.Concat(compressedBatch(kgo.GzipCompression(), 0, attrTransactional, "a"+long, "b"+long), control,
		recordBatch(3, attrTransactional, 1, 2, "c", "d")), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, raw []byte, from, aborted int64) {
		for in := raw; len(in) > batchHeaderLen; {
			length := int64(int32(binary.BigEndian.Uint32(in[8:]))) + 12
			if length < batchHeaderLen || length > int64(len(in)) {
				break
			}
			if in[16] == 2 {
				binary.BigEndian.PutUint32(in[17:], crc32.Checksum(in[batchCRCFrom:length], crc32c))
			}
			in = in[length:]
		}
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.RecordBatches = raw
		if aborted >= 0 {
			at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
			at.ProducerID, at.FirstOffset = -1, aborted
			rp.AbortedTransactions = append(rp.AbortedTransactions, at)
		}
		tp := broker.TopicPartition{Topic: "t"}
		want, wantEnd, wantErr := decodeFranz(tp, &rp, from)
		recs, end, err := decodeChunk(tp, &rp, from)
		if err != nil {
			return
		}
		last := from - 1
		for _, r := range recs {
			if r.Offset <= last || r.Offset >= end {
				t.Fatalf("record at offset %d after %d, end %d", r.Offset, last, end)
			}
			last = r.Offset
		}
		if wantErr != nil {
			return
		}
		if wantEnd < end {
			require.GreaterOrEqual(t, len(recs), len(want), "franz-go stops at %d, Poll at %d", wantEnd, end)
			recs = recs[:len(want)]
		}
		require.Equal(t, want, recs, "franz-go to %d, Poll to %d", wantEnd, end)
	})
}
