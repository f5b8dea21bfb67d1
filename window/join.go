package window

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/internal/windowstore"
	"github.com/duality-streams/duality/stream"
)

// JoinWindows defines which records of two streams join: a left record at
// time t joins the right records of its key with timestamps in
// [t - before, t + after] (so a right record at t' joins the left records
// in [t' - after, t' + before]), and records more than grace behind stream
// time are late. Create it with [JoinTimeDifference]; Build reports
// invalid values (ErrInvalidWindow).
type JoinWindows struct {
	before, after, grace time.Duration
}

// JoinTimeDifference returns join windows of difference on both sides
// (before = after = difference) and the given grace period (Kafka
// Streams' JoinWindows.ofTimeDifferenceAndGrace; [NoGrace] for none).
func JoinTimeDifference(difference, grace time.Duration) JoinWindows {
	return JoinWindows{before: difference, after: difference, grace: grace}
}

// Before returns w with left records joining right records up to d
// earlier.
func (w JoinWindows) Before(d time.Duration) JoinWindows { w.before = d; return w }

// After returns w with left records joining right records up to d later.
func (w JoinWindows) After(d time.Duration) JoinWindows { w.after = d; return w }

// String describes the join windows.
func (w JoinWindows) String() string {
	return fmt.Sprintf("join(before %s, after %s, grace %s)", w.before, w.after, w.grace)
}

// retention is how long a join's store keeps a record: before + after +
// grace + 1ms.
func (w JoinWindows) retention() time.Duration {
	return w.before + w.after + w.grace + time.Millisecond
}

func (w JoinWindows) validate() []error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"before", w.before}, {"after", w.after}, {"grace", w.grace}} {
		if d.v < 0 || d.v%time.Millisecond != 0 {
			errs = append(errs, fmt.Errorf("%w: %s: %s %s must be a non-negative whole number of milliseconds", ErrInvalidWindow, w, d.name, d.v))
		}
	}
	// Records are kept for before + after + grace + 1ms.
	if len(errs) == 0 && (w.before > math.MaxInt64/4 || w.after > math.MaxInt64/4 || w.grace > math.MaxInt64/4) {
		errs = append(errs, fmt.Errorf("%w: %s: before, after and grace must each be at most %s", ErrInvalidWindow, w, time.Duration(math.MaxInt64/4)))
	}
	return errs
}

// joinKind says which unmatched records a join emits.
type joinKind uint8

const (
	innerJoin joinKind = iota
	leftJoin
	outerJoin
)

// Join joins two streams grouped by the same key within w: every pair of
// a left record and a right record of one key whose timestamps are within
// the join windows gives one output record joiner(k, v1, v2), emitted as
// soon as the second of the two arrives, with the larger timestamp of
// the two (Kafka Streams' KStream.join). The records of both sides are
// kept in the state store named store (logged to its changelog and
// restored like every store) until they can no longer join: stream time
// beyond their window plus grace. The grouped streams give the codecs of
// the store and guarantee that both sides are partitioned by key (a side
// whose keys changed goes through a repartition topic); their topics must
// be co-partitioned, which the runtime checks. Records with an absent key
// or value are dropped and logged at Debug; late records (more than grace
// behind stream time) are dropped, counted in [Stats] and logged (at Warn,
// rate-limited: see the package documentation, # Time).
// Options: [stream.Named] (default "join-<n>"; the steps below each side are
// named "<name>-left" and "<name>-right"), [WithStats],
// [WithTaskStreamTime] (unmatched records are then also emitted when the
// runtime advances an idle task's stream time), [stream.WithValueCodec]
// (the codec of the results, which the returned stream carries; default
// codec.For[VR], or a side's value codec when VR is its type). The step
// has both streams as parents, so they end up in one sub-topology.
//
// Build reports invalid windows (ErrInvalidWindow), a nil joiner
// (stream.ErrNilFunc), an invalid or already used store name, and streams
// of different builders (stream.ErrForeignStream). Negative timestamps and
// timestamps after [MaxTimestamp] fail the record (ErrInvalidTimestamp).
func Join[K, V1, V2, VR any](left stream.Grouped[K, V1], right stream.Grouped[K, V2], w JoinWindows, joiner func(k K, v1 V1, v2 V2) VR, store string, opts ...stream.Option) stream.Stream[K, VR] {
	var j func(K, V1, bool, V2, bool) VR
	if joiner != nil {
		j = func(k K, v1 V1, _ bool, v2 V2, _ bool) VR { return joiner(k, v1, v2) }
	}
	return join(left, right, w, innerJoin, "join", j, store, opts)
}

