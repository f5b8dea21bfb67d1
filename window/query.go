package window

import (
	"context"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
)

// ReadOnlyStore is a typed, read-only view of a windowed aggregation's
// store in a running app, made by [Query]: a key's windows over a time
// range, and all windows over a time range. It reads through
// duality.Query, so it has its semantics: committed state only, the
// partitions this instance owns, [duality.ErrStoreNotReady] while the app
// is not running, rebalancing or restoring. It is safe for concurrent use.
type ReadOnlyStore[K, V any] struct {
	raw  *duality.ReadOnlyStore[[]byte, []byte]
	kc   codec.Codec[K]
	vc   codec.Codec[V]
	kind Kind
	seg  int64
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
	return &ReadOnlyStore[K, V]{raw: raw, kc: t.kc, vc: t.vc, kind: t.w.kind, seg: max(t.w.Retention().Milliseconds()/2, 1)}, nil
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
		ekey := appendEscaped(nil, kb)
		lo, hi := from.UnixMilli(), to.UnixMilli()
		tlo, thi := lo, hi-1 // segment times: window starts...
		if s.kind == KindSession {
			thi = math.MaxInt64 - 1 // ...or the last record time of sessions, after the start
		}
		err = s.segments(ctx, tlo, thi, func(seg []byte) (bool, error) {
			prefix := append(seg[:len(seg):len(seg)], ekey...)
			from := appendTime(prefix[:len(prefix):len(prefix)], lo)
			to := appendTime(prefix[:len(prefix):len(prefix)], hi)
			return s.scan(ctx, from, to, lo, hi, yield)
		})
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
		err = nil
		lo, hi := from.UnixMilli(), to.UnixMilli()
		thi := hi - 1
		if s.kind == KindSession {
			thi = math.MaxInt64 - 1
		}
		err = s.segments(ctx, lo, thi, func(seg []byte) (bool, error) {
			next := appendTime([]byte{spaceWindow}, readTime(seg[1:])+1)
			return s.scan(ctx, seg, next, lo, hi, yield)
		})
	}
	return seq, func() error { return err }
}

// segments calls f with the prefix (space and segment) of every segment
// present in the store with segment time in [tlo, thi], in order, until f
// returns false or an error.
func (s *ReadOnlyStore[K, V]) segments(ctx context.Context, tlo, thi int64, f func(seg []byte) (bool, error)) error {
	if tlo > thi {
		return nil
	}
	end := appendTime([]byte{spaceWindow}, floorDiv(thi, s.seg)+1)
	for cur := floorDiv(tlo, s.seg); ; {
		// Seek to the first segment present at or after cur.
		start := appendTime([]byte{spaceWindow}, cur)
		seq, errf := s.raw.Scan(ctx, &start, &end)
		found := false
		for k := range seq {
			if len(k) >= 9 {
				cur, found = readTime(k[1:9]), true
			}
			break
		}
		if err := errf(); err != nil {
			return err
		}
		if !found {
			return nil
		}
		more, err := f(appendTime([]byte{spaceWindow}, cur))
		if err != nil || !more {
			return err
		}
		cur++
	}
}

// scan yields the windows stored in [from, to) whose start is in [lo,
// hi); it returns false when yield asked to stop.
func (s *ReadOnlyStore[K, V]) scan(ctx context.Context, from, to []byte, lo, hi int64, yield func(Windowed[K], V) bool) (bool, error) {
	seq, errf := s.raw.Scan(ctx, &from, &to)
	for k, v := range seq {
		raw, rest, err := unescape(k[9:])
		if err != nil || len(rest) != 16 || len(v) < 8 {
			return false, fmt.Errorf("window: query: %w: window entry", codec.ErrInvalid)
		}
		start, end := readTime(rest), readTime(rest[8:])
		if start < lo || start >= hi {
			continue
		}
		key, err := s.kc.Decode(raw)
		if err != nil {
			return false, fmt.Errorf("window: query: decode key: %w", err)
		}
		val, err := s.vc.Decode(v[8:])
		if err != nil {
			return false, fmt.Errorf("window: query: decode value: %w", err)
		}
		if !yield(Windowed[K]{Key: key, Start: time.UnixMilli(start), End: time.UnixMilli(end)}, val) {
			return false, errf()
		}
	}
	return true, errf()
}
