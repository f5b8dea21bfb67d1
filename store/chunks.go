package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Large values are stored in chunks. Pebble copies a value whole whenever
// it flushes or compacts it (into a block buffer, compressed, checksummed,
// and the same on the way back), so one 100 MiB value would cost several
// times its size in memory at every flush. In a database of format
// formatV2 every value under a data key starts with a tag byte:
//
//	valInline  value                       the value itself
//	valChunked be32(n) be64(length)        a stub: the value is in n chunks
//	valChunkedV be32(n) be64(length) be32(chunk) version
//	                                       a stub of versioned chunks of
//	                                       chunk bytes (formatV3: see
//	                                       ingest.go)
//
// A value longer than chunkSize is stored as a stub under its data key and
// its bytes in chunks of chunkSize bytes (the last may be shorter):
//
//	0x03 uvarint(id) escaped(key) be32(i)  chunk i of key's value
//	0x04 uvarint(id) key                   key has a chunked value (index)
//
// escaped(key) (appendEscaped) preserves the order of keys and is
// prefix-free, so the chunks of the keys in [start, end) are the keys in
// [chunkBound(start), chunkBound(end)): a range deletion of data deletes
// the chunks with one more range deletion. The stub, its chunks and its
// index entry are written in the same Pebble batch as the rest of the
// Apply, so a chunked value is there whole or not at all.
//
// A write that replaces or deletes a chunked value must delete its chunks,
// so it needs to know whether the key has one: it looks the key up in the
// index (a point read that the bloom filters answer without reading a
// block when the key has none). The store counts its index entries
// (chunkState), and while it holds none, which is the case of every store
// whose values stay under chunkSize, its writes look nothing up: small
// values pay only their tag byte.
//
// Databases of format formatV1 (created before chunking) have untagged
// values and never chunk: they open and work as before.
const (
	chunkSize  = 1 << 20
	valInline  = 0x00
	valChunked = 0x01
	stubLen    = 1 + 4 + 8
	// maxChunkedLen bounds the length a stub may claim: a Pebble batch,
	// which holds a chunked value whole, is shorter than 4 GiB.
	maxChunkedLen = 4 << 30

	tagChunk = 0x03
	tagIndex = 0x04
)

// chunkState is what a DB knows of the chunked values of one store (all
// its handles share it). Its mutex orders the writes of the store (Apply,
// Drop), so that a write's look-ups in the index see the state it
// replaces.
type chunkState struct {
	sync.Mutex
	loaded bool  // n has been counted
	n      int64 // index entries: the store's chunked values
}

// badTag returns the error for a stored value v whose tag is neither
// valInline nor valChunked.
func badTag(v []byte) error {
	if len(v) == 0 {
		return fmt.Errorf("%w: value without tag", ErrCorrupt)
	}
	return fmt.Errorf("%w: value of unknown tag %#x", ErrCorrupt, v[0])
}

// appendEscaped appends key to dst in an order-preserving, prefix-free
// encoding: each 0x00 byte as 0x00 0xff, then the terminator 0x00 0x01.
func appendEscaped(dst, key []byte) []byte {
	for {
		i := bytes.IndexByte(key, 0)
		if i < 0 {
			break
		}
		dst = append(dst, key[:i+1]...)
		dst = append(dst, 0xff)
		key = key[i+1:]
	}
	dst = append(dst, key...)
	return append(dst, 0x00, 0x01)
}

// chunkBound returns the chunk-space counterpart of the data key key of
// s: the first chunk key of key's value, and a bound of the chunks of the
// keys of a range (see above).
func (s *pebbleStore) chunkBound(dst, key []byte) []byte {
	return appendEscaped(append(dst, s.chunkPrefix...), key)
}

// chunkSpan returns the span of the unversioned chunk keys of key's value
// (a valChunked stub's).
func (s *pebbleStore) chunkSpan(key []byte) (lo, hi []byte) {
	lo = s.chunkBound(nil, key)
	hi = bytes.Clone(lo)
	hi[len(hi)-1]++ // the terminator 0x00 0x01 becomes 0x00 0x02
	return lo, hi
}