// LeftJoin is [Join] that also emits every left record that joined no
// right record, as joiner(k, v1, zero, false), once it can no longer join:
// when stream time passes its time + before + after + grace (the last
// moment a right record it could join is still accepted). It never emits a
// premature unmatched result (Kafka Streams' KStream.leftJoin since 3.1).
// The step is named "left-join-<n>".
func LeftJoin[K, V1, V2, VR any](left stream.Grouped[K, V1], right stream.Grouped[K, V2], w JoinWindows, joiner func(k K, v1 V1, v2 V2, found bool) VR, store string, opts ...stream.Option) stream.Stream[K, VR] {
	var j func(K, V1, bool, V2, bool) VR
	if joiner != nil {
		j = func(k K, v1 V1, _ bool, v2 V2, ok2 bool) VR { return joiner(k, v1, v2, ok2) }
	}
	return join(left, right, w, leftJoin, "left-join", j, store, opts)
}

// OuterJoin is [LeftJoin] for both sides: unmatched right records are
// emitted too, as joiner(k, zero, false, v2, true), when stream time
// passes their time + before + after + grace. The step is named
// "outer-join-<n>".
func OuterJoin[K, V1, V2, VR any](left stream.Grouped[K, V1], right stream.Grouped[K, V2], w JoinWindows, joiner func(k K, v1 V1, ok1 bool, v2 V2, ok2 bool) VR, store string, opts ...stream.Option) stream.Stream[K, VR] {
	return join(left, right, w, outerJoin, "outer-join", joiner, store, opts)
}

// Store layout of a join:
//
//	0x00                                               stream time, sequence
//	0x01 segment(8) side(1) key ts(8) seq(8)            encoded value
//	0x02 close(8) side(1) key ts(8) seq(8)              (empty: unmatched)
//
// side is 0 for left, 1 for right; seq numbers the records of the task so
// that records of one key and time are kept apart.

