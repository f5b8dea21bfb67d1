package window

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/windowstore"
)

// ReadOnlyStore is a typed, read-only view of a windowed aggregation's
// store in a running app, made by [Query]: a key's windows over a time
// range, and all windows over a time range. It reads through
// duality.Query, so it has its semantics: committed state only, the
// partitions this instance owns, [duality.ErrStoreNotReady] while the app
// is not running, rebalancing or restoring. It is safe for concurrent use.
type ReadOnlyStore[K, V any] struct {
	raw *duality.ReadOnlyStore[[]byte, []byte]
	kc  codec.Codec[K]
	vc  codec.Codec[V]
	l   windowstore.Layout
}

// Query returns a read-only view of t's store in app, which must run the
// topology t was built in. It may be called before or while app runs.
// Errors: those of duality.Query (stream.ErrUnknownStore for a store the
// app's topology does not have, duality.ErrInvalidConfig for a nil app),
// and an error matching ErrInvalidWindow for the zero Table.
func Query[K, V any](app *duality.App, t Table[K, V]) (*ReadOnlyStore[K, V], error) {
	if t.kc == nil || t.vc == nil || t.w.kind == 0 {
		return nil, fmt.Errorf("%w: query of the zero Table", ErrInvalidWindow)
	}
	raw, err := duality.Query(app, t.store, codec.Bytes(), codec.Bytes())
	if err != nil {
		return nil, err
	}
	l := windowstore.Layout{Session: t.w.kind == KindSession, Segment: windowstore.SegmentInterval(t.w.Retention()).Milliseconds()}
	return &ReadOnlyStore[K, V]{raw: raw, kc: t.kc, vc: t.vc, l: l}, nil
}

// Fetch returns the windows of key whose start lies in [from, to), with
// their aggregates, in start order (then end order), as Kafka Streams'
// WindowStore.fetch(key, from, to) does for starts (inclusive bounds
// there). The store keeps windows for at least the retention back from
// stream time, closed windows included; for up to a commit interval after
// a restore it may still show windows that had expired (see the package
// documentation, "State"). The sequence is single-use; the
// error function reports, after the loop, what stopped it: a
// *duality.NotOwnedError when another instance owns key's partition,
// duality.ErrStoreNotReady, ctx's error, codec and store errors.
func (s *ReadOnlyStore[K, V]) Fetch(ctx context.Context, key K, from, to time.Time) (iter.Seq2[Windowed[K], V], func() error) {
	var err error
	seq := func(yield func(Windowed[K], V) bool) {
		err = nil
		kb, kerr := s.kc.Append(nil, key)
		if kerr != nil {
			err = fmt.Errorf("window: query: encode key: %w", kerr)
			return
		}
		// Ownership: Get routes the key to its partition as the runtime
		// partitions records, and fails for another instance's.
		if _, _, err = s.raw.Get(ctx, kb); err != nil {
			return
		}
		var derr error
		err = s.l.Fetch(s.scan(ctx), windowstore.AppendEscaped(nil, kb), from.UnixMilli(), to.UnixMilli(), s.decode(yield, &derr))
		if derr != nil {
			err = derr
		}
	}
	return seq, func() error { return err }
}

// FetchAll returns the windows of every key, in the partitions this
// instance owns, whose start lies in [from, to): ordered by time segment
// (windows are grouped by start into segments of half the retention;
// sessions by their last record time), then key, then start. The
// sequence and the error function work as for [ReadOnlyStore.Fetch],
// without the ownership error.
func (s *ReadOnlyStore[K, V]) FetchAll(ctx context.Context, from, to time.Time) (iter.Seq2[Windowed[K], V], func() error) {
	var err error
	seq := func(yield func(Windowed[K], V) bool) {
		var derr error
		err = s.l.FetchAll(s.scan(ctx), from.UnixMilli(), to.UnixMilli(), s.decode(yield, &derr))
		if derr != nil {
			err = derr
		}
	}
	return seq, func() error { return err }
}

func (s *ReadOnlyStore[K, V]) scan(ctx context.Context) windowstore.ScanFunc {
	return func(start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
		return s.raw.Scan(ctx, &start, &end)
	}
}

func (s *ReadOnlyStore[K, V]) decode(yield func(Windowed[K], V) bool, err *error) func(wkey, value []byte) bool {
	wc := WindowedCodec(s.kc)
	return func(wkey, value []byte) bool {
		w, kerr := wc.Decode(wkey)
		if kerr != nil {
			*err = fmt.Errorf("window: query: decode key: %w", kerr)
			return false
		}
		v, verr := s.vc.Decode(value)
		if verr != nil {
			*err = fmt.Errorf("window: query: decode value: %w", verr)
			return false
		}
		return yield(w, v)
	}
}
