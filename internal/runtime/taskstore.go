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

func newOverlay(indexed bool) *overlay {
	o := &overlay{m: map[string]*slot{}}
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
	removed bool // key's write prev was removed by DeleteRange: put it back
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
// commits cost one changelog record and one store write. Without record
// cache (CacheMaxBytes(0)), every write is also kept in log, in write
// order, and a commit appends one changelog record per write; cur then
// only serves reads.
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
	undoLog   int         // len(log) when the record being processed began
	tracking  bool        // undo is being recorded
	batch     store.Batch
	// Range deletions (DeleteRange) since the last hand-off and in the
	// commit in flight. cur and sent hold only writes made after their
	// ranges: a range hides older writes and stored keys.
	curRanges, sentRanges []keyRange
	// fence holds queries of the store back while a commit of its
	// writes is in flight (see commitFence).
	fence commitFence
}

func (s *taskStore) Get(key []byte) ([]byte, bool, error) {
	if s.st == nil {
		return nil, false, fmt.Errorf("store %s/%d: %w", s.name, s.t.id.Partition, store.ErrClosed)
	}
	// The lookup key is not retained: no copy of it is needed.
	k := unsafe.String(unsafe.SliceData(key), len(key))
	if s.cur != nil {
		if sl, ok := s.cur.m[k]; ok {
			return pendingValue(sl.p)
		}
	}
	if covered(s.curRanges, k) {
		return nil, false, nil
	}
	if s.sent != nil {
		if sl, ok := s.sent.m[k]; ok {
			return pendingValue(sl.p)
		}
	}
	if covered(s.sentRanges, k) {
		return nil, false, nil
	}
	v, ok, err := s.st.Get(key)
	if err != nil {
		s.t.noteCorrupt(s.name, err)
	}
	return v, ok, err
}

// set makes p key's uncommitted write. It returns the key as cur holds
// it and the write it replaces.
func (s *taskStore) set(key []byte, p pending) (ks string, prev pending, had bool) {
	if s.cur == nil {
		s.cur, s.idxShared = newOverlay(s.ranged), false
	}
	if sl, ok := s.cur.m[string(key)]; ok {
		if s.live == 0 {
			prev, sl.p = sl.p, p
			return sl.key, prev, true
		}
		ks, prev, had = sl.key, sl.p, true
	} else {
		ks = string(key)
	}
	if len(s.slab) == cap(s.slab) {
		s.slab = make([]slot, 0, slabSize)
	}
	s.slab = append(s.slab, slot{key: ks, p: p})
	sl := &s.slab[len(s.slab)-1]
	s.cur.m[ks] = sl
	if s.cur.idx != nil {
		s.index().ReplaceOrInsert(ks, sl)
	}
	return ks, prev, had
}

// unset removes key's uncommitted write and returns it.
func (s *taskStore) unset(key string) pending {
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

func (s *taskStore) Put(key, value []byte) error {
	v := append([]byte{}, value...) // never nil: nil is a tombstone
	return s.write(key, pending{value: v})
}

func (s *taskStore) Delete(key []byte) error { return s.write(key, pending{del: true}) }

func (s *taskStore) write(key []byte, p pending) error {
	if s.st == nil {
		return fmt.Errorf("store %s/%d: %w", s.name, s.t.id.Partition, store.ErrClosed)
	}
	if limit := s.w.app.maxRecordBytes; limit > 0 {
		rec := broker.Record{Topic: s.changelog, Partition: s.t.id.Partition, Key: key, Value: p.value}
		if size := broker.RecordSize(&rec); size > limit {
			return fmt.Errorf("store %s: %w", s.name, &broker.RecordTooLargeError{Topic: rec.Topic, Size: size, Max: limit})
		}
	}
	ks, prev, had := s.set(key, p)
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
		r := broker.Record{Topic: s.changelog, Partition: s.t.id.Partition, Key: []byte(k)}
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
		var cur, sent overlayCursor
		if s.cur != nil {
			cur = overlayCursor{idx: s.cur.index(), hi: hi}
			s.idxShared = true
		}
		if s.sent != nil {
			sent = overlayCursor{idx: s.sent.index(), hi: hi}
		}
		cur.seek(btreemap.GE(string(start)))
		sent.seek(btreemap.GE(string(start)))
		c := s.st.Range(start, end)
		defer func() {
			if err = errors.Join(err, c.Close()); err != nil {
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
			if !p.del && !yield([]byte(k), p.value) {
				return
			}
		}
	}
	return seq, func() error { return err }
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
// in key order, by seeking past the last key at each step (O(log n) a
// step).
type overlayCursor struct {
	idx *slotIndex // nil: no writes
	hi  btreemap.UpperBound[string]
	key string
	p   pending
	ok  bool
}

// seek positions c at the first write from lo on.
func (c *overlayCursor) seek(lo btreemap.LowerBound[string]) {
	c.ok = false
	if c.idx == nil {
		return
	}
	c.idx.AscendFunc(lo, c.hi, func(k string, sl *slot) bool {
		c.key, c.p, c.ok = k, sl.p, true
		return false
	})
}

// next moves c to the write after its current one.
func (c *overlayCursor) next() { c.seek(btreemap.GT(c.key)) }

// handOff moves the uncommitted writes to sent, for the commit being
// started. The previous commit has been awaited, so sent is empty.
func (s *taskStore) handOff() {
	s.w.pending -= s.records()
	s.addBytes(-s.bytes)
	s.sent, s.cur, s.idxShared = s.cur, nil, false
	s.sentLog, s.log = s.log, nil
	s.sentRanges, s.curRanges = s.curRanges, nil
	s.sentOff = -1 // set by the commit if it holds changelog records of s
	s.undo, s.tracking = s.undo[:0], false
}

// discard forgets the uncommitted writes (not those in flight).
func (s *taskStore) discard() {
	s.w.pending -= s.records()
	s.addBytes(-s.bytes)
	s.cur, s.idxShared, s.log, s.curRanges = nil, false, nil, nil
	s.undo, s.tracking = s.undo[:0], false
}

// dropSent forgets the writes of a commit that failed.
func (s *taskStore) dropSent() { s.sent, s.sentLog, s.sentRanges = nil, nil, nil }

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
		return fmt.Errorf("store %s/%d: apply commit: %w", s.name, s.t.id.Partition, err)
	}
	return nil
}

// beginRecord starts recording the changes of one input record (or
// punctuation), so that skipRecord can undo them.
func (s *taskStore) beginRecord() {
	s.undo, s.undoLog, s.tracking = s.undo[:0], len(s.log), true
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
			s.set([]byte(u.key), u.prev)
			if !s.noCache {
				s.addBytes(cacheSize(u.key, u.prev))
				s.w.pending++
			}
			continue
		}
		var p pending // the write undone
		if u.had {
			_, p, _ = s.set([]byte(u.key), u.prev)
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
	err := s.st.Close()
	s.discard()
	s.st, s.sent, s.sentLog = nil, nil, nil
	return err
}