func join[K, V1, V2, VR any](left stream.Grouped[K, V1], right stream.Grouped[K, V2], w JoinWindows, kind joinKind, op string, joiner func(K, V1, bool, V2, bool) VR, store string, opts []stream.Option) stream.Stream[K, VR] {
	lp := dsl.StreamNode(dsl.Stream[K, V1](left.Stream()))
	rp := dsl.StreamNode(dsl.Stream[K, V2](right.Stream()))
	if lp == nil {
		return stream.Stream[K, VR]{}
	}
	gr := lp.Graph()
	sc := dsl.ApplyOptions(opts)
	cfg := windowConfig(sc)
	var errs []error
	if sc.Has(optEmitOnWindowClose) || sc.Has(optCacheUpdates) || sc.Has(optOnLate) {
		errs = append(errs, fmt.Errorf("window: EmitOnWindowClose, CacheUpdates and OnLate do not apply to joins"))
	}
	// Each side has a node below it; both share the task's join state
	// (one store, one stream time) and send their results to the output
	// node n.
	n := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Name: sc.Name, Detail: joinDetail(w, kind, cfg)}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		fs, err := dsl.Children(t, n, dsl.CountRecords[*stream.RecordContext, K, VR])
		if err != nil {
			return nil, err
		}
		return emit[K, VR](func(ctx context.Context, rc *stream.RecordContext, k K, v VR) error {
			for _, f := range fs {
				if err := f(ctx, rc, k, v); err != nil {
					return err
				}
			}
			return nil
		}), nil
	}
	jn := &joinNode[K, V1, V2, VR]{n: n, store: store, w: w, kind: kind, joiner: joiner, stats: cfg.stats, taskTime: cfg.task,
		kc: left.KeyCodec(), v1c: left.ValueCodec(), v2c: right.ValueCodec(), procs: map[*dsl.Task]*joinProc[K, V1, V2, VR]{}}
	ln := &dsl.Node{Op: op + "-left", Kind: dsl.KindProcessor, Stores: []string{store}}
	rn := &dsl.Node{Op: op + "-right", Kind: dsl.KindProcessor, Stores: []string{store}}
	if len(w.validate()) == 0 {
		// The changelog drops expired records by time (KV.DeleteRange).
		spec := map[string]topology.StoreSpec{store: {Kind: topology.StoreJoinBuffer, Retention: w.retention()}}
		ln.StoreSpecs, rn.StoreSpecs = spec, spec
	}
	if sc.Name != "" {
		ln.Name, rn.Name = sc.Name+"-left", sc.Name+"-right"
	}
	ln.Instantiate = func(t *dsl.Task) (any, error) {
		p, err := jn.proc(t, ln)
		if err != nil {
			return nil, err
		}
		return emit[K, V1](func(ctx context.Context, rc *stream.RecordContext, k K, v V1) error {
			return p.process(ctx, rc, ln, k, 0, v, *new(V2))
		}), nil
	}
	rn.Instantiate = func(t *dsl.Task) (any, error) {
		p, err := jn.proc(t, rn)
		if err != nil {
			return nil, err
		}
		return emit[K, V2](func(ctx context.Context, rc *stream.RecordContext, k K, v V2) error {
			return p.process(ctx, rc, rn, k, 1, *new(V1), v)
		}), nil
	}
	gr.AddNode(ln, lp)
	gr.AddNode(rn, rp)
	gr.AddNode(n, ln, rn)
	// The aggregation options are reported once, above.
	vrc := dsl.ValueCodec(sc, dsl.CodecFor[VR](left.ValueCodec(), right.ValueCodec()))
	sc.Report(gr, op, n.Name, aggregateOpts...)
	for _, err := range errs {
		gr.AddError(fmt.Errorf("%w: %s %q: %w", stream.ErrInvalidOption, op, n.Name, err))
	}
	for _, err := range w.validate() {
		gr.AddError(fmt.Errorf("%s %q: %w", op, n.Name, err))
	}
	for _, o := range gr.Nodes() {
		if o != ln && o != rn && contains(o.Stores, store) {
			gr.AddError(fmt.Errorf("%w: %s %q: store %q is already used by step %q; a join needs a store of its own", stream.ErrStoreConflict, op, n.Name, store, o.Name))
			break
		}
	}
	if joiner == nil {
		gr.AddError(fmt.Errorf("%s %q: joiner: %w", op, n.Name, stream.ErrNilFunc))
	}
	return stream.Stream[K, VR](dsl.NewStream(n, left.KeyCodec(), vrc))
}

// joinNode is a join step; instantiate makes its per-task state.
type joinNode[K, V1, V2, VR any] struct {
	n      *dsl.Node
	store  string
	w      JoinWindows
	kind   joinKind
	joiner func(K, V1, bool, V2, bool) VR
	stats  *Stats
	// taskTime: follow the task's stream time (WithTaskStreamTime).
	taskTime bool
	kc       codec.Codec[K]
	v1c      codec.Codec[V1]
	v2c      codec.Codec[V2]

	mu    sync.Mutex
	procs map[*dsl.Task]*joinProc[K, V1, V2, VR]
	// lateLog reports the records the join drops as late, over all its
	// tasks.
	lateLog lateLog
}

// proc returns the task's join state, shared by the nodes of both sides,
// creating it for the first of them.
func (jn *joinNode[K, V1, V2, VR]) proc(t *dsl.Task, side *dsl.Node) (*joinProc[K, V1, V2, VR], error) {
	jn.mu.Lock()
	p := jn.procs[t]
	jn.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := jn.instantiate(t, side)
	if err != nil {
		return nil, err
	}
	jn.mu.Lock()
	jn.procs[t] = p
	jn.mu.Unlock()
	t.OnClose(func() error {
		jn.mu.Lock()
		delete(jn.procs, t)
		jn.mu.Unlock()
		return nil
	})
	return p, nil
}

