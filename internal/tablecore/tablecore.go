package tablecore

import (
	"context"
	"fmt"
	"slices"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// Table is a table handle: the node whose output is the table's changes,
// with the table's codecs, and the reader of its current values. The zero
// Table belongs to no builder.
type Table[K, V any] struct {
	s dsl.Stream[K, V]
	// stores are the stores lookup reads, never empty for a table of a
	// builder: the table's own store (own), or the stores of the tables
	// it derives from.
	stores []string
	own    bool
	lookup Lookup[K, V]
	// route returns the partition key of an encoded key (nil: the
	// encoded key itself).
	route func(key []byte) ([]byte, error)
}

// Getter returns the current value of k in one task's partition of a
// table, and whether k has one.
type Getter[K, V any] func(k K) (V, bool, error)

// Lookup returns the per-task reader of a table's current values, for the
// node user, which declares the table's stores ([Table.ReadStores]).
type Lookup[K, V any] func(t *dsl.Task, user *dsl.Node) (Getter[K, V], error)

// Stored returns the table whose changes s carries, kept in the store
// named store with s's codecs, read by lookup.
func Stored[K, V any](s dsl.Stream[K, V], store string, lookup Lookup[K, V]) Table[K, V] {
	return Table[K, V]{s: s, stores: []string{store}, own: true, lookup: lookup}
}

// Derived returns the table whose changes s carries, computed by lookup
// from stores (not empty; the first is reported as the table's store).
func Derived[K, V any](s dsl.Stream[K, V], stores []string, lookup Lookup[K, V]) Table[K, V] {
	return Table[K, V]{s: s, stores: slices.Clone(stores), lookup: lookup}
}

// Stream returns the stream of t's changes (with t's codecs).
func (t Table[K, V]) Stream() dsl.Stream[K, V] { return t.s }

// Node returns the node whose output is t's changes, or nil for the zero
// Table.
func (t Table[K, V]) Node() *dsl.Node { return dsl.StreamNode(t.s) }

// Store returns the store t is read from: its own store (own true), or
// the first store of the tables it derives from ("" for the zero Table).
func (t Table[K, V]) Store() (name string, own bool) {
	if len(t.stores) == 0 {
		return "", false
	}
	return t.stores[0], t.own
}

// ReadStores returns the stores t's lookup reads, which a node that
// looks t up declares.
func (t Table[K, V]) ReadStores() []string { return slices.Clone(t.stores) }

// Lookup returns t's lookup (nil for the zero Table).
func (t Table[K, V]) Lookup() Lookup[K, V] { return t.lookup }

// Route returns the function that maps an encoded key of t to the bytes
// its records were partitioned by, when these are not the encoded key
// itself: the table of a windowed aggregation, and the tables that keep
// its keys (Filter, MapValues, Materialize, joins), hold the windows of a
// record key in that key's partition. Nil means the encoded key. Queries
// route a key to its partition with it.
func (t Table[K, V]) Route() func(key []byte) ([]byte, error) { return t.route }

// Routed returns t with the route of [Table.Route]; a step whose table
// keeps the keys of its input table passes the input's route on.
func (t Table[K, V]) Routed(route func(key []byte) ([]byte, error)) Table[K, V] {
	t.route = route
	return t
}

// emit is the input function of a stream child (see internal/dsl,
// "Conventions of package stream").
type emit[K, V any] = func(ctx context.Context, rc *stream.RecordContext, k K, v V) error

// ChangeFn is the per-task input function of a change child: k's row
// changes from old (absent if !hasOld) to new (absent if !hasNew).
type ChangeFn[K, V any] = func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, new V, hasNew bool) error

// ChangeInput is what a change child's Instantiate returns.
type ChangeInput[K, V any] struct {
	F ChangeFn[K, V]
	// WantsOld asks the parent for old values.
	WantsOld bool
}

