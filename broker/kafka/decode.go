package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
)

// A record batch (magic 2, Kafka's message format since 0.11): its header,
// then its records.
const (
	batchHeaderLen = 61 // up to and with the record count
	batchCRCFrom   = 21 // the CRC covers the bytes from the attributes on

	attrCompression   = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// chunk is what one fetch returned for a partition, read record by record
// as Poll hands the records out: each record is decoded once, straight
// into the slice Poll returns, with no intermediate copy (franz-go's
// kgo.Records, and the slices of them and of broker.Records per fetch,
// were 63% of the bytes a restore on Kafka allocated). Its batches were
// checked when the fetch arrived (length,
// CRC: scanBatches); a record that then does not decode is a corrupt
// batch.
//
// Records before the fetch offset, control records and, reading
// committed, the records of aborted transactions are skipped exactly as
// franz-go's ProcessFetchPartition skips them.
type chunk struct {
	raw   []byte // complete record batches not yet started
	min   int64  // the fetch offset: records before it are skipped
	end   int64  // the offset after the last batch, at least min
	count int    // the records the batches in raw claim

	// aborts holds, reading committed, the first offsets of the aborted
	// transactions of the response by producer, sorted; a producer's
	// first one is dropped at its abort marker.
	aborts map[int64][]int64

	// The batch being read: its records not yet read, decompressed, and
	// how many they are.
	hdr  batchHeader
	recs []byte
	left int
	// next is recs after the record peek decoded last, at offset
	// peeked; prev is the offset of the record read before.
	next   []byte
	peeked int64
	prev   int64

	// old holds the records of a fetch in the message formats before
	// record batches (magic 0 and 1), which franz-go decodes.
	old []broker.Record
}

type batchHeader struct {
	base       int64
	lastDelta  int32
	firstTS    int64
	maxTS      int64
	producerID int64
	attrs      int16
	records    int32
}

func parseBatchHeader(b []byte) batchHeader {
	return batchHeader{
		base:       int64(binary.BigEndian.Uint64(b)),
		attrs:      int16(binary.BigEndian.Uint16(b[21:])),
		lastDelta:  int32(binary.BigEndian.Uint32(b[23:])),
		firstTS:    int64(binary.BigEndian.Uint64(b[27:])),
		maxTS:      int64(binary.BigEndian.Uint64(b[35:])),
		producerID: int64(binary.BigEndian.Uint64(b[43:])),
		records:    int32(binary.BigEndian.Uint32(b[57:])),
	}
}

func (h *batchHeader) last() int64 { return h.base + int64(h.lastDelta) }

// errCorruptBatch is matched by the errors of batches that do not decode.
var errCorruptBatch = errors.New("corrupt record batch")

// scanned is what scanBatches found in a partition's record batches.
type scanned struct {
	n     int   // bytes of the complete batches
	end   int64 // the offset after the last complete batch; -1: none
	count int   // the records they claim
	old   bool  // a message set of magic 0 or 1 is among them
	err   error
}

// scanBatches checks the record batches of a fetch response's partition:
// every complete one (a truncated last one is left out, as Kafka may cut
// the response there) must have a sound length and, unless it is in an
// old message format, its CRC. It reads no record.
func scanBatches(in []byte) scanned {
	s := scanned{end: -1}
	last := int64(-1)
	for len(in) > 17 { // up to the magic byte
		length := int64(int32(binary.BigEndian.Uint32(in[8:]))) + 12
		if length < 12 || int64(len(in)) < length {
			break // truncated
		}
		if in[16] != 2 {
			s.old = true
			return s
		}
		b := in[:length]
		if len(b) < batchHeaderLen {
			s.err = fmt.Errorf("%w: batch of %d bytes at offset %d", errCorruptBatch, len(b), int64(binary.BigEndian.Uint64(b)))
			return s
		}
		if crc := crc32.Checksum(b[batchCRCFrom:], crc32c); crc != binary.BigEndian.Uint32(b[17:]) {
			s.err = fmt.Errorf("%w: CRC mismatch at offset %d", errCorruptBatch, int64(binary.BigEndian.Uint64(b)))
			return s
		}
		h := parseBatchHeader(b)
		if h.records < 0 || h.lastDelta < 0 || h.base <= last || h.last() < h.base {
			s.err = fmt.Errorf("%w: %d records, offsets %d to %d after %d", errCorruptBatch, h.records, h.base, h.last(), last)
			return s
		}
		last = h.last()
		s.n += len(b)
		s.end = h.last() + 1
		s.count += int(h.records)
		in = in[length:]
	}
	return s
}

// newChunk returns the chunk of rp, the partition tp of a fetch from
// offset from, read committed, that scanBatches checked (s). A response in
// an old message format is decoded at once by franz-go's
// ProcessFetchPartition.
func newChunk(tp broker.TopicPartition, rp *kmsg.FetchResponseTopicPartition, from int64, s scanned, dec kgo.Decompressor) (*chunk, error) {
	ch := &chunk{min: from, end: max(from, s.end), prev: -1}
	if s.old {
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset: from, IsolationLevel: kgo.ReadCommitted(), Topic: tp.Topic, Partition: tp.Partition,
		}, rp, dec, nil)
		if fp.Err != nil {
			return nil, fmt.Errorf("%w: %w", errCorruptBatch, fp.Err)
		}
		ch.end = max(from, next)
		ch.old = make([]broker.Record, 0, len(fp.Records))
		for _, kr := range fp.Records {
			if kr.Offset < from {
				continue
			}
			r := broker.Record{Key: kr.Key, Value: kr.Value, Timestamp: kr.Timestamp,
				Topic: tp.Topic, Partition: tp.Partition, Offset: kr.Offset}
			if len(kr.Headers) > 0 {
				r.Headers = make([]broker.Header, len(kr.Headers))
				for k, h := range kr.Headers {
					r.Headers[k] = broker.Header{Key: h.Key, Value: h.Value}
				}
			}
			ch.old = append(ch.old, r)
		}
		return ch, nil
	}
	ch.raw = rp.RecordBatches[:s.n]
	ch.count = s.count
	if len(rp.AbortedTransactions) > 0 {
		ch.aborts = make(map[int64][]int64)
		for _, a := range rp.AbortedTransactions {
			ch.aborts[a.ProducerID] = append(ch.aborts[a.ProducerID], a.FirstOffset)
		}
		for _, offs := range ch.aborts {
			slices.Sort(offs)
		}
	}
	return ch, nil
}

