package duality

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/runtime"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/internal/windowstore"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// ReadOnlyWindowStore is a typed, read-only view of the store of a
// windowed aggregation of a running [App], made by [QueryWindows]: a
// key's windows over a time range, and all windows over a time range. It
// has the semantics of [ReadOnlyStore]: committed state only, the
// partitions this instance owns (a key of another instance's partition
// fails with a *[NotOwnedError]), [ErrStoreNotReady] while the app is not
// running, rebalancing or restoring. It is safe for concurrent use and
// stays valid across rebalances.
//
// The store holds every window of the last retention
// (window.Windows.WithRetention) back from stream time, open or closed,
// also when the aggregation emits final results only
// (window.EmitOnWindowClose), as Kafka Streams' window stores do. For up
// to a commit interval after a restore it may still show windows that
// had expired (see package window, "State").
type ReadOnlyWindowStore[K, V any] struct {
	r  *runtime.StoreReader
	l  windowstore.Layout
	wc codec.Codec[window.Windowed[K]]
	vc codec.Codec[V]
}

// QueryWindows returns a read-only view of the store of t, the table of
// a windowed aggregation (window.Count, Reduce, Aggregate or
// AggregateSessions) of a's topology. It may be called before or while a
// runs. It returns an error matching stream.ErrUnknownStore when a's
// topology has no such store, [ErrWrongStoreKind] for a table that is
// not a windowed aggregation's (a table derived from one by Filter or
// MapValues has no store of its own: query the aggregation, or
// Materialize the derived table and query it with [QueryTable]), and
// [ErrInvalidConfig] for a nil app or the zero Table.
func QueryWindows[K, V any](a *App, t table.Table[window.Windowed[K], V]) (*ReadOnlyWindowStore[K, V], error) {
	r, err := queryTable(a, t, topology.StoreWindow, topology.StoreSession)
	if err != nil {
		return nil, err
	}
	l, err := windowstore.LayoutOf(r.Spec())
	if err != nil {
		return nil, fmt.Errorf("%w: query %q: %w", ErrWrongStoreKind, r.Name(), err)
	}
	return &ReadOnlyWindowStore[K, V]{r: r, l: l, wc: t.KeyCodec(), vc: t.ValueCodec()}, nil
}

// Name returns the store's name.
func (s *ReadOnlyWindowStore[K, V]) Name() string { return s.r.Name() }

// Fetch returns the windows of key whose start lies in [from, to), with
// their aggregates, in start order (then end order), as Kafka Streams'
// ReadOnlyWindowStore.fetch(key, from, to) does for starts (inclusive
// bounds there). The sequence is single-use; the error function reports,
// after the loop, what stopped it: a *[NotOwnedError] when another
// instance owns key's partition, [ErrStoreNotReady], ctx's error, codec
// and store errors.
func (s *ReadOnlyWindowStore[K, V]) Fetch(ctx context.Context, key K, from, to time.Time) (iter.Seq2[window.Windowed[K], V], func() error) {
	var err error
	seq := func(yield func(window.Windowed[K], V) bool) {
		err = nil
		ekey, raw, kerr := s.encodeKey(key)
		if kerr != nil {
			err = kerr
			return
		}
		scan := func(start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
			return s.r.ScanPartitionOf(ctx, raw, start, end)
		}
		var derr error
		err = s.l.Fetch(scan, ekey, from.UnixMilli(), to.UnixMilli(), s.decode(yield, &derr))
		if derr != nil {
			err = derr
		}
	}
	return seq, func() error { return err }
}

// encodeKey returns the escaped encoding of key as the store's keys hold
// it (ekey), and the record key it escapes (raw), whose partition is the
// key's: the windowed key codec encodes the escaped key, then the
// window's start and end (8 bytes each).
func (s *ReadOnlyWindowStore[K, V]) encodeKey(key K) (ekey, raw []byte, err error) {
	wk, err := s.wc.Append(nil, window.Windowed[K]{Key: key})
	if err != nil {
		return nil, nil, fmt.Errorf("store %s: encode key: %w", s.r.Name(), err)
	}
	ekey = wk[:max(len(wk)-16, 0)]
	raw, rest, err := windowstore.Unescape(ekey)
	if err != nil || len(rest) != 0 {
		return nil, nil, fmt.Errorf("store %s: encode key: %w: not a windowed key encoding", s.r.Name(), codec.ErrInvalid)
	}
	return ekey, raw, nil
}

// Owner returns which instance owns the windows of key, as
// [ReadOnlyStore.Owner] does: this instance (Local) or another, named by
// its [Endpoint], in this instance's current assignment. Errors:
// [ErrStoreNotReady] before the app's first assignment and after it
// stops, and codec errors.
func (s *ReadOnlyWindowStore[K, V]) Owner(key K) (KeyOwner, error) {
	_, raw, err := s.encodeKey(key)
	if err != nil {
		return KeyOwner{}, err
	}
	return s.r.OwnerOf(raw)
}

// FetchAll returns the windows of every key, in the partitions this
// instance owns, whose start lies in [from, to): ordered by time segment
// (windows are grouped by start into segments of half the retention;
// sessions by their last record time), then encoded key, then start. The
// sequence and the error function work as for
// [ReadOnlyWindowStore.Fetch], without the ownership error; as a
// [ReadOnlyStore.Range], it is never silently partial.
func (s *ReadOnlyWindowStore[K, V]) FetchAll(ctx context.Context, from, to time.Time) (iter.Seq2[window.Windowed[K], V], func() error) {
	var err error
	seq := func(yield func(window.Windowed[K], V) bool) {
		scan := func(start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
			return s.r.Scan(ctx, start, end)
		}
		var derr error
		err = s.l.FetchAll(scan, from.UnixMilli(), to.UnixMilli(), s.decode(yield, &derr))
		if derr != nil {
			err = derr
		}
	}
	return seq, func() error { return err }
}

// decode returns the yield of windowstore's fetches: it decodes a window
// and passes it to yield, or sets *err and stops.
func (s *ReadOnlyWindowStore[K, V]) decode(yield func(window.Windowed[K], V) bool, err *error) func(wkey, value []byte) bool {
	return func(wkey, value []byte) bool {
		w, kerr := s.wc.Decode(wkey)
		if kerr != nil {
			*err = fmt.Errorf("store %s: decode key: %w", s.r.Name(), kerr)
			return false
		}
		v, verr := s.vc.Decode(value)
		if verr != nil {
			*err = fmt.Errorf("store %s: decode value: %w", s.r.Name(), verr)
			return false
		}
		return yield(w, v)
	}
}
