package window

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/internal/windowstore"
	"github.com/duality-streams/duality/stream"
)

// The store's layout is package internal/windowstore's.

// noTime is the stream time before any record.
const noTime = math.MinInt64

// proc is a windowed aggregation's per-task state.
type proc[K, V, A any] struct {
	t       *dsl.Task
	n       *dsl.Node
	store   string
	kv      topology.KV
	kind    Kind
	size    int64 // ms: size, time difference or gap
	advance int64
	grace   int64
	ret     int64
	seg     int64 // segment interval
	final   bool
	stats   *Stats
	late    func(LateRecord[K, V])
	lateLog *lateLog
	kc      codec.Codec[K]
	ac      codec.Codec[A]
	f       fns[K, V, A]
	out     *tablecore.Output[Windowed[K], A]
	logger  *slog.Logger

	st     int64 // stream time
	lowSeg int64 // segments below are empty (noTime: unknown)
	// expAt is the stream time the store's expiry has reached (noTime:
	// none): the stream time before the step's last advance (see expire).
	expAt int64
	// nextClose is a lower bound of the close times in the close index
	// (math.MaxInt64: empty; noTime: unknown), so that emitClosed scans
	// the index only when a window is due.
	nextClose int64
	// closedUpTo is the stream time of the last scan of the close index
	// (noTime: none since the task started): the index holds no entry
	// with a close time at or below it, so scans start after it instead of
	// skipping the deleted entries at the front.
	closedUpTo int64
	// timer fires when something is due (with WithTaskStreamTime; else
	// at the end of time); minSeg is a lower bound of the segment of the
	// oldest stored window (math.MaxInt64: none; noTime: unknown), for
	// its expiry. See rearm.
	timer  *stepTimer
	minSeg int64

	kbuf, ekey, key, ikey, vbuf []byte
	rc                          stream.RecordContext // of the records sent

	// CacheUpdates: the newest update per window since the last flush
	// (nil without the option), in first-update order, with the undo log
	// of the unit of work being run and the metadata of the last record.
	cache map[string]cacheEntry[K, A]
	order []string
	undo  []cacheUndo[K, A]
	last  stream.RecordContext

	// snaps is the in-memory state at the start of the units of work
	// being run, restored when the runtime skips one (dsl.Task.OnSkip);
	// the cache's undo log covers the outer unit.
	snaps dsl.Snapshots[procSnap]
	// item is the item being emitted on its own (dsl.Task.Item).
	item windowItem[K, V, A]
}

// procSnap is the in-memory state of a proc that a failed unit of work
// changes; undo is the length of the cache's undo log.
type procSnap struct {
	st, lowSeg, expAt, nextClose, closedUpTo int64
	undo                                     int
}

// begin snapshots p's in-memory state the first time p runs in a unit
// of work of the task.
func (p *proc[K, V, A]) begin() {
	p.snaps.Take(p.t, func(outer bool) procSnap {
		if outer {
			p.undo = p.undo[:0]
		}
		return procSnap{p.st, p.lowSeg, p.expAt, p.nextClose, p.closedUpTo, len(p.undo)}
	})
}

// skip restores the state of the unit of work being skipped, when p ran
// in it (a sibling step failed after p succeeded, or a step downstream of
// an item p ran in).
func (p *proc[K, V, A]) skip() {
	s, ok := p.snaps.Skipped(p.t)
	if !ok {
		return
	}
	p.st, p.lowSeg, p.expAt, p.nextClose, p.closedUpTo = s.st, s.lowSeg, s.expAt, s.nextClose, s.closedUpTo
	p.rollbackCache(s.undo)
	p.resetTimer()
}

