package embedded

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/logfmt"
)

// Large batches are stored in chunks: Pebble copies a value several times
// whenever it flushes or compacts it (into a block buffer, compressed,
// checksummed, and the same on the way back), so one 100 MiB record would
// cost several times its size in memory at every flush. A batch whose
// encoding is larger than chunkSize is stored as a stub under its record
// key and its bytes after the header in chunks of chunkLen bytes (the
// last may be shorter):
//
//	r<topic id><partition><base offset>            stub
//	c<topic id><partition><base offset><be32 index> chunk
//
// The stub is stubTag, the be32 number of chunks, the be64 length of the
// whole batch and the batch's header (logfmt.HeaderLen bytes, whose CRC
// covers the chunks). A stored batch that is not chunked starts with
// logfmt.Version instead. Readers take the chunks as they find them, of
// any length, checking only that they add up to the stub's length: logs
// written with the 1 MiB chunks of earlier versions read as before, and
// the other way round. The stub and its chunks are written in one Pebble
// batch, so a chunked batch is there whole or not at all (a batch of
// ingestMin bytes or more has its chunks ingested before the batch with
// its stub commits; see ingest.go); every deletion of record keys deletes
// the chunks of the same offsets with them.
//
// Readers that need only the header (retention, DeleteRecords, Fetch's
// skipping) read the stub; those that need the records reassemble the batch
// in one buffer, reading the chunks through a clone of the iterator that
// found the stub, so both see the same state.
//
// Chunks are chunkLen bytes, not chunkSize: Pebble's sstable writer
// (flushes, compactions, ingestion) puts each chunk in a block of its own
// and keeps its block and compression buffers for reuse only up to
// 256 KiB (colblk's maxBlockRetainedSize, block.tempBufferMaxReusedSize),
// so 1 MiB chunks left 1 MiB of garbage each, 100 MiB for a 100 MiB
// record, which the garbage collector lets pile up to the size of the
// live heap. 192 KiB and a block's keys stay under 256 KiB even
// compressed (MinLZ's worst case is n + 2 bytes, Snappy's 32 + n + n/6:
// 224 KiB); the state store's ingested chunks are the same length
// (store/ingest.go). Chunks of 64 KiB measured no better (bigrecord).
const (
	chunkSize = 1 << 20
	// chunkLen is the length of the chunks written (tests change it:
	// config.chunkLen).
	chunkLen = 192 << 10
	stubTag  = 0x80
	stubLen  = 1 + 4 + 8 + logfmt.HeaderLen
	// chunkOverhead bounds the bytes a chunk takes in a Pebble batch
	// besides its value: its key and the batch's entry encoding.
	chunkOverhead = 64
	// maxBatchLen bounds the length a stub may claim: a batch holds the
	// records of one call (at most MaxCallBytes) and their encoding.
	maxBatchLen = 2 * MaxCallBytes
)

// chunkKey is the key of chunk i of the batch at base offset off.
func chunkKey(dst []byte, id uint64, p int32, off int64, i uint32) []byte {
	dst = binary.BigEndian.AppendUint64(partKey(dst, prefixChunks, id, p), uint64(off))
	return binary.BigEndian.AppendUint32(dst, i)
}

const chunkKeyLen = recordKeyLen + 4

// chunkBound returns the chunk-key counterpart of a record key or record
// key bound (a key of prefix prefixRecords): the chunks of the batches in
// [recordKey(a), recordKey(b)) are in [chunkBound(a), chunkBound(b)).
func chunkBound(recordKey []byte) []byte {
	k := bytes.Clone(recordKey)
	k[0] = prefixChunks
	return k
}

// chunkSpan returns the span of the chunk keys of the batch with record
// key key.
func chunkSpan(key []byte) (lo, hi []byte) {
	lo, hi = chunkBound(key), chunkBound(key)
	binary.BigEndian.PutUint64(hi[recordKeyLen-8:], binary.BigEndian.Uint64(hi[recordKeyLen-8:])+1)
	return lo, hi
}

// chunked reports whether a stored batch value v is a chunked batch's stub.
func chunked(v []byte) bool { return len(v) > 0 && v[0] == stubTag }

