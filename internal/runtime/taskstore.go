package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"unsafe"

	"github.com/RaduBerinde/btreemap"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/store"
)

// pending is an uncommitted write: a value, or a deletion.
type pending struct {
	value []byte
	del   bool
}

// write is one store write in write order, for a store without record
// cache.
type write struct {
	key string
	p   pending
	end *keyRange // a range deletion [end.start, end.end): no changelog record
}

// keyRange is a range deletion [start, end); noEnd: no upper bound.
type keyRange struct {
	start, end string
	noEnd      bool
}

// covers reports whether r holds k.
func (r *keyRange) covers(k string) bool {
	return k >= r.start && (r.noEnd || k < r.end)
}

// covered reports whether a range of rs holds k.
func covered(rs []keyRange, k string) bool {
	for i := range rs {
		if rs[i].covers(k) {
			return true
		}
	}
	return false
}

// cacheEntryOverhead is what the record cache counts for one entry on top
// of its key and value bytes: the map slot (string header and slot
// pointer, load factor), the slot (key and value headers, flag: 48
// bytes), and the rounding of the key and value allocations to their size
// classes. A store that is range scanned also indexes its entries (about
// 32 bytes more each), which this does not count.
const cacheEntryOverhead = 96

// slot holds the newest uncommitted write of one key. A slot is changed
// in place only while no Range iteration is live; otherwise a write
// replaces it, so that the iterations keep the slots they started with.
type slot struct {
	key string
	p   pending
}

// hugeValue is the length above which a value makes its overlay huge
// (see taskStore.curHuge).
const hugeValue = 1 << 20

// slabSize is the number of slots allocated at once.
const slabSize = 64

// slotIndex orders the slots of an overlay by key.
type slotIndex = btreemap.BTreeMap[string, *slot]

// overlay holds uncommitted writes: a map for point reads and writes in
// O(1), and, once the store has been range scanned, a B-tree index of the
// same slots in key order, so that a range scan costs O(log n + writes in
// range) rather than O(n). The index changes only when a key is added or
// removed, or a slot replaced; a store that is never scanned (counts,
// aggregates) pays nothing for it.
type overlay struct {
	m   map[string]*slot
	idx *slotIndex // nil until the first range scan
}

// overlayDegree is the B-tree degree of an overlay's index: nodes of up
// to 31 items, as the memory store uses.
const overlayDegree = 16

func newOverlay(indexed bool) *overlay { return newOverlayMap(indexed, nil) }

// newOverlayMap returns an empty overlay on m, an empty map (nil: a new
// one).
func newOverlayMap(indexed bool, m map[string]*slot) *overlay {
	if m == nil {
		m = map[string]*slot{}
	}
	o := &overlay{m: m}
	if indexed {
		o.idx = btreemap.New[string, *slot](overlayDegree, strings.Compare)
	}
	return o
}

// index returns o's index, built from its map on first use.
func (o *overlay) index() *slotIndex {
	if o.idx == nil {
		keys := slices.Sorted(maps.Keys(o.m))
		o.idx = btreemap.New[string, *slot](overlayDegree, strings.Compare)
		for _, k := range keys {
			o.idx.ReplaceOrInsert(k, o.m[k])
		}
	}
	return o.idx
}

// all yields the writes of o: in key order when o is indexed.
func (o *overlay) all() iter.Seq2[string, *slot] {
	if o.idx == nil {
		return maps.All(o.m)
	}
	return o.idx.Ascend(btreemap.Min[string](), btreemap.Max[string]())
}

// cacheSize is the number of bytes a cached write of key counts for.
func cacheSize(key string, p pending) int64 {
	return int64(len(key)+len(p.value)) + cacheEntryOverhead
}

// undoEntry restores one key of taskStore.cur when a record is skipped.
type undoEntry struct {
	key     string
	prev    pending
	had     bool
	removed bool // key's write prev was removed by DeleteRange or forgotten by Delete: put it back
	rng     bool // a range was added to curRanges: drop it
}