func newProc[K, V, A any](t *dsl.Task, n *dsl.Node, store string, w Windows, cfg config, late func(LateRecord[K, V]), lateLog *lateLog, kc codec.Codec[K], ac codec.Codec[A], f fns[K, V, A]) (emit[K, V], error) {
	var p *proc[K, V, A]
	timer, err := newStepTimer(t, cfg.task, func(ctx context.Context, ts int64) error { return p.fire(ctx, ts) })
	if err != nil {
		return nil, fmt.Errorf("%s %q: stream-time timer: %w", n.Op, n.Name, err)
	}
	out, err := tablecore.NewOutput[Windowed[K], A](t, n)
	if err != nil {
		return nil, err
	}
	kv, err := t.Env().Store(store)
	if err != nil {
		return nil, fmt.Errorf("%s %q: store %q: %w", n.Op, n.Name, store, err)
	}
	ret := w.Retention().Milliseconds()
	p = &proc[K, V, A]{
		t: t, n: n, store: store, kv: kv, timer: timer,
		kind: w.kind, size: w.size.Milliseconds(), advance: w.advance.Milliseconds(),
		grace: w.grace.Milliseconds(), ret: ret, seg: windowstore.SegmentInterval(w.Retention()).Milliseconds(),
		final: cfg.final, stats: cfg.stats, late: late, lateLog: lateLog,
		kc: kc, ac: ac, f: f, out: out,
		logger: t.Env().Logger().With("node", n.Name, "store", store),
		st:     noTime, lowSeg: noTime, expAt: noTime, nextClose: noTime, closedUpTo: noTime, minSeg: noTime,
	}
	if p.stats == nil {
		p.stats = new(Stats)
	}
	p.item.p = p
	t.OnSkip(p.skip)
	if cfg.cache {
		p.cache = map[string]cacheEntry[K, A]{}
		t.OnFlush(p.flushCache)
	}
	b, ok, err := kv.Get(windowstore.MetaKey)
	if err != nil {
		return nil, fmt.Errorf("%s %q: store %q: read stream time: %w", n.Op, n.Name, store, err)
	}
	if ok {
		if p.st, p.expAt, err = readMeta(b); err != nil {
			return nil, fmt.Errorf("%s %q: store %q: %w", n.Op, n.Name, store, err)
		}
		if p.timer.follow {
			p.timer.restoreStreamTime(p.st)
		}
		if err := p.cleanRestored(); err != nil {
			return nil, fmt.Errorf("%s %q: %w", n.Op, n.Name, err)
		}
	}
	if err := p.rearm(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", n.Op, n.Name, err)
	}
	return p.process, nil
}

// readMeta decodes the value of windowstore.MetaKey: the stream time st
// and the stream time expiry has reached (exp; an older store holds the
// stream time alone, expired up to it).
func readMeta(b []byte) (st, exp int64, err error) {
	if len(b) != 8 && len(b) != 16 {
		return 0, 0, fmt.Errorf("stream time: %w: %d bytes", codec.ErrInvalid, len(b))
	}
	st, exp = windowstore.ReadTime(b), windowstore.ReadTime(b)
	if len(b) == 16 {
		exp = windowstore.ReadTime(b[8:])
	}
	if st < -MaxTimestamp || st > MaxTimestamp {
		return 0, 0, fmt.Errorf("stream time: %w: %d ms", codec.ErrInvalid, st)
	}
	if exp != noTime && (exp < -MaxTimestamp || exp > st) {
		return 0, 0, fmt.Errorf("expiry time: %w: %d ms at stream time %d ms", codec.ErrInvalid, exp, st)
	}
	return st, exp, nil
}

// advanceTo moves p's stream time to st (> p.st) and persists it with
// the stream time before (expAt, which expire then reaches).
func (p *proc[K, V, A]) advanceTo(st int64) error {
	p.expAt, p.st = p.st, st
	b := windowstore.AppendTime(p.vbuf[:0], st)
	p.vbuf = windowstore.AppendTime(b, p.expAt)
	if err := p.kv.Put(windowstore.MetaKey, p.vbuf); err != nil {
		return p.storeErr("put", err)
	}
	return nil
}

// cleanRestored deletes what a restore from the changelog may have
// brought back although the step had deleted it by range (KV.DeleteRange):
// the segments expired at expAt and, with final results, the close index
// entries at or below stream time (their windows were emitted). It is
// idempotent and cheap when there is nothing to delete, so it runs
// whenever a task starts with a stream time, before any record,
// punctuation or query of the task's committed state after its first
// commit sees them.
func (p *proc[K, V, A]) cleanRestored() error {
	if p.final {
		if err := p.kv.DeleteRange([]byte{windowstore.SpaceClose}, windowstore.AppendTime([]byte{windowstore.SpaceClose}, p.st+1)); err != nil {
			return p.storeErr("delete range", err)
		}
		p.closedUpTo = p.st
	}
	return p.expire()
}

func (p *proc[K, V, A]) process(ctx context.Context, rc *stream.RecordContext, k K, v V) error {
	// The runtime undoes the store writes of a record that fails (with
	// an error or a panic, here or downstream; under a skip policy it
	// goes on with the next record): so must the in-memory stream time
	// and expiry progress.
	p.begin()
	st, lowSeg, expAt, undo := p.st, p.lowSeg, p.expAt, len(p.undo)
	ok := false
	defer func() {
		if !ok {
			p.st, p.lowSeg, p.expAt, p.nextClose, p.closedUpTo = st, lowSeg, expAt, noTime, noTime
			p.rollbackCache(undo)
		}
	}()
	err := p.processRecord(ctx, rc, k, v)
	if err == nil {
		if err = p.rearm(); err != nil {
			err = p.nodeErr(rc, err)
		}
	}
	ok = err == nil
	return err
}