func (jn *joinNode[K, V1, V2, VR]) instantiate(t *dsl.Task, side *dsl.Node) (*joinProc[K, V1, V2, VR], error) {
	var p *joinProc[K, V1, V2, VR]
	timer, err := newStepTimer(t, jn.taskTime, func(ctx context.Context, ts int64) error {
		return p.fire(ctx, side, ts)
	})
	if err != nil {
		return nil, fmt.Errorf("%s %q: stream-time timer: %w", jn.n.Op, jn.n.Name, err)
	}
	fs, err := dsl.Children(t, side, dsl.CountRecords[*stream.RecordContext, K, VR])
	if err != nil {
		return nil, err
	}
	kv, err := t.Env().Store(jn.store)
	if err != nil {
		return nil, fmt.Errorf("%s %q: store %q: %w", jn.n.Op, jn.n.Name, jn.store, err)
	}
	p = &joinProc[K, V1, V2, VR]{jn: jn, t: t, kv: kv, fs: fs, timer: timer,
		before: jn.w.before.Milliseconds(), after: jn.w.after.Milliseconds(), grace: jn.w.grace.Milliseconds(),
		logger: t.Env().Logger().With("node", jn.n.Name, "store", jn.store),
		st:     noTime, lowSeg: noTime, closedUpTo: noTime, stats: jn.stats,
		minSeg: noTime, nextUnmatched: noTime}
	p.ret = p.before + p.after + p.grace + 1
	p.seg = max(p.ret/2, 1)
	t.OnSkip(p.skip)
	if p.stats == nil {
		p.stats = new(Stats)
	}
	b, found, err := kv.Get(windowstore.MetaKey)
	if err != nil {
		return nil, fmt.Errorf("%s %q: store %q: read stream time: %w", jn.n.Op, jn.n.Name, jn.store, err)
	}
	if found {
		if len(b) != 16 {
			return nil, fmt.Errorf("%s %q: store %q: stream time: %w: %d bytes", jn.n.Op, jn.n.Name, jn.store, codec.ErrInvalid, len(b))
		}
		p.st, p.seq = windowstore.ReadTime(b), binary.BigEndian.Uint64(b[8:])
		if p.st < -MaxTimestamp || p.st > MaxTimestamp {
			return nil, fmt.Errorf("%s %q: store %q: stream time: %w: %d ms", jn.n.Op, jn.n.Name, jn.store, codec.ErrInvalid, p.st)
		}
		if p.timer.follow {
			p.timer.restoreStreamTime(p.st)
		}
		if err := p.cleanRestored(); err != nil {
			return nil, fmt.Errorf("%s %q: %w", jn.n.Op, jn.n.Name, err)
		}
	}
	if err := p.rearm(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", jn.n.Op, jn.n.Name, err)
	}
	return p, nil
}

type joinProc[K, V1, V2, VR any] struct {
	jn                     *joinNode[K, V1, V2, VR]
	node                   *dsl.Node // the side node running
	t                      *dsl.Task
	kv                     topology.KV
	fs                     []emit[K, VR]
	before, after, grace   int64
	ret, seg               int64
	logger                 *slog.Logger
	stats                  *Stats
	st, lowSeg, closedUpTo int64
	seq                    uint64
	ekey, kbuf, key, vbuf  []byte
	out                    stream.RecordContext

	// timer fires when something is due (with WithTaskStreamTime; else
	// at the end of time); minSeg is a lower bound of the segment of the oldest
	// stored record and nextUnmatched one of the close times of the
	// unmatched entries (math.MaxInt64: none; noTime: unknown). See
	// rearm.
	timer                 *stepTimer
	minSeg, nextUnmatched int64

	// snaps is the in-memory state at the start of the units of work
	// being run, restored when the runtime skips one (dsl.Task.OnSkip).
	snaps dsl.Snapshots[joinSnap]
	// item is the unmatched record being emitted on its own
	// (dsl.Task.Item).
	item unmatchedItem[K, V1, V2, VR]
}

