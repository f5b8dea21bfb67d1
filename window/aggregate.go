package window

import (
	"context"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/internal/windowstore"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// emit is the per-task input function of stream nodes (see internal/dsl,
// "Conventions of package stream").
type emit[K, V any] = func(ctx context.Context, rc *stream.RecordContext, k K, v V) error

// fns is the typed fold of an aggregation.
type fns[K, V, A any] struct {
	// init starts a new window: an initial aggregate, or has == false
	// when the first value becomes the aggregate (Reduce).
	init func() (a A, has bool)
	// fold adds v to the aggregate a (has says whether a is set).
	fold func(k K, v V, a A, has bool) A
	// merge combines two session aggregates; nil when the aggregation
	// cannot merge.
	merge func(k K, a, b A) A
}

// Count counts the records of each key of g per window of w into the
// state store named store, and returns the table of counts keyed by
// [Windowed] keys. Records with an absent key or a nil value are dropped
// and logged at Debug (as Kafka Streams' windowed count skips null keys
// and values). The store is logged to the changelog topic
// "<app-id>-<store>-changelog" and restored from it like every state
// store. Counts are stored with codec.Int64 and the table's windowed keys
// encoded with [WindowedCodec] of g's key codec. Options: [stream.Named]
// (default "windowed-count-<n>"), [stream.WithValueCodec],
// [EmitOnWindowClose], [CacheUpdates], [WithTaskStreamTime], [WithStats],
// [OnLate].
//
// Build reports an invalid w (ErrInvalidWindow), an invalid or already
// used store name (stream.ErrInvalidOption, stream.ErrStoreConflict), nil
// codecs in g (stream.ErrNilCodec) and invalid options
// (stream.ErrInvalidOption). At run time a record with a negative
// timestamp, or one after [MaxTimestamp], fails with an error matching
// [ErrInvalidTimestamp].
func Count[K, V any](g stream.Grouped[K, V], w Windows, store string, opts ...stream.Option) table.Table[Windowed[K], int64] {
	return aggregate(g, w, "windowed-count", store, opts, false, fns[K, V, int64]{
		init:  func() (int64, bool) { return 0, true },
		fold:  func(_ K, _ V, n int64, _ bool) int64 { return n + 1 },
		merge: func(_ K, a, b int64) int64 { return a + b },
	}, codec.Int64())
}

// Reduce combines the values of each key of g per window of w with fn,
// and returns the table of results: the first value of a window is its
// aggregate, and every later value v replaces the aggregate agg with
// fn(agg, v). Merged sessions are combined with fn(older, newer) (fn
// should be associative). Values are stored with g's value codec. Store,
// dropped records, options and errors as for [Count]; Build also reports
// a nil fn (stream.ErrNilFunc). The step is named "windowed-reduce-<n>".
func Reduce[K, V any](g stream.Grouped[K, V], w Windows, fn func(agg, v V) V, store string, opts ...stream.Option) table.Table[Windowed[K], V] {
	f := fns[K, V, V]{init: func() (V, bool) { var zero V; return zero, false }}
	if fn != nil {
		f.fold = func(_ K, v V, a V, has bool) V {
			if !has {
				return v
			}
			return fn(a, v)
		}
		f.merge = func(_ K, a, b V) V { return fn(a, b) }
	}
	return aggregate(g, w, "windowed-reduce", store, opts, fn == nil, f, g.ValueCodec())
}

// Aggregate folds the values of each key of g per window of w into an
// aggregate of type A, and returns the table of aggregates: a window
// starts from init(), and every record replaces its aggregate a with
// agg(k, v, a). Aggregates are stored with codec.For[A] (g's value codec
// when A is V), or the codec stream.WithValueCodec gives. Session windows
// need a merger: use [AggregateSessions] (Build reports ErrInvalidWindow
// for session windows here). Store, dropped records, options and errors
// as for [Count]; Build also reports nil init or agg (stream.ErrNilFunc)
// and a nil codec (stream.ErrNilCodec). The step is named
// "windowed-aggregate-<n>".
func Aggregate[K, V, A any](g stream.Grouped[K, V], w Windows, init func() A, agg func(k K, v V, a A) A, store string, opts ...stream.Option) table.Table[Windowed[K], A] {
	f := fns[K, V, A]{}
	if init != nil && agg != nil {
		f.init = func() (A, bool) { return init(), true }
		f.fold = func(k K, v V, a A, _ bool) A { return agg(k, v, a) }
	}
	t := aggregate(g, w, "windowed-aggregate", store, opts, init == nil || agg == nil, f, dsl.CodecFor[A](g.ValueCodec()))
	if n := tableNode(t); n != nil && w.kind == KindSession {
		n.Graph().AddError(fmt.Errorf("%w: %s %q: session windows merge aggregates; use window.AggregateSessions with a merger", ErrInvalidWindow, n.Op, n.Name))
	}
	return t
}

// AggregateSessions is [Aggregate] for session windows: when a record
// bridges sessions, their aggregates are combined with merge, starting
// from init() and merging the sessions in time order (as Kafka Streams'
// SessionWindowedKStream.aggregate does), before the record is added.
// Build reports windows other than sessions (ErrInvalidWindow) and a nil
// merge (stream.ErrNilFunc), besides what Aggregate reports. The step is
// named "session-aggregate-<n>".
func AggregateSessions[K, V, A any](g stream.Grouped[K, V], w Windows, init func() A, agg func(k K, v V, a A) A, merge func(k K, a1, a2 A) A, store string, opts ...stream.Option) table.Table[Windowed[K], A] {
	f := fns[K, V, A]{merge: merge}
	if init != nil && agg != nil {
		f.init = func() (A, bool) { return init(), true }
		f.fold = func(k K, v V, a A, _ bool) A { return agg(k, v, a) }
	}
	t := aggregate(g, w, "session-aggregate", store, opts, init == nil || agg == nil || merge == nil, f, dsl.CodecFor[A](g.ValueCodec()))
	if n := tableNode(t); n != nil && w.kind != KindSession && w.kind != 0 {
		n.Graph().AddError(fmt.Errorf("%w: %s %q: AggregateSessions needs session windows, got %s", ErrInvalidWindow, n.Op, n.Name, w))
	}
	return t
}

// aggregate adds the node of a windowed aggregation, which stores
// aggregates with ac unless WithValueCodec gives a codec.
func aggregate[K, V, A any](g stream.Grouped[K, V], w Windows, op, store string, opts []stream.Option, nilFunc bool, f fns[K, V, A], ac codec.Codec[A]) table.Table[Windowed[K], A] {
	p := dsl.StreamNode(dsl.Stream[K, V](g.Stream()))
	if p == nil {
		return table.Table[Windowed[K], A]{}
	}
	gr := p.Graph()
	sc := dsl.ApplyOptions(opts)
	cfg := windowConfig(sc)
	ac = dsl.ValueCodec(sc, ac)
	var errs []error
	if cfg.cache && cfg.final {
		errs = append(errs, fmt.Errorf("window: CacheUpdates with EmitOnWindowClose: final results are emitted once anyway"))
	}
	var late func(LateRecord[K, V])
	if cfg.late != nil {
		var ok bool
		if late, ok = cfg.late.(func(LateRecord[K, V])); !ok {
			var want func(LateRecord[K, V])
			errs = append(errs, fmt.Errorf("window: OnLate callback is a %T, the aggregation needs a %T", cfg.late, want))
		}
	}
	kc := g.KeyCodec()
	n := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Name: sc.Name, Stores: []string{store}, Detail: aggregateDetail(w, cfg)}
	if ret := w.Retention(); ret > 0 {
		// The changelog drops expired windows by time (KV.DeleteRange);
		// queries read the store's layout.
		kind := topology.StoreWindow
		if w.kind == KindSession {
			kind = topology.StoreSession
		}
		n.StoreSpecs = map[string]topology.StoreSpec{store: {Kind: kind, Retention: ret, Segment: windowstore.SegmentInterval(ret)}}
	}
	lateLog := new(lateLog) // the step's, over all its tasks
	n.Instantiate = func(t *dsl.Task) (any, error) {
		return newProc(t, n, store, w, cfg, late, lateLog, kc, ac, f)
	}
	gr.AddNode(n, p)
	sc.Report(gr, op, n.Name, aggregateOpts...)
	for _, err := range errs {
		gr.AddError(fmt.Errorf("%w: %s %q: %w", stream.ErrInvalidOption, op, n.Name, err))
	}
	for _, err := range w.validate() {
		gr.AddError(fmt.Errorf("%s %q: %w", op, n.Name, err))
	}
	for _, o := range gr.Nodes() {
		if o != n && contains(o.Stores, store) {
			gr.AddError(fmt.Errorf("%w: %s %q: store %q is already used by step %q; a windowed aggregation needs a store of its own", stream.ErrStoreConflict, op, n.Name, store, o.Name))
			break
		}
	}
	if nilFunc {
		gr.AddError(fmt.Errorf("%s %q: %w", op, n.Name, stream.ErrNilFunc))
	}
	if ac == nil && (op != "windowed-reduce" || sc.ValueCodec != nil) {
		gr.AddError(fmt.Errorf("%s %q: aggregate codec: %w", op, n.Name, stream.ErrNilCodec))
	}
	lookup := windowLookup(store, w, cfg.final, kc, ac)
	return table.Table[Windowed[K], A](tablecore.Stored(dsl.NewStream(n, WindowedCodec(kc), ac), store, lookup).Routed(recordKey))
}

// recordKey returns the encoded record key of an encoded windowed key
// (see WindowedCodec), which the windows of the key are partitioned by.
func recordKey(wkey []byte) ([]byte, error) {
	key, rest, err := windowstore.Unescape(wkey)
	if err != nil {
		return nil, err
	}
	if len(rest) != 16 {
		return nil, fmt.Errorf("%w: windowed key needs 16 bytes of start and end after the key, got %d", codec.ErrInvalid, len(rest))
	}
	return key, nil
}

// tableNode returns the node of t, nil for the zero Table.
func tableNode[K, A any](t table.Table[Windowed[K], A]) *dsl.Node {
	return tablecore.Table[Windowed[K], A](t).Node()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
