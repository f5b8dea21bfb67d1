package store

import (
	"bytes"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/RaduBerinde/btreemap"
)

// MemoryDB is a DB that keeps its stores in memory, in copy-on-write
// B-trees: the same behaviour as PebbleDB (ordering, snapshots for cursors,
// atomic batches with offsets, Drop) without durability. Use it in tests
// and for small state that is rebuilt from its changelog on every start.
//
// Store data lives as long as the MemoryDB: closing a store handle and
// asking for the same name and partition again returns the same data. Get
// and writes cost O(log n); a cursor takes an O(1) snapshot. Count is
// exact. A MemoryDB is safe for concurrent use.
type MemoryDB struct {
	closed atomic.Bool
	mu     struct {
		sync.Mutex
		stores map[storeKey]*memState
	}
}

type storeKey struct {
	name      string
	partition int32
}

// NewMemoryDB returns an empty MemoryDB.
func NewMemoryDB() *MemoryDB {
	db := &MemoryDB{}
	db.mu.stores = make(map[storeKey]*memState)
	return db
}

// NewMemory returns a standalone in-memory store named name/partition, in
// a MemoryDB of its own that its Close closes. name and partition are
// only reported by Name and Partition and in errors, so they are not
// checked.
func NewMemory(name string, partition int32) Store {
	return &memStore{db: NewMemoryDB(), state: newMemState(), name: name, partition: partition, owner: true}
}

// Store implements DB.
func (db *MemoryDB) Store(name string, partition int32) (Store, error) {
	if err := validName(name, partition); err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Load() {
		return nil, fmt.Errorf("store %s/%d: open: %w", name, partition, ErrClosed)
	}
	k := storeKey{name, partition}
	st := db.mu.stores[k]
	if st == nil {
		st = newMemState()
		db.mu.stores[k] = st
	}
	return &memStore{db: db, state: st, name: name, partition: partition}, nil
}

// Close implements DB. It drops the data of every store. Closing twice
// returns nil.
func (db *MemoryDB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.closed.Store(true)
	db.mu.stores = nil
	return nil
}

// memState is the data of one store.
type memState struct {
	mu        sync.RWMutex
	tree      *btreemap.BTreeMap[[]byte, []byte]
	offset    int64
	hasOffset bool
}

func newMemState() *memState {
	return &memState{tree: btreemap.New[[]byte, []byte](16, bytes.Compare)}
}

// memStore is a handle on a memState.
type memStore struct {
	db        *MemoryDB
	state     *memState
	name      string
	partition int32
	owner     bool // NewMemory: Close closes db
	closed    atomic.Bool
}

func (s *memStore) Name() string     { return s.name }
func (s *memStore) Partition() int32 { return s.partition }

func (s *memStore) check(op string) error {
	if s.closed.Load() || s.db.closed.Load() {
		return wrap(s.name, s.partition, op, ErrClosed)
	}
	return nil
}