// done reports whether every record of ch was read.
func (ch *chunk) done() bool { return ch.left == 0 && len(ch.raw) == 0 && len(ch.old) == 0 }

// peek decodes the next record of ch to return into r, with tp's topic
// and partition, without consuming it (see take): false when ch has no
// more. A batch that does not decode is an error wrapping
// errCorruptBatch.
func (ch *chunk) peek(r *broker.Record, tp broker.TopicPartition, dec kgo.Decompressor) (ok bool, err error) {
	if len(ch.old) > 0 {
		*r = ch.old[0]
		return true, nil
	}
	for {
		for ch.left == 0 {
			if len(ch.raw) == 0 {
				return false, nil
			}
			if err := ch.nextBatch(dec); err != nil {
				return false, err
			}
		}
		rest, err := decodeRecord(r, ch.recs, &ch.hdr)
		if err != nil {
			return false, err
		}
		if r.Offset <= ch.prev {
			return false, fmt.Errorf("%w: record at offset %d after %d", errCorruptBatch, r.Offset, ch.prev)
		}
		if r.Offset < ch.min {
			ch.recs, ch.left, ch.prev = rest, ch.left-1, r.Offset
			continue
		}
		r.Topic, r.Partition = tp.Topic, tp.Partition
		ch.next, ch.peeked = rest, r.Offset
		return true, nil
	}
}

// take consumes the record peek returned last.
func (ch *chunk) take() {
	if len(ch.old) > 0 {
		ch.old[0] = broker.Record{}
		ch.old = ch.old[1:]
		if len(ch.old) == 0 {
			ch.old = nil
		}
		return
	}
	ch.recs, ch.left, ch.next, ch.prev = ch.next, ch.left-1, nil, ch.peeked
}

