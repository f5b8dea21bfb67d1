package window

import (
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/internal/windowstore"
)

// windowLookup returns the lookup of the table of a windowed aggregation
// over w kept in store: the aggregate of one key's window, read by the
// joins that look the table up. With final results (EmitOnWindowClose)
// a window waiting for its final result, in the close index, is not in
// the table yet, as Kafka Streams' suppress hides it from value getters
// until it emits it.
func windowLookup[K, A any](store string, w Windows, final bool, kc codec.Codec[K], ac codec.Codec[A]) tablecore.Lookup[Windowed[K], A] {
	session := w.kind == KindSession
	seg := windowstore.SegmentInterval(w.Retention()).Milliseconds()
	gap, grace := w.size.Milliseconds(), w.grace.Milliseconds()
	return func(t *dsl.Task, user *dsl.Node) (tablecore.Getter[Windowed[K], A], error) {
		kv, err := t.Env().Store(store)
		if err != nil {
			return nil, fmt.Errorf("%s %q: store %q: %w", user.Op, user.Name, store, err)
		}
		var kbuf, ekey, key []byte
		return func(wk Windowed[K]) (A, bool, error) {
			var zero A
			var err error
			if kbuf, err = kc.Append(kbuf[:0], wk.Key); err != nil {
				return zero, false, &codec.EncodeError{Store: store, Part: "key", Err: err}
			}
			ekey = windowstore.AppendEscaped(ekey[:0], kbuf)
			start, end := wk.Start.UnixMilli(), wk.End.UnixMilli()
			if final {
				key = windowstore.AppendCloseKey(key[:0], closeTime(session, gap, grace, end), ekey, start, end)
				_, pending, err := kv.Get(key)
				if err != nil {
					return zero, false, fmt.Errorf("store %q: get: %w", store, err)
				}
				if pending {
					return zero, false, nil
				}
			}
			segment := windowstore.FloorDiv(windowstore.SegmentTime(session, start, end), seg)
			key = windowstore.AppendWindowKey(key[:0], segment, ekey, start, end)
			b, ok, err := kv.Get(key)
			if err != nil {
				return zero, false, fmt.Errorf("store %q: get: %w", store, err)
			}
			if !ok {
				return zero, false, nil
			}
			if len(b) < 8 {
				return zero, false, fmt.Errorf("store %q: %w: window value of %d bytes", store, codec.ErrInvalid, len(b))
			}
			a, err := ac.Decode(b[8:])
			if err != nil {
				return zero, false, fmt.Errorf("store %q: decode the stored aggregate: %w", store, err)
			}
			return a, true, nil
		}, nil
	}
}