// taskStore is a task's partition of a store (topology.KV): the store
// handle plus the task's uncommitted writes.
//
// With the record cache on (the default), cur is a write-back cache: the
// newest value per written key, whose bytes the worker counts against its
// share of CacheMaxBytes (and whose keys against MaxUncommittedRecords);
// crossing either bound commits early. A commit appends one changelog
// record per key of cur, so repeated writes of a hot key between two
// commits cost one changelog record and one store write, and a key
// written and deleted between them, absent before, costs none (Delete).
// Without record cache (CacheMaxBytes(0)), every write is also kept in
// log, in write order, and a commit appends one changelog record per
// write; cur then only serves reads.
//
// The commit hands cur (and log) over as sent, and once the commit
// succeeds sent is applied to the store, in one batch with the offset of
// its last changelog record. State is therefore always a prefix of the
// changelog. The commit's goroutine applies it as soon as the broker
// call returns (writeSent), while the worker may read sent and the store
// (the two agree on every key sent writes); the worker forgets sent when
// it awaits the commit.
//
// cur and sent (overlay) index their writes in key order, so that Range
// visits only the writes in its range. A Range iteration holds the
// indexes as of its first step: sent is never changed once handed off;
// cur's index is cloned (lazily, copy-on-write) by the first change to it
// while an iteration holds it, and while iterations are live a write
// replaces a key's slot instead of changing it, so no iteration sees
// writes made during it.
type taskStore struct {
	w         *worker
	t         *task
	name      string
	changelog string // broker topic name
	st        store.Store
	noCache   bool        // every write is its own changelog record
	cur       *overlay    // since the last hand-off: newest value per key; nil when none
	live      int         // Range iterations in progress: slots are not changed in place
	ranged    bool        // Range has been called: overlays are indexed from the start
	slab      []slot      // slots allocated for the next writes
	idxShared bool        // a live iteration holds cur.idx: clone it before changing it
	log       []write     // since the last hand-off, every write (noCache only)
	bytes     int64       // cacheSize of cur's entries (cache on only)
	sent      *overlay    // in the commit in flight; nil when none
	sentLog   []write     // in the commit in flight (noCache only)
	sentOff   int64       // offset of sent's last changelog record
	undo      []undoEntry // cur's changes by the record being processed
	undoBuf   []byte      // copies of the values undo holds whose bytes cur reused
	undoLog   int         // len(log) when the record being processed began
	tracking  bool        // undo is being recorded
	batch     store.Batch
	// cursorBufs are the buffers of Range's overlay cursors not in use.
	cursorBufs [][]cursorEntry
	// kept is a cursor on st that Range keeps between its iterations
	// and reseeks (store.Reseeker), so that a run of small lookups (a
	// join's, a session's) costs a seek each rather than a new Pebble
	// iterator; nil when none is kept. A cursor reads the store as of
	// its creation: view numbers the store's states, and a cursor of an
	// older one (keptView, or the view when Range took it) is closed
	// rather than kept (see newView).
	kept     store.Cursor
	keptView uint64
	view     uint64
	// heldIdx is cur's index as live Range iterations took it, and held
	// how many of them hold it (heldIdx nil: none). When the last one
	// ends and heldIdx is still cur's index, nothing holds it: idxShared
	// is cleared, so that the writes after a scan (a join's next record)
	// change the index in place rather than copy its nodes
	// (copy-on-write) for a scan that is over.
	heldIdx *slotIndex
	held    int
	// recycle says the overlay of a commit that succeeded is reused
	// rather than left to the garbage collector: its slots, with their
	// keys and value buffers, become the slots of the next writes of the
	// same keys (done holds them until then), and its map, emptied, the
	// map of a later overlay (freeMap). A store whose keys recur from
	// one commit to the next then writes without allocating. Off without
	// record cache (the write log holds the values) and for the Stepper
	// (its caller keeps the committed records, whose values are the
	// slots').
	recycle bool
	done    *overlay
	freeMap map[string]*slot
	// curHuge and sentHuge say that cur and sent hold a value of more
	// than hugeValue bytes: such an overlay is not recycled, so that a
	// huge value is garbage once its commit is done rather than kept for
	// a next write of its key that may never come.
	curHuge, sentHuge bool
	// Range deletions (DeleteRange) since the last hand-off and in the
	// commit in flight. cur and sent hold only writes made after their
	// ranges: a range hides older writes and stored keys.
	curRanges, sentRanges []keyRange
	// fence holds queries of the store back while a commit of its
	// writes is in flight (see commitFence).
	fence commitFence
	// hit is cur's slot of the key the last GetAppend found there (nil:
	// none): the write of the same key that usually follows (an
	// aggregation's read, modify, write) takes it without a second map
	// lookup. Every change to cur's set of slots clears it.
	hit *slot
	// m are the store partition's published metrics; hits and misses
	// count the reads the uncommitted writes answered and those that
	// read st, not published yet (taskmetrics.go).
	m            *storeMetrics
	hits, misses uint64
}

