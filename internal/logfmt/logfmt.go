package logfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
)

// Version is the format version written in the first byte of every batch.
const Version byte = 1

// HeaderLen is the size of the fixed batch header.
const HeaderLen = 37

// Header field offsets.
const (
	offVersion   = 0
	offCRC       = 1
	offBase      = 5
	offLastDelta = 13
	offCount     = 17
	offFirstTS   = 21
	offMaxTS     = 29
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the fixed part of a batch.
type Header struct {
	// BaseOffset is the offset the batch was appended at; every record's
	// offset is BaseOffset plus its delta. It is also the batch's key.
	BaseOffset int64
	// LastOffsetDelta is the delta of the last record: the batch covers
	// offsets [BaseOffset, BaseOffset+LastOffsetDelta].
	LastOffsetDelta uint32
	// Count is the number of records (<= LastOffsetDelta+1; fewer after
	// compaction removed some).
	Count uint32
	// FirstTimestamp is the first record's timestamp in Unix milliseconds.
	FirstTimestamp int64
	// MaxTimestamp is the largest record timestamp in Unix milliseconds.
	MaxTimestamp int64
}

// LastOffset returns the offset of the batch's last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// corruptf returns an error matching broker.ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: record batch: %s", broker.ErrCorrupt, fmt.Sprintf(format, args...))
}

// errTooLarge reports a batch that does not fit the format's limits.
var errTooLarge = errors.New("logfmt: batch spans more than 2^32 offsets")

// TimestampMillis returns t in Unix milliseconds, the precision the log keeps.
func TimestampMillis(t time.Time) int64 { return t.UnixMilli() }