// remaining is an upper bound of the records ch has left to return.
func (ch *chunk) remaining() int { return len(ch.old) + ch.left + ch.count }

// nextBatch starts the next batch of ch, or skips it: a batch before the
// fetch offset, a control batch (ending, at an abort marker, the aborted
// transaction of its producer) and a batch of an aborted transaction.
func (ch *chunk) nextBatch(dec kgo.Decompressor) error {
	length := int(binary.BigEndian.Uint32(ch.raw[8:])) + 12
	b := ch.raw[:length]
	ch.raw = ch.raw[length:]
	h := parseBatchHeader(b)
	ch.count -= int(h.records)
	if h.last() < ch.min {
		return nil // wholly before the fetch offset
	}
	aborted := ch.aborted(&h)
	if h.attrs&attrControl != 0 && !aborted {
		return nil
	}
	if h.attrs&attrControl == 0 && aborted {
		return nil
	}
	recs := b[batchHeaderLen:]
	if codec := kgo.CompressionCodecType(h.attrs & attrCompression); codec != kgo.CodecNone {
		out, err := dec.Decompress(recs, codec)
		if err != nil {
			return fmt.Errorf("%w: batch at offset %d: %w", errCorruptBatch, h.base, err)
		}
		recs = out
	}
	if h.attrs&attrControl != 0 {
		// An aborted producer's control batch: at its abort marker
		// (key version int16, type int16 0) the aborted transaction
		// ends. Its first record tells, as with Kafka's clients.
		var r broker.Record
		if h.records > 0 {
			if _, err := decodeRecord(&r, recs, &h); err != nil {
				return err
			}
			if k := r.Key; len(k) >= 4 && k[2] == 0 && k[3] == 0 {
				if rest := ch.aborts[h.producerID][1:]; len(rest) > 0 {
					ch.aborts[h.producerID] = rest
				} else {
					delete(ch.aborts, h.producerID)
				}
			}
		}
		return nil
	}
	ch.hdr, ch.recs, ch.left = h, recs, int(h.records)
	return nil
}

// aborted reports whether h is a batch of an aborted transaction, as
// read_committed readers know from the response's aborted transactions:
// a transactional batch of a producer with an aborted transaction that
// begins at or before it.
func (ch *chunk) aborted(h *batchHeader) bool {
	if len(ch.aborts) == 0 || h.attrs&attrTransactional == 0 {
		return false
	}
	offs := ch.aborts[h.producerID]
	return len(offs) > 0 && h.base >= offs[0]
}

// decodeRecord decodes the first record of in, of the batch h, into r
// (all but its topic and partition) and returns the bytes after it.
func decodeRecord(r *broker.Record, in []byte, h *batchHeader) ([]byte, error) {
	length, used := kbin.Varint(in)
	total := used + int(length)
	if used <= 0 || length < 0 || len(in) < total {
		return nil, fmt.Errorf("%w: truncated record in the batch at offset %d", errCorruptBatch, h.base)
	}
	b := kbin.Reader{Src: in[used:total]}
	b.Int8() // attributes, unused
	tsDelta := b.Varlong()
	offDelta := b.Varint()
	key := b.VarintBytes()
	value := b.VarintBytes()
	var headers []broker.Header
	if n := int(b.VarintArrayLen()); n > 0 {
		headers = make([]broker.Header, n)
		for i := range headers {
			headers[i] = broker.Header{Key: b.VarintString(), Value: b.VarintBytes()}
		}
	}
	if !b.Ok() {
		return nil, fmt.Errorf("%w: bad record in the batch at offset %d", errCorruptBatch, h.base)
	}
	if offDelta < 0 || offDelta > h.lastDelta {
		return nil, fmt.Errorf("%w: record offset delta %d in the batch at offset %d to %d", errCorruptBatch, offDelta, h.base, h.last())
	}
	ts := h.firstTS + tsDelta
	if h.attrs&attrLogAppendTime != 0 {
		ts = h.maxTS
	}
	*r = broker.Record{Key: key, Value: value, Headers: headers, Timestamp: time.Unix(0, ts*1e6),
		Offset: h.base + int64(offDelta)}
	return in[total:], nil
}