func (s *taskStore) Get(key []byte) ([]byte, bool, error) {
	if s.st == nil {
		return nil, false, fmt.Errorf("store %s/%d: %w", s.name, s.t.id.Partition, store.ErrClosed)
	}
	// The lookup key is not retained: no copy of it is needed.
	k := unsafe.String(unsafe.SliceData(key), len(key))
	if s.cur != nil {
		if sl, ok := s.cur.m[k]; ok {
			s.hits++
			return pendingValue(sl.p)
		}
	}
	if covered(s.curRanges, k) {
		s.hits++
		return nil, false, nil
	}
	if s.sent != nil {
		if sl, ok := s.sent.m[k]; ok {
			s.hits++
			return pendingValue(sl.p)
		}
	}
	if covered(s.sentRanges, k) {
		s.hits++
		return nil, false, nil
	}
	s.misses++
	v, ok, err := s.st.Get(key)
	if err != nil {
		s.t.noteCorrupt(s.name, err)
	}
	return v, ok, err
}

// set makes a copy of value (del: a deletion) key's uncommitted write,
// or value itself when own (the caller gave it up: see PutOwned). It
// returns the key as cur holds it, the write as cur holds it, and the
// write it replaces (prev, had). When key's slot can be changed in place
// (no Range iteration is live) and its value buffer fits value, the
// bytes are copied into it (unless own): prev's bytes are then copied
// first, into undoBuf, when keepPrev (undo keeps prev until the record
// ends).
func (s *taskStore) set(key, value []byte, del, keepPrev, own bool) (ks string, p, prev pending, had bool) {
	if s.cur == nil {
		s.cur, s.idxShared = newOverlayMap(s.ranged, s.freeMap), false
		s.freeMap = nil
	}
	sl, ok := s.hit, true
	s.hit = nil
	if sl == nil || sl.key != string(key) {
		sl, ok = s.cur.m[string(key)]
	}
	if ok {
		if s.live == 0 {
			prev = sl.p
			if !s.noCache && !del && !own && !prev.del && fits(prev.value, value) {
				if keepPrev {
					prev.value = s.keep(prev.value)
				}
				sl.p.value = append(sl.p.value[:0], value...)
			} else {
				sl.p = newPending(value, del, own)
			}
			return sl.key, sl.p, prev, true
		}
		ks, prev, had = sl.key, sl.p, true
	} else if sl := s.reuse(key); sl != nil {
		// The slot of key in the last commit: its key and its buffer.
		if !del && !own && !sl.p.del && fits(sl.p.value, value) {
			sl.p.value = append(sl.p.value[:0], value...)
		} else {
			sl.p = newPending(value, del, own)
		}
		s.insert(sl)
		return sl.key, sl.p, pending{}, false
	} else {
		ks = string(key)
	}
	if len(s.slab) == cap(s.slab) {
		s.slab = make([]slot, 0, slabSize)
	}
	s.slab = append(s.slab, slot{key: ks, p: newPending(value, del, own)})
	ns := &s.slab[len(s.slab)-1]
	s.insert(ns)
	return ks, ns.p, prev, had
}

// insert makes sl the slot of its key in cur.
func (s *taskStore) insert(sl *slot) {
	s.cur.m[sl.key] = sl
	if s.cur.idx != nil {
		s.index().ReplaceOrInsert(sl.key, sl)
	}
}

// reuse takes key's slot out of the overlay of the last commit (done),
// nil if it has none.
func (s *taskStore) reuse(key []byte) *slot {
	if s.done == nil {
		return nil
	}
	sl, ok := s.done.m[string(key)]
	if !ok {
		return nil
	}
	delete(s.done.m, sl.key)
	return sl
}

// newPending returns a write of a copy of value, or of value itself when
// own (never nil: nil is a deletion), or a deletion when del.
func newPending(value []byte, del, own bool) pending {
	switch {
	case del:
		return pending{del: true}
	case own && value != nil:
		return pending{value: value}
	}
	return pending{value: append([]byte{}, value...)}
}

// fits reports whether value may be copied into buf's memory: it fits,
// and buf is not much larger (a value that shrank does not keep a large
// buffer).
func fits(buf, value []byte) bool {
	return cap(buf) >= len(value) && cap(buf) <= 2*len(value)+64
}

// keep returns a copy of v in undoBuf, valid until the next record.
func (s *taskStore) keep(v []byte) []byte {
	n := len(s.undoBuf)
	s.undoBuf = append(s.undoBuf, v...)
	return s.undoBuf[n:len(s.undoBuf):len(s.undoBuf)]
}

// unset removes key's uncommitted write and returns it.
func (s *taskStore) unset(key string) pending {
	s.hit = nil
	sl := s.cur.m[key]
	delete(s.cur.m, key)
	if s.cur.idx != nil {
		s.index().Delete(key)
	}
	return sl.p
}

// index returns cur's index for a change: cloned first when a live Range
// iteration holds it.
func (s *taskStore) index() *slotIndex {
	if s.idxShared {
		s.cur.idx, s.idxShared = s.cur.idx.Clone(), false
	}
	return s.cur.idx
}

