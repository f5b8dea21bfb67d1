package table

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/stream"
)

// GroupedTable is a table re-grouped by a new key, ready for an
// aggregation with an adder and a subtractor (Kafka Streams'
// KGroupedTable): [GroupedTable.Count], [GroupedTable.Reduce] and
// [AggregateTable]. Create it with [GroupBy]. It is a small value; copy it
// freely. The zero GroupedTable belongs to no builder, and aggregations of
// it return the zero Table.
type GroupedTable[K, V any] struct {
	// s is the stream of row changes read back from the repartition topic.
	s  stream.Stream[K, rowChange[V]]
	kc codec.Codec[K]
	vc codec.Codec[V]
}

// rowChange is one record of a table GroupBy's repartition topic: the
// subtraction of a row from the group of the record's key (hasOld) and/or
// its addition (hasNew).
type rowChange[V any] struct {
	old, new       V
	hasOld, hasNew bool
}

// rowChangeCodec encodes a rowChange: a flags byte (bit 0: old present,
// bit 1: new present), then, if old is present, its length as a uvarint
// and its encoding, then the new value's encoding (to the end).
type rowChangeCodec[V any] struct{ vc codec.Codec[V] }

const (
	flagOld = 1 << iota
	flagNew
)

func (c rowChangeCodec[V]) Append(dst []byte, ch rowChange[V]) ([]byte, error) {
	var flags byte
	if ch.hasOld {
		flags |= flagOld
	}
	if ch.hasNew {
		flags |= flagNew
	}
	dst = append(dst, flags)
	if ch.hasOld {
		start := len(dst)
		var err error
		// The length comes first but is known only after encoding: encode
		// old, then shift it right to make room for its length.
		if dst, err = c.vc.Append(dst, ch.old); err != nil {
			return dst, err
		}
		n := len(dst) - start
		var lb [binary.MaxVarintLen64]byte
		l := binary.PutUvarint(lb[:], uint64(n))
		dst = append(dst, lb[:l]...)
		copy(dst[start+l:], dst[start:start+n])
		copy(dst[start:], lb[:l])
	}
	if ch.hasNew {
		return c.vc.Append(dst, ch.new)
	}
	return dst, nil
}

func (c rowChangeCodec[V]) Decode(src []byte) (rowChange[V], error) {
	var ch rowChange[V]
	if len(src) == 0 || src[0]&^(flagOld|flagNew) != 0 {
		return ch, fmt.Errorf("%w: table group-by change: bad flags", codec.ErrInvalid)
	}
	flags := src[0]
	src = src[1:]
	var err error
	if flags&flagOld != 0 {
		n, l := binary.Uvarint(src)
		if l <= 0 || n > uint64(len(src)-l) {
			return ch, fmt.Errorf("%w: table group-by change: bad old value length", codec.ErrInvalid)
		}
		if ch.old, err = c.vc.Decode(src[l : l+int(n)]); err != nil {
			return ch, err
		}
		ch.hasOld = true
		src = src[l+int(n):]
	}
	if flags&flagNew != 0 {
		if ch.new, err = c.vc.Decode(src); err != nil {
			return ch, err
		}
		ch.hasNew = true
	} else if len(src) != 0 {
		return ch, fmt.Errorf("%w: table group-by change: %d trailing bytes", codec.ErrInvalid, len(src))
	}
	return ch, nil
}

func (c rowChangeCodec[V]) OrderPreserving() bool { return false }

