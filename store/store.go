package store

import (
	"fmt"
	"iter"
)

// DB opens stores. One DB serves all the tasks of an app instance: each
// (name, partition) pair is a separate store with its own keys, changelog
// offset and Drop. *PebbleDB and *MemoryDB implement DB.
type DB interface {
	// Store returns a handle on the store name/partition, creating the
	// store (empty, without offset) if it does not exist. Handles on the
	// same store share its state. name must not be empty and partition
	// must not be negative (ErrInvalid). After Close it returns ErrClosed.
	Store(name string, partition int32) (Store, error)
	// Close closes every handle and cursor and releases the DB. It must
	// not run concurrently with any other call on the DB, its stores or
	// their cursors.
	Close() error
}

// Store is an ordered key-value store of byte strings, one per (name,
// partition) of a DB.
//
// Keys are ordered by bytes.Compare. Any byte string is a key, including
// the empty one (nil and empty are the same key); values may be empty.
//
// A Store is safe for concurrent use; each write (Apply, Drop) is atomic
// and isolated. Byte slices passed in are never retained; Get returns a
// copy the caller owns; a Cursor's slices are borrowed (see Cursor).
type Store interface {
	// Name returns the store's name.
	Name() string
	// Partition returns the store's partition.
	Partition() int32
	// Get returns a copy of the value of key and true, or nil and false if
	// key is absent.
	Get(key []byte) ([]byte, bool, error)
	// Range returns a cursor over the keys in [start, end) in ascending
	// order. A nil start is the first key; a nil end means no upper bound
	// (an empty but non-nil end is the empty key, so the range is empty).
	// The cursor sees the store as it was when Range was called.
	Range(start, end []byte) Cursor
	// RangeReverse is Range in descending order.
	RangeReverse(start, end []byte) Cursor
	// Prefix returns a cursor over the keys that start with prefix, in
	// ascending order. An empty prefix selects every key.
	Prefix(prefix []byte) Cursor
	// ApproximateCount returns the number of keys in the store: exact for
	// the memory store, an estimate for large Pebble stores (see
	// PebbleDB).
	ApproximateCount() (int64, error)
	// Apply writes b atomically: after a crash either every operation of
	// b and its offset are visible, or none. Operations apply in the order
	// they were added. An empty batch without offset writes nothing. b is
	// not retained and can be reused after Apply returns.
	Apply(b *Batch) error
	// Offset returns the changelog offset recorded by the last applied
	// batch that set one, and whether there is one. A new or dropped
	// store has none.
	Offset() (int64, bool, error)
	// Drop deletes every key and the offset of this store, and nothing of
	// any other store. The handle stays usable: the store is empty.
	Drop() error
	// Close releases the handle; its data stays in the DB. Closing twice
	// returns nil. Cursors of the handle stay usable until their own
	// Close or the DB's Close.
	Close() error
}

// Cursor iterates over a range of a store. Call Next before reading the
// first pair:
//
//	c := s.Range(start, end)
//	defer c.Close()
//	for c.Next() {
//		use(c.Key(), c.Value())
//	}
//	if err := c.Err(); err != nil { ... }
//
// or range over c.All(). The slices returned by Key and Value belong to the
// cursor: they are valid until the next call to Next or Close and must not
// be modified. A Cursor is not safe for concurrent use and must be closed:
// an open cursor pins the snapshot it reads (on Pebble, memtables and
// sstable files), so close it promptly.
type Cursor interface {
	// Next moves to the next pair and reports whether there is one. It
	// returns false at the end of the range, after an error (see Err) and
	// after Close.
	Next() bool
	// Key returns the current key.
	Key() []byte
	// Value returns the current value.
	Value() []byte
	// All returns a single-use iterator over the remaining pairs (it calls
	// Next). It does not close the cursor: check Err and Close afterwards.
	All() iter.Seq2[[]byte, []byte]
	// Err returns the error that ended the iteration, if any.
	Err() error
	// Close releases the cursor. It returns the error of Err if any.
	// Closing twice returns the same result.
	Close() error
}

// Reseeker is implemented by the cursors of the Pebble and the memory
// stores (those of Range, RangeReverse and Prefix): Reseek moves a cursor
// to another range of the view it reads, which costs a seek where a new
// cursor costs a snapshot (on Pebble, a new iterator). A reader that
// looks up many small ranges of a store that does not change meanwhile
// (a join's lookups between two commits) keeps one cursor and reseeks it.
type Reseeker interface {
	// Reseek makes the cursor one over the keys in [start, end), with
	// the bounds of Store.Range, in its direction, on the view it reads:
	// the store as it was when the cursor was created, not as it is now.
	// Call Next before reading the first pair; the slices Key and Value
	// returned before are invalid. It reports false, and changes nothing,
	// when the cursor is closed, has failed (see Cursor.Err) or its
	// store handle is closed: create a new cursor then.
	Reseek(start, end []byte) bool
}