func pendingValue(p pending) ([]byte, bool, error) {
	if p.del {
		return nil, false, nil
	}
	return bytes.Clone(p.value), true, nil
}

// GetAppend implements topology.KV.GetAppend.
func (s *taskStore) GetAppend(dst, key []byte) ([]byte, bool, error) {
	if s.st == nil {
		return dst, false, fmt.Errorf("store %s/%d: %w", s.name, s.t.id.Partition, store.ErrClosed)
	}
	k := unsafe.String(unsafe.SliceData(key), len(key))
	s.hit = nil
	if s.cur != nil {
		if sl, ok := s.cur.m[k]; ok {
			s.hit = sl
			s.hits++
			return appendPending(dst, sl.p)
		}
	}
	if covered(s.curRanges, k) {
		s.hits++
		return dst, false, nil
	}
	if s.sent != nil {
		if sl, ok := s.sent.m[k]; ok {
			s.hits++
			return appendPending(dst, sl.p)
		}
	}
	if covered(s.sentRanges, k) {
		s.hits++
		return dst, false, nil
	}
	s.misses++
	v, ok, err := s.st.Get(key)
	if err != nil {
		s.t.noteCorrupt(s.name, err)
		return dst, false, err
	}
	if !ok {
		return dst, false, nil
	}
	return append(dst, v...), true, nil
}

func appendPending(dst []byte, p pending) ([]byte, bool, error) {
	if p.del {
		return dst, false, nil
	}
	return append(dst, p.value...), true, nil
}

func (s *taskStore) Put(key, value []byte) error { return s.write(key, value, false, false) }

// PutOwned implements topology.KV.PutOwned: value becomes the write's
// value without a copy.
func (s *taskStore) PutOwned(key, value []byte) error { return s.write(key, value, false, true) }

// Delete implements topology.KV.Delete. A key written since the last
// hand-off and absent under that write (see absentBelow) is forgotten
// rather than deleted: it makes no changelog record and no deletion in
// the store. A key rewritten under a new name while it lives, as a
// session is on each record that extends it, then leaves one deletion
// per commit instead of one per rewrite, which every later range scan
// of its neighbours would step over until Pebble compacts it away.
func (s *taskStore) Delete(key []byte) error {
	if s.st != nil && !s.noCache && s.cur != nil {
		if sl, ok := s.cur.m[string(key)]; ok && !sl.p.del {
			absent, err := s.absentBelow(key)
			if err != nil {
				return err
			}
			if absent {
				s.forget(sl.key)
				return nil
			}
		}
	}
	return s.write(key, nil, true, false)
}

// absentBelow reports whether key reads as absent once cur's write of it
// is forgotten: deleted by a range deletion of cur or sent, deleted by
// sent, or, unless sent writes it, absent from the store. Forgetting the
// write then leaves the store, and a restore from the changelog, as a
// deletion would: the changelog's last record of key (in sent's commit,
// or committed before) is a deletion, or there is none, or a range
// deletion has removed key since, which a restore leaves to the step that
// made it, as for every key it removes (see DeleteRange).
func (s *taskStore) absentBelow(key []byte) (bool, error) {
	k := unsafe.String(unsafe.SliceData(key), len(key))
	if covered(s.curRanges, k) {
		return true, nil
	}
	if s.sent != nil {
		if sl, ok := s.sent.m[k]; ok {
			return sl.p.del, nil
		}
	}
	if covered(s.sentRanges, k) {
		return true, nil
	}
	_, ok, err := s.st.Get(key)
	if err != nil {
		s.t.noteCorrupt(s.name, err)
		return false, err
	}
	return !ok, nil
}

// forget removes cur's write of k, which Delete found absent below it.
func (s *taskStore) forget(k string) {
	p := s.unset(k)
	if s.tracking {
		s.undo = append(s.undo, undoEntry{key: k, prev: p, had: true, removed: true})
	}
	s.addBytes(-cacheSize(k, p))
	s.w.pending--
}

// write sets key to a copy of value (value itself when own), or deletes
// it (del).
func (s *taskStore) write(key, value []byte, del, own bool) error {
	if s.st == nil {
		return fmt.Errorf("store %s/%d: %w", s.name, s.t.id.Partition, store.ErrClosed)
	}
	if limit := s.w.app.maxRecordBytes; limit > 0 {
		rec := broker.Record{Topic: s.changelog, Partition: s.t.id.Partition, Key: key, Value: value}
		if size := broker.RecordSize(&rec); size > limit {
			return fmt.Errorf("store %s: %w", s.name, &broker.RecordTooLargeError{Topic: rec.Topic, Size: size, Max: limit})
		}
	}
	ks, p, prev, had := s.set(key, value, del, s.tracking, own)
	if len(value) > hugeValue {
		s.curHuge = true
	}
	if s.tracking {
		s.undo = append(s.undo, undoEntry{key: ks, prev: prev, had: had})
	}
	if s.noCache {
		s.log = append(s.log, write{key: ks, p: p})
		s.w.pending++
		return nil
	}
	if had {
		s.addBytes(-cacheSize(ks, prev))
	} else {
		s.w.pending++
	}
	s.addBytes(cacheSize(ks, p))
	return nil
}

