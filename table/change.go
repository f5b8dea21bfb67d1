package table

import (
	"context"
	"fmt"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// Changes between table steps (Kafka Streams' Change{newValue, oldValue}
// with sendOldValues).
//
// A table's node (From's "table-<n>", an aggregation, Filter, MapValues,
// a table-table join, ...) produces one change per update of a key: the
// key, the row's old value (hasOld false when the key had no row before)
// and its new value (hasNew false when the update deletes the row). The
// node's children come in two kinds, told apart once per task when the
// node instantiates them (see [tableOutput]):
//
//   - stream children (the steps of t.ToStream(), the bridge of a
//     stream-table join) take emit[K, V]: they get the new value, or V's
//     zero value with rc.Tombstone set when !hasNew. This is what
//     ToStream has always emitted, so ToStream without options adds no
//     node and Describe is unchanged.
//   - change children (Filter, MapValues, Materialize, table GroupBy,
//     table-table and foreign-key joins, ToStream with EmitPerCommit) are
//     nodes whose Instantiate returns a
//     *changeInput[K, V]: they get (k, old, hasOld, new, hasNew), with
//     rc.Tombstone == !hasNew.
//
// Old values are computed only when a change child asks for them
// (changeInput.wantsOld): a table from a topic then reads its store
// before writing (one Get per record); an aggregation has the old
// aggregate anyway; Filter and MapValues derive the old value from their
// parent's old value (Filter: hasOld = parentHasOld && pred(parentOld),
// MapValues: old = fn(parentOld)). When no child wants them, hasOld is
// false and old is the zero value: a child that did not ask must not read
// them.
//
// A change may have neither an old nor a new value (a delete of a key the
// table did not hold, or an update that a Filter rejects both before and
// after): change children treat it as a no-op for their state, and may
// forward a tombstone (stream children of a Filter get one, as Kafka
// Streams emits for a filter that is not materialised).
//
// To consume a table's changes, add a node with [Table.attachChanges];
// to produce them (a new kind of table), instantiate the children with
// [tableOutput] and return the new Table with a lookup.

// changeFn is the per-task input function of a change child: k's row
// changes from old (absent if !hasOld) to new (absent if !hasNew).
type changeFn[K, V any] = func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, new V, hasNew bool) error

// changeInput is what a change child's Instantiate returns.
type changeInput[K, V any] struct {
	f changeFn[K, V]
	// wantsOld asks the parent for old values.
	wantsOld bool
}

// changeOutput sends a table node's changes to all its children.
type changeOutput[K, V any] struct {
	// kids are the children in creation order, each with one of its
	// fields set.
	kids []changeKid[K, V]
	// wantsOld reports that a change child asked for old values; when
	// false, callers may pass hasOld false without computing old.
	wantsOld bool
}

type changeKid[K, V any] struct {
	stream emit[K, V]
	change changeFn[K, V]
}

// tableOutput instantiates the children of the table node n: stream
// children (emit[K, V]) and change children (*changeInput[K, V]).
func tableOutput[K, V any](t *dsl.Task, n *dsl.Node) (*changeOutput[K, V], error) {
	out := &changeOutput[K, V]{}
	for _, c := range t.Children(n) {
		v, err := t.Get(c)
		if err != nil {
			return nil, err
		}
		switch f := v.(type) {
		case emit[K, V]:
			out.kids = append(out.kids, changeKid[K, V]{stream: f})
		case *changeInput[K, V]:
			out.kids = append(out.kids, changeKid[K, V]{change: f.f})
			out.wantsOld = out.wantsOld || f.wantsOld
		default:
			var want emit[K, V]
			return nil, fmt.Errorf("stream: internal error: node %q takes %T, table node %q emits %T or %T", c.Name, v, n.Name, want, &changeInput[K, V]{})
		}
	}
	return out, nil
}

// emit sends one change to every child, in the order the children were
// added. rc.Tombstone is !hasNew during the calls and restored after.
func (o *changeOutput[K, V]) emit(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
	tomb := rc.Tombstone
	rc.Tombstone = !hasNew
	defer func() { rc.Tombstone = tomb }()
	var zero V
	if !o.wantsOld {
		old, hasOld = zero, false
	}
	if !hasNew {
		nv = zero
	}
	for _, c := range o.kids {
		var err error
		if c.change != nil {
			err = c.change(ctx, rc, k, old, hasOld, nv, hasNew)
		} else {
			err = c.stream(ctx, rc, k, nv)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// attachChanges adds n as a change child of t and returns n, or nil for
// the zero Table (nothing is added). mk builds n's per-task input
// function (n's own children are reachable through task); wantsOld asks t
// for old values. attachChanges sets n.Instantiate.
//
// A consumer (fkjoin) looks like:
//
//	n := &dsl.Node{Op: "my-op", Kind: dsl.KindProcessor}
//	t.attachChanges(n, true, func(task *dsl.Task) (changeFn[K, V], error) {
//		next, err := tableOutput[K, VR](task, n) // if n is itself a table
//		...
//		return func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
//			...
//		}, nil
//	})
func (t Table[K, V]) attachChanges(n *dsl.Node, wantsOld bool, mk func(task *dsl.Task) (changeFn[K, V], error)) *dsl.Node {
	return t.attach(n, func(task *dsl.Task) (*changeInput[K, V], error) {
		f, err := mk(task)
		if err != nil {
			return nil, err
		}
		return &changeInput[K, V]{f: f, wantsOld: wantsOld}, nil
	})
}

// attach is attachChanges for a child that decides per task whether it
// wants old values (a derived table wants them when its own children do).
func (t Table[K, V]) attach(n *dsl.Node, mk func(task *dsl.Task) (*changeInput[K, V], error)) *dsl.Node {
	p := t.node()
	if p == nil {
		return nil
	}
	n.Instantiate = func(task *dsl.Task) (any, error) { return mk(task) }
	p.Graph().AddNode(n, p)
	return n
}