// GroupBy re-groups the rows of t by the key selector computes from each
// row (Kafka Streams' KTable#groupBy), for an aggregation with an adder
// and a subtractor. selector(k, v) returns the row's group key and the
// value that the aggregation adds to (and later subtracts from) that
// group. They are encoded on the repartition topic and in the
// aggregation's store with codec.For of their types (t's key or value
// codec for a type that is t's key or value type), or the codecs
// stream.WithKeyCodec and stream.WithValueCodec give.
//
// Every change of a row is written to an automatic repartition topic
// "<name>-repartition" (name from stream.Named, default
// "table-group-by-<n>"; stream.Partitions sets its partition count,
// default as many as the largest source topic before it), as the
// subtraction of the old row from its old group and the addition of the
// new row to its new group:
//
//   - a new row: one record to the new group, adding selector's value;
//   - an update that keeps the group key: one record to the group, with
//     both the value to subtract and the value to add;
//   - an update that moves the row to another group: two records, a
//     subtraction to the old group's key and an addition to the new
//     group's key, each partitioned by its own key, so the two groups
//     may live in different tasks;
//   - a delete (a tombstone in t, or a row a Filter of t drops): one
//     subtraction record to the old group.
//
// The subtraction is written before the addition, as Kafka Streams does.
// Old rows come from t's changes (see [Table] "old values"), so t may be
// a table from a topic, an aggregation, or a Filter or MapValues of one.
//
// selector is called once for the new row and once for the old one. The
// step is named "table-group-by-<n>"; with stream.Named the repartition
// topic and its sink and source are named after the name. Options:
// stream.Named, stream.Partitions, stream.WithKeyCodec,
// stream.WithValueCodec. Build reports a nil selector
// (stream.ErrNilFunc), nil codecs (stream.ErrNilCodec) and an invalid name
// (stream.ErrInvalidOption, broker.ErrInvalidTopicName).
func GroupBy[K, V, K2, V2 any](t Table[K, V], selector func(K, V) (K2, V2), opts ...stream.Option) GroupedTable[K2, V2] {
	p := t.core().Node()
	if p == nil {
		return GroupedTable[K2, V2]{}
	}
	gr := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	kc2 := dsl.KeyCodec(cfg, dsl.CodecFor[K2](t.KeyCodec(), t.ValueCodec()))
	vc2 := dsl.ValueCodec(cfg, dsl.CodecFor[V2](t.ValueCodec(), t.KeyCodec()))
	n := &dsl.Node{Op: "table-group-by", Kind: dsl.KindProcessor}
	t.core().AttachChanges(n, true, func(task *dsl.Task) (tablecore.ChangeFn[K, V], error) {
		next, err := dsl.Children(task, n, dsl.CountRecords[*stream.RecordContext, K2, rowChange[V2]])
		if err != nil {
			return nil, err
		}
		send := func(ctx context.Context, rc *stream.RecordContext, k K2, ch rowChange[V2]) error {
			for _, f := range next {
				if err := f(ctx, rc, k, ch); err != nil {
					return err
				}
			}
			return nil
		}
		var oldKB, newKB []byte
		return func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
			task.Current = n
			var oldKey, newKey K2
			var oldVal, newVal V2
			if hasOld {
				oldKey, oldVal = selector(k, old)
			}
			if hasNew {
				newKey, newVal = selector(k, nv)
			}
			tomb, noKey := rc.Tombstone, rc.NoKey
			rc.Tombstone, rc.NoKey = false, false
			defer func() { rc.Tombstone, rc.NoKey = tomb, noKey }()
			switch {
			case hasOld && hasNew:
				// Group keys are compared as the repartition topic and the
				// store see them: encoded.
				var err error
				if oldKB, err = kc2.Append(oldKB[:0], oldKey); err == nil {
					newKB, err = kc2.Append(newKB[:0], newKey)
				}
				if err != nil {
					return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset,
						Err: &codec.EncodeError{Part: "key", Err: err}}
				}
				if string(oldKB) == string(newKB) {
					return send(ctx, rc, newKey, rowChange[V2]{old: oldVal, hasOld: true, new: newVal, hasNew: true})
				}
				if err := send(ctx, rc, oldKey, rowChange[V2]{old: oldVal, hasOld: true}); err != nil {
					return err
				}
				return send(ctx, rc, newKey, rowChange[V2]{new: newVal, hasNew: true})
			case hasOld:
				return send(ctx, rc, oldKey, rowChange[V2]{old: oldVal, hasOld: true})
			case hasNew:
				return send(ctx, rc, newKey, rowChange[V2]{new: newVal, hasNew: true})
			}
			return nil // a delete of an absent row
		}, nil
	})
	if selector == nil {
		gr.AddError(fmt.Errorf("%s %q: %w", n.Op, n.Name, stream.ErrNilFunc))
	}
	cfg.Report(gr, n.Op, n.Name, groupByOpts...)
	if vc2 == nil {
		gr.AddError(fmt.Errorf("%s %q: value codec: %w", n.Op, n.Name, stream.ErrNilCodec))
	}
	changes := stream.Stream[K2, rowChange[V2]](dsl.NewStream[K2, rowChange[V2]](n, kc2, rowChangeCodec[V2]{vc2}))
	// The repartition is named after the step (or stream.Named) and
	// sized by stream.Partitions, which this step reported.
	ropts := []stream.Option{stream.Named(n.Name)}
	if cfg.Name != "" {
		ropts[0] = stream.Named(cfg.Name)
	}
	if cfg.Partitions > 0 {
		ropts = append(ropts, stream.Partitions(cfg.Partitions))
	}
	return GroupedTable[K2, V2]{
		s:  changes.Repartition(ropts...),
		kc: kc2,
		vc: vc2,
	}
}