// DeleteRange implements topology.KV.DeleteRange: it forgets the
// uncommitted writes in [start, end), hides the stored keys there from Get
// and Range, and removes them from the store at the next commit, with one
// range deletion in the batch that records the changelog offset. It
// writes no changelog record. The range counts as one uncommitted record
// (MaxUncommittedRecords). Errors: store.ErrClosed.
func (s *taskStore) DeleteRange(start, end []byte) error {
	if s.st == nil {
		return fmt.Errorf("store %s/%d: %w", s.name, s.t.id.Partition, store.ErrClosed)
	}
	r := keyRange{start: string(start), end: string(end), noEnd: end == nil}
	if !r.noEnd && r.end <= r.start {
		return nil
	}
	if s.cur != nil {
		hi := btreemap.Max[string]()
		if !r.noEnd {
			hi = btreemap.LT(r.end)
		}
		var keys []string
		s.cur.index().AscendFunc(btreemap.GE(r.start), hi, func(k string, _ *slot) bool {
			keys = append(keys, k)
			return true
		})
		for _, k := range keys {
			p := s.unset(k)
			if s.tracking {
				s.undo = append(s.undo, undoEntry{key: k, prev: p, had: true, removed: true})
			}
			if !s.noCache {
				s.addBytes(-cacheSize(k, p))
				s.w.pending--
			}
		}
	}
	s.curRanges = append(s.curRanges, r)
	if s.tracking {
		s.undo = append(s.undo, undoEntry{rng: true})
	}
	if s.noCache {
		s.log = append(s.log, write{end: &s.curRanges[len(s.curRanges)-1]})
	}
	s.w.pending++
	return nil
}

// addBytes counts n more cached bytes in s and its worker.
func (s *taskStore) addBytes(n int64) {
	s.bytes += n
	s.w.cacheBytes += n
}

// records is the number of changelog records the writes since the last
// hand-off make.
// hand-off make, plus one per range deletion.
func (s *taskStore) records() int {
	if s.noCache {
		return len(s.log) // range deletions included
	}
	n := len(s.curRanges)
	if s.cur != nil {
		n += len(s.cur.m)
	}
	return n
}

// dirty reports whether s has uncommitted writes or range deletions since
// the last hand-off.
func (s *taskStore) dirty() bool {
	return (s.cur != nil && len(s.cur.m) > 0) || len(s.curRanges) > 0
}

// appendChangelog appends the changelog records of the writes since the
// last hand-off: with the record cache, one per written key with its
// newest value (nil for a deletion); without, one per write in write
// order.
func (s *taskStore) appendChangelog(out []broker.Record) []broker.Record {
	rec := func(k string, p pending) broker.Record {
		// The key's bytes are the string's: the broker only reads them.
		r := broker.Record{Topic: s.changelog, Partition: s.t.id.Partition, Key: stringBytes(k)}
		if !p.del {
			r.Value = p.value
		}
		return r
	}
	if s.noCache {
		for _, w := range s.log {
			if w.end == nil {
				out = append(out, rec(w.key, w.p))
			}
		}
		return out
	}
	if s.cur != nil {
		for k, sl := range s.cur.all() {
			out = append(out, rec(k, sl.p))
		}
	}
	return out
}