// appendStub appends the stub of a chunked batch of length size in n
// chunks with header h.
func appendStub(dst []byte, n uint32, size int, h []byte) []byte {
	dst = append(dst, stubTag)
	dst = binary.BigEndian.AppendUint32(dst, n)
	dst = binary.BigEndian.AppendUint64(dst, uint64(size))
	return append(dst, h...)
}

// parseStub returns the number of chunks, the batch length and the header
// of stub v. Errors match broker.ErrCorrupt.
func parseStub(v []byte) (n uint32, size int, hdr []byte, err error) {
	if len(v) != stubLen {
		return 0, 0, nil, fmt.Errorf("%w: chunked batch stub of %d bytes", broker.ErrCorrupt, len(v))
	}
	n = binary.BigEndian.Uint32(v[1:])
	sz := binary.BigEndian.Uint64(v[5:])
	hdr = v[13:]
	body := sz - logfmt.HeaderLen
	if sz <= logfmt.HeaderLen || sz > maxBatchLen || n == 0 || uint64(n) > body {
		return 0, 0, nil, fmt.Errorf("%w: chunked batch stub says %d bytes in %d chunks", broker.ErrCorrupt, sz, n)
	}
	return n, int(sz), hdr, nil
}

// batchInfo returns the header and the length of the stored batch v (a
// stub or a whole batch) without reading chunks. Errors match
// broker.ErrCorrupt.
func batchInfo(v []byte) (logfmt.Header, int, error) {
	if !chunked(v) {
		h, err := logfmt.ReadHeader(v)
		return h, len(v), err
	}
	_, size, hdr, err := parseStub(v)
	if err != nil {
		return logfmt.Header{}, 0, err
	}
	h, err := logfmt.ReadHeader(hdr)
	return h, size, err
}

// chunkReader reassembles chunked batches found by iterator src.
type chunkReader struct {
	src    *pebble.Iterator
	it     *pebble.Iterator // src's clone, made at the first chunked batch
	lo, hi []byte
}

// batch returns the stored batch v of p at base offset off in a buffer of
// its own: a copy of v, or v's chunks reassembled. It checks the chunks'
// sequence and lengths, not the batch's CRC (logfmt.Reader does). Errors
// from damage match broker.ErrCorrupt.
func (c *chunkReader) batch(p *partition, off int64, v []byte) ([]byte, error) {
	if !chunked(v) {
		return bytes.Clone(v), nil
	}
	_, size, hdr, err := parseStub(v)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, size)
	buf = append(buf, hdr...)
	err = c.each(p, off, v, func(chunk []byte) { buf = append(buf, chunk...) })
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// each calls fn with each chunk of the chunked batch of p at offset off
// whose stub is v, in order, after checking that it fits the batch's
// length; it checks that the chunks add up to the batch. fn must not keep
// its argument. Errors from damage match broker.ErrCorrupt.
func (c *chunkReader) each(p *partition, off int64, v []byte, fn func([]byte)) error {
	n, size, _, err := parseStub(v)
	if err != nil {
		return err
	}
	if c.it == nil {
		if c.it, err = c.src.Clone(pebble.CloneOptions{IterOptions: &pebble.IterOptions{}}); err != nil {
			return wrapRead("read chunks", err)
		}
	}
	c.lo = chunkKey(c.lo[:0], p.t.id, p.num, off, 0)
	c.hi = chunkKey(c.hi[:0], p.t.id, p.num, off+1, 0)[:recordKeyLen]
	c.it.SetBounds(c.lo, c.hi)
	i, got := uint32(0), logfmt.HeaderLen
	for valid := c.it.First(); valid; valid = c.it.Next() {
		k := c.it.Key()
		if len(k) != chunkKeyLen || binary.BigEndian.Uint32(k[recordKeyLen:]) != i {
			return fmt.Errorf("%w: chunk %d of a batch of %d chunks: found key %x", broker.ErrCorrupt, i, n, k)
		}
		cv, err := c.it.ValueAndErr()
		if err != nil {
			return wrapRead("read chunks", err)
		}
		if len(cv) == 0 || len(cv) > size-got {
			return fmt.Errorf("%w: chunk %d of %d bytes with %d of the batch's %d left", broker.ErrCorrupt, i, len(cv), size-got, size)
		}
		fn(cv)
		got += len(cv)
		i++
	}
	if err := c.it.Error(); err != nil {
		return wrapRead("read chunks", err)
	}
	if i != n || got != size {
		return fmt.Errorf("%w: chunked batch has %d of its %d chunks, %d of its %d bytes", broker.ErrCorrupt, i, n, got, size)
	}
	return nil
}

