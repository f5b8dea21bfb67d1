package stream

import (
	"context"
	"iter"

	"github.com/duality-streams/duality/internal/dsl"
)

// Map turns every record into a new key and value. Records keep their
// timestamp and headers. fn gets a tombstone's value as V's zero value and
// returns an ordinary value. Changing the key does not move the record to
// another partition: call [Stream.Repartition] before steps that need
// records of one key together. Options: [Named] (default "map-<n>").
// Build reports a nil fn (ErrNilFunc).
func Map[K, V, K2, V2 any](s Stream[K, V], fn func(K, V) (K2, V2), opts ...Option) Stream[K2, V2] {
	return addStep(s, "map", opts, codecOpts, fn == nil, func(t *dsl.Task, n *dsl.Node, next emit[K2, V2]) emit[K, V] {
		return func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			k2, v2 := fn(k, v)
			return emitKey(ctx, next, rc, k2, v2, true)
		}
	})
}

// MapValues turns every record's value into a new value; the key,
// timestamp and headers stay. fn gets a tombstone's value as V's zero
// value and returns an ordinary value. Options: [Named] (default "map-values-<n>").
// Build reports a nil fn (ErrNilFunc).
func MapValues[K, V, V2 any](s Stream[K, V], fn func(V) V2, opts ...Option) Stream[K, V2] {
	return addStep(s, "map-values", opts, valueOpts, fn == nil, func(t *dsl.Task, n *dsl.Node, next emit[K, V2]) emit[K, V] {
		return func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			return emitValue(ctx, next, rc, k, fn(v))
		}
	})
}

// SelectKey gives every record the key fn returns; the value (a tombstone
// stays one), timestamp and headers stay. As with [Map], the record stays in its partition until
// a [Stream.Repartition]. Options: [Named] (default "select-key-<n>").
// Build reports a nil fn (ErrNilFunc).
func SelectKey[K, V, K2 any](s Stream[K, V], fn func(K, V) K2, opts ...Option) Stream[K2, V] {
	return addStep(s, "select-key", opts, keyOpts, fn == nil, func(t *dsl.Task, n *dsl.Node, next emit[K2, V]) emit[K, V] {
		return func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			return emitKey(ctx, next, rc, fn(k, v), v, false)
		}
	})
}

// FlatMap turns every record into the zero or more key-value pairs of the
// sequence fn returns (a nil sequence yields nothing). Every output record
// keeps the input's timestamp and headers. The sequence is consumed once,
// while the record is processed. Options: [Named] (default
// "flat-map-<n>"). Build reports a nil fn (ErrNilFunc).
func FlatMap[K, V, K2, V2 any](s Stream[K, V], fn func(K, V) iter.Seq2[K2, V2], opts ...Option) Stream[K2, V2] {
	return addStep(s, "flat-map", opts, codecOpts, fn == nil, func(t *dsl.Task, n *dsl.Node, next emit[K2, V2]) emit[K, V] {
		return func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			seq := fn(k, v)
			if seq == nil {
				return nil
			}
			var err error
			for k2, v2 := range seq {
				if err = emitKey(ctx, next, rc, k2, v2, true); err != nil {
					break
				}
				t.Current = n
			}
			return err
		}
	})
}

// FlatMapValues turns every record's value into the zero or more values of
// the sequence fn returns (a nil sequence yields nothing), each with the
// input's key, timestamp and headers. The sequence is consumed once, while
// the record is processed. Options: [Named] (default
// "flat-map-values-<n>"). Build reports a nil fn (ErrNilFunc).
func FlatMapValues[K, V, V2 any](s Stream[K, V], fn func(V) iter.Seq[V2], opts ...Option) Stream[K, V2] {
	return addStep(s, "flat-map-values", opts, valueOpts, fn == nil, func(t *dsl.Task, n *dsl.Node, next emit[K, V2]) emit[K, V] {
		return func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			seq := fn(v)
			if seq == nil {
				return nil
			}
			var err error
			for v2 := range seq {
				if err = emitValue(ctx, next, rc, k, v2); err != nil {
					break
				}
				t.Current = n
			}
			return err
		}
	})
}