// Range merges the uncommitted writes (cur over sent) with a cursor on
// the store. It visits only the writes in [start, end): O(log n) to seek
// each of the two overlays, then one step per key.
func (s *taskStore) Range(start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
	var err error
	seq := func(yield func([]byte, []byte) bool) {
		if s.st == nil {
			err = fmt.Errorf("store %s/%d: %w", s.name, s.t.id.Partition, store.ErrClosed)
			return
		}
		// The indexes as of this first step: sent is never changed, cur's
		// index is cloned before its next change, and no slot changes
		// while the iteration is live.
		s.live++
		defer func() { s.live-- }()
		s.ranged = true
		hi := btreemap.Max[string]()
		if end != nil {
			hi = btreemap.LT(string(end))
		}
		curR, sentR := s.curRanges, s.sentRanges // append-only until hand-off
		var curIdx, sentIdx *slotIndex
		if s.cur != nil {
			curIdx = s.cur.index()
			s.idxShared = true
			if s.heldIdx != curIdx {
				s.heldIdx, s.held = curIdx, 0 // an older index: its holders hold no more cur's
			}
			s.held++
			defer func() {
				if s.heldIdx != curIdx {
					return // another index is cur's, or held since
				}
				if s.held--; s.held == 0 {
					s.heldIdx = nil
					if s.cur != nil && s.cur.idx == curIdx {
						s.idxShared = false
					}
				}
			}()
		}
		if s.sent != nil {
			sentIdx = s.sent.index()
		}
		cur, sent := s.cursor(curIdx, hi), s.cursor(sentIdx, hi)
		defer func() {
			cur.release(s)
			sent.release(s)
		}()
		cur.seek(btreemap.GE(string(start)), cursorBatchMin)
		sent.seek(btreemap.GE(string(start)), cursorBatchMin)
		c, view := s.storeCursor(start, end)
		defer func() {
			if err = errors.Join(err, s.releaseCursor(c, view)); err != nil {
				s.t.noteCorrupt(s.name, err)
			}
		}()
		ok := c.Next()
		for {
			// The smallest key of the three sources; on a tie cur
			// replaces sent, and both replace the store.
			var k string
			var p pending
			switch {
			case cur.ok && (!sent.ok || cur.key <= sent.key):
				k, p = cur.key, cur.p
			case sent.ok:
				k, p = sent.key, sent.p
			default:
				if !ok {
					return
				}
				if ck := c.Key(); !hidden(ck, curR, sentR) && !yield(ck, c.Value()) {
					return
				}
				ok = c.Next()
				continue
			}
			if ok {
				if ck := c.Key(); string(ck) < k {
					if !hidden(ck, curR, sentR) && !yield(ck, c.Value()) {
						return
					}
					ok = c.Next()
					continue
				} else if string(ck) == k {
					ok = c.Next() // replaced by the write
				}
			}
			if cur.ok && cur.key == k {
				cur.next()
			} else if covered(curR, k) {
				p.del = true // a write in flight, deleted since
			}
			if sent.ok && sent.key == k {
				sent.next()
			}
			// The yielded key may not be modified (KV.Range): the
			// string's bytes serve.
			if !p.del && !yield(stringBytes(k), p.value) {
				return
			}
		}
	}
	return seq, func() error { return err }
}

// storeCursor returns a cursor on st over [start, end) and the view it
// reads: the kept cursor reseeked, when it reads the current view, else a
// new one. Iterations nested in one another each get their own.
func (s *taskStore) storeCursor(start, end []byte) (store.Cursor, uint64) {
	if c := s.kept; c != nil {
		s.kept = nil
		if r, ok := c.(store.Reseeker); ok && s.keptView == s.view && r.Reseek(start, end) {
			return c, s.view
		}
		// An older view, or a cursor that cannot be reused: its
		// iteration reported any error it had.
		_ = c.Close()
	}
	return s.st.Range(start, end), s.view
}

// releaseCursor keeps c, a cursor of storeCursor, for the next
// iteration, or closes it: when it failed, reads an older view than the
// current one, cannot be reseeked, or another cursor is kept. It returns
// c's error.
func (s *taskStore) releaseCursor(c store.Cursor, view uint64) error {
	if err := c.Err(); err != nil || view != s.view || s.kept != nil {
		return errors.Join(err, c.Close())
	}
	if _, ok := c.(store.Reseeker); !ok {
		return c.Close()
	}
	s.kept, s.keptView = c, view
	return nil
}

// newView closes the kept cursor: the store is about to change (a commit
// is handed off, whose writes the commit's goroutine applies), or has
// changed (a commit ended). A cursor opened before the writes of sent
// were applied reads correct values only while sent is there to cover
// them, so the views end at both steps; ending at each hand-off, and
// when the worker waits for input with nothing to commit, also bounds
// how long a kept cursor pins the store's files.
func (s *taskStore) newView() {
	s.view++
	if c := s.kept; c != nil {
		s.kept = nil
		_ = c.Close() // its iterations reported its errors
	}
}

// stringBytes returns the bytes of k, which must not be modified.
func stringBytes(k string) []byte {
	if k == "" {
		return []byte{} // a key: not nil
	}
	return unsafe.Slice(unsafe.StringData(k), len(k))
}

// hidden reports whether a stored key is deleted by a range of curR or
// sentR.
func hidden(k []byte, curR, sentR []keyRange) bool {
	if len(curR) == 0 && len(sentR) == 0 {
		return false
	}
	ks := unsafe.String(unsafe.SliceData(k), len(k))
	return covered(curR, ks) || covered(sentR, ks)
}