// checkBatch checks the CRC of the stored batch v of p at offset off
// (reading its chunks one by one if it has some) and returns its header.
// Errors from damage match broker.ErrCorrupt.
func (c *chunkReader) checkBatch(p *partition, off int64, v []byte) (logfmt.Header, error) {
	if !chunked(v) {
		var r logfmt.Reader
		if err := r.Reset(v); err != nil {
			return logfmt.Header{}, err
		}
		return r.Header(), nil
	}
	_, _, hdr, err := parseStub(v)
	if err != nil {
		return logfmt.Header{}, err
	}
	sum, err := logfmt.NewChecksum(hdr)
	if err != nil {
		return logfmt.Header{}, err
	}
	if err := c.each(p, off, v, sum.Add); err != nil {
		return logfmt.Header{}, err
	}
	return sum.Header(), sum.Check()
}

// view returns the stored batch v as batch does, but v itself when it is
// not chunked (aliasing the iterator's buffer: valid until it moves).
func (c *chunkReader) view(p *partition, off int64, v []byte) ([]byte, error) {
	if !chunked(v) {
		return v, nil
	}
	return c.batch(p, off, v)
}

func (c *chunkReader) close() {
	if c.it != nil {
		_ = c.it.Close()
		c.it = nil
	}
}

// stageChunked stages the records of w.recs as the batch at base offset
// base of p, of size bytes (logfmt.BatchSize), in chunks: each record's
// bytes are copied once, into the chunks in the Pebble batch, or from
// ingestMin bytes on into the chunks of an sstable (see ingest.go).
func (w *writer) stageChunked(p *partition, base int64, size int) error {
	if size >= ingestMin {
		return w.ingestChunked(p, base, size)
	}
	body, cl := size-logfmt.HeaderLen, w.b.cfg.chunkLen
	n := (body + cl - 1) / cl
	var op *pebble.DeferredBatchOp
	i := 0
	next := func() ([]byte, error) {
		if op != nil {
			if err := op.Finish(); err != nil {
				return nil, err
			}
			op = nil
		}
		if i >= n {
			return nil, fmt.Errorf("embedded: internal error: batch longer than its %d bytes", size)
		}
		w.key = chunkKey(w.key[:0], p.t.id, p.num, base, uint32(i))
		op = w.batch.SetDeferred(len(w.key), min(cl, body-i*cl))
		copy(op.Key, w.key)
		i++
		return op.Value, nil
	}
	h, got, err := logfmt.WriteBatch(base, w.recs, next)
	if err == nil && op != nil {
		err = op.Finish()
	}
	if err == nil && (got != size || i != n) {
		err = fmt.Errorf("embedded: internal error: batch encoded to %d bytes in %d chunks, expected %d in %d", got, i, size, n)
	}
	if err != nil {
		return err
	}
	w.key = recordKey(w.key[:0], p.t.id, p.num, base)
	var stub [stubLen]byte
	return w.batch.Set(w.key, appendStub(stub[:0], uint32(n), size, h[:]), nil)
}

// stageBatchBytes stages the encoded batch v as the batch at record key
// key, in chunks of chunkLen bytes when it is larger than chunkSize,
// after deleting the chunks of the batch it replaces.
func (w *writer) stageBatchBytes(key, v []byte) error {
	lo, hi := chunkSpan(key)
	if err := w.batch.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	if len(v) <= chunkSize {
		return w.batch.Set(key, v, nil)
	}
	body := v[logfmt.HeaderLen:]
	n := uint32(0)
	for ; len(body) > 0; n++ {
		c := body[:min(w.b.cfg.chunkLen, len(body))]
		body = body[len(c):]
		if err := w.batch.Set(binary.BigEndian.AppendUint32(bytes.Clone(lo), n), c, nil); err != nil {
			return err
		}
	}
	var stub [stubLen]byte
	return w.batch.Set(key, appendStub(stub[:0], n, len(v), v[:logfmt.HeaderLen]), nil)
}
