package table

import (
	"context"
	"fmt"
	"reflect"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
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
// update. Each held change is emitted as a unit of work of its own under
// the app's error policy (see duality.SkipOnError): one that fails
// downstream is skipped alone and leaves the buffer, and the commit goes
// on. The step is named "to-stream-per-commit-<n>".
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

// heldChange is the newest change of one key held by EmitPerCommit; id
// is the key as byKey indexes it.
type heldChange[K, V any] struct {
	k    K
	v    V
	tomb bool
	rc   stream.RecordContext
	id   any
}

// heldUndo undoes one change to the held changes by a unit of work the
// runtime may skip: held[i] was replaced (prev), or appended (byKey's
// entry for id was prevIdx, if hadIdx).
type heldUndo[K, V any] struct {
	i        int
	replaced bool
	prev     heldChange[K, V]
	id       any
	prevIdx  int
	hadIdx   bool
}

// heldSnap is the held changes' state at the start of a unit of work: the
// length of the undo log and the number of changes emitted.
type heldSnap struct{ undo, emitted int }

// heldItem is a held change emitted on its own (dsl.Task.Item).
type heldItem[K, V any] struct {
	task *dsl.Task
	n    *dsl.Node
	next []emit[K, V]
	h    *heldChange[K, V]
	rc   stream.RecordContext
}

func (it *heldItem[K, V]) Emit(ctx context.Context) (err error) {
	it.rc = it.h.rc
	it.rc.Tombstone = it.h.tomb
	defer it.task.RecoverStep(&err, it.n, it.rc.Topic, it.rc.Partition, it.rc.Offset)
	for _, f := range it.next {
		it.task.Current = it.n
		if err := f(ctx, &it.rc, it.h.k, it.h.v); err != nil {
			return err
		}
	}
	return nil
}

func (it *heldItem[K, V]) Step() string { return it.n.Name }

func (it *heldItem[K, V]) String() string {
	if it.h.tomb {
		return fmt.Sprintf("deletion of key %v", it.h.k)
	}
	return fmt.Sprintf("change of key %v", it.h.k)
}

func (t Table[K, V]) toStream(opts []stream.Option) stream.Stream[K, V] {
	p := t.core().Node()
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
		return stream.Stream[K, V](t.core().Stream())
	}
	kc := t.KeyCodec()
	kt := reflect.TypeFor[K]()
	comparable := kt.Kind() != reflect.Interface && kt.Comparable()
	n := &dsl.Node{Op: "to-stream-per-commit", Kind: dsl.KindProcessor, Name: cfg.Name,
		Detail: fmt.Sprintf("emit: newest change per key per commit, at most %d keys held", maxKeys)}
	t.core().AttachChanges(n, false, func(task *dsl.Task) (tablecore.ChangeFn[K, V], error) {
		next, err := dsl.Children(task, n, dsl.CountRecords[*stream.RecordContext, K, V])
		if err != nil {
			return nil, err
		}
		// held are the newest changes since the last flush, by first
		// update; byKey indexes them by key. Each is emitted as an item of
		// its own (dsl.Task.Item) at the flush, or when one key too many
		// is held. Such an overflow emits them within the record or
		// punctuation being run, so they leave held only when that unit
		// ends (the next unit or flush: compact); until then they are the
		// first emitted of held, and if the runtime skips the unit, which
		// drops what it emitted, they are held again, not emitted. undo
		// logs the changes of the unit being run, for skip.
		var (
			held    []heldChange[K, V]
			byKey   = map[any]int{}
			emitted int
			undo    []heldUndo[K, V]
			snaps   dsl.Snapshots[heldSnap]
			kbuf    []byte
		)
		item := &heldItem[K, V]{task: task, n: n, next: next}
		compact := func() {
			if emitted == 0 {
				return
			}
			clear(byKey)
			kept := copy(held, held[emitted:])
			clear(held[kept:])
			held, emitted = held[:kept], 0
			for i := range held {
				byKey[held[i].id] = i
			}
		}
		begin := func() {
			snaps.Take(task, func(outer bool) heldSnap {
				if outer {
					compact() // the unit that emitted them ended
					undo = undo[:0]
				}
				return heldSnap{len(undo), emitted}
			})
		}
		task.OnSkip(func() {
			s, ok := snaps.Skipped(task)
			if !ok {
				return
			}
			for i := len(undo) - 1; i >= s.undo; i-- {
				u := &undo[i]
				if u.replaced {
					held[u.i] = u.prev
					continue
				}
				held[len(held)-1] = heldChange[K, V]{} // appended last, undone first
				held = held[:len(held)-1]
				if u.hadIdx {
					byKey[u.id] = u.prevIdx
				} else {
					delete(byKey, u.id)
				}
			}
			clear(undo[s.undo:])
			undo, emitted = undo[:s.undo], s.emitted
		})
		// emitHeld emits the held changes not emitted yet, each as an item.
		emitHeld := func(ctx context.Context) error {
			for i := emitted; i < len(held); i++ {
				item.h = &held[i]
				emitted = i + 1 // a failed item is skipped, not emitted again
				if err := task.Item(ctx, item); err != nil {
					return err
				}
			}
			return nil
		}
		task.OnFlush(func(ctx context.Context) error {
			compact()
			undo = undo[:0]
			defer func() {
				clear(held)
				held, emitted = held[:0], 0
				clear(byKey)
			}()
			return emitHeld(ctx)
		})
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
			begin()
			h := heldChange[K, V]{k: k, v: nv, tomb: !hasNew, rc: *in, id: id}
			i, ok := byKey[id]
			if ok && i >= emitted {
				undo = append(undo, heldUndo[K, V]{i: i, replaced: true, prev: held[i]})
				held[i] = h
				return nil
			}
			if len(held)-emitted >= maxKeys {
				if err := emitHeld(ctx); err != nil {
					return err
				}
			}
			undo = append(undo, heldUndo[K, V]{i: len(held), id: id, prevIdx: i, hadIdx: ok})
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