// Count counts the rows of each group of g into the state store named
// store, and returns the table of counts (Kafka Streams'
// KGroupedTable#count): a row added to a group adds one, a row subtracted
// (moved to another group, or deleted) subtracts one. A group whose rows
// all left keeps the count 0, as in Kafka Streams; it is not deleted.
// Counts are stored with codec.Int64, or the codec stream.WithValueCodec
// gives. Store, changelog and Build errors as for [Count]. Options:
// stream.Named (default "table-count-<n>"), stream.WithValueCodec.
func (g GroupedTable[K, V]) Count(store string, opts ...stream.Option) Table[K, int64] {
	return groupedAggregate(g, "table-count", store, opts, false,
		func() int64 { return 0 },
		func(_ K, _ V, n int64, _ bool) (int64, bool) { return n + 1, true },
		func(_ K, _ V, n int64, _ bool) (int64, bool) { return n - 1, true },
		codec.Int64())
}

// Reduce combines the rows of each group of g into the state store named
// store, and returns the table of results (Kafka Streams'
// KGroupedTable#reduce): the first row added to a group is stored as it
// is, a later row v replaces the stored agg with adder(agg, v), and a row
// that leaves the group (moved or deleted) replaces it with
// subtractor(agg, v). An update that keeps a row in its group subtracts
// the old value, then adds the new one. A group whose rows all left keeps
// the last subtracted value, as in Kafka Streams. Values are stored with
// g's value codec (or the one stream.WithValueCodec gives). A subtraction from a group that has no value (state
// that predates the GroupBy) is skipped and logged at Warn. Store,
// changelog and Build errors as for [Count]; Build also reports a nil
// adder or subtractor (stream.ErrNilFunc). Options: stream.Named
// (default "table-reduce-<n>"), stream.WithValueCodec.
func (g GroupedTable[K, V]) Reduce(adder, subtractor func(agg, v V) V, store string, opts ...stream.Option) Table[K, V] {
	var add, sub func(K, V, V, bool) (V, bool)
	if adder != nil && subtractor != nil {
		add = func(_ K, v, agg V, found bool) (V, bool) {
			if !found {
				return v, true
			}
			return adder(agg, v), true
		}
		sub = func(_ K, v, agg V, found bool) (V, bool) {
			if !found {
				return agg, false
			}
			return subtractor(agg, v), true
		}
	}
	return groupedAggregate(g, "table-reduce", store, opts, add == nil, nil, add, sub, g.vc)
}

