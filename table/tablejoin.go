package table

import (
	"context"
	"fmt"
	"slices"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/stream"
)

// JoinTables joins two tables on their primary key (Kafka Streams'
// KTable#join with a KTable): the result has a row for every key that has
// a row in both, with the value joiner(k, v, vo). The result is updated
// whenever either side changes: an update of a row on one side is joined
// with the other side's current value for its key, and a delete on one
// side deletes the joined row (a tombstone in the result's ToStream) if
// the joined row existed. A change that leaves no joined row before or
// after (an update of a key the other side lacks) emits nothing.
//
// The result is not materialised: reading it (a stream-table join, or a
// join of the result) reads both tables' stores and calls joiner; use
// [Materialize] to keep it in a store of its own. Its changes carry old
// values, so it can be filtered, joined, or re-grouped with [GroupBy].
// Records of the result's ToStream carry the timestamp and headers of the
// input record that caused the change (Kafka Streams uses the larger of
// the two sides' timestamps).
//
// The two tables are joined in the tasks that hold their stores, so they
// must be co-partitioned: their topics (or, for aggregations, the
// repartition topics they read) must have the same partition count and
// the same partitioning of keys; the join puts both tables in one
// sub-topology, whose tasks read partition p of all its topics, and the
// runtime and streamtest refuse one whose source topics differ in
// partition count. Build reports a nil joiner (stream.ErrNilFunc),
// tables of two builders (stream.ErrForeignStream) and
// [stream.ErrNotCoPartitioned] when one table is computed in a sub-topology that
// feeds the other's through an internal topic. The steps are named
// "table-join-<n>" (the result), "table-join-this-<n>" and
// "table-join-other-<n>" (the steps that see each side's changes).
func JoinTables[K, V, VO, VR any](t Table[K, V], other Table[K, VO], joiner func(k K, v V, vo VO) VR, opts ...stream.Option) Table[K, VR] {
	var j func(K, V, bool, VO, bool) VR
	if joiner != nil {
		j = func(k K, v V, _ bool, vo VO, _ bool) VR { return joiner(k, v, vo) }
	}
	return joinTables(t, other, "table-join", true, true, j, opts)
}

// LeftJoinTables is [JoinTables] that keeps every row of t (Kafka
// Streams' KTable#leftJoin): the result has a row for every key of t,
// with joiner(k, v, vo, true) when other has a row for the key and
// joiner(k, v, zero, false) when it has none. A change of other updates
// the joined row of a key that t has (a delete in other recomputes it
// with found false); a delete in t deletes the joined row. The steps are
// named "table-left-join-<n>", "table-left-join-this-<n>" and
// "table-left-join-other-<n>"; Build errors as for JoinTables.
func LeftJoinTables[K, V, VO, VR any](t Table[K, V], other Table[K, VO], joiner func(k K, v V, vo VO, found bool) VR, opts ...stream.Option) Table[K, VR] {
	var j func(K, V, bool, VO, bool) VR
	if joiner != nil {
		j = func(k K, v V, _ bool, vo VO, found bool) VR { return joiner(k, v, vo, found) }
	}
	return joinTables(t, other, "table-left-join", true, false, j, opts)
}

// OuterJoinTables is [JoinTables] that keeps every row of both tables
// (Kafka Streams' KTable#outerJoin): the result has a row for every key
// that has a row on either side, with joiner(k, v, hasV, vo, hasVO),
// where a side without a row passes its zero value and false. A delete on
// one side recomputes the row with that side absent, and deletes it when
// the other side is absent too. The steps are named
// "table-outer-join-<n>", "table-outer-join-this-<n>" and
// "table-outer-join-other-<n>"; Build errors as for JoinTables.
func OuterJoinTables[K, V, VO, VR any](t Table[K, V], other Table[K, VO], joiner func(k K, v V, hasV bool, vo VO, hasVO bool) VR, opts ...stream.Option) Table[K, VR] {
	return joinTables(t, other, "table-outer-join", false, false, joiner, opts)
}

