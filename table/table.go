package table

import (
	"context"
	"fmt"
	"slices"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

// Table is a typed handle on a table inside a stream.Builder: the newest
// value per key, kept in a state store (or derived from stores by Filter,
// MapValues and table-table joins) and changed by every update. A Table is
// a small value; copy it freely. The zero Table belongs to no builder,
// ToStream on it returns the zero stream.Stream, and steps on it return
// zero values.
type Table[K, V any] tablecore.Table[K, V]

// core returns t's representation, shared with package window.
func (t Table[K, V]) core() tablecore.Table[K, V] { return tablecore.Table[K, V](t) }

// KeyCodec returns the codec of the table's keys: the codec its store
// keys are encoded with, for a table that has a store (from From, an
// aggregation, Materialize, a foreign-key join), and the one its changes
// are written with by ToStream().To.
func (t Table[K, V]) KeyCodec() codec.Codec[K] {
	kc, _ := dsl.StreamCodecs(t.core().Stream())
	return kc
}

// ValueCodec returns the codec of the table's values (see
// [Table.KeyCodec]).
func (t Table[K, V]) ValueCodec() codec.Codec[V] {
	_, vc := dsl.StreamCodecs(t.core().Stream())
	return vc
}

// ToStream returns the stream of the table's changes: one record per
// update, with the key and the key's new value, the timestamp and headers
// of the input record that caused it. A deleted key (a table from a topic
// that read a tombstone, or a row removed by Filter) is emitted as a
// tombstone: the value is V's zero value and sinks write a nil value.
//
// By default every update is emitted, also for aggregations (Kafka
// Streams with caching disabled). With [EmitPerCommit], only the newest
// change of each key is emitted at each commit of the task (Kafka Streams
// with caching enabled). Options that are invalid make Build fail with
// stream.ErrInvalidOption.
func (t Table[K, V]) ToStream(opts ...stream.Option) stream.Stream[K, V] {
	if len(opts) == 0 {
		return stream.Stream[K, V](t.core().Stream())
	}
	return t.toStream(opts)
}

// openStore returns the task's partition of store for the node n.
func openStore(t *dsl.Task, n *dsl.Node, store string) (topology.KV, error) {
	kv, err := t.Env().Store(store)
	if err != nil {
		return nil, fmt.Errorf("%s %q: store %q: %w", n.Op, n.Name, store, err)
	}
	return kv, nil
}

// storeLookup returns the lookup of a table kept in store with the codecs
// kc and vc.
func storeLookup[K, V any](store string, kc codec.Codec[K], vc codec.Codec[V]) tablecore.Lookup[K, V] {
	return func(t *dsl.Task, user *dsl.Node) (tablecore.Getter[K, V], error) {
		kv, err := openStore(t, user, store)
		if err != nil {
			return nil, err
		}
		var kbuf []byte
		return func(k K) (V, bool, error) {
			var zero V
			var err error
			kbuf, err = kc.Append(kbuf[:0], k)
			if err != nil {
				return zero, false, &codec.EncodeError{Store: store, Part: "key", Err: err}
			}
			b, ok, err := kv.Get(kbuf)
			if err != nil {
				return zero, false, fmt.Errorf("store %q: get: %w", store, err)
			}
			if !ok {
				return zero, false, nil
			}
			v, err := vc.Decode(b)
			if err != nil {
				return zero, false, fmt.Errorf("store %q: decode the stored value: %w", store, err)
			}
			return v, true, nil
		}, nil
	}
}

// claimStore reports store if a step of g other than n uses it.
func claimStore(g *dsl.Graph, n *dsl.Node, store, why string) {
	for _, o := range g.Nodes() {
		if o != n && slices.Contains(o.Stores, store) {
			g.AddError(fmt.Errorf("%w: %s %q: store %q is already used by step %q; %s", stream.ErrStoreConflict, n.Op, n.Name, store, o.Name, why))
			return
		}
	}
}

// emit is the per-task input function of stream nodes (see internal/dsl,
// "Conventions of package stream").
type emit[K, V any] = func(ctx context.Context, rc *stream.RecordContext, k K, v V) error

// Count counts the records of each key of g into the state store named
// store, and returns the table of counts, keyed with g's key codec and
// counted with codec.Int64 (or the codec stream.WithValueCodec gives).
// The store is logged to the
// changelog topic "<app-id>-<store>-changelog" and restored from it, so
// counts survive restarts and moves; Process steps of the same
// sub-topology may read it by declaring it with stream.WithStores.
// Records with an absent key, and records with a nil value (tombstones),
// are dropped and logged at Debug, as Kafka Streams' KGroupedStream.count
// skips records with null keys or values. Options: stream.Named (default
// "count-<n>"), stream.WithValueCodec.
//
// Build reports an invalid store name (stream.ErrInvalidOption), a store
// name already used by another step (stream.ErrStoreConflict), and nil
// codecs in g (stream.ErrNilCodec).
func Count[K, V any](g stream.Grouped[K, V], store string, opts ...stream.Option) Table[K, int64] {
	return aggregate(g, "count", store, opts, false,
		func() int64 { return 0 },
		func(_ K, _ V, n int64, _ bool) int64 { return n + 1 },
		codec.Int64())
}

// Reduce combines the values of each key of g with fn into the state
// store named store, and returns the table of results: the first value of
// a key is stored as it is, and every later value v replaces the stored
// agg with fn(agg, v). Values are stored with g's value codec (or the one
// stream.WithValueCodec gives). Store, changelog, dropped records and
// Build errors as for [Count]; Build also reports a nil fn
// (stream.ErrNilFunc). Options: stream.Named (default "reduce-<n>"),
// stream.WithValueCodec.
func Reduce[K, V any](g stream.Grouped[K, V], fn func(agg, v V) V, store string, opts ...stream.Option) Table[K, V] {
	var agg func(K, V, V, bool) V
	if fn != nil {
		agg = func(_ K, v V, a V, ok bool) V {
			if !ok {
				return v
			}
			return fn(a, v)
		}
	}
	return aggregate(g, "reduce", store, opts, fn == nil, nil, agg, g.ValueCodec())
}

// Aggregate folds the values of each key of g into an aggregate of type A
// in the state store named store, and returns the table of aggregates:
// the first record of a key starts from init(), and every record replaces
// the stored aggregate a with agg(k, v, a). Aggregates are stored with
// codec.For[A] (g's value codec when A is V), or the codec
// stream.WithValueCodec gives, which must decode what it encodes. Store,
// changelog, dropped records and Build errors as for [Count]; Build also
// reports nil init or agg (stream.ErrNilFunc) and a nil codec
// (stream.ErrNilCodec). Options: stream.Named (default "aggregate-<n>"),
// stream.WithValueCodec.
func Aggregate[K, V, A any](g stream.Grouped[K, V], init func() A, agg func(k K, v V, a A) A, store string, opts ...stream.Option) Table[K, A] {
	var f func(K, V, A, bool) A
	if agg != nil {
		f = func(k K, v V, a A, _ bool) A { return agg(k, v, a) }
	}
	return aggregate(g, "aggregate", store, opts, init == nil || agg == nil, init, f, dsl.CodecFor[A](g.ValueCodec()))
}

// aggregate adds the node of an aggregation: fold(k, v, a, ok) returns the
// new aggregate of k from the stored one (ok) or from init() (!ok; with
// init nil, from A's zero value). Aggregates are stored with ac, unless
// WithValueCodec gives a codec.
func aggregate[K, V, A any](g stream.Grouped[K, V], op, store string, opts []stream.Option, nilFunc bool, init func() A, fold func(K, V, A, bool) A, ac codec.Codec[A]) Table[K, A] {
	p := dsl.StreamNode(dsl.Stream[K, V](g.Stream()))
	if p == nil {
		return Table[K, A]{}
	}
	gr := p.Graph()
	kc := g.KeyCodec()
	cfg := dsl.ApplyOptions(opts)
	ac = dsl.ValueCodec(cfg, ac)
	n := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Name: cfg.Name, Stores: []string{store}}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		out, err := tablecore.NewOutput[K, A](t, n)
		if err != nil {
			return nil, err
		}
		kv, err := openStore(t, n, store)
		if err != nil {
			return nil, err
		}
		logger := t.Env().Logger().With("node", n.Name, "store", store)
		var kbuf, vbuf, obuf []byte
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
				return nodeErr(&codec.EncodeError{Store: store, Part: "key", Err: err})
			}
			// The codec does not retain what it decodes: the stored
			// aggregate is read into a buffer kept across records.
			var found bool
			obuf, found, err = kv.GetAppend(obuf[:0], kbuf)
			old := obuf
			if err != nil {
				return nodeErr(fmt.Errorf("store %q: get: %w", store, err))
			}
			var a, prev A
			if found {
				if prev, err = ac.Decode(old); err != nil {
					return nodeErr(fmt.Errorf("store %q: decode the stored aggregate: %w", store, err))
				}
				a = prev
				if out.WantsOld() {
					// fold may modify a (a map or a slice aggregate)
					// in place: keep an independent copy of the old one.
					if prev, err = ac.Decode(old); err != nil {
						return nodeErr(fmt.Errorf("store %q: decode the stored aggregate: %w", store, err))
					}
				}
			} else if init != nil {
				a = init()
			}
			a = fold(k, v, a, found)
			vbuf, err = ac.Append(vbuf[:0], a)
			if err != nil {
				return nodeErr(&codec.EncodeError{Store: store, Part: "value", Err: err})
			}
			if err := kv.Put(kbuf, vbuf); err != nil {
				return nodeErr(fmt.Errorf("store %q: put: %w", store, err))
			}
			return out.Emit(ctx, rc, k, prev, found, a, true)
		}), nil
	}
	gr.AddNode(n, p)
	cfg.Report(gr, op, n.Name, valueOpts...)
	claimStore(gr, n, store, "an aggregation needs a store of its own")
	if nilFunc {
		gr.AddError(fmt.Errorf("%s %q: %w", op, n.Name, stream.ErrNilFunc))
	}
	// GroupBy and GroupByKey report nil key and value codecs (the value
	// codec is Reduce's ac); a nil one given here is reported here.
	if ac == nil && (op == "aggregate" || cfg.ValueCodec != nil) {
		gr.AddError(fmt.Errorf("%s %q: aggregate codec: %w", op, n.Name, stream.ErrNilCodec))
	}
	return Table[K, A](tablecore.Stored(dsl.NewStream(n, kc, ac), store, storeLookup(store, kc, ac)))
}
