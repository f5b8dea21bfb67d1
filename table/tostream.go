package table

import (
	"context"
	"fmt"
	"reflect"
	"runtime/debug"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// EmitPerCommit makes [Table.ToStream] emit, for each key, only the
// newest change since the task's previous commit, when the task commits
// (Kafka Streams' record cache in front of a table's downstream): a key
// updated n times between two commits is emitted once, with its newest
// value (or a tombstone if it was deleted last), the timestamp and
// headers of the update that made it, in the order in which keys were
// first updated since the commit. The emitted records are committed
// atomically with the input that caused them, as every output is, so
// nothing is lost or repeated on a restart.
//
// At most maxKeys keys are held per task (their newest values in memory);
// an update of one more key first emits all held changes, so a bound that
// is too small merges fewer updates but loses none. Only the change
// stream is deduplicated: the table itself, its store and changelog, and
// the steps that consume it as a table (joins, GroupBy, Filter) see every
// update. The step is named "to-stream-per-commit-<n>".
//
// Build reports maxKeys < 1 (stream.ErrInvalidOption), and a key type
// that is neither comparable nor known to the table with a codec
// (stream.ErrInvalidOption; tables from From, aggregations and the steps
// of this package know their key codec).
func EmitPerCommit(maxKeys int) stream.Option {
	return option(func(c *dsl.StepConfig) {
		c.Mark(optEmitPerCommit, "Table.ToStream")
		if maxKeys < 1 {
			c.Fail(fmt.Errorf("%w: EmitPerCommit(%d): maxKeys must be at least 1", stream.ErrInvalidOption, maxKeys))
			return
		}
		*dsl.Ext[int](c, optEmitPerCommit) = maxKeys
	})
}

// heldChange is the newest change of one key held by EmitPerCommit.
type heldChange[K, V any] struct {
	k    K
	v    V
	tomb bool
	rc   stream.RecordContext
}

func (t Table[K, V]) toStream(opts []stream.Option) stream.Stream[K, V] {
	p := t.node()
	if p == nil {
		return stream.Stream[K, V]{}
	}
	gr := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	maxKeys := *dsl.Ext[int](cfg, optEmitPerCommit)
	if maxKeys == 0 {
		// Without EmitPerCommit ToStream adds no step: there is
		// nothing to name.
		cfg.Report(gr, "to-stream", "of "+p.Name, toStreamOpts...)
		if cfg.Has(dsl.OptNamed) && !cfg.Has(optEmitPerCommit) {
			gr.AddError(fmt.Errorf("%w: ToStream of %q: Named names the step EmitPerCommit adds; a plain ToStream adds no step", stream.ErrInvalidOption, p.Name))
		}
		return stream.Stream[K, V](t.s)
	}
	kc := t.KeyCodec()
	kt := reflect.TypeFor[K]()
	comparable := kt.Kind() != reflect.Interface && kt.Comparable()
	n := &dsl.Node{Op: "to-stream-per-commit", Kind: dsl.KindProcessor, Name: cfg.Name,
		Detail: fmt.Sprintf("emit: newest change per key per commit, at most %d keys held", maxKeys)}
	t.attachChanges(n, false, func(task *dsl.Task) (changeFn[K, V], error) {
		next, err := dsl.Children[emit[K, V]](task, n)
		if err != nil {
			return nil, err
		}
		var (
			held  []heldChange[K, V]
			byKey = map[any]int{} // index in held, by key or encoded key
			kbuf  []byte
			rc    stream.RecordContext
		)
		emitHeld := func(ctx context.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					cur := task.Current
					if cur == nil {
						cur = n
					}
					err = &stream.NodeError{Node: cur.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset,
						Err: &stream.PanicError{Value: r, Stack: debug.Stack()}}
				}
			}()
			defer func() {
				clear(held)
				held = held[:0]
				clear(byKey)
			}()
			for i := range held {
				h := &held[i]
				rc = h.rc
				rc.Tombstone = h.tomb
				for _, f := range next {
					task.Current = n
					if err := f(ctx, &rc, h.k, h.v); err != nil {
						return err
					}
				}
			}
			return nil
		}
		task.OnFlush(emitHeld)
		return func(ctx context.Context, in *stream.RecordContext, k K, _ V, _ bool, nv V, hasNew bool) error {
			var id any
			if kc != nil {
				var err error
				if kbuf, err = kc.Append(kbuf[:0], k); err != nil {
					return &stream.NodeError{Node: n.Name, Topic: in.Topic, Partition: in.Partition, Offset: in.Offset, Err: err}
				}
				id = string(kbuf)
			} else {
				id = any(k)
			}
			h := heldChange[K, V]{k: k, v: nv, tomb: !hasNew, rc: *in}
			if i, ok := byKey[id]; ok {
				held[i] = h
				return nil
			}
			if len(held) >= maxKeys {
				if err := emitHeld(ctx); err != nil {
					return err
				}
			}
			byKey[id] = len(held)
			held = append(held, h)
			return nil
		}, nil
	})
	cfg.Report(gr, n.Op, n.Name, toStreamOpts...)
	if kc == nil && !comparable {
		gr.AddError(fmt.Errorf("%w: %s %q: EmitPerCommit needs a comparable key type or a table that knows its key codec; key type %v is neither", stream.ErrInvalidOption, n.Op, n.Name, kt))
	}
	return stream.Stream[K, V](dsl.NewStream(n, kc, t.ValueCodec()))
}