func (s *memStore) Get(key []byte) ([]byte, bool, error) {
	if err := s.check("get"); err != nil {
		return nil, false, err
	}
	s.state.mu.RLock()
	_, v, ok := s.state.tree.Get(key)
	s.state.mu.RUnlock()
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

func (s *memStore) Apply(b *Batch) error {
	if err := s.check("apply"); err != nil {
		return err
	}
	if b == nil || b.empty() {
		return nil
	}
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := range b.ops {
		op := &b.ops[i]
		switch op.kind {
		case opPut:
			k, v := op.key(b.buf), op.value(b.buf)
			kv := make([]byte, len(k)+len(v))
			copy(kv, k)
			copy(kv[len(k):], v)
			st.tree.ReplaceOrInsert(kv[:len(k):len(k)], kv[len(k):])
		case opDelete:
			st.tree.Delete(op.key(b.buf))
		case opDeleteRange:
			start, end := op.key(b.buf), []byte(nil)
			if !op.endNil {
				// Never nil from here: nil would mean no upper bound.
				if end = op.value(b.buf); bytes.Compare(start, end) >= 0 {
					continue
				}
			}
			var keys [][]byte
			for k := range st.tree.Ascend(lower(start), upper(end)) {
				keys = append(keys, k)
			}
			for _, k := range keys {
				st.tree.Delete(k)
			}
		}
	}
	if b.hasOffset {
		st.offset, st.hasOffset = b.offset, true
	}
	return nil
}

func (s *memStore) Offset() (int64, bool, error) {
	if err := s.check("offset"); err != nil {
		return 0, false, err
	}
	s.state.mu.RLock()
	defer s.state.mu.RUnlock()
	return s.state.offset, s.state.hasOffset, nil
}

func (s *memStore) ApproximateCount() (int64, error) {
	if err := s.check("count"); err != nil {
		return 0, err
	}
	s.state.mu.RLock()
	defer s.state.mu.RUnlock()
	return int64(s.state.tree.Len()), nil
}

func (s *memStore) Drop() error {
	if err := s.check("drop"); err != nil {
		return err
	}
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	// Cursors hold clones, so a new tree leaves them intact.
	st.tree = btreemap.New[[]byte, []byte](16, bytes.Compare)
	st.offset, st.hasOffset = 0, false
	return nil
}

func (s *memStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.owner {
		return s.db.Close()
	}
	return nil
}

func (s *memStore) Range(start, end []byte) Cursor {
	return s.cursor(start, end, false)
}

func (s *memStore) RangeReverse(start, end []byte) Cursor {
	return s.cursor(start, end, true)
}

func (s *memStore) Prefix(prefix []byte) Cursor {
	return s.cursor(prefix, PrefixEnd(prefix), false)
}

func (s *memStore) cursor(start, end []byte, reverse bool) Cursor {
	if err := s.check("range"); err != nil {
		return errCursor{err}
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return errCursor{}
	}
	s.state.mu.Lock()
	snap := s.state.tree.Clone()
	s.state.mu.Unlock()
	return &memCursor{
		store: s, tree: snap, reverse: reverse, buf: make([][2][]byte, 0, memCursorChunk),
		start: bytes.Clone(start), end: bytes.Clone(end), endNil: end == nil,
	}
}

func lower(start []byte) btreemap.LowerBound[[]byte] {
	if len(start) == 0 {
		return btreemap.Min[[]byte]()
	}
	return btreemap.GE(start)
}

func upper(end []byte) btreemap.UpperBound[[]byte] {
	if end == nil {
		return btreemap.Max[[]byte]()
	}
	return btreemap.LT(end)
}

// memCursorChunk is the number of pairs a memCursor reads at a time.
const memCursorChunk = 64

// memCursor iterates over a snapshot (a clone) of a tree in chunks: each
// refill seeks past the last key returned, so no goroutine is needed.
type memCursor struct {
	store      *memStore
	tree       *btreemap.BTreeMap[[]byte, []byte]
	reverse    bool
	start, end []byte
	endNil     bool
	buf        [][2][]byte
	pos        int
	last       []byte // last key returned, nil before the first
	started    bool
	done       bool
	closed     bool
	err        error
}

func (c *memCursor) Next() bool {
	if c.done || c.closed {
		return false
	}
	if err := c.store.db.closedErr(); err != nil {
		c.err, c.done = wrap(c.store.name, c.store.partition, "range", err), true
		return false
	}
	c.pos++
	if c.pos < len(c.buf) {
		return true
	}
	c.refill()
	if len(c.buf) == 0 {
		c.done = true
		return false
	}
	return true
}

func (c *memCursor) refill() {
	c.buf, c.pos = c.buf[:0], 0
	collect := func(k, v []byte) bool {
		c.buf = append(c.buf, [2][]byte{k, v})
		return len(c.buf) < memCursorChunk
	}
	var end []byte
	if !c.endNil {
		end = c.end
	}
	if !c.reverse {
		lo := lower(c.start)
		if c.started {
			lo = btreemap.GT(c.last)
		}
		c.tree.AscendFunc(lo, upper(end), collect)
	} else {
		hi := upper(end)
		if c.started {
			hi = btreemap.LT(c.last)
		}
		c.tree.DescendFunc(hi, lower(c.start), collect)
	}
	c.started = true
	if len(c.buf) > 0 {
		c.last = c.buf[len(c.buf)-1][0]
	}
}

// Reseek implements Reseeker: the cursor reads the same snapshot.
func (c *memCursor) Reseek(start, end []byte) bool {
	if c.closed || c.err != nil || c.store.check("range") != nil {
		return false
	}
	c.start = append(c.start[:0], start...)
	c.end, c.endNil = append(c.end[:0], end...), end == nil
	c.buf, c.pos, c.last, c.started = c.buf[:0], 0, nil, false
	c.done = end != nil && bytes.Compare(start, end) >= 0
	return true
}

func (c *memCursor) Key() []byte {
	if c.done || c.closed || c.pos >= len(c.buf) || !c.started {
		return nil
	}
	return c.buf[c.pos][0]
}

func (c *memCursor) Value() []byte {
	if c.done || c.closed || c.pos >= len(c.buf) || !c.started {
		return nil
	}
	return c.buf[c.pos][1]
}

func (c *memCursor) All() iter.Seq2[[]byte, []byte] { return cursorAll(c) }
func (c *memCursor) Err() error                     { return c.err }

func (c *memCursor) Close() error {
	if !c.closed {
		c.closed = true
		c.tree, c.buf = nil, nil
	}
	return c.err
}

func (db *MemoryDB) closedErr() error {
	if db.closed.Load() {
		return ErrClosed
	}
	return nil
}