// Output sends a table node's changes to all its children.
type Output[K, V any] struct {
	// kids are the children in creation order, each with one of its
	// fields set.
	kids     []kid[K, V]
	wantsOld bool
}

type kid[K, V any] struct {
	stream emit[K, V]
	change ChangeFn[K, V]
}

// NewOutput instantiates the children of the table node n: stream
// children and change children (*ChangeInput[K, V]).
func NewOutput[K, V any](t *dsl.Task, n *dsl.Node) (*Output[K, V], error) {
	out := &Output[K, V]{}
	for _, c := range t.Children(n) {
		v, err := t.Get(c)
		if err != nil {
			return nil, err
		}
		in, o, counted := t.EdgeCounters(n, c)
		switch f := v.(type) {
		case emit[K, V]:
			if counted {
				f = dsl.CountRecords(f, in, o)
			}
			out.kids = append(out.kids, kid[K, V]{stream: f})
		case *ChangeInput[K, V]:
			fn := f.F
			if counted {
				fn = countChanges(fn, in, o)
			}
			out.kids = append(out.kids, kid[K, V]{change: fn})
			out.wantsOld = out.wantsOld || f.WantsOld
		default:
			var want emit[K, V]
			return nil, fmt.Errorf("stream: internal error: node %q takes %T, table node %q emits %T or %T", c.Name, v, n.Name, want, &ChangeInput[K, V]{})
		}
	}
	return out, nil
}

// countChanges returns f counting each call in in and out (see
// dsl.Task.EdgeCounters).
func countChanges[K, V any](f ChangeFn[K, V], in, out *uint64) ChangeFn[K, V] {
	return func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
		*in++
		*out++
		return f(ctx, rc, k, old, hasOld, nv, hasNew)
	}
}

// CountChangeInput returns c with its function counting each call in in
// and out: the count argument of dsl.Children for change children.
func CountChangeInput[K, V any](c *ChangeInput[K, V], in, out *uint64) *ChangeInput[K, V] {
	return &ChangeInput[K, V]{F: countChanges(c.F, in, out), WantsOld: c.WantsOld}
}

// WantsOld reports that a change child asked for old values; when false,
// callers may pass hasOld false without computing old.
func (o *Output[K, V]) WantsOld() bool { return o.wantsOld }

// Emit sends one change to every child, in the order the children were
// added. rc.Tombstone is !hasNew during the calls and restored after.
func (o *Output[K, V]) Emit(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
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

// AttachChanges adds n as a change child of t and returns n, or nil for
// the zero Table (nothing is added). mk builds n's per-task input
// function (n's own children are reachable through task); wantsOld asks t
// for old values. AttachChanges sets n.Instantiate.
//
// A consumer (fkjoin) looks like:
//
//	n := &dsl.Node{Op: "my-op", Kind: dsl.KindProcessor}
//	t.AttachChanges(n, true, func(task *dsl.Task) (tablecore.ChangeFn[K, V], error) {
//		next, err := tablecore.NewOutput[K, VR](task, n) // if n is itself a table
//		...
//		return func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
//			...
//		}, nil
//	})
func (t Table[K, V]) AttachChanges(n *dsl.Node, wantsOld bool, mk func(task *dsl.Task) (ChangeFn[K, V], error)) *dsl.Node {
	return t.Attach(n, func(task *dsl.Task) (*ChangeInput[K, V], error) {
		f, err := mk(task)
		if err != nil {
			return nil, err
		}
		return &ChangeInput[K, V]{F: f, WantsOld: wantsOld}, nil
	})
}

// Attach is AttachChanges for a child that decides per task whether it
// wants old values (a derived table wants them when its own children do).
func (t Table[K, V]) Attach(n *dsl.Node, mk func(task *dsl.Task) (*ChangeInput[K, V], error)) *dsl.Node {
	p := t.Node()
	if p == nil {
		return nil
	}
	n.Instantiate = func(task *dsl.Task) (any, error) { return mk(task) }
	p.Graph().AddNode(n, p)
	return n
}