// punctuate moves stream time to the task's stream time ts
// (WithTaskStreamTime): it emits the final results of the windows that
// closed and expires old ones, as a record would.
func (p *proc[K, V, A]) punctuate(ctx context.Context, ts int64) (err error) {
	if ts <= p.st {
		return nil
	}
	p.begin()
	st, lowSeg, expAt := p.st, p.lowSeg, p.expAt
	rc := &stream.RecordContext{Timestamp: time.UnixMilli(ts)}
	defer func() {
		if r := recover(); r != nil {
			err = &stream.PanicError{Value: r, Stack: debug.Stack()}
		}
		if err != nil {
			p.st, p.lowSeg, p.expAt, p.nextClose, p.closedUpTo = st, lowSeg, expAt, noTime, noTime
			err = p.nodeErr(rc, err)
		}
	}()
	p.t.Current = p.n
	if err := p.advanceTo(ts); err != nil {
		return err
	}
	if p.final {
		if err := p.emitClosed(ctx, rc); err != nil {
			return err
		}
	}
	return p.expire()
}

func (p *proc[K, V, A]) processRecord(ctx context.Context, rc *stream.RecordContext, k K, v V) error {
	p.t.Current = p.n
	if rc.NoKey || rc.Tombstone {
		p.logger.Debug("dropped a record with an absent key or value",
			"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset,
			"no_key", rc.NoKey, "tombstone", rc.Tombstone)
		return nil
	}
	ts := rc.Timestamp.UnixMilli()
	if err := checkTimestamp(ts); err != nil {
		return p.nodeErr(rc, err)
	}
	st := ts
	if p.timer.follow {
		// WithTaskStreamTime: the record is judged against the task's
		// stream time, which the timer's firings follow only when
		// something is due.
		st = max(st, p.timer.env.StreamTime())
	}
	advanced := st > p.st
	if advanced {
		if err := p.advanceTo(st); err != nil {
			return p.nodeErr(rc, err)
		}
	}
	var err error
	p.kbuf, err = p.kc.Append(p.kbuf[:0], k)
	if err != nil {
		return p.nodeErr(rc, &codec.EncodeError{Store: p.store, Part: "key", Err: err})
	}
	p.ekey = windowstore.AppendEscaped(p.ekey[:0], p.kbuf)
	var updated bool
	switch p.kind {
	case KindTumbling, KindHopping:
		updated, err = p.timeWindows(ctx, rc, k, v, ts)
	case KindSliding:
		updated, err = p.slidingWindows(ctx, rc, k, v, ts)
	case KindSession:
		updated, err = p.sessionWindows(ctx, rc, k, v, ts)
	}
	if err != nil {
		return p.nodeErr(rc, err)
	}
	if !updated {
		p.stats.late.Add(1)
		p.t.CountLate(p.n)
		p.lateLog.drop(ctx, p.logger, p.t.Env().Now(), rc, ts, p.st, p.grace)
		if p.late != nil {
			p.late(LateRecord[K, V]{Key: k, Value: v, Timestamp: rc.Timestamp, StreamTime: time.UnixMilli(p.st),
				Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset})
			p.t.Current = p.n
		}
	}
	if advanced {
		if p.final {
			if err := p.emitClosed(ctx, rc); err != nil {
				return p.nodeErr(rc, err)
			}
		}
		if err := p.expire(); err != nil {
			return p.nodeErr(rc, err)
		}
	}
	return nil
}