// Batch collects writes for Store.Apply. It copies every key and value
// passed to it, so the caller may reuse its slices at once. The zero Batch
// is empty and ready to use; Reset empties it and keeps its memory. A
// Batch is not safe for concurrent use.
type Batch struct {
	ops       []batchOp
	buf       []byte
	shared    int // bytes of the values of PutShared
	maxValue  int // length of the longest Put value
	offset    int64
	hasOffset bool
	// order is Pebble's scratch: the indexes of ops in key order.
	order []int32
}

type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opDeleteRange
)

// batchOp is an operation; its key is buf[k:v] and its value (or the end
// of a deleted range) buf[v:e], or shared (PutShared).
type batchOp struct {
	kind    opKind
	k, v, e int
	endNil  bool   // opDeleteRange without upper bound
	shared  []byte // the value of a PutShared
}

func (op *batchOp) key(buf []byte) []byte { return buf[op.k:op.v:op.v] }

func (op *batchOp) value(buf []byte) []byte {
	if op.shared != nil {
		return op.shared
	}
	return buf[op.v:op.e:op.e]
}

// Put sets key to value.
func (b *Batch) Put(key, value []byte) {
	k := len(b.buf)
	b.buf = append(b.buf, key...)
	v := len(b.buf)
	b.buf = append(b.buf, value...)
	b.ops = append(b.ops, batchOp{kind: opPut, k: k, v: v, e: len(b.buf)})
	b.maxValue = max(b.maxValue, len(value))
}

// PutShared sets key to value like Put, but keeps value rather than copy
// it: the caller must not change value until the batch is applied and
// Reset (or dropped). It saves a copy of large values the caller owns
// anyway (the runtime's uncommitted writes).
func (b *Batch) PutShared(key, value []byte) {
	if value == nil {
		value = []byte{}
	}
	k := len(b.buf)
	b.buf = append(b.buf, key...)
	b.ops = append(b.ops, batchOp{kind: opPut, k: k, v: len(b.buf), e: len(b.buf), shared: value})
	b.shared += len(value)
	b.maxValue = max(b.maxValue, len(value))
}

// Delete deletes key. Deleting an absent key is not an error.
func (b *Batch) Delete(key []byte) {
	k := len(b.buf)
	b.buf = append(b.buf, key...)
	b.ops = append(b.ops, batchOp{kind: opDelete, k: k, v: len(b.buf), e: len(b.buf)})
}

// DeleteRange deletes the keys in [start, end), with the bounds of
// Store.Range: a nil start is the first key, a nil end means no upper
// bound. On Pebble it costs the same whatever the number of keys.
func (b *Batch) DeleteRange(start, end []byte) {
	k := len(b.buf)
	b.buf = append(b.buf, start...)
	v := len(b.buf)
	b.buf = append(b.buf, end...)
	b.ops = append(b.ops, batchOp{kind: opDeleteRange, k: k, v: v, e: len(b.buf), endNil: end == nil})
}

// SetOffset records offset, the changelog offset the store reflects once
// the batch is applied, so that Store.Offset returns it. It is written
// atomically with the batch's data. The store gives no meaning to the
// number; the last call wins.
func (b *Batch) SetOffset(offset int64) {
	b.offset, b.hasOffset = offset, true
}

// Offset returns the offset set by SetOffset, and whether one was set.
func (b *Batch) Offset() (int64, bool) { return b.offset, b.hasOffset }

// Len returns the number of operations (Put, Delete, DeleteRange).
func (b *Batch) Len() int { return len(b.ops) }

// Size returns the number of key and value bytes the batch holds (shared
// values included).
func (b *Batch) Size() int { return len(b.buf) + b.shared }

// Reset empties the batch and forgets its offset, keeping its memory.
func (b *Batch) Reset() {
	clear(b.ops) // drop the values of PutShared
	b.ops = b.ops[:0]
	b.buf = b.buf[:0]
	b.shared, b.maxValue = 0, 0
	b.offset, b.hasOffset = 0, false
}

// empty reports whether applying b writes nothing.
func (b *Batch) empty() bool { return len(b.ops) == 0 && !b.hasOffset }

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil (no upper bound) if there is none: prefix is empty or
// all 0xff bytes. Prefix(p) is Range(p, PrefixEnd(p)).
func PrefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end := make([]byte, i+1)
			copy(end, prefix)
			end[i]++
			return end
		}
	}
	return nil
}

// validName checks the arguments of DB.Store.
func validName(name string, partition int32) error {
	switch {
	case name == "":
		return fmt.Errorf("store: empty name: %w", ErrInvalid)
	case partition < 0:
		return fmt.Errorf("store %s/%d: negative partition: %w", name, partition, ErrInvalid)
	}
	return nil
}

// cursorAll implements Cursor.All over c.
func cursorAll(c Cursor) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for c.Next() {
			if !yield(c.Key(), c.Value()) {
				return
			}
		}
	}
}

// errCursor is a cursor that failed before it started.
type errCursor struct{ err error }

func (c errCursor) Next() bool                     { return false }
func (c errCursor) Key() []byte                    { return nil }
func (c errCursor) Value() []byte                  { return nil }
func (c errCursor) All() iter.Seq2[[]byte, []byte] { return cursorAll(c) }
func (c errCursor) Err() error                     { return c.err }
func (c errCursor) Close() error                   { return c.err }