// AppendBatch appends the encoding of recs as one batch at baseOffset to dst.
// Each record's Offset must be >= baseOffset and strictly increasing, and its
// Timestamp must be set; Topic and Partition are not stored. recs must not be
// empty.
func AppendBatch(dst []byte, baseOffset int64, recs []broker.Record) ([]byte, error) {
	if len(recs) == 0 {
		return dst, errors.New("logfmt: empty batch")
	}
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	first := recs[0].Timestamp.UnixMilli()
	maxTS := first
	prev := baseOffset - 1
	for i := range recs {
		r := &recs[i]
		if r.Offset <= prev {
			return dst[:start], fmt.Errorf("logfmt: record offsets not increasing: %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		delta := r.Offset - baseOffset
		if delta > math.MaxUint32 {
			return dst[:start], errTooLarge
		}
		ts := r.Timestamp.UnixMilli()
		maxTS = max(maxTS, ts)
		dst = appendRecord(dst, uint64(delta), ts-first, (*record)(r))
	}
	if uint64(len(recs)) > math.MaxUint32 {
		return dst[:start], errTooLarge
	}
	h := dst[start : start+HeaderLen]
	h[offVersion] = Version
	binary.BigEndian.PutUint64(h[offBase:], uint64(baseOffset))
	binary.BigEndian.PutUint32(h[offLastDelta:], uint32(prev-baseOffset))
	binary.BigEndian.PutUint32(h[offCount:], uint32(len(recs)))
	binary.BigEndian.PutUint64(h[offFirstTS:], uint64(first))
	binary.BigEndian.PutUint64(h[offMaxTS:], uint64(maxTS))
	binary.BigEndian.PutUint32(h[offCRC:], crc32.Checksum(dst[start+offBase:], castagnoli))
	return dst, nil
}

// AppendRecords appends to dst the batch AppendBatch appends for the
// records recs[idx[0]], recs[idx[1]], ... (all of recs, in order, when idx
// is nil) at the consecutive offsets baseOffset, baseOffset+1, ..., each
// with its Timestamp or, when that is zero, now (Unix milliseconds): the
// same bytes as AppendBatch of copies of those records with those Offsets
// and Timestamps, without making the copies. The records' Offset fields
// are not read; they must select at least one record. size is
// RecordsSize of the same arguments: the bytes appended, which it checks.
//
// broker/embedded encodes an append with it straight into a Pebble batch.
func AppendRecords(dst []byte, baseOffset int64, recs []broker.Record, idx []int, now int64, size int) ([]byte, error) {
	n := len(recs)
	if idx != nil {
		n = len(idx)
	}
	if n == 0 {
		return dst, errors.New("logfmt: empty batch")
	}
	if uint64(n) > math.MaxUint32 {
		return dst, errTooLarge
	}
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+HeaderLen]
	first := recordAt(recs, idx, 0).stamp(now)
	maxTS := first
	for i := range n {
		r := recordAt(recs, idx, i)
		ts := r.stamp(now)
		maxTS = max(maxTS, ts)
		dst = appendRecord(dst, uint64(i), ts-first, r)
	}
	if len(dst)-start != size {
		return dst[:start], fmt.Errorf("logfmt: internal error: batch of %d bytes, RecordsSize says %d", len(dst)-start, size)
	}
	h := dst[start : start+HeaderLen]
	clear(h)
	h[offVersion] = Version
	binary.BigEndian.PutUint64(h[offBase:], uint64(baseOffset))
	binary.BigEndian.PutUint32(h[offLastDelta:], uint32(n-1))
	binary.BigEndian.PutUint32(h[offCount:], uint32(n))
	binary.BigEndian.PutUint64(h[offFirstTS:], uint64(first))
	binary.BigEndian.PutUint64(h[offMaxTS:], uint64(maxTS))
	binary.BigEndian.PutUint32(h[offCRC:], crc32.Checksum(dst[start+offBase:], castagnoli))
	return dst, nil
}

// RecordsSize returns the bytes AppendRecords appends for the same
// records, without encoding them.
func RecordsSize(recs []broker.Record, idx []int, now int64) int {
	n := len(recs)
	if idx != nil {
		n = len(idx)
	}
	size := HeaderLen
	if n == 0 {
		return size
	}
	first := recordAt(recs, idx, 0).stamp(now)
	for i := range n {
		r := recordAt(recs, idx, i)
		size += uvarintLen(uint64(i)) + varintLen(r.stamp(now)-first) + recordBodyLen(r)
	}
	return size
}

// RecordsFit returns how many of the records recs[idx[0]], recs[idx[1]],
// ... (all of recs when idx is nil) AppendRecords can take, from the
// first on, in a batch of at most limit bytes, and that batch's size
// (RecordsSize of those records): at least one record, even when the
// first alone is over limit. There must be at least one record.
func RecordsFit(recs []broker.Record, idx []int, now int64, limit int) (n, size int) {
	total := len(recs)
	if idx != nil {
		total = len(idx)
	}
	size = HeaderLen
	first := recordAt(recs, idx, 0).stamp(now)
	for i := range total {
		r := recordAt(recs, idx, i)
		s := uvarintLen(uint64(i)) + varintLen(r.stamp(now)-first) + recordBodyLen(r)
		if i > 0 && size+s > limit {
			return i, size
		}
		size += s
	}
	return total, size
}

// record is a broker.Record being encoded.
type record broker.Record

// recordAt returns recs[idx[i]], or recs[i] when idx is nil.
func recordAt(recs []broker.Record, idx []int, i int) *record {
	if idx != nil {
		i = idx[i]
	}
	return (*record)(&recs[i])
}

// stamp returns r's timestamp in Unix milliseconds, now if it has none.
func (r *record) stamp(now int64) int64 {
	if r.Timestamp.IsZero() {
		return now
	}
	return r.Timestamp.UnixMilli()
}

// appendRecord appends the encoding of r at offset delta delta and
// timestamp delta tsDelta.
func appendRecord(dst []byte, delta uint64, tsDelta int64, r *record) []byte {
	dst = binary.AppendUvarint(dst, delta)
	dst = binary.AppendVarint(dst, tsDelta)
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}

// recordBodyLen is the length of r's encoding after its offset and
// timestamp deltas.
func recordBodyLen(r *record) int {
	n := bytesLen(r.Key) + bytesLen(r.Value) + uvarintLen(uint64(len(r.Headers)))
	for _, h := range r.Headers {
		n += uvarintLen(uint64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	return n
}

// BatchSize returns len(AppendBatch(nil, baseOffset, recs)) for records that
// AppendBatch accepts, without encoding them.
func BatchSize(baseOffset int64, recs []broker.Record) int {
	if len(recs) == 0 {
		return HeaderLen
	}
	n := HeaderLen
	first := recs[0].Timestamp.UnixMilli()
	for i := range recs {
		r := &recs[i]
		n += uvarintLen(uint64(r.Offset-baseOffset)) + varintLen(r.Timestamp.UnixMilli()-first) + recordBodyLen((*record)(r))
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1 // varint -1
	}
	return varintLen(int64(len(b))) + len(b)
}

// appendBytes appends a varint length (-1 for nil) and b.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// ReadHeader parses the fixed header of a batch without checking its CRC.
// It fails with an error matching broker.ErrCorrupt if b is too short or of an
// unknown version.
func ReadHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, corruptf("%d bytes, shorter than the %d-byte header", len(b), HeaderLen)
	}
	if b[offVersion] != Version {
		return Header{}, corruptf("unknown format version %d", b[offVersion])
	}
	h := Header{
		BaseOffset:      int64(binary.BigEndian.Uint64(b[offBase:])),
		LastOffsetDelta: binary.BigEndian.Uint32(b[offLastDelta:]),
		Count:           binary.BigEndian.Uint32(b[offCount:]),
		FirstTimestamp:  int64(binary.BigEndian.Uint64(b[offFirstTS:])),
		MaxTimestamp:    int64(binary.BigEndian.Uint64(b[offMaxTS:])),
	}
	switch {
	case h.BaseOffset < 0:
		return Header{}, corruptf("negative base offset %d", h.BaseOffset)
	case h.Count == 0:
		return Header{}, corruptf("no records")
	case uint64(h.Count) > uint64(h.LastOffsetDelta)+1:
		return Header{}, corruptf("%d records in %d offsets", h.Count, uint64(h.LastOffsetDelta)+1)
	case h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta):
		return Header{}, corruptf("last offset overflows")
	}
	return h, nil
}