func (s *pebbleStore) indexKey(dst, key []byte) []byte {
	return append(append(dst, s.indexPrefix...), key...)
}

// appendStub appends the stub of a value of size bytes in n chunks.
func appendStub(dst []byte, n uint32, size int) []byte {
	dst = append(dst, valChunked)
	dst = binary.BigEndian.AppendUint32(dst, n)
	return binary.BigEndian.AppendUint64(dst, uint64(size))
}

// stubInfo is a parsed stub.
type stubInfo struct {
	n         uint32 // chunks
	size      int    // bytes of the value
	chunk     int    // bytes of each chunk but the last
	versioned bool   // valChunkedV: the chunks' keys have version ver
	ver       version
}

// parseStub parses the stored value v, whose tag is valChunked or
// valChunkedV. Errors match ErrCorrupt.
func parseStub(v []byte) (stubInfo, error) {
	st := stubInfo{chunk: chunkSize, versioned: len(v) > 0 && v[0] == valChunkedV}
	want := stubLen
	if st.versioned {
		want = stubVLen
	}
	if len(v) != want {
		return stubInfo{}, fmt.Errorf("%w: chunked value stub of %d bytes", ErrCorrupt, len(v))
	}
	n := binary.BigEndian.Uint32(v[1:])
	sz := binary.BigEndian.Uint64(v[5:])
	if st.versioned {
		st.chunk = int(binary.BigEndian.Uint32(v[stubLen:]))
		copy(st.ver[:], v[stubLen+4:])
		if st.chunk < 1 || st.chunk > chunkSize {
			return stubInfo{}, fmt.Errorf("%w: chunked value stub says chunks of %d bytes", ErrCorrupt, st.chunk)
		}
	}
	c := uint64(st.chunk)
	// A chunked value is longer than chunkSize (ingested ones too, see
	// planIngest).
	if sz <= chunkSize || sz > maxChunkedLen || uint64(n) != (sz+c-1)/c {
		return stubInfo{}, fmt.Errorf("%w: chunked value stub says %d bytes in %d chunks", ErrCorrupt, sz, n)
	}
	st.n, st.size = n, int(sz)
	return st, nil
}

// isStub reports whether the stored value v (tag included) is a stub.
func isStub(v []byte) bool { return len(v) > 0 && (v[0] == valChunked || v[0] == valChunkedV) }

// numChunks returns the number of chunks of chunk bytes of a value of
// size bytes.
func numChunks(size, chunk int) int { return (size + chunk - 1) / chunk }

// readChunks calls fn with each chunk of the value of stub st whose chunk
// span it's bounds are set to (keys of spanLen bytes and the chunk's
// index), in order, after checking its key and length. fn must not keep
// its argument. Errors from damage match ErrCorrupt.
func readChunks(it *pebble.Iterator, spanLen int, st stubInfo, fn func([]byte)) error {
	i, got := uint32(0), 0
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != spanLen+4 || binary.BigEndian.Uint32(k[spanLen:]) != i || i >= st.n {
			return fmt.Errorf("%w: chunk %d of a value of %d chunks: found key %x", ErrCorrupt, i, st.n, k)
		}
		cv, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if want := min(st.chunk, st.size-got); len(cv) != want {
			return fmt.Errorf("%w: chunk %d of a value of %d bytes has %d bytes, want %d", ErrCorrupt, i, st.size, len(cv), want)
		}
		fn(cv)
		got += len(cv)
		i++
	}
	if err := it.Error(); err != nil {
		return err
	}
	if i != st.n {
		return fmt.Errorf("%w: chunked value has %d of its %d chunks", ErrCorrupt, i, st.n)
	}
	return nil
}

// chunkReader reassembles chunked values through an iterator on the view
// of the iterator that found their stubs.
type chunkReader struct {
	it  *pebble.Iterator
	buf []byte // the last value reassembled
}