func (p *proc[K, V, A]) nodeErr(rc *stream.RecordContext, err error) error {
	if _, ok := err.(*stream.NodeError); ok {
		return err
	}
	return &stream.NodeError{Node: p.n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
}

func (p *proc[K, V, A]) storeErr(op string, err error) error {
	return fmt.Errorf("store %q: %s: %w", p.store, op, err)
}

// open reports whether the window [start, end) still accepts records.
func (p *proc[K, V, A]) open(end int64) bool { return end+p.grace > p.st }

// closeTime is the stream time at which the window [start, end) closes.
func (p *proc[K, V, A]) closeTime(end int64) int64 {
	return closeTime(p.kind == KindSession, p.size, p.grace, end)
}

// closeTime is the stream time at which a window [start, end) closes, in
// ms: a window accepts records until stream time reaches its end plus
// grace, a session until it reaches its end plus the gap plus grace.
func closeTime(session bool, gap, grace, end int64) int64 {
	if session {
		return end + gap + grace
	}
	return end + grace
}

// segTime is the time a window is segmented and expired by.
func (p *proc[K, V, A]) segTime(sp span) int64 {
	return windowstore.SegmentTime(p.kind == KindSession, sp.start, sp.end)
}

// windowKey returns the store key of the window sp of the current key
// (in a buffer reused by the next call).
func (p *proc[K, V, A]) windowKey(sp span) []byte {
	p.key = windowstore.AppendWindowKey(p.key[:0], windowstore.FloorDiv(p.segTime(sp), p.seg), p.ekey, sp.start, sp.end)
	return p.key
}

func (p *proc[K, V, A]) indexKey(sp span) []byte {
	p.ikey = windowstore.AppendCloseKey(p.ikey[:0], p.closeTime(sp.end), p.ekey, sp.start, sp.end)
	return p.ikey
}

// stored is a window read from the store.
type stored struct {
	span
	maxTs int64
	agg   []byte // encoded aggregate (owned)
}

// get returns the stored window sp of the current key.
func (p *proc[K, V, A]) get(sp span) (stored, bool, error) {
	b, ok, err := p.kv.Get(p.windowKey(sp))
	if err != nil || !ok {
		return stored{}, false, err
	}
	if len(b) < 8 {
		return stored{}, false, fmt.Errorf("store %q: %w: window value of %d bytes", p.store, codec.ErrInvalid, len(b))
	}
	return stored{span: sp, maxTs: windowstore.ReadTime(b), agg: b[8:]}, true, nil
}

// old decodes b, the aggregate of a window before an update, as the old
// value of the update's change, when a child of the table wants old
// values; otherwise it returns hasOld false (and decodes nothing). The
// aggregate being updated is decoded apart, since folds may change it in
// place.
func (p *proc[K, V, A]) old(b []byte) (old A, hasOld bool, err error) {
	if p.final || !p.out.WantsOld() {
		return old, false, nil
	}
	old, err = p.decode(b)
	return old, err == nil, err
}

func (p *proc[K, V, A]) decode(b []byte) (A, error) {
	a, err := p.ac.Decode(b)
	if err != nil {
		return a, fmt.Errorf("store %q: decode the stored aggregate: %w", p.store, err)
	}
	return a, nil
}

// put stores the window sp of the current key with aggregate a; a new
// window is added to the close index of final results.
func (p *proc[K, V, A]) put(sp span, maxTs int64, a A, isNew bool) error {
	b := windowstore.AppendTime(p.vbuf[:0], maxTs)
	b, err := p.ac.Append(b, a)
	if err != nil {
		return &codec.EncodeError{Store: p.store, Part: "value", Err: err}
	}
	p.vbuf = b
	if err := p.kv.Put(p.windowKey(sp), b); err != nil {
		return p.storeErr("put", err)
	}
	if p.minSeg != noTime {
		p.minSeg = min(p.minSeg, windowstore.FloorDiv(p.segTime(sp), p.seg))
	}
	if isNew && p.final {
		if err := p.kv.Put(p.indexKey(sp), nil); err != nil {
			return p.storeErr("put", err)
		}
		if p.nextClose != noTime {
			p.nextClose = min(p.nextClose, p.closeTime(sp.end))
		}
	}
	return nil
}

// remove deletes the window sp of the current key.
func (p *proc[K, V, A]) remove(sp span) error {
	if err := p.kv.Delete(p.windowKey(sp)); err != nil {
		return p.storeErr("delete", err)
	}
	if p.final {
		if err := p.kv.Delete(p.indexKey(sp)); err != nil {
			return p.storeErr("delete", err)
		}
	}
	return nil
}

// forward emits an update of window sp (default emit mode only), or
// buffers it with CacheUpdates: the window's aggregate changes from old
// (absent when !hasOld) to a (absent when tombstone). isNew says the
// window did not exist before the update. old is read only when a child
// wants old values (see wantsOld).
func (p *proc[K, V, A]) forward(ctx context.Context, rc *stream.RecordContext, k K, sp span, old A, hasOld bool, a A, ts int64, tombstone, isNew bool) error {
	if p.final {
		return nil
	}
	if p.cache == nil {
		return p.send(ctx, rc, k, sp, old, hasOld, a, ts, rc.Headers, tombstone)
	}
	key := string(p.windowKey(sp))
	prev, ok := p.cache[key]
	p.undo = append(p.undo, cacheUndo[K, A]{key: key, prev: prev, existed: ok})
	e := cacheEntry[K, A]{k: k, sp: sp, old: old, hasOld: hasOld, a: a, ts: ts, tomb: tombstone, fresh: isNew}
	if ok {
		// The change since the last flush starts from the window's
		// aggregate then.
		e.fresh, e.old, e.hasOld = prev.fresh, prev.old, prev.hasOld
	} else {
		p.order = append(p.order, key)
	}
	p.cache[key] = e
	p.last = stream.RecordContext{Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset}
	return nil
}

// cacheEntry is the newest buffered update of a window, with the
// window's aggregate at the last flush (old, hasOld).
type cacheEntry[K, A any] struct {
	k      K
	sp     span
	old    A
	hasOld bool
	a      A
	ts     int64
	tomb   bool
	// fresh says the window was created since the last flush, so its
	// deletion need not be emitted.
	fresh bool
}

// cacheUndo restores a cache entry when the record that changed it fails.
type cacheUndo[K, A any] struct {
	key     string
	prev    cacheEntry[K, A]
	existed bool
}

// rollbackCache undoes the cache changes logged after the first n.
func (p *proc[K, V, A]) rollbackCache(n int) {
	for i := len(p.undo) - 1; i >= n; i-- {
		u := p.undo[i]
		if u.existed {
			p.cache[u.key] = u.prev
			continue
		}
		delete(p.cache, u.key)
		p.order = p.order[:len(p.order)-1] // appended last, undone first
	}
	clear(p.undo[n:])
	p.undo = p.undo[:n]
}

// flushCache emits the newest update of every buffered window, in the
// order of their first buffered update; the runtime calls it before every
// commit. Each update is an item of its own (dsl.Task.Item): one that
// fails downstream is skipped alone (under the skip policy) and, like the
// others, leaves the cache.
func (p *proc[K, V, A]) flushCache(ctx context.Context) error {
	order := p.order
	p.order = p.order[:0]
	p.undo = p.undo[:0]
	defer clear(p.cache)
	for _, key := range order {
		e := p.cache[key]
		if e.tomb && e.fresh {
			continue // created and deleted since the last flush: never emitted
		}
		p.item.set("cached update", &p.last, e.k, e.sp, e.old, e.hasOld, e.a, e.ts, e.tomb)
		if err := p.t.Item(ctx, &p.item); err != nil {
			return err
		}
	}
	return nil
}

// windowItem is an item a windowed aggregation emits on its own
// (dsl.Task.Item): an update held by CacheUpdates, or a final result,
// whose stored key and aggregate Emit decodes.
type windowItem[K, V, A any] struct {
	p    *proc[K, V, A]
	what string
	rc   stream.RecordContext
	sp   span
	ts   int64
	tomb bool
	k    K
	a    A
	// old and hasOld are the window's aggregate before the change (the
	// table change protocol's old value; a final result has none).
	old    A
	hasOld bool
	// raw and agg are a final result's stored key and aggregate (raw nil:
	// k and a are set); decoded says k was decoded from raw.
	raw, agg []byte
	decoded  bool
}

// set makes it the update of window sp of k from old (absent when
// !hasOld) to a (absent when tomb).
func (it *windowItem[K, V, A]) set(what string, rc *stream.RecordContext, k K, sp span, old A, hasOld bool, a A, ts int64, tomb bool) {
	*it = windowItem[K, V, A]{p: it.p, what: what, rc: *rc, k: k, sp: sp, old: old, hasOld: hasOld, a: a, ts: ts, tomb: tomb}
}

// setFinal makes it the final result of window sp of the stored key raw
// with the stored aggregate agg. Before its final result the window is
// not in the table (see windowLookup): the change has no old value.
func (it *windowItem[K, V, A]) setFinal(rc *stream.RecordContext, raw []byte, sp span, agg []byte, ts int64) {
	*it = windowItem[K, V, A]{p: it.p, what: "final result", rc: *rc, raw: raw, sp: sp, agg: agg, ts: ts}
}

func (it *windowItem[K, V, A]) Emit(ctx context.Context) (err error) {
	p := it.p
	defer p.t.RecoverStep(&err, p.n, it.rc.Topic, it.rc.Partition, it.rc.Offset)
	if it.raw != nil {
		if it.k, err = p.kc.Decode(it.raw); err != nil {
			return p.nodeErr(&it.rc, fmt.Errorf("store %q: decode the stored key: %w", p.store, err))
		}
		it.decoded = true
		if it.a, err = p.decode(it.agg); err != nil {
			return p.nodeErr(&it.rc, err)
		}
	}
	return p.send(ctx, &it.rc, it.k, it.sp, it.old, it.hasOld, it.a, it.ts, nil, it.tomb)
}

func (it *windowItem[K, V, A]) Step() string { return it.p.n.Name }

func (it *windowItem[K, V, A]) String() string {
	start, end := it.sp.times()
	if it.raw != nil && !it.decoded {
		return fmt.Sprintf("%s of window [%s, %s) of the stored key %q", it.what,
			start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano), it.raw)
	}
	return fmt.Sprintf("%s of %v", it.what, Windowed[K]{Key: it.k, Start: start, End: end})
}