// Reader decodes the records of one batch in order. The records it returns
// alias the batch bytes given to NewReader (with capacities clipped, so
// appending to one record's slices never overwrites another's). A Reader is
// not safe for concurrent use.
type Reader struct {
	h     Header
	buf   []byte // remaining record bytes
	read  uint32 // records returned so far
	prev  int64  // offset delta of the previous record, -1 at first
	maxTS int64
}

// NewReader validates the header and CRC of the batch b and returns a Reader
// over its records. Errors match broker.ErrCorrupt.
func NewReader(b []byte) (*Reader, error) {
	r := new(Reader)
	return r, r.Reset(b)
}

// Reset makes r read the batch b, like NewReader.
func (r *Reader) Reset(b []byte) error {
	h, err := ReadHeader(b)
	if err != nil {
		*r = Reader{}
		return err
	}
	if want, got := binary.BigEndian.Uint32(b[offCRC:]), crc32.Checksum(b[offBase:], castagnoli); want != got {
		*r = Reader{}
		return corruptf("checksum mismatch at base offset %d: stored %08x, computed %08x", h.BaseOffset, want, got)
	}
	*r = Reader{h: h, buf: b[HeaderLen:], prev: -1, maxTS: math.MinInt64}
	return nil
}

// Header returns the batch header.
func (r *Reader) Header() Header { return r.h }

// Next decodes the next record into rec (Key, Value, Headers, Timestamp and
// Offset; Topic and Partition are left alone). It returns false at the end
// of the batch, and false with an error matching broker.ErrCorrupt when the
// batch is damaged; it sets rec only when it returns true.
func (r *Reader) Next(rec *broker.Record) (bool, error) {
	if r.read == r.h.Count {
		if len(r.buf) != 0 {
			return false, corruptf("%d trailing bytes after %d records", len(r.buf), r.h.Count)
		}
		if r.prev != int64(r.h.LastOffsetDelta) {
			return false, corruptf("last offset delta %d, header says %d", r.prev, r.h.LastOffsetDelta)
		}
		if r.maxTS != r.h.MaxTimestamp {
			return false, corruptf("max timestamp %d, header says %d", r.maxTS, r.h.MaxTimestamp)
		}
		return false, nil
	}
	delta, err := r.uvarint()
	if err != nil {
		return false, err
	}
	if int64(delta) <= r.prev || delta > uint64(r.h.LastOffsetDelta) {
		return false, corruptf("offset delta %d out of order (previous %d, last %d)", delta, r.prev, r.h.LastOffsetDelta)
	}
	tsDelta, err := r.varint()
	if err != nil {
		return false, err
	}
	if r.read == 0 && tsDelta != 0 {
		return false, corruptf("first record has timestamp delta %d", tsDelta)
	}
	key, err := r.bytes()
	if err != nil {
		return false, err
	}
	value, err := r.bytes()
	if err != nil {
		return false, err
	}
	nh, err := r.uvarint()
	if err != nil {
		return false, err
	}
	// Each header takes at least two bytes; bound the allocation by that.
	if nh > uint64(len(r.buf))/2 {
		return false, corruptf("%d headers in %d bytes", nh, len(r.buf))
	}
	var headers []broker.Header
	if nh > 0 {
		headers = make([]broker.Header, nh)
		for i := range headers {
			kl, err := r.uvarint()
			if err != nil {
				return false, err
			}
			if kl > uint64(len(r.buf)) {
				return false, corruptf("header key of %d bytes in %d", kl, len(r.buf))
			}
			headers[i].Key = string(r.buf[:kl])
			r.buf = r.buf[kl:]
			if headers[i].Value, err = r.bytes(); err != nil {
				return false, err
			}
		}
	}
	ts := r.h.FirstTimestamp + tsDelta
	r.maxTS = max(r.maxTS, ts)
	r.prev = int64(delta)
	r.read++
	rec.Key, rec.Value, rec.Headers = key, value, headers
	rec.Timestamp = time.UnixMilli(ts)
	rec.Offset = r.h.BaseOffset + int64(delta)
	return true, nil
}