// joinSnap is the in-memory state of a joinProc that a record changes.
type joinSnap struct {
	st, lowSeg, closedUpTo int64
	seq                    uint64
}

// begin snapshots p's in-memory state the first time p runs in a unit of
// work of the task.
func (p *joinProc[K, V1, V2, VR]) begin() {
	p.snaps.Take(p.t, func(bool) joinSnap { return joinSnap{p.st, p.lowSeg, p.closedUpTo, p.seq} })
}

// skip restores the state of the unit of work being skipped, when p ran
// in it (a sibling step failed after p succeeded, or a step downstream of
// an item p ran in).
func (p *joinProc[K, V1, V2, VR]) skip() {
	s, ok := p.snaps.Skipped(p.t)
	if !ok {
		return
	}
	p.st, p.lowSeg, p.closedUpTo, p.seq = s.st, s.lowSeg, s.closedUpTo, s.seq
	p.resetTimer()
}

func (p *joinProc[K, V1, V2, VR]) process(ctx context.Context, rc *stream.RecordContext, n *dsl.Node, k K, side byte, v1 V1, v2 V2) error {
	p.node = n
	p.begin()
	st, lowSeg, seq := p.st, p.lowSeg, p.seq
	ok := false
	defer func() {
		if !ok {
			p.st, p.lowSeg, p.seq, p.closedUpTo = st, lowSeg, seq, noTime
		}
	}()
	err := p.processRecord(ctx, rc, k, side, v1, v2)
	if err == nil {
		err = p.rearm()
	}
	if err != nil {
		if _, isNode := err.(*stream.NodeError); !isNode {
			err = &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
		}
	}
	ok = err == nil
	return err
}

// punctuate moves stream time to the task's stream time ts
// (WithTaskStreamTime), emitting the unmatched records that can no longer
// join and expiring old ones.
func (p *joinProc[K, V1, V2, VR]) punctuate(ctx context.Context, n *dsl.Node, ts int64) (err error) {
	if ts <= p.st {
		return nil
	}
	p.begin()
	st, lowSeg, seq := p.st, p.lowSeg, p.seq
	rc := &stream.RecordContext{Timestamp: time.UnixMilli(ts)}
	defer func() {
		if r := recover(); r != nil {
			err = &stream.PanicError{Value: r, Stack: debug.Stack()}
		}
		if err != nil {
			p.st, p.lowSeg, p.seq, p.closedUpTo = st, lowSeg, seq, noTime
			if _, isNode := err.(*stream.NodeError); !isNode {
				err = &stream.NodeError{Node: n.Name, Err: err}
			}
		}
	}()
	p.node = n
	p.t.Current = n
	p.st = ts
	meta := windowstore.AppendTime(nil, p.st)
	if err := p.kv.Put(windowstore.MetaKey, binary.BigEndian.AppendUint64(meta, p.seq)); err != nil {
		return fmt.Errorf("store %q: put: %w", p.jn.store, err)
	}
	if err := p.emitUnmatched(ctx, rc); err != nil {
		return err
	}
	return p.expire()
}

// window returns the times of the other side's records that a record of
// side at ts joins.
func (p *joinProc[K, V1, V2, VR]) window(side byte, ts int64) (lo, hi int64) {
	if side == 0 {
		return ts - p.before, ts + p.after
	}
	return ts - p.after, ts + p.before
}

// closeTime is the stream time from which a record at ts can no longer
// join: every record of the other side that it could join would be late
// (its own window, up to before + after later, closed).
func (p *joinProc[K, V1, V2, VR]) closeTime(ts int64) int64 {
	return ts + p.before + p.after + p.grace + 1
}

// emitsUnmatched reports whether unmatched records of side are emitted.
func (p *joinProc[K, V1, V2, VR]) emitsUnmatched(side byte) bool {
	return p.jn.kind == outerJoin || (p.jn.kind == leftJoin && side == 0)
}

