package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
)

// Record is a record as a [Processor] sees and forwards it.
type Record[K, V any] struct {
	Key       K
	Value     V
	Timestamp time.Time
	// Headers are shared with the input record: copy before modifying.
	Headers []broker.Header
	// Tombstone says the value is absent: the source read a nil value
	// (Value is then V's zero value), and sinks write a forwarded
	// Tombstone record with a nil value, which deletes its key on a
	// compacted topic.
	Tombstone bool
}

// Processor is a low-level step for what the other steps cannot express:
// it sees each record with its metadata, forwards any number of records
// (with any key, value, timestamp and headers) and can fail a record with
// an error. [Process] creates one Processor per task, so a Processor needs
// no locking for its own fields.
type Processor[K, V, KOut, VOut any] interface {
	// Init is called once, when the task is created, before any record.
	// pc stays valid until Close. An error fails the task's creation.
	// A task is created again after every rebalance and restart, so
	// records forwarded from Init are forwarded each time.
	Init(pc ProcessorContext[KOut, VOut]) error
	// Process handles one record. A returned error fails the record:
	// it leaves the task's Process wrapped in a *NodeError naming the step
	// (unless it already is one, from a downstream step). ctx is not
	// canceled when the app stops: the runtime lets the record finish
	// (the app waits for it), so a Process that blocks on I/O should bound
	// its own wait.
	Process(ctx context.Context, rec Record[K, V]) error
	// Close is called once when the task closes, after its last commit:
	// records forwarded from Close are not written.
	Close() error
}

// ProcessorContext is what a [Processor] gets from its task.
type ProcessorContext[K, V any] interface {
	// Forward passes rec to the steps after the processor and returns
	// their error. A zero rec.Timestamp means the timestamp of the record
	// being processed. Call it from Process (or Init); not safe for
	// concurrent use.
	Forward(ctx context.Context, rec Record[K, V]) error
	// RecordContext returns the metadata of the record being processed:
	// topic, partition, offset, timestamp, headers. Outside Process it
	// returns the zero RecordContext.
	RecordContext() RecordContext
	// TaskID names the processor's task.
	TaskID() TaskID
	// AppID is the application id.
	AppID() string
	// Logger is the task's logger with a "node" attribute.
	Logger() *slog.Logger
	// Now is the runtime's clock.
	Now() time.Time
}

type processorContext[K, V any] struct {
	t      *dsl.Task
	n      *dsl.Node
	next   emit[K, V]
	in     *RecordContext
	out    RecordContext
	logger *slog.Logger
}

func (pc *processorContext[K, V]) Forward(ctx context.Context, rec Record[K, V]) error {
	var base RecordContext
	if pc.in != nil {
		base = *pc.in
	}
	ts := rec.Timestamp
	if ts.IsZero() {
		ts = base.Timestamp
	}
	// Reusing out is safe: the steps below never reach this processor
	// again while it forwards (the graph has no cycles), and no step
	// keeps the pointer.
	pc.out = RecordContext{Topic: base.Topic, Partition: base.Partition, Offset: base.Offset, Timestamp: ts, Headers: rec.Headers, Tombstone: rec.Tombstone}
	err := pc.next(ctx, &pc.out, rec.Key, rec.Value)
	pc.t.Current = pc.n
	return err
}

func (pc *processorContext[K, V]) RecordContext() RecordContext {
	if pc.in == nil {
		return RecordContext{}
	}
	return *pc.in
}

func (pc *processorContext[K, V]) TaskID() TaskID {
	id := pc.t.Env().TaskID()
	return TaskID{SubTopology: id.SubTopology, Partition: id.Partition}
}

func (pc *processorContext[K, V]) AppID() string        { return pc.t.Env().AppID() }
func (pc *processorContext[K, V]) Logger() *slog.Logger { return pc.logger }
func (pc *processorContext[K, V]) Now() time.Time       { return pc.t.Env().Now() }

// Process runs the records of s through processors that supplier creates,
// one per task, and returns the stream of the records they forward.
// Init runs when the task is created and Close when it closes; a panic in
// supplier, Init or Close is returned as an error (*PanicError), one in
// Process fails the record like any step's panic. Options: [Named]
// (default "process-<n>").
//
// Build reports a nil supplier (ErrNilFunc); task creation fails if it
// returns nil.
func Process[K, V, KOut, VOut any](s Stream[K, V], supplier func() Processor[K, V, KOut, VOut], opts ...Option) Stream[KOut, VOut] {
	p := nodeOf(s)
	if p == nil {
		return Stream[KOut, VOut]{}
	}
	g := p.Graph()
	cfg := stepOptions(g, opts)
	n := &dsl.Node{Op: "process", Kind: dsl.KindProcessor, Name: cfg.name}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		next, err := fanout[KOut, VOut](t, n)
		if err != nil {
			return nil, err
		}
		pc := &processorContext[KOut, VOut]{t: t, n: n, next: next, logger: t.Env().Logger().With("node", n.Name)}
		var proc Processor[K, V, KOut, VOut]
		err = guard(func() error {
			proc = supplier()
			if proc == nil {
				return fmt.Errorf("process %q: the supplier returned a nil Processor", n.Name)
			}
			if err := proc.Init(pc); err != nil {
				return fmt.Errorf("process %q: init: %w", n.Name, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		t.OnClose(func() error {
			if err := guard(proc.Close); err != nil {
				return fmt.Errorf("process %q: close: %w", n.Name, err)
			}
			return nil
		})
		return emit[K, V](func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			pc.in = rc
			err := proc.Process(ctx, Record[K, V]{Key: k, Value: v, Timestamp: rc.Timestamp, Headers: rc.Headers, Tombstone: rc.Tombstone})
			pc.in = nil
			if err != nil {
				if _, ok := errors.AsType[*NodeError](err); ok {
					return err
				}
				return nodeError(n, rc, err)
			}
			return nil
		}), nil
	}
	g.AddNode(n, p)
	if supplier == nil {
		g.AddError(fmt.Errorf("process %q: supplier: %w", n.Name, ErrNilFunc))
	}
	return handle[KOut, VOut](n)
}

// guard runs f and turns a panic into a *PanicError.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return f()
}