// overlayCursor steps through the writes of an overlay's index below hi,
// in key order. It reads the index in batches, one search of the B-tree
// each, into a buffer it steps through: a step costs a copy, not a search.
// The batches grow from cursorBatchMin to the buffer's capacity, so that a
// narrow range (a window or session lookup) reads only a few writes it
// does not visit. The index and its slots do not change while a Range
// iteration is live (see taskStore), so the buffered writes are those a
// search at each step would find.
type overlayCursor struct {
	idx  *slotIndex // nil: no writes
	hi   btreemap.UpperBound[string]
	buf  []cursorEntry // the batch read; buf[pos] is the current write
	pos  int
	more bool // the batch was full: the index may hold writes after it
	key  string
	p    pending
	ok   bool
}

// cursorEntry is a write an overlayCursor has read.
type cursorEntry struct {
	key string
	p   pending
}

// cursorBatchMin is the size of an overlayCursor's first batch; later
// batches double, up to cursorBatchMax (the buffer's capacity).
const (
	cursorBatchMin = 8
	cursorBatchMax = 256
)

// seek positions c at the first write from lo on, reading a batch of n
// writes (at most the buffer's capacity).
func (c *overlayCursor) seek(lo btreemap.LowerBound[string], n int) {
	c.ok, c.more, c.pos = false, false, 0
	if c.idx == nil {
		return
	}
	n = min(n, cap(c.buf))
	clear(c.buf)
	c.buf = c.buf[:0]
	c.idx.AscendFunc(lo, c.hi, func(k string, sl *slot) bool {
		c.buf = append(c.buf, cursorEntry{key: k, p: sl.p})
		return len(c.buf) < n
	})
	c.more = len(c.buf) == n
	c.set()
}

// set makes buf[pos] the current write, if any.
func (c *overlayCursor) set() {
	if c.ok = c.pos < len(c.buf); c.ok {
		e := &c.buf[c.pos]
		c.key, c.p = e.key, e.p
	}
}

// next moves c to the write after its current one.
func (c *overlayCursor) next() {
	c.pos++
	if c.pos < len(c.buf) || !c.more {
		c.set()
		return
	}
	c.seek(btreemap.GT(c.key), 2*len(c.buf))
}

// release gives c's buffer back to s for the next cursor.
func (c *overlayCursor) release(s *taskStore) {
	if c.buf != nil {
		clear(c.buf) // no references to the writes' values
		s.cursorBufs = append(s.cursorBufs, c.buf[:0])
		c.buf = nil
	}
}

// cursor returns a cursor on idx (nil: no writes) below hi, with a buffer
// of s's (release gives it back).
func (s *taskStore) cursor(idx *slotIndex, hi btreemap.UpperBound[string]) overlayCursor {
	c := overlayCursor{idx: idx, hi: hi}
	if idx == nil {
		return c
	}
	if n := len(s.cursorBufs); n > 0 {
		c.buf, s.cursorBufs = s.cursorBufs[n-1], s.cursorBufs[:n-1]
	} else {
		c.buf = make([]cursorEntry, 0, cursorBatchMax)
	}
	return c
}

// handOff moves the uncommitted writes to sent, for the commit being
// started. The previous commit has been awaited, so sent is empty.
func (s *taskStore) handOff() {
	s.newView()
	s.w.pending -= s.records()
	s.addBytes(-s.bytes)
	s.sent, s.cur, s.idxShared, s.hit = s.cur, nil, false, nil
	s.sentHuge, s.curHuge = s.curHuge, false
	s.sentLog, s.log = s.log, nil
	s.sentRanges, s.curRanges = s.curRanges, nil
	s.sentOff = -1 // set by the commit if it holds changelog records of s
	s.undo, s.tracking = s.undo[:0], false
}

// discard forgets the uncommitted writes (not those in flight).
func (s *taskStore) discard() {
	s.w.pending -= s.records()
	s.addBytes(-s.bytes)
	s.cur, s.idxShared, s.log, s.curRanges, s.hit = nil, false, nil, nil, nil
	s.curHuge = false
	s.undo, s.tracking = s.undo[:0], false
}

// dropSent forgets the writes of a commit that failed.
func (s *taskStore) dropSent() {
	s.newView()
	s.sent, s.sentLog, s.sentRanges, s.sentHuge = nil, nil, nil, false
}

// retireSent forgets the writes of a commit that succeeded, which the
// store holds now. With recycle, their overlay becomes done, whose slots
// the next writes of its keys take, and the previous done's map, emptied,
// the map of the next overlay; unless it holds a huge value (sentHuge).
func (s *taskStore) retireSent() {
	if s.recycle && s.sent != nil && !s.sentHuge {
		if s.done != nil {
			clear(s.done.m)
			s.freeMap = s.done.m
		}
		s.done = s.sent
		s.done.idx = nil // its slots move to other overlays
	}
	s.dropSent()
}