// send emits the change of window sp from old (absent when !hasOld) to a
// (absent when tombstone) to the table's children.
func (p *proc[K, V, A]) send(ctx context.Context, rc *stream.RecordContext, k K, sp span, old A, hasOld bool, a A, ts int64, headers []broker.Header, tombstone bool) error {
	p.rc = stream.RecordContext{Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset,
		Timestamp: time.UnixMilli(ts), Headers: headers, Tombstone: tombstone}
	start, end := sp.times()
	err := p.out.Emit(ctx, &p.rc, Windowed[K]{Key: k, Start: start, End: end}, old, hasOld, a, !tombstone)
	p.t.Current = p.n
	return err
}

// timeWindows adds a record to its tumbling or hopping windows.
func (p *proc[K, V, A]) timeWindows(ctx context.Context, rc *stream.RecordContext, k K, v V, ts int64) (bool, error) {
	updated := false
	for _, sp := range timeWindowsFor(ts, p.size, p.advance) {
		if !p.open(sp.end) {
			continue
		}
		old, found, err := p.get(sp)
		if err != nil {
			return updated, err
		}
		var a, prev A
		has, hasPrev := found, false
		maxTs := ts
		if found {
			if a, err = p.decode(old.agg); err != nil {
				return updated, err
			}
			if prev, hasPrev, err = p.old(old.agg); err != nil {
				return updated, err
			}
			maxTs = max(maxTs, old.maxTs)
		} else {
			a, has = p.f.init()
		}
		a = p.f.fold(k, v, a, has)
		if err := p.put(sp, maxTs, a, !found); err != nil {
			return updated, err
		}
		updated = true
		if err := p.forward(ctx, rc, k, sp, prev, hasPrev, a, maxTs, false, !found); err != nil {
			return updated, err
		}
	}
	return updated, nil
}

