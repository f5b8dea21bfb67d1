package table

import (
	"context"
	"fmt"
	"slices"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

// Table is a typed handle on a table inside a stream.Builder: the newest
// value per key, kept in a state store and changed by every update. A
// Table is a small value; copy it freely. The zero Table belongs to no
// builder, and ToStream on it returns the zero stream.Stream.
type Table[K, V any] dsl.Stream[K, V]

// ToStream returns the stream of the table's changes: one record per
// update, with the key and the key's new value, the timestamp and headers
// of the input record that caused it. Aggregations emit on every update
// (there is no record cache that suppresses intermediate updates yet;
// Kafka Streams with caching enabled emits fewer).
func (t Table[K, V]) ToStream() stream.Stream[K, V] {
	return stream.Stream[K, V](dsl.Stream[K, V](t))
}

// emit is the per-task input function of stream nodes (see internal/dsl,
// "Conventions of package stream").
type emit[K, V any] = func(ctx context.Context, rc *stream.RecordContext, k K, v V) error

// Count counts the records of each key of g into the state store named
// store, and returns the table of counts. The store is logged to the
// changelog topic "<app-id>-<store>-changelog" and restored from it, so
// counts survive restarts and moves; Process steps of the same
// sub-topology may read it by declaring it with stream.WithStores.
// Records with an absent key, and records with a nil value (tombstones),
// are dropped and logged at Debug, as Kafka Streams' KGroupedStream.count
// skips records with null keys or values. The step is named
// "count-<n>".
//
// Build reports an invalid store name (stream.ErrInvalidOption), a store
// name already used by another step (stream.ErrStoreConflict), and nil
// codecs in g (stream.ErrNilCodec).
func Count[K, V any](g stream.Grouped[K, V], store string) Table[K, int64] {
	return aggregate(g, "count", store, false,
		func() int64 { return 0 },
		func(_ K, _ V, n int64, _ bool) int64 { return n + 1 },
		codec.Int64())
}

// Reduce combines the values of each key of g with fn into the state
// store named store, and returns the table of results: the first value of
// a key is stored as it is, and every later value v replaces the stored
// agg with fn(agg, v). Values are stored with g's value codec. Store,
// changelog, dropped records and Build errors as for [Count]; Build also
// reports a nil fn (stream.ErrNilFunc). The step is named "reduce-<n>".
func Reduce[K, V any](g stream.Grouped[K, V], fn func(agg, v V) V, store string) Table[K, V] {
	var agg func(K, V, V, bool) V
	if fn != nil {
		agg = func(_ K, v V, a V, ok bool) V {
			if !ok {
				return v
			}
			return fn(a, v)
		}
	}
	return aggregate(g, "reduce", store, fn == nil, nil, agg, g.ValueCodec())
}

// Aggregate folds the values of each key of g into an aggregate of type A
// in the state store named store, and returns the table of aggregates:
// the first record of a key starts from init(), and every record replaces
// the stored aggregate a with agg(k, v, a). Aggregates are stored with ac,
// which must decode what it encodes. Store, changelog, dropped records and
// Build errors as for [Count]; Build also reports nil init or agg
// (stream.ErrNilFunc) and a nil ac (stream.ErrNilCodec). The step is named
// "aggregate-<n>".
func Aggregate[K, V, A any](g stream.Grouped[K, V], init func() A, agg func(k K, v V, a A) A, ac codec.Codec[A], store string) Table[K, A] {
	var f func(K, V, A, bool) A
	if agg != nil {
		f = func(k K, v V, a A, _ bool) A { return agg(k, v, a) }
	}
	t := aggregate(g, "aggregate", store, init == nil || agg == nil, init, f, ac)
	return t
}

// aggregate adds the node of an aggregation: fold(k, v, a, ok) returns the
// new aggregate of k from the stored one (ok) or from init() (!ok; with
// init nil, from A's zero value).
func aggregate[K, V, A any](g stream.Grouped[K, V], op, store string, nilFunc bool, init func() A, fold func(K, V, A, bool) A, ac codec.Codec[A]) Table[K, A] {
	p := dsl.StreamNode(dsl.Stream[K, V](g.Stream()))
	if p == nil {
		return Table[K, A]{}
	}
	gr := p.Graph()
	kc := g.KeyCodec()
	n := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Stores: []string{store}}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		next, err := fanout[K, A](t, n)
		if err != nil {
			return nil, err
		}
		env, ok := t.Env().(topology.StoreEnv)
		if !ok {
			return nil, fmt.Errorf("%s %q: store %q: %w: this runtime provides no state stores", op, n.Name, store, stream.ErrUnknownStore)
		}
		kv, err := env.Store(store)
		if err != nil {
			return nil, fmt.Errorf("%s %q: store %q: %w", op, n.Name, store, err)
		}
		logger := t.Env().Logger().With("node", n.Name, "store", store)
		var kbuf, vbuf []byte
		return emit[K, V](func(ctx context.Context, rc *stream.RecordContext, k K, v V) error {
			t.Current = n
			if rc.NoKey || rc.Tombstone {
				logger.Debug("dropped a record with an absent key or value",
					"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset,
					"no_key", rc.NoKey, "tombstone", rc.Tombstone)
				return nil
			}
			nodeErr := func(err error) error {
				return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			kbuf, err = kc.Append(kbuf[:0], k)
			if err != nil {
				return nodeErr(&codec.EncodeError{Topic: store, Part: "key", Err: err})
			}
			old, found, err := kv.Get(kbuf)
			if err != nil {
				return nodeErr(fmt.Errorf("store %q: get: %w", store, err))
			}
			var a A
			if found {
				if a, err = ac.Decode(old); err != nil {
					return nodeErr(fmt.Errorf("store %q: decode the stored aggregate: %w", store, err))
				}
			} else if init != nil {
				a = init()
			}
			a = fold(k, v, a, found)
			vbuf, err = ac.Append(vbuf[:0], a)
			if err != nil {
				return nodeErr(&codec.EncodeError{Topic: store, Part: "value", Err: err})
			}
			if err := kv.Put(kbuf, vbuf); err != nil {
				return nodeErr(fmt.Errorf("store %q: put: %w", store, err))
			}
			return next(ctx, rc, k, a)
		}), nil
	}
	// Look for other users of the store before adding n.
	var owner string
	for _, o := range gr.Nodes() {
		if slices.Contains(o.Stores, store) {
			owner = o.Name
			break
		}
	}
	gr.AddNode(n, p)
	if owner != "" {
		gr.AddError(fmt.Errorf("%w: %s %q: store %q is already used by step %q; an aggregation needs a store of its own", stream.ErrStoreConflict, op, n.Name, store, owner))
	}
	if nilFunc {
		gr.AddError(fmt.Errorf("%s %q: %w", op, n.Name, stream.ErrNilFunc))
	}
	// GroupBy and GroupByKey report nil key and value codecs (the value
	// codec is Reduce's ac).
	if ac == nil && op == "aggregate" {
		gr.AddError(fmt.Errorf("%s %q: aggregate codec: %w", op, n.Name, stream.ErrNilCodec))
	}
	return Table[K, A](dsl.NewStream[K, A](n))
}

// fanout returns one function that calls every child of n in order.
func fanout[K, V any](t *dsl.Task, n *dsl.Node) (emit[K, V], error) {
	fs, err := dsl.Children[emit[K, V]](t, n)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, rc *stream.RecordContext, k K, v V) error {
		for _, f := range fs {
			if err := f(ctx, rc, k, v); err != nil {
				return err
			}
		}
		return nil
	}, nil
}