// joinTables adds a table-table join: needThis (needOther) says a joined
// row exists only when t (other) has a row for its key.
func joinTables[K, V, VO, VR any](t Table[K, V], other Table[K, VO], op string, needThis, needOther bool,
	joiner func(k K, v V, hasV bool, vo VO, hasVO bool) VR, opts []stream.Option) Table[K, VR] {
	tn, on := t.core().Node(), other.core().Node()
	if tn == nil && on == nil {
		return Table[K, VR]{}
	}
	if tn == nil || on == nil || tn.Graph() != on.Graph() {
		n := tn
		if n == nil {
			n = on
		}
		n.Graph().AddError(fmt.Errorf("%s: %w: the tables belong to different builders (or one is the zero value)", op, stream.ErrForeignStream))
		return Table[K, VR]{}
	}
	g := tn.Graph()
	if topic, ok := feeds(component(tn), component(on)); ok {
		g.AddError(fmt.Errorf("%w: %s: one table is computed in the sub-topology that writes internal topic %q, which the other table's sub-topology reads; joining them would make one sub-topology read its own output: write one table to a topic (t.ToStream().To) and read it back with From, with the other table's partition count, before the join", stream.ErrNotCoPartitioned, op, topic))
		return Table[K, VR]{}
	}
	// exists reports whether the joined row exists when this side has
	// (has) or has not a row and the other side has (hasO) or has not.
	exists := func(hasThis, hasOther bool) bool {
		return (hasThis || !needThis) && (hasOther || !needOther) && (hasThis || hasOther)
	}
	// The result node passes on the changes computed by the two sides.
	cfg := dsl.ApplyOptions(opts)
	merge := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Name: cfg.Name}
	merge.Instantiate = func(task *dsl.Task) (any, error) {
		out, err := tablecore.NewOutput[K, VR](task, merge)
		if err != nil {
			return nil, err
		}
		return &tablecore.ChangeInput[K, VR]{F: out.Emit, WantsOld: out.WantsOld()}, nil
	}
	// Each side's changes are joined with the other side's current value
	// (read through its lookup) by a node below that side.
	thisNode := &dsl.Node{Op: op + "-this", Kind: dsl.KindProcessor, Name: partName(cfg, "this"), Stores: other.core().ReadStores()}
	otherNode := &dsl.Node{Op: op + "-other", Kind: dsl.KindProcessor, Name: partName(cfg, "other"), Stores: t.core().ReadStores()}
	t.core().Attach(thisNode, func(task *dsl.Task) (*tablecore.ChangeInput[K, V], error) {
		next, err := dsl.Children(task, thisNode, tablecore.CountChangeInput[K, VR])
		if err != nil {
			return nil, err
		}
		get, err := other.core().Lookup()(task, thisNode)
		if err != nil {
			return nil, err
		}
		f := func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
			if !hasOld && !hasNew {
				return nil // a delete of an absent row changes no joined row
			}
			vo, hasVO, err := get(k)
			if err != nil {
				return &stream.NodeError{Node: thisNode.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			task.Current = thisNode
			return emitJoined(ctx, rc, next, k, exists(hasOld, hasVO), exists(hasNew, hasVO),
				func() VR { return joiner(k, old, hasOld, vo, hasVO) },
				func() VR { return joiner(k, nv, hasNew, vo, hasVO) })
		}
		return &tablecore.ChangeInput[K, V]{F: f, WantsOld: true}, nil
	})
	other.core().Attach(otherNode, func(task *dsl.Task) (*tablecore.ChangeInput[K, VO], error) {
		next, err := dsl.Children(task, otherNode, tablecore.CountChangeInput[K, VR])
		if err != nil {
			return nil, err
		}
		get, err := t.core().Lookup()(task, otherNode)
		if err != nil {
			return nil, err
		}
		f := func(ctx context.Context, rc *stream.RecordContext, k K, old VO, hasOld bool, nv VO, hasNew bool) error {
			if !hasOld && !hasNew {
				return nil
			}
			v, hasV, err := get(k)
			if err != nil {
				return &stream.NodeError{Node: otherNode.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			task.Current = otherNode
			return emitJoined(ctx, rc, next, k, exists(hasV, hasOld), exists(hasV, hasNew),
				func() VR { return joiner(k, v, hasV, old, hasOld) },
				func() VR { return joiner(k, v, hasV, nv, hasNew) })
		}
		return &tablecore.ChangeInput[K, VO]{F: f, WantsOld: true}, nil
	})
	g.AddNode(merge, thisNode, otherNode)
	vrc := dsl.ValueCodec(cfg, dsl.CodecFor[VR](t.ValueCodec(), other.ValueCodec()))
	cfg.Report(g, op, merge.Name, valueOpts...)
	if joiner == nil {
		g.AddError(fmt.Errorf("%s %q: %w", op, merge.Name, stream.ErrNilFunc))
	}
	getT, getO := t.core().Lookup(), other.core().Lookup()
	return Table[K, VR](tablecore.Derived(dsl.NewStream(merge, t.KeyCodec(), vrc),
		slices.Concat(t.core().ReadStores(), other.core().ReadStores()),
		func(task *dsl.Task, user *dsl.Node) (tablecore.Getter[K, VR], error) {
			gt, err := getT(task, user)
			if err != nil {
				return nil, err
			}
			getOther, err := getO(task, user)
			if err != nil {
				return nil, err
			}
			return func(k K) (VR, bool, error) {
				var zero VR
				v, hasV, err := gt(k)
				if err != nil {
					return zero, false, err
				}
				vo, hasVO, err := getOther(k)
				if err != nil {
					return zero, false, err
				}
				if !exists(hasV, hasVO) {
					return zero, false, nil
				}
				task.Current = merge
				return joiner(k, v, hasV, vo, hasVO), true, nil
			}, nil
		}).Routed(t.core().Route()))
}

// emitJoined sends the change of a joined row to the result node: the row
// existed before (hadRow) and exists after (hasRow); oldRow and newRow
// compute its values. Nothing is sent when the row neither existed nor
// exists, so a delete is sent only for a row that existed. The old row is
// computed only when the result's children want old values.
func emitJoined[K, VR any](ctx context.Context, rc *stream.RecordContext, next []*tablecore.ChangeInput[K, VR], k K,
	hadRow, hasRow bool, oldRow, newRow func() VR) error {
	if !hadRow && !hasRow {
		return nil
	}
	var nv VR
	if hasRow {
		nv = newRow()
	}
	for _, c := range next {
		var old VR
		if hadRow && c.WantsOld {
			old = oldRow()
		}
		if err := c.F(ctx, rc, k, old, hadRow && c.WantsOld, nv, hasRow); err != nil {
			return err
		}
	}
	return nil
}