// value returns the value of key whose stored form (tag included) is v,
// read by src: v's bytes when it is inline, the chunks reassembled in
// r.buf (valid until the next call) when v is a stub. Errors from damage
// match ErrCorrupt.
func (r *chunkReader) value(s *pebbleStore, src *pebble.Iterator, key, v []byte) ([]byte, error) {
	switch {
	case len(v) > 0 && v[0] == valInline:
		return v[1:], nil
	case !isStub(v):
		return nil, badTag(v)
	}
	st, err := parseStub(v)
	if err != nil {
		return nil, err
	}
	if r.it == nil {
		if r.it, err = src.Clone(pebble.CloneOptions{IterOptions: &pebble.IterOptions{}}); err != nil {
			return nil, err
		}
	}
	lo, hi := s.chunkSpan(key)
	if st.versioned {
		lo, hi = s.versionSpan(key, st.ver)
	}
	r.it.SetBounds(lo, hi)
	if cap(r.buf) < st.size {
		r.buf = make([]byte, 0, st.size)
	}
	r.buf = r.buf[:0]
	if err := readChunks(r.it, len(lo), st, func(c []byte) { r.buf = append(r.buf, c...) }); err != nil {
		return nil, err
	}
	return r.buf, nil
}

func (r *chunkReader) close() error {
	r.buf = nil
	if r.it == nil {
		return nil
	}
	err := r.it.Close()
	r.it = nil
	return err
}

// getChunked returns a copy of the value of the data key k (s's prefix and
// key), which a Get found to be chunked: it reads the stub again and the
// chunks through one iterator, so that both are of the same state.
func (s *pebbleStore) getChunked(k []byte) ([]byte, bool, error) {
	it, err := s.db.db.NewIter(&pebble.IterOptions{LowerBound: k, UpperBound: append(bytes.Clone(k), 0)})
	if err != nil {
		return nil, false, err
	}
	r := chunkReader{it: it}
	defer r.close()
	if !it.First() {
		return nil, false, it.Error() // deleted since
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, false, err
	}
	if len(v) > 0 && v[0] == valInline {
		return bytes.Clone(v[1:]), true, nil // replaced since
	}
	stub := bytes.Clone(v) // SetBounds invalidates v
	out, err := r.value(s, it, k[len(s.prefix):], stub)
	if err != nil {
		return nil, false, err
	}
	r.buf = nil // out is the caller's
	return out, true, nil
}