func (r *Reader) uvarint() (uint64, error) {
	// Most varints of a batch of small records are one byte: lengths,
	// deltas, header counts.
	if len(r.buf) > 0 && r.buf[0] < 0x80 {
		v := uint64(r.buf[0])
		r.buf = r.buf[1:]
		return v, nil
	}
	return r.uvarintLong()
}

func (r *Reader) uvarintLong() (uint64, error) {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		return 0, corruptf("bad varint")
	}
	if n > 1 && r.buf[n-1] == 0 {
		return 0, corruptf("non-minimal varint")
	}
	r.buf = r.buf[n:]
	return v, nil
}

func (r *Reader) varint() (int64, error) {
	u, err := r.uvarint()
	// Zig-zag decoding as in binary.Varint.
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x, err
}

// bytes reads a length-prefixed byte string; length -1 is nil.
func (r *Reader) bytes() ([]byte, error) {
	n, err := r.varint()
	if err != nil {
		return nil, err
	}
	switch {
	case n == -1:
		return nil, nil
	case n < -1 || n > int64(len(r.buf)):
		return nil, corruptf("length %d with %d bytes left", n, len(r.buf))
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b, nil
}

// Decode appends all records of the batch b to dst. The records alias b.
// Errors match broker.ErrCorrupt.
func Decode(dst []broker.Record, b []byte) ([]broker.Record, Header, error) {
	var r Reader
	if err := r.Reset(b); err != nil {
		return dst, Header{}, err
	}
	for {
		dst = append(dst, broker.Record{})
		ok, err := r.Next(&dst[len(dst)-1])
		if !ok {
			return dst[:len(dst)-1], r.h, err
		}
	}
}

// WriteBatch encodes recs as one batch at baseOffset, the same bytes as
// AppendBatch, without holding the batch in one buffer: it writes the
// bytes after the header into pieces that next provides, and returns the
// header, which it can compute only at the end (its CRC covers them). next
// returns the space for the following piece, which WriteBatch fills
// completely before calling next again (except the last, which ends where
// the batch does); its error ends the encoding. The records' requirements
// are AppendBatch's; size is BatchSize(baseOffset, recs).
//
// broker/embedded uses it to store a large batch in chunks, copying each
// record's bytes once, straight into the chunks.
func WriteBatch(baseOffset int64, recs []broker.Record, next func() ([]byte, error)) (header [HeaderLen]byte, size int, err error) {
	if len(recs) == 0 {
		return header, 0, errors.New("logfmt: empty batch")
	}
	first := recs[0].Timestamp.UnixMilli()
	maxTS := first
	prev := baseOffset - 1
	for i := range recs {
		r := &recs[i]
		if r.Offset <= prev {
			return header, 0, fmt.Errorf("logfmt: record offsets not increasing: %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		if r.Offset-baseOffset > math.MaxUint32 {
			return header, 0, errTooLarge
		}
		maxTS = max(maxTS, r.Timestamp.UnixMilli())
	}
	if uint64(len(recs)) > math.MaxUint32 {
		return header, 0, errTooLarge
	}
	h := header[:]
	h[offVersion] = Version
	binary.BigEndian.PutUint64(h[offBase:], uint64(baseOffset))
	binary.BigEndian.PutUint32(h[offLastDelta:], uint32(prev-baseOffset))
	binary.BigEndian.PutUint32(h[offCount:], uint32(len(recs)))
	binary.BigEndian.PutUint64(h[offFirstTS:], uint64(first))
	binary.BigEndian.PutUint64(h[offMaxTS:], uint64(maxTS))
	w := pieceWriter{next: next, crc: crc32.Update(0, castagnoli, h[offBase:]), n: HeaderLen,
		buf: make([]byte, 0, pieceBuffer+pieceDirect)}
	// Small fields gather in w.buf; large byte strings go straight to the
	// pieces.
	writeBytes := func(b []byte) {
		if len(b) < pieceDirect {
			w.buf = appendBytes(w.buf, b)
			return
		}
		w.buf = binary.AppendVarint(w.buf, int64(len(b)))
		w.flush()
		w.write(b)
	}
	for i := range recs {
		r := &recs[i]
		w.buf = binary.AppendUvarint(w.buf, uint64(r.Offset-baseOffset))
		w.buf = binary.AppendVarint(w.buf, r.Timestamp.UnixMilli()-first)
		writeBytes(r.Key)
		writeBytes(r.Value)
		w.buf = binary.AppendUvarint(w.buf, uint64(len(r.Headers)))
		for _, hd := range r.Headers {
			w.buf = binary.AppendUvarint(w.buf, uint64(len(hd.Key)))
			if len(hd.Key) < pieceDirect {
				w.buf = append(w.buf, hd.Key...)
			} else {
				w.flush()
				w.write([]byte(hd.Key))
			}
			writeBytes(hd.Value)
		}
		if len(w.buf) >= pieceBuffer {
			w.flush()
		}
		if w.err != nil {
			return header, 0, w.err
		}
	}
	if w.flush(); w.err != nil {
		return header, 0, w.err
	}
	binary.BigEndian.PutUint32(h[offCRC:], w.crc)
	return header, w.n, nil
}

// pieceWriter's buffering: fields shorter than pieceDirect gather in its
// buffer until it holds pieceBuffer bytes.
const (
	pieceBuffer = 32 << 10
	pieceDirect = 4 << 10
)

// pieceWriter writes bytes into the pieces its next function provides,
// keeping their CRC and count.
type pieceWriter struct {
	next func() ([]byte, error)
	buf  []byte // gathered, not written yet
	cur  []byte // space left in the current piece
	crc  uint32
	n    int
	err  error
}

func (w *pieceWriter) flush() {
	w.write(w.buf)
	w.buf = w.buf[:0]
}

func (w *pieceWriter) write(b []byte) {
	w.crc = crc32.Update(w.crc, castagnoli, b)
	w.n += len(b)
	for len(b) > 0 && w.err == nil {
		if len(w.cur) == 0 {
			if w.cur, w.err = w.next(); w.err == nil && len(w.cur) == 0 {
				w.err = errors.New("logfmt: no space for the rest of the batch")
			}
			continue
		}
		c := copy(w.cur, b)
		w.cur, b = w.cur[c:], b[c:]
	}
}

// Checksum checks the CRC of a batch read in pieces, without holding it in
// one buffer: start it with the batch's header, add the bytes after the
// header in order, then Check.
type Checksum struct {
	h   Header
	crc uint32
	hdr [HeaderLen]byte
}

// NewChecksum starts the check of the batch whose header is hdr. Errors
// match broker.ErrCorrupt (see ReadHeader).
func NewChecksum(hdr []byte) (*Checksum, error) {
	h, err := ReadHeader(hdr)
	if err != nil {
		return nil, err
	}
	c := &Checksum{h: h, crc: crc32.Update(0, castagnoli, hdr[offBase:HeaderLen])}
	copy(c.hdr[:], hdr)
	return c, nil
}

// Add adds the next bytes of the batch.
func (c *Checksum) Add(b []byte) { c.crc = crc32.Update(c.crc, castagnoli, b) }

// Check returns an error matching broker.ErrCorrupt unless the bytes
// added match the header's CRC.
func (c *Checksum) Check() error {
	if want := binary.BigEndian.Uint32(c.hdr[offCRC:]); want != c.crc {
		return corruptf("checksum mismatch at base offset %d: stored %08x, computed %08x", c.h.BaseOffset, want, c.crc)
	}
	return nil
}

// Header returns the batch's header.
func (c *Checksum) Header() Header { return c.h }