// AggregateTable folds the rows of each group of g into an aggregate of
// type A in the state store named store, and returns the table of
// aggregates (Kafka Streams' KGroupedTable#aggregate): a group starts
// from init(); a row added to the group replaces its aggregate a with
// adder(k, v, a), and a row that leaves it (moved to another group, or
// deleted) with subtractor(k, v, a). An update that keeps a row in its
// group subtracts the old value, then adds the new one. A group whose
// rows all left keeps its aggregate (it is not deleted), as in Kafka
// Streams. Aggregates are stored with codec.For[A] (g's value codec when
// A is V), or the codec stream.WithValueCodec gives, which must decode
// what it encodes. Store, changelog and Build errors as for [Count]; Build
// also reports nil init, adder or subtractor (stream.ErrNilFunc) and a nil
// codec (stream.ErrNilCodec). Options: stream.Named (default
// "table-aggregate-<n>"), stream.WithValueCodec.
func AggregateTable[K, V, A any](g GroupedTable[K, V], init func() A, adder, subtractor func(k K, v V, a A) A, store string, opts ...stream.Option) Table[K, A] {
	var add, sub func(K, V, A, bool) (A, bool)
	if adder != nil && subtractor != nil {
		add = func(k K, v V, a A, _ bool) (A, bool) { return adder(k, v, a), true }
		sub = func(k K, v V, a A, _ bool) (A, bool) { return subtractor(k, v, a), true }
	}
	return groupedAggregate(g, "table-aggregate", store, opts, init == nil || add == nil, init, add, sub, dsl.CodecFor[A](g.vc))
}

// groupedAggregate adds the node of a table aggregation. For each row
// change of a group k it starts from the stored aggregate (found) or
// init() (with init nil, A's zero value), applies sub for the old row and
// add for the new one; each returns the new aggregate and whether it
// applies (false: skip the change).
func groupedAggregate[K, V, A any](g GroupedTable[K, V], op, store string, opts []stream.Option, nilFunc bool, init func() A,
	add, sub func(K, V, A, bool) (A, bool), ac codec.Codec[A]) Table[K, A] {
	p := dsl.StreamNode(dsl.Stream[K, rowChange[V]](g.s))
	if p == nil {
		return Table[K, A]{}
	}
	gr := p.Graph()
	kc := g.kc
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
		var kbuf, vbuf []byte
		return emit[K, rowChange[V]](func(ctx context.Context, rc *stream.RecordContext, k K, ch rowChange[V]) error {
			t.Current = n
			nodeErr := func(err error) error {
				return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			if rc.Tombstone {
				// The repartition topic never holds tombstones; a nil
				// value is not a change.
				return nodeErr(fmt.Errorf("%w: a table group-by change with a nil value", codec.ErrInvalid))
			}
			var err error
			if kbuf, err = kc.Append(kbuf[:0], k); err != nil {
				return nodeErr(&codec.EncodeError{Store: store, Part: "key", Err: err})
			}
			stored, found, err := kv.Get(kbuf)
			if err != nil {
				return nodeErr(fmt.Errorf("store %q: get: %w", store, err))
			}
			var a, prev A
			if found {
				decode := func() (A, error) {
					v, err := ac.Decode(stored)
					if err != nil {
						return v, nodeErr(fmt.Errorf("store %q: decode the stored aggregate: %w", store, err))
					}
					return v, nil
				}
				if a, err = decode(); err != nil {
					return err
				}
				// adder and subtractor may change a in place: the old
				// value the change carries is a copy.
				if prev, err = decode(); err != nil {
					return err
				}
			} else if init != nil {
				a = init()
			}
			has := found
			changed := false
			if ch.hasOld {
				next, ok := sub(k, ch.old, a, has)
				if ok {
					a, has, changed = next, true, true
				} else {
					logger.Warn("skipped the subtraction of a row from a group that has no aggregate",
						"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset)
				}
			}
			if ch.hasNew {
				next, ok := add(k, ch.new, a, has)
				if ok {
					a, has, changed = next, true, true
				}
			}
			if !changed {
				return nil
			}
			if vbuf, err = ac.Append(vbuf[:0], a); err != nil {
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
	// GroupBy reports a nil value codec (Reduce's); a nil one given here
	// is reported here.
	if ac == nil && (op == "table-aggregate" || cfg.ValueCodec != nil) {
		gr.AddError(fmt.Errorf("%s %q: aggregate codec: %w", op, n.Name, stream.ErrNilCodec))
	}
	return Table[K, A](tablecore.Stored(dsl.NewStream(n, kc, ac), store, storeLookup(store, kc, ac)))
}