// loadChunks counts the store's index entries, once per DB.
func (s *pebbleStore) loadChunks() error {
	cs := s.chunks
	if cs.loaded {
		return nil
	}
	it, err := s.db.db.NewIter(&pebble.IterOptions{LowerBound: s.indexPrefix, UpperBound: PrefixEnd(s.indexPrefix)})
	if err != nil {
		return err
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	cs.n, cs.loaded = n, true
	return nil
}

// chunkApply writes the operations of an Apply to a store that has or
// gets chunked values, keeping track of which keys have one.
type chunkApply struct {
	s  *pebbleStore
	pb *pebble.Batch
	// state says, for the keys the batch wrote so far, whether they have
	// a chunked value now.
	state   map[string]bool
	delta   int64 // the change of the store's count of chunked values
	scratch []byte
}

// had reports whether key has a chunked value before the next operation.
func (c *chunkApply) had(key []byte) (bool, error) {
	if v, ok := c.state[string(key)]; ok {
		return v, nil
	}
	if c.s.chunks.n == 0 {
		return false, nil
	}
	c.scratch = c.s.indexKey(c.scratch[:0], key)
	_, closer, err := c.s.db.db.Get(c.scratch)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = closer.Close()
	return true, nil
}

// forget deletes the chunks and the index entry of key, which has a
// chunked value (had).
func (c *chunkApply) forget(key []byte) error {
	lo, hi := c.s.keySpan(key)
	if err := c.pb.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	c.scratch = c.s.indexKey(c.scratch[:0], key)
	if err := c.pb.Delete(c.scratch, nil); err != nil {
		return err
	}
	c.delta--
	return nil
}

// put sets the data key dk (the store's prefix and key) to v.
func (c *chunkApply) put(dk, key, v []byte) error {
	had, err := c.had(key)
	if err != nil {
		return err
	}
	if len(v) <= chunkSize {
		if had {
			if err := c.forget(key); err != nil {
				return err
			}
		}
		c.state[string(key)] = false
		return setInline(c.pb, dk, v)
	}
	// Its chunks go, including those past the new value's, and any that
	// an ingestion whose batch did not commit left (see ingest.go).
	lo, hi := c.s.keySpan(key)
	if err := c.pb.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	if !had {
		c.delta++
	}
	c.state[string(key)] = true
	n := numChunks(len(v), chunkSize)
	ck := c.s.chunkBound(nil, key)
	base := len(ck)
	for i := range n {
		ck = binary.BigEndian.AppendUint32(ck[:base], uint32(i))
		if err := c.pb.Set(ck, v[i*chunkSize:min(len(v), (i+1)*chunkSize)], nil); err != nil {
			return err
		}
	}
	c.scratch = c.s.indexKey(c.scratch[:0], key)
	if err := c.pb.Set(c.scratch, nil, nil); err != nil {
		return err
	}
	var stub [stubLen]byte
	return c.pb.Set(dk, appendStub(stub[:0], uint32(n), len(v)), nil)
}

// delete deletes the data key dk (the store's prefix and key).
func (c *chunkApply) delete(dk, key []byte) error {
	had, err := c.had(key)
	if err != nil {
		return err
	}
	if had {
		if err := c.forget(key); err != nil {
			return err
		}
	}
	c.state[string(key)] = false
	return c.pb.Delete(dk, nil)
}

// deleteRange deletes the chunks and index entries of the keys in [start,
// end) (end nil: no upper bound), counting the chunked values it deletes;
// the caller deletes the data keys.
func (c *chunkApply) deleteRange(start, end []byte) error {
	in := func(k string) bool { return k >= string(start) && (end == nil || k < string(end)) }
	for k, chunked := range c.state {
		if in(k) {
			if chunked {
				c.delta--
			}
			c.state[k] = false
		}
	}
	if c.s.chunks.n > 0 {
		lo := c.s.indexKey(nil, start)
		hi := PrefixEnd(c.s.indexPrefix)
		if end != nil {
			hi = c.s.indexKey(nil, end)
		}
		it, err := c.s.db.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			k := string(it.Key()[len(c.s.indexPrefix):])
			if _, seen := c.state[k]; !seen {
				c.state[k] = false
				c.delta--
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
	}
	chi := PrefixEnd(c.s.chunkPrefix)
	ihi := PrefixEnd(c.s.indexPrefix)
	if end != nil {
		chi = c.s.chunkBound(nil, end)
		ihi = c.s.indexKey(nil, end)
	}
	if err := c.pb.DeleteRange(c.s.chunkBound(nil, start), chi, nil); err != nil {
		return err
	}
	return c.pb.DeleteRange(c.s.indexKey(nil, start), ihi, nil)
}

// setInline sets the data key dk to the tagged inline value v.
func setInline(pb *pebble.Batch, dk, v []byte) error {
	d := pb.SetDeferred(len(dk), 1+len(v))
	copy(d.Key, dk)
	d.Value[0] = valInline
	copy(d.Value[1:], v)
	return d.Finish()
}

// chunkedBatchSize bounds the bytes the chunks, stubs, index entries and
// range deletions of b take in a Pebble batch of s beyond what Apply
// counts for every operation.
func (s *pebbleStore) chunkedBatchSize(b *Batch) int {
	const entry = 1 + 2*5 // kind and two uvarint lengths
	esc := func(k []byte) int { return len(s.chunkPrefix) + 2*len(k) + 2 + 4 }
	idx := func(k []byte) int { return len(s.indexPrefix) + len(k) }
	n := 0
	for i := range b.ops {
		op := &b.ops[i]
		k, v := op.key(b.buf), op.value(b.buf)
		if op.kind == opDeleteRange {
			// The range deletions of the chunks and index entries.
			n += 2*entry + esc(k) + esc(v) + idx(k) + idx(v)
			continue
		}
		// The range deletion of key's chunks, the deletion or setting of
		// its index entry.
		n += 2*entry + 2*esc(k) + idx(k)
		if op.kind == opPut && len(v) > chunkSize {
			n += numChunks(len(v), chunkSize)*(entry+esc(k)) + stubLen
		}
	}
	return n
}