// scanKey returns the current key's windows with segment time in [lo,
// hi], ordered by segment time, then start.
func (p *proc[K, V, A]) scanKey(lo, hi int64) ([]stored, error) {
	var out []stored
	first := windowstore.FloorDiv(lo, p.seg)
	if p.lowSeg != noTime {
		first = max(first, p.lowSeg) // below: expired, empty
	}
	for s := first; s <= windowstore.FloorDiv(hi, p.seg); s++ {
		from := windowstore.AppendTime([]byte{windowstore.SpaceWindow}, s)
		from = append(from, p.ekey...)
		// The escaped key ends with 0x00 0x01; ending with 0x00 0x02
		// instead bounds every window of the key and no other key.
		to := bytes.Clone(from)
		to[len(to)-1] = 0x02
		seq, errf := p.kv.Range(from, to)
		for key, val := range seq {
			rest := key[len(from):]
			if len(rest) != 16 || len(val) < 8 {
				return nil, fmt.Errorf("store %q: %w: window entry", p.store, codec.ErrInvalid)
			}
			sp := span{windowstore.ReadTime(rest), windowstore.ReadTime(rest[8:])}
			if t := p.segTime(sp); t < lo || t > hi {
				continue
			}
			out = append(out, stored{span: sp, maxTs: windowstore.ReadTime(val), agg: bytes.Clone(val[8:])})
		}
		if err := errf(); err != nil {
			return nil, p.storeErr("range", err)
		}
	}
	return out, nil
}