func (p *joinProc[K, V1, V2, VR]) recordKey(side byte, ekey []byte, ts int64, seq uint64) []byte {
	b := append(p.key[:0], windowstore.SpaceWindow)
	b = windowstore.AppendTime(b, windowstore.FloorDiv(ts, p.seg))
	b = append(b, side)
	b = append(b, ekey...)
	b = windowstore.AppendTime(b, ts)
	p.key = binary.BigEndian.AppendUint64(b, seq)
	return p.key
}

func (p *joinProc[K, V1, V2, VR]) unmatchedKey(side byte, ekey []byte, ts int64, seq uint64) []byte {
	b := windowstore.AppendTime([]byte{windowstore.SpaceClose}, p.closeTime(ts))
	b = append(b, side)
	b = append(b, ekey...)
	b = windowstore.AppendTime(b, ts)
	return binary.BigEndian.AppendUint64(b, seq)
}

func (p *joinProc[K, V1, V2, VR]) processRecord(ctx context.Context, rc *stream.RecordContext, k K, side byte, v1 V1, v2 V2) error {
	p.t.Current = p.node
	if rc.NoKey || rc.Tombstone {
		p.logger.Debug("dropped a record with an absent key or value",
			"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset, "no_key", rc.NoKey, "tombstone", rc.Tombstone)
		return nil
	}
	ts := rc.Timestamp.UnixMilli()
	if err := checkTimestamp(ts); err != nil {
		return err
	}
	p.st = max(p.st, ts)
	if p.timer.follow {
		// WithTaskStreamTime: the record is judged against the task's
		// stream time, which the timer's firings follow only when
		// something is due.
		p.st = max(p.st, p.timer.env.StreamTime())
	}
	// A record is late when the window of records it joins has closed:
	// every record of the other side it could join would be late.
	if _, hi := p.window(side, ts); hi+p.grace < p.st {
		p.stats.late.Add(1)
		p.t.CountLate(p.node)
		p.jn.lateLog.drop(ctx, p.logger, p.t.Env().Now(), rc, ts, p.st, p.grace)
		return nil
	}
	var err error
	if p.kbuf, err = p.jn.kc.Append(p.kbuf[:0], k); err != nil {
		return &codec.EncodeError{Store: p.jn.store, Part: "key", Err: err}
	}
	p.ekey = windowstore.AppendEscaped(p.ekey[:0], p.kbuf)
	seq := p.seq
	p.seq++
	if side == 0 {
		p.vbuf, err = p.jn.v1c.Append(p.vbuf[:0], v1)
	} else {
		p.vbuf, err = p.jn.v2c.Append(p.vbuf[:0], v2)
	}
	if err != nil {
		return &codec.EncodeError{Store: p.jn.store, Part: "value", Err: err}
	}
	if err := p.kv.Put(p.recordKey(side, p.ekey, ts, seq), p.vbuf); err != nil {
		return fmt.Errorf("store %q: put: %w", p.jn.store, err)
	}
	if p.minSeg != noTime {
		p.minSeg = min(p.minSeg, windowstore.FloorDiv(ts, p.seg))
	}
	meta := windowstore.AppendTime(nil, p.st)
	if err := p.kv.Put(windowstore.MetaKey, binary.BigEndian.AppendUint64(meta, p.seq)); err != nil {
		return fmt.Errorf("store %q: put: %w", p.jn.store, err)
	}
	// Join with the other side's records of the key in the window.
	other := 1 - side
	lo, hi := p.window(side, ts)
	matched := false
	for s := windowstore.FloorDiv(lo, p.seg); s <= windowstore.FloorDiv(hi, p.seg); s++ {
		from := windowstore.AppendTime([]byte{windowstore.SpaceWindow}, s)
		from = append(from, other)
		from = append(from, p.ekey...)
		to := windowstore.AppendTime(bytes.Clone(from), hi+1)
		from = windowstore.AppendTime(from, lo)
		type match struct {
			ts  int64
			seq uint64
			val []byte
		}
		var ms []match
		seqIt, errf := p.kv.Range(from, to)
		for key, val := range seqIt {
			rest := key[len(from)-8:]
			ms = append(ms, match{windowstore.ReadTime(rest), binary.BigEndian.Uint64(rest[8:]), bytes.Clone(val)})
		}
		if err := errf(); err != nil {
			return fmt.Errorf("store %q: range: %w", p.jn.store, err)
		}
		for _, m := range ms {
			matched = true
			o1, o2 := v1, v2
			if side == 0 {
				if o2, err = p.jn.v2c.Decode(m.val); err != nil {
					return fmt.Errorf("store %q: decode a stored right value: %w", p.jn.store, err)
				}
			} else if o1, err = p.jn.v1c.Decode(m.val); err != nil {
				return fmt.Errorf("store %q: decode a stored left value: %w", p.jn.store, err)
			}
			if p.emitsUnmatched(other) {
				if err := p.kv.Delete(p.unmatchedKey(other, p.ekey, m.ts, m.seq)); err != nil {
					return fmt.Errorf("store %q: delete: %w", p.jn.store, err)
				}
				if p.closeTime(m.ts) == p.nextUnmatched {
					p.nextUnmatched = noTime // maybe the earliest: find the next
				}
			}
			if err := p.emit(ctx, rc, k, p.jn.joiner(k, o1, true, o2, true), max(ts, m.ts)); err != nil {
				return err
			}
		}
	}
	if !matched && p.emitsUnmatched(side) {
		if err := p.kv.Put(p.unmatchedKey(side, p.ekey, ts, seq), nil); err != nil {
			return fmt.Errorf("store %q: put: %w", p.jn.store, err)
		}
		if p.nextUnmatched != noTime {
			p.nextUnmatched = min(p.nextUnmatched, p.closeTime(ts))
		}
	}
	if err := p.emitUnmatched(ctx, rc); err != nil {
		return err
	}
	return p.expire()
}

func (p *joinProc[K, V1, V2, VR]) emit(ctx context.Context, rc *stream.RecordContext, k K, v VR, ts int64) error {
	p.out = stream.RecordContext{Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Timestamp: time.UnixMilli(ts), Headers: rc.Headers}
	for _, f := range p.fs {
		if err := f(ctx, &p.out, k, v); err != nil {
			return err
		}
	}
	p.t.Current = p.node
	return nil
}

// emitUnmatched emits the unmatched records that can no longer join.
func (p *joinProc[K, V1, V2, VR]) emitUnmatched(ctx context.Context, rc *stream.RecordContext) error {
	if p.jn.kind == innerJoin || p.st == p.closedUpTo {
		return nil
	}
	from := []byte{windowstore.SpaceClose}
	if p.closedUpTo != noTime {
		from = windowstore.AppendTime(from, p.closedUpTo+1)
	}
	p.closedUpTo = p.st
	to := windowstore.AppendTime([]byte{windowstore.SpaceClose}, p.st+1)
	var keys [][]byte
	seq, errf := p.kv.Range(from, to)
	for key := range seq {
		keys = append(keys, bytes.Clone(key))
	}
	if err := errf(); err != nil {
		return fmt.Errorf("store %q: range: %w", p.jn.store, err)
	}
	if len(keys) > 0 {
		if err := p.kv.DeleteRange(from, to); err != nil {
			return fmt.Errorf("store %q: delete range: %w", p.jn.store, err)
		}
	}
	for _, ik := range keys {
		if len(ik) < 10 {
			return fmt.Errorf("store %q: %w: unmatched entry", p.jn.store, codec.ErrInvalid)
		}
		side := ik[9]
		raw, rest, err := windowstore.Unescape(ik[10:])
		if err != nil || len(rest) != 16 {
			return fmt.Errorf("store %q: %w: unmatched entry", p.jn.store, codec.ErrInvalid)
		}
		ts, sq := windowstore.ReadTime(rest), binary.BigEndian.Uint64(rest[8:])
		val, found, err := p.kv.Get(p.recordKey(side, windowstore.AppendEscaped(nil, raw), ts, sq))
		if err != nil {
			return fmt.Errorf("store %q: get: %w", p.jn.store, err)
		}
		if !found {
			continue
		}
		// An item of its own: one that fails (in the joiner or
		// downstream) is skipped alone (under the skip policy), and its
		// unmatched entry, deleted above, keeps it from being emitted
		// again.
		p.item = unmatchedItem[K, V1, V2, VR]{p: p, rc: rc, side: side, raw: raw, val: val, ts: ts}
		if err := p.t.Item(ctx, &p.item); err != nil {
			return err
		}
	}
	return nil
}

// unmatchedItem is an unmatched record a left or outer join emits on its
// own (dsl.Task.Item) once it can no longer join: Emit decodes its stored
// key and value and runs the joiner.
type unmatchedItem[K, V1, V2, VR any] struct {
	p        *joinProc[K, V1, V2, VR]
	rc       *stream.RecordContext
	side     byte
	raw, val []byte
	ts       int64
	k        K
	decoded  bool
}

func (it *unmatchedItem[K, V1, V2, VR]) Emit(ctx context.Context) (err error) {
	p := it.p
	defer p.t.RecoverStep(&err, p.node, it.rc.Topic, it.rc.Partition, it.rc.Offset)
	p.t.Current = p.node
	k, err := p.jn.kc.Decode(it.raw)
	if err != nil {
		return fmt.Errorf("store %q: decode the stored key: %w", p.jn.store, err)
	}
	it.k, it.decoded = k, true
	var out VR
	if it.side == 0 {
		v1, err := p.jn.v1c.Decode(it.val)
		if err != nil {
			return fmt.Errorf("store %q: decode a stored left value: %w", p.jn.store, err)
		}
		out = p.jn.joiner(k, v1, true, *new(V2), false)
	} else {
		v2, err := p.jn.v2c.Decode(it.val)
		if err != nil {
			return fmt.Errorf("store %q: decode a stored right value: %w", p.jn.store, err)
		}
		out = p.jn.joiner(k, *new(V1), false, v2, true)
	}
	return p.emit(ctx, it.rc, k, out, it.ts)
}

func (it *unmatchedItem[K, V1, V2, VR]) Step() string { return it.p.jn.n.Name }

func (it *unmatchedItem[K, V1, V2, VR]) String() string {
	side := "left"
	if it.side == 1 {
		side = "right"
	}
	if !it.decoded {
		return fmt.Sprintf("unmatched %s record at %s of the stored key %q", side, time.UnixMilli(it.ts).UTC().Format(time.RFC3339Nano), it.raw)
	}
	return fmt.Sprintf("unmatched %s record at %s of key %v", side, time.UnixMilli(it.ts).UTC().Format(time.RFC3339Nano), it.k)
}

// expire deletes the segments of records that can no longer join, with
// one range deletion (KV.DeleteRange).
func (p *joinProc[K, V1, V2, VR]) expire() error {
	if p.st-p.ret < math.MinInt64/2 {
		return nil
	}
	cut := windowstore.FloorDiv(p.st-p.ret, p.seg)
	if p.lowSeg != noTime && cut <= p.lowSeg {
		return nil
	}
	from := []byte{windowstore.SpaceWindow}
	if p.lowSeg != noTime {
		from = windowstore.AppendTime(from, p.lowSeg)
	}
	if err := p.kv.DeleteRange(from, windowstore.AppendTime([]byte{windowstore.SpaceWindow}, cut)); err != nil {
		return fmt.Errorf("store %q: delete range: %w", p.jn.store, err)
	}
	p.lowSeg = cut
	return nil
}

// cleanRestored deletes what a restore from the changelog may have
// brought back although the join had deleted it by range: expired
// segments and unmatched entries at or below stream time (emitted). See
// proc.cleanRestored.
func (p *joinProc[K, V1, V2, VR]) cleanRestored() error {
	if p.jn.kind != innerJoin {
		if err := p.kv.DeleteRange([]byte{windowstore.SpaceClose}, windowstore.AppendTime([]byte{windowstore.SpaceClose}, p.st+1)); err != nil {
			return fmt.Errorf("store %q: delete range: %w", p.jn.store, err)
		}
		p.closedUpTo = p.st
	}
	return p.expire()
}