// applySent writes sent to the store (writeSent) and forgets it.
func (s *taskStore) applySent() error {
	err := s.writeSent()
	s.dropSent()
	if err != nil {
		s.t.noteCorrupt(s.name, err)
	}
	return err
}

// writeSent writes sent to the store with the offset of its last
// changelog record, after the commit that wrote them succeeded. Without
// record cache the batch holds every write in write order, as the
// changelog does. It changes no field of s but its batch, so that the
// commit's goroutine may call it while the worker reads s.
func (s *taskStore) writeSent() error {
	sent, sentLog, sentRanges := s.sent, s.sentLog, s.sentRanges
	if (sent == nil || len(sent.m) == 0) && len(sentRanges) == 0 {
		return nil
	}
	s.batch.Reset()
	defer s.batch.Reset() // drop its references to the values (PutShared)
	add := func(k string, p pending) {
		if p.del {
			s.batch.Delete([]byte(k))
		} else {
			// p.value is never changed (Put copies into it): no copy.
			s.batch.PutShared([]byte(k), p.value)
		}
	}
	delRange := func(r *keyRange) {
		var end []byte
		if !r.noEnd {
			end = []byte(r.end)
		}
		s.batch.DeleteRange([]byte(r.start), end)
	}
	if s.noCache {
		for _, w := range sentLog {
			if w.end != nil {
				delRange(w.end)
			} else {
				add(w.key, w.p)
			}
		}
	} else {
		// The writes of sent were all made after its ranges.
		for i := range sentRanges {
			delRange(&sentRanges[i])
		}
		if sent != nil {
			// The map, not the index: a Range of the worker may build
			// sent's index meanwhile. The batch needs no key order.
			for k, sl := range sent.m {
				add(k, sl.p)
			}
		}
	}
	if s.sentOff >= 0 {
		s.batch.SetOffset(s.sentOff)
	}
	if err := s.st.Apply(&s.batch); err != nil {
		return fmt.Errorf("commit: %w", err) // the store names itself
	}
	return nil
}

// beginRecord starts recording the changes of one input record (or
// punctuation), so that skipRecord can undo them.
func (s *taskStore) beginRecord() {
	s.undo, s.undoLog, s.tracking = s.undo[:0], len(s.log), true
	s.undoBuf = dsl.Scratch(s.undoBuf)[:0] // not kept after a huge value
}

// skipRecord undoes the writes of the record being processed.
func (s *taskStore) skipRecord() {
	s.undoTo(storeMark{log: s.undoLog})
	s.tracking = false
}

// storeMark is a position in a store's record of changes: the writes
// after it can be undone (undoTo) while the rest of the record's stay.
type storeMark struct{ undo, log int }

// mark returns the position of the changes recorded so far, which
// beginRecord has started recording.
func (s *taskStore) mark() storeMark { return storeMark{len(s.undo), len(s.log)} }

// undoTo undoes the writes recorded after m; those before stay recorded.
func (s *taskStore) undoTo(m storeMark) {
	for i := len(s.undo) - 1; i >= m.undo; i-- {
		u := s.undo[i]
		switch {
		case u.rng:
			s.curRanges = s.curRanges[:len(s.curRanges)-1]
			if !s.noCache {
				s.w.pending--
			}
			continue
		case u.removed:
			s.set([]byte(u.key), u.prev.value, u.prev.del, false, false)
			if !s.noCache {
				s.addBytes(cacheSize(u.key, u.prev))
				s.w.pending++
			}
			continue
		}
		var p pending // the write undone
		if u.had {
			_, _, p, _ = s.set([]byte(u.key), u.prev.value, u.prev.del, false, false)
		} else {
			p = s.unset(u.key)
		}
		if !s.noCache {
			s.addBytes(-cacheSize(u.key, p))
			if u.had {
				s.addBytes(cacheSize(u.key, u.prev))
			} else {
				s.w.pending--
			}
		}
	}
	if s.noCache {
		s.w.pending -= len(s.log) - m.log
		clear(s.log[m.log:])
		s.log = s.log[:m.log]
	}
	clear(s.undo[m.undo:])
	s.undo = s.undo[:m.undo]
}

func (s *taskStore) close() error {
	if s.st == nil {
		return nil
	}
	s.w.app.iq.closed(s.name, s.t.id.Partition)
	s.newView()
	err := s.st.Close()
	s.discard()
	s.st, s.sent, s.sentLog, s.done, s.freeMap = nil, nil, nil, nil, nil
	return err
}