// slidingWindows adds a record to Kafka Streams' sliding windows: it
// updates the windows that contain it, creates the window that ends with
// it (from the window that holds exactly the records before it within
// the time difference), the right window of the previous record if ts is
// its first record, and the window that starts just after it (from the
// window that holds exactly the records after it), as
// KStreamSlidingWindowAggregate does. The windows of a key are then
// always: for every record r, [r - d, r], and [r + 1, r + 1 + d] if a
// record lies in it.
func (p *proc[K, V, A]) slidingWindows(ctx context.Context, rc *stream.RecordContext, k K, v V, ts int64) (bool, error) {
	d := p.size
	wins, err := p.scanKey(ts-2*d-1, ts+1)
	if err != nil {
		return false, err
	}
	var leftExists, rightExists bool
	var leftCand, rightCand *stored
	starts := make(map[int64]bool, len(wins))
	prev := int64(noTime) // the latest record before ts
	for i := range wins {
		w := &wins[i]
		starts[w.start] = true
		if w.maxTs < ts {
			prev = max(prev, w.maxTs)
		}
		switch {
		case w.start == ts+1:
			rightExists = true
		case w.start < ts-d:
			leftCand = w // latest start (and end) before the left window
		case w.start <= ts:
			if w.start == ts-d {
				leftExists = true
			}
			rightCand = w // latest start among the windows containing ts
		}
	}
	updated := false
	var none A // the old aggregate of a new window
	for _, w := range wins {
		if w.start < ts-d || w.start > ts || !p.open(w.end) {
			continue
		}
		a, err := p.decode(w.agg)
		if err != nil {
			return updated, err
		}
		prev, hasPrev, err := p.old(w.agg)
		if err != nil {
			return updated, err
		}
		a = p.f.fold(k, v, a, true)
		maxTs := max(w.maxTs, ts)
		if err := p.put(w.span, maxTs, a, false); err != nil {
			return updated, err
		}
		updated = true
		if err := p.forward(ctx, rc, k, w.span, prev, hasPrev, a, maxTs, false, false); err != nil {
			return updated, err
		}
	}
	if left := (span{ts - d, ts + 1}); !leftExists && p.open(left.end) {
		var a A
		var has bool
		if leftCand != nil && leftCand.maxTs >= ts-d {
			if a, err = p.decode(leftCand.agg); err != nil {
				return updated, err
			}
			has = true
		} else {
			a, has = p.f.init()
		}
		a = p.f.fold(k, v, a, has)
		if err := p.put(left, ts, a, true); err != nil {
			return updated, err
		}
		updated = true
		if err := p.forward(ctx, rc, k, left, none, false, a, ts, false, true); err != nil {
			return updated, err
		}
	}
	// The previous record's right window, (prev, prev + d], gets its first
	// record: ts.
	if pr := (span{prev + 1, prev + d + 2}); prev != noTime && prev+d+1 >= ts && pr.start != ts-d && !starts[pr.start] && p.open(pr.end) {
		a, has := p.f.init()
		a = p.f.fold(k, v, a, has)
		if err := p.put(pr, ts, a, true); err != nil {
			return updated, err
		}
		updated = true
		if err := p.forward(ctx, rc, k, pr, none, false, a, ts, false, true); err != nil {
			return updated, err
		}
	}
	if right := (span{ts + 1, ts + d + 2}); !rightExists && rightCand != nil && rightCand.maxTs > ts && p.open(right.end) {
		a, err := p.decode(rightCand.agg)
		if err != nil {
			return updated, err
		}
		if err := p.put(right, rightCand.maxTs, a, true); err != nil {
			return updated, err
		}
		updated = true
		if err := p.forward(ctx, rc, k, right, none, false, a, rightCand.maxTs, false, true); err != nil {
			return updated, err
		}
	}
	return updated, nil
}

// sessionWindows adds a record to its session, merging the sessions it
// bridges.
func (p *proc[K, V, A]) sessionWindows(ctx context.Context, rc *stream.RecordContext, k K, v V, ts int64) (bool, error) {
	gap := p.size
	// Sessions are [start, last]; their spans end at last + 1. A session
	// overlaps the record when last >= ts - gap and start <= ts + gap.
	// Only open sessions (last >= st - gap - grace) merge: a record
	// older than that merges into one of them or is late (a closed
	// session holding it exists only then), so older sessions are not
	// read, and a record far behind stream time costs a few segments
	// rather than a scan of every segment since its time.
	cands, err := p.scanKey(max(ts-gap, p.st-gap-p.grace), max(p.st, ts+gap))
	if err != nil {
		return false, err
	}
	merged := span{ts, ts + 1}
	var olds []stored
	for _, s := range cands {
		// A closed session is final: it is never merged, even when the
		// record lies within the gap of it (Kafka Streams may merge it
		// into an open session, changing a final result).
		if s.start <= ts+gap && p.st < p.closeTime(s.end) {
			olds = append(olds, s)
			merged.start = min(merged.start, s.start)
			merged.end = max(merged.end, s.end)
		} else if s.start <= ts && ts < s.end {
			return false, nil // late: inside a closed session
		}
	}
	// Kafka Streams: late when stream time has passed last + gap + grace
	// of the session the record would make.
	if p.st >= p.closeTime(merged.end) {
		return false, nil // late: the merged session would already be closed
	}
	a, has := p.f.init()
	for _, s := range olds {
		b, err := p.decode(s.agg)
		if err != nil {
			return false, err
		}
		if has {
			a = p.f.merge(k, a, b)
		} else {
			a, has = b, true
		}
	}
	a = p.f.fold(k, v, a, has)
	var zero, prev A
	exists, hasPrev := false, false
	for _, s := range olds {
		old, hasOld, err := p.old(s.agg)
		if err != nil {
			return true, err
		}
		if s.span == merged {
			exists, prev, hasPrev = true, old, hasOld
			continue
		}
		if err := p.remove(s.span); err != nil {
			return true, err
		}
		if err := p.forward(ctx, rc, k, s.span, old, hasOld, zero, ts, true, false); err != nil {
			return true, err
		}
	}
	if err := p.put(merged, merged.end-1, a, !exists); err != nil {
		return true, err
	}
	return true, p.forward(ctx, rc, k, merged, prev, hasPrev, a, merged.end-1, false, !exists)
}

