package table

import (
	"bytes"
	"context"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/stream"
)

// From reads topic as a table (Kafka Streams' builder.table): every
// record is an upsert, so the newest value per key wins, and a record with
// a nil value (a tombstone) deletes its key. Keys are decoded with kc and
// values with vc; the table is materialised in the state store named
// store, logged to the changelog topic "<app-id>-<store>-changelog" and
// restored from it like an aggregation's store. (Kafka Streams can reuse
// a compacted source topic as the changelog instead of writing a second
// copy; this package always writes the changelog.) ToStream emits every
// change: an upsert as the new value, a delete as a tombstone. As in Kafka
// Streams (emit on change, KIP-557), a record that changes nothing is
// dropped: an upsert whose encoded value equals the stored one, and a
// tombstone of a key the table does not hold; neither is written to the
// store, the changelog or any downstream step. (Kafka Streams also
// compares timestamps and stores an equal value with a newer timestamp;
// this store keeps no timestamps.) Records with an absent key are dropped
// too. Dropped records are logged at Debug. The source step is
// named "source-<n>" and the materialising step "table-<n>".
//
// Options: stream.Named names the materialising step and its source
// "<name>-source"; stream.WithTimestamp sets the timestamp extractor
// with the semantics it has for stream.From: the extracted time is the
// record's event time, which orders the task's partitions and moves its
// stream time, and a record whose timestamp is invalid (extracted or
// not) fails with stream.ErrInvalidTimestamp.
//
// Build reports what [stream.From] reports for topic and the codecs, an
// invalid store name (stream.ErrInvalidOption) and a store name already
// used by another step (stream.ErrStoreConflict). A nil builder gives the
// zero Table.
func From[K, V any](b *stream.Builder, topic string, kc codec.Codec[K], vc codec.Codec[V], store string, opts ...stream.Option) Table[K, V] {
	// The source takes the options (Named and WithTimestamp, as
	// stream.From) and reports them; a Named names the table step and
	// the source after it.
	cfg := dsl.ApplyOptions(opts)
	if cfg.Name != "" {
		opts = append(opts[:len(opts):len(opts)], stream.Named(partName(cfg, "source")))
	}
	src := stream.From(b, topic, kc, vc, opts...)
	p := dsl.StreamNode(dsl.Stream[K, V](src))
	if p == nil {
		return Table[K, V]{}
	}
	gr := p.Graph()
	n := &dsl.Node{Op: "table", Kind: dsl.KindProcessor, Name: cfg.Name, Stores: []string{store}}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		out, err := tablecore.NewOutput[K, V](t, n)
		if err != nil {
			return nil, err
		}
		kv, err := openStore(t, n, store)
		if err != nil {
			return nil, err
		}
		logger := t.Env().Logger().With("node", n.Name, "store", store)
		var kbuf, vbuf []byte
		return emit[K, V](func(ctx context.Context, rc *stream.RecordContext, k K, v V) error {
			t.Current = n
			if rc.NoKey {
				logger.Debug("dropped a record with an absent key",
					"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset)
				return nil
			}
			nodeErr := func(err error) error {
				return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			var err error
			if kbuf, err = kc.Append(kbuf[:0], k); err != nil {
				return nodeErr(&codec.EncodeError{Store: store, Part: "key", Err: err})
			}
			stored, hasOld, err := kv.Get(kbuf)
			if err != nil {
				return nodeErr(fmt.Errorf("store %q: get: %w", store, err))
			}
			if rc.Tombstone && !hasOld {
				logger.Debug("dropped a tombstone of a key the table does not hold",
					"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset)
				return nil
			}
			if !rc.Tombstone {
				if vbuf, err = vc.Append(vbuf[:0], v); err != nil {
					return nodeErr(&codec.EncodeError{Store: store, Part: "value", Err: err})
				}
				if hasOld && bytes.Equal(stored, vbuf) {
					logger.Debug("dropped an update that does not change the row",
						"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset)
					return nil
				}
			}
			var old V
			if hasOld && out.WantsOld() {
				t.Current = n
				if old, err = vc.Decode(stored); err != nil {
					return nodeErr(fmt.Errorf("store %q: decode the stored value: %w", store, err))
				}
			}
			if rc.Tombstone {
				if err := kv.Delete(kbuf); err != nil {
					return nodeErr(fmt.Errorf("store %q: delete: %w", store, err))
				}
				return out.Emit(ctx, rc, k, old, hasOld, v, false)
			}
			if cap(vbuf) > dsl.MaxScratch {
				// A scratch buffer this large would be dropped after
				// Put: the store takes it over instead of a copy.
				err = kv.PutOwned(kbuf, vbuf)
				vbuf = nil
			} else {
				err = kv.Put(kbuf, vbuf) // copies vbuf
			}
			if err != nil {
				return nodeErr(fmt.Errorf("store %q: put: %w", store, err))
			}
			return out.Emit(ctx, rc, k, old, hasOld, v, true)
		}), nil
	}
	gr.AddNode(n, p)
	claimStore(gr, n, store, "a table needs a store of its own")
	return Table[K, V](tablecore.Stored(dsl.NewStream(n, kc, vc), store, storeLookup(store, kc, vc)))
}

// Filter returns the table of the rows of t for which pred returns true.
// It is not materialised: a join reads t's store and applies pred. Its
// changes are t's changes, except that an update pred rejects is emitted
// as a tombstone for its key, because the row may have been in the
// filtered table before (as Kafka Streams does for a filter on a table
// that is not materialised, a tombstone is emitted for every rejected
// update, whether or not the key was there). Deletes of t are passed on
// as deletes; pred is not called for them. The step is named
// "table-filter-<n>". Build reports a nil pred (stream.ErrNilFunc).
func (t Table[K, V]) Filter(pred func(K, V) bool, opts ...stream.Option) Table[K, V] {
	return t.filter("table-filter", pred, true, opts)
}

// FilterNot is [Table.Filter] keeping the rows for which pred returns
// false. The step is named "table-filter-not-<n>".
func (t Table[K, V]) FilterNot(pred func(K, V) bool, opts ...stream.Option) Table[K, V] {
	return t.filter("table-filter-not", pred, false, opts)
}

func (t Table[K, V]) filter(op string, pred func(K, V) bool, keep bool, opts []stream.Option) Table[K, V] {
	p := t.core().Node()
	if p == nil {
		return Table[K, V]{}
	}
	gr := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	n := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Name: cfg.Name}
	t.core().Attach(n, func(task *dsl.Task) (*tablecore.ChangeInput[K, V], error) {
		out, err := tablecore.NewOutput[K, V](task, n)
		if err != nil {
			return nil, err
		}
		f := func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
			task.Current = n
			if hasOld && pred(k, old) != keep {
				hasOld = false
			}
			if hasNew && pred(k, nv) != keep {
				// The row leaves (or never enters) the filtered table.
				hasNew = false
			}
			return out.Emit(ctx, rc, k, old, hasOld, nv, hasNew)
		}
		return &tablecore.ChangeInput[K, V]{F: f, WantsOld: out.WantsOld()}, nil
	})
	cfg.Report(gr, op, n.Name, namedOnly...)
	if pred == nil {
		gr.AddError(fmt.Errorf("%s %q: %w", op, n.Name, stream.ErrNilFunc))
	}
	parent := t.core().Lookup()
	return Table[K, V](tablecore.Derived(dsl.NewStream(n, t.KeyCodec(), t.ValueCodec()), t.core().ReadStores(),
		func(task *dsl.Task, user *dsl.Node) (tablecore.Getter[K, V], error) {
			get, err := parent(task, user)
			if err != nil {
				return nil, err
			}
			return func(k K) (V, bool, error) {
				v, ok, err := get(k)
				if err != nil || !ok {
					return v, ok, err
				}
				task.Current = n
				if pred(k, v) != keep {
					var zero V
					return zero, false, nil
				}
				return v, true, nil
			}, nil
		}).Routed(t.core().Route()))
}

// MapValues returns the table of fn applied to every value of t, with
// t's keys. It is not materialised: a join reads t's store and applies
// fn. Its changes are t's changes with mapped values; a delete stays a
// delete (a tombstone) and fn is not called for it. The result's values
// have the codec codec.For[V2] (t's value codec when V2 is V), or the one
// stream.WithValueCodec gives. Options: stream.Named (default
// "table-map-values-<n>"), stream.WithValueCodec. Build reports a nil fn
// (stream.ErrNilFunc).
func MapValues[K, V, V2 any](t Table[K, V], fn func(V) V2, opts ...stream.Option) Table[K, V2] {
	p := t.core().Node()
	if p == nil {
		return Table[K, V2]{}
	}
	gr := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	vc2 := dsl.ValueCodec(cfg, dsl.CodecFor[V2](t.ValueCodec()))
	n := &dsl.Node{Op: "table-map-values", Kind: dsl.KindProcessor, Name: cfg.Name}
	t.core().Attach(n, func(task *dsl.Task) (*tablecore.ChangeInput[K, V], error) {
		out, err := tablecore.NewOutput[K, V2](task, n)
		if err != nil {
			return nil, err
		}
		f := func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
			var old2, new2 V2
			task.Current = n
			if hasOld {
				old2 = fn(old)
			}
			if hasNew {
				new2 = fn(nv)
			}
			return out.Emit(ctx, rc, k, old2, hasOld, new2, hasNew)
		}
		return &tablecore.ChangeInput[K, V]{F: f, WantsOld: out.WantsOld()}, nil
	})
	cfg.Report(gr, n.Op, n.Name, valueOpts...)
	if fn == nil {
		gr.AddError(fmt.Errorf("%s %q: %w", "table-map-values", n.Name, stream.ErrNilFunc))
	}
	parent := t.core().Lookup()
	return Table[K, V2](tablecore.Derived(dsl.NewStream(n, t.KeyCodec(), vc2), t.core().ReadStores(),
		func(task *dsl.Task, user *dsl.Node) (tablecore.Getter[K, V2], error) {
			get, err := parent(task, user)
			if err != nil {
				return nil, err
			}
			return func(k K) (V2, bool, error) {
				var v2 V2
				v, ok, err := get(k)
				if err != nil || !ok {
					return v2, ok, err
				}
				task.Current = n
				return fn(v), true, nil
			}, nil
		}).Routed(t.core().Route()))
}