// emitClosed emits the final result of every window that closed by the
// current stream time, oldest close time first, and removes it from the
// close index.
func (p *proc[K, V, A]) emitClosed(ctx context.Context, rc *stream.RecordContext) error {
	if p.nextClose != noTime && p.st < p.nextClose {
		return nil
	}
	var keys [][]byte
	p.nextClose = math.MaxInt64
	from := []byte{windowstore.SpaceClose}
	if p.closedUpTo != noTime {
		from = windowstore.AppendTime(from, p.closedUpTo+1)
	}
	// Windows are indexed while open, when their close time is after
	// stream time, so no entry at or below p.st appears after this scan.
	p.closedUpTo = p.st
	seq, errf := p.kv.Range(from, []byte{windowstore.SpaceClose + 1})
	for key := range seq {
		if len(key) < 9 {
			return fmt.Errorf("store %q: %w: close index entry", p.store, codec.ErrInvalid)
		}
		if c := windowstore.ReadTime(key[1:9]); c > p.st {
			p.nextClose = c
			break
		}
		keys = append(keys, bytes.Clone(key))
	}
	if err := errf(); err != nil {
		return p.storeErr("range", err)
	}
	if len(keys) > 0 {
		// The entries scanned are those of [from, close p.st].
		if err := p.kv.DeleteRange(from, windowstore.AppendTime([]byte{windowstore.SpaceClose}, p.st+1)); err != nil {
			return p.storeErr("delete range", err)
		}
	}
	for _, ik := range keys {
		raw, rest, err := windowstore.Unescape(ik[9:])
		if err != nil || len(rest) != 16 {
			return fmt.Errorf("store %q: %w: close index entry", p.store, codec.ErrInvalid)
		}
		sp := span{windowstore.ReadTime(rest), windowstore.ReadTime(rest[8:])}
		p.ekey = windowstore.AppendEscaped(p.ekey[:0], raw)
		w, found, err := p.get(sp)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		p.stats.final.Add(1)
		// An item of its own: a final result that fails downstream is
		// skipped alone (under the skip policy), and its close index
		// entry, deleted above, keeps it from being emitted again.
		p.item.setFinal(rc, raw, sp, w.agg, w.maxTs)
		if err := p.t.Item(ctx, &p.item); err != nil {
			return err
		}
	}
	return nil
}

// expire deletes the segments whose windows were all older than
// retention at expAt, the stream time before the step's last advance,
// with one range deletion (KV.DeleteRange). A window thus outlives the
// advance of stream time that expires it: every step of the task that
// runs at that stream time still reads it, such as the other side of a
// table join emitting the final result of the same window (the advance
// that emits a final result may be the one that expires the window, as
// at the end of a bounded run).
func (p *proc[K, V, A]) expire() error {
	if p.expAt == noTime {
		return nil
	}
	cut := windowstore.FloorDiv(p.expAt-p.ret, p.seg)
	if p.lowSeg != noTime && cut <= p.lowSeg {
		return nil
	}
	from := []byte{windowstore.SpaceWindow}
	if p.lowSeg != noTime {
		from = windowstore.AppendTime(from, p.lowSeg)
	}
	if err := p.kv.DeleteRange(from, windowstore.AppendTime([]byte{windowstore.SpaceWindow}, cut)); err != nil {
		return p.storeErr("delete range", err)
	}
	p.lowSeg = cut
	return nil
}