// Materialize keeps the rows of t in the state store named store, encoded
// with t's codecs (or the ones stream.WithKeyCodec and
// stream.WithValueCodec give), and returns the same table read from that
// store (Kafka
// Streams' Materialized on a derived table). Use it to query a table that
// Filter, MapValues or a table-table join derive (interactive queries read
// stores), or to read a derived table from a store instead of recomputing
// it. The store is logged to "<app-id>-<store>-changelog" and restored
// like an aggregation's. The returned table's changes are t's changes.
// Options: stream.Named (default "table-materialize-<n>"),
// stream.WithKeyCodec, stream.WithValueCodec.
//
// Build reports nil codecs (stream.ErrNilCodec), an invalid store name
// (stream.ErrInvalidOption) and a store name already used by another step
// (stream.ErrStoreConflict).
func Materialize[K, V any](t Table[K, V], store string, opts ...stream.Option) Table[K, V] {
	p := t.core().Node()
	if p == nil {
		return Table[K, V]{}
	}
	gr := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	kc, vc := dsl.KeyCodec(cfg, t.KeyCodec()), dsl.ValueCodec(cfg, t.ValueCodec())
	n := &dsl.Node{Op: "table-materialize", Kind: dsl.KindProcessor, Name: cfg.Name, Stores: []string{store}}
	t.core().Attach(n, func(task *dsl.Task) (*tablecore.ChangeInput[K, V], error) {
		out, err := tablecore.NewOutput[K, V](task, n)
		if err != nil {
			return nil, err
		}
		kv, err := openStore(task, n, store)
		if err != nil {
			return nil, err
		}
		var kbuf, vbuf []byte
		f := func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
			task.Current = n
			nodeErr := func(err error) error {
				return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			var err error
			if kbuf, err = kc.Append(kbuf[:0], k); err != nil {
				return nodeErr(&codec.EncodeError{Store: store, Part: "key", Err: err})
			}
			switch {
			case hasNew:
				if vbuf, err = vc.Append(vbuf[:0], nv); err != nil {
					return nodeErr(&codec.EncodeError{Store: store, Part: "value", Err: err})
				}
				if err := kv.Put(kbuf, vbuf); err != nil {
					return nodeErr(fmt.Errorf("store %q: put: %w", store, err))
				}
			case hasOld:
				if err := kv.Delete(kbuf); err != nil {
					return nodeErr(fmt.Errorf("store %q: delete: %w", store, err))
				}
			}
			return out.Emit(ctx, rc, k, old, hasOld, nv, hasNew)
		}
		// The old row says whether a delete has anything to delete.
		return &tablecore.ChangeInput[K, V]{F: f, WantsOld: true}, nil
	})
	cfg.Report(gr, n.Op, n.Name, codecOpts...)
	claimStore(gr, n, store, "a materialized table needs a store of its own")
	if kc == nil {
		gr.AddError(fmt.Errorf("%s %q: key codec: %w", n.Op, n.Name, stream.ErrNilCodec))
	}
	if vc == nil {
		gr.AddError(fmt.Errorf("%s %q: value codec: %w", n.Op, n.Name, stream.ErrNilCodec))
	}
	route := t.core().Route()
	if route != nil && cfg.KeyCodec != nil && kc != nil {
		// The store's keys are encoded with kc; t's partitions follow
		// its own encoding of the same keys.
		tkc := t.KeyCodec()
		route = func(b []byte) ([]byte, error) {
			k, err := kc.Decode(b)
			if err != nil {
				return nil, err
			}
			tb, err := tkc.Append(nil, k)
			if err != nil {
				return nil, err
			}
			return t.core().Route()(tb)
		}
	}
	return Table[K, V](tablecore.Stored(dsl.NewStream(n, kc, vc), store, storeLookup(store, kc, vc)).Routed(route))
}
